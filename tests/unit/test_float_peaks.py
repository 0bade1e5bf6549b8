"""Float audio far past full scale (integer PCM values stored as floats) is refused with the
reason, as NaN / infinity are, by every reader of audio files and by ``encode_audio``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clsp.audio import PEAK_LIMIT, load_audio
from clsp.errors import AudioError
from tests.helpers.assets import tone
from tests.helpers.cli import invoke, jsonl


def _float_wav(path: Path, gain: float) -> Path:
    sf.write(path, tone(1.0) * gain, 16000, subtype="FLOAT")
    return path


def test_load_audio_refuses_samples_past_the_peak_limit(tmp_path: Path) -> None:
    base = float(np.abs(tone(1.0)).max())
    over = 1.5 / base  # peak 1.5: over full scale, as unlimited processing leaves it: read as is
    wave = load_audio(_float_wav(tmp_path / "hot.wav", over))
    assert wave.abs().max() == pytest.approx(1.5, rel=1e-4)
    with pytest.raises(AudioError, match=r"int16\.wav: samples reach [0-9.]+, over 2 .*divide by 32768"):
        load_audio(_float_wav(tmp_path / "int16.wav", 32768.0))
    with pytest.raises(AudioError, match=r"x3\.wav: samples reach 3, over 2 \(full scale is 1\.0\); scale"):
        load_audio(_float_wav(tmp_path / "x3.wav", 3.0 / base))
    assert PEAK_LIMIT == 2.0


def test_commands_give_one_error_record_for_an_int16_scaled_float_wav(tmp_path: Path) -> None:
    _float_wav(tmp_path / "ok.wav", 1.0)
    _float_wav(tmp_path / "scaled.wav", 32768.0)
    for args in (("embed", "--model", "tiny-random"), ("caption",), ("classify", "--model", "tiny-random",
                                                                       "--pack", "gender")):
        res = invoke(args[0], "ok.wav", "scaled.wav", *args[1:], "-q", cwd=tmp_path)
        out = jsonl(res.stdout)
        assert res.returncode == 3 and len(out) == 2 and "error" not in out[0], (args, res.stderr)
        assert "samples reach" in out[1]["error"]["message"] and "scaled.wav" in out[1]["error"]["message"]


def test_encode_audio_refuses_samples_past_the_peak_limit(tiny_model) -> None:
    waves = torch.zeros(2, 16000)
    waves[0, :8000] = torch.from_numpy(tone(0.5))
    waves[1] = torch.from_numpy(tone(1.0)) * 32768
    with pytest.raises(AudioError, match="clip 1: samples reach"):
        tiny_model.encode_audio(waves, [8000, 16000])
    assert tiny_model.encode_audio(waves[:1] * 4, [8000]).shape[0] == 1  # peak 1.2: heard


def test_a_lhotse_cut_of_an_int16_scaled_float_wav_is_refused_as_its_file_is(tmp_path: Path) -> None:
    lhotse = pytest.importorskip("lhotse")
    _float_wav(tmp_path / "hot.wav", 32768.0)
    rec = lhotse.Recording.from_file(tmp_path / "hot.wav", recording_id="hot")
    lhotse.CutSet.from_cuts([rec.to_cut()]).to_file(tmp_path / "cuts.jsonl")
    for args in (("embed", "--model", "tiny-random"), ("caption",)):
        res = invoke(args[0], "cuts.jsonl", *args[1:], "-q", cwd=tmp_path)
        [out] = jsonl(res.stdout)
        assert res.returncode == 3 and "samples reach" in out["error"]["message"], (args, out)
