"""An MP3 without a Xing/Info frame count (as sox writes it) is measured by what it decodes,
not by libsndfile's estimate from its size: its duration, the windows of a long clip and the
check of an ``end`` past the file's end follow the decoded audio."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from clsp.audio import audio_duration, load_audio, segment_plan
from clsp.embed import window_bounds
from clsp.errors import AudioError
from clsp.mp3gapless import parse_mp3_head

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")


@pytest.fixture
def tagless(tmp_path):
    rng = np.random.default_rng(0)
    x = np.convolve(rng.standard_normal(22050 * 60), np.hanning(9), "same")
    wav = tmp_path / "n.wav"
    sf.write(str(wav), (0.2 * x / np.abs(x).max()).astype(np.float32), 22050, subtype="PCM_16")
    mp3 = tmp_path / "n.mp3"
    res = subprocess.run(["sox", "-V1", str(wav), str(mp3)], capture_output=True)
    if res.returncode != 0 or not mp3.exists():
        pytest.skip("sox cannot write mp3")
    head = parse_mp3_head(mp3.read_bytes()[:16384])
    assert head is not None and not head.tag_frames  # no frame count: the length is estimated
    return mp3


def test_duration_and_windows_follow_the_decoded_audio(tagless):
    decoded = load_audio(tagless).numel()
    assert audio_duration(tagless) == pytest.approx(decoded / 16000, abs=0.002)
    _, samples = segment_plan(tagless)
    assert abs(samples - decoded) <= 32
    bounds = window_bounds(samples, 8.0, "windows")
    assert bounds[-1][1] <= decoded + 32
    last = load_audio(tagless, bounds[-1][0] / 16000, bounds[-1][1] / 16000)
    assert abs(last.numel() - (bounds[-1][1] - bounds[-1][0])) <= 32


def test_an_end_past_the_decoded_audio_is_an_error(tagless):
    decoded = load_audio(tagless).numel() / 16000
    with pytest.raises(AudioError, match="past the end"):
        load_audio(tagless, decoded - 1.0, decoded + 0.15)  # the estimate said 0.28 s more
    assert load_audio(tagless, decoded - 1.0, decoded + 0.01).numel() > 15000  # within Lhotse's 25 ms
