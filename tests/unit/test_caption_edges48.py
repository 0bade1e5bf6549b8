"""Captions describe the voice, not the recording: silence around or between the words leaves
the gender head alone; recording gain leaves pace, dynamics and voice quality alone; pauses are
worded by length."""

from __future__ import annotations

import random

import numpy as np
import pytest

from clsp.caption.acoustic import measure
from clsp.caption.backend import AcousticCaptioner
from clsp.caption.loudness import LoudnessReference
from clsp.caption.writer import Voice, finegrained_caption
from clsp.errors import AudioError

SR = 16000


def _syllables(seconds: float, f0: float = 210.0, rate_hz: float = 4.0, amp: float = 0.5) -> np.ndarray:
    """Harmonics with vibrato under syllable-like bursts whose dips fall about 40 dB below their peaks."""
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, 20)) * (0.01 + np.sin(np.pi * rate_hz * t) ** 2)
    return amp * x / np.abs(x).max()


def _pad(x: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    return np.concatenate([np.zeros(int(before_s * SR)), x, np.zeros(int(after_s * SR))])


def test_silence_around_the_voice_leaves_gender_and_voice_quality_alone():
    cap = AcousticCaptioner.from_bins_file()
    clip = _pad(_syllables(2.0), 0.3, 0.3)  # a recording with its own short silences
    padded = _pad(clip, 3.0, 3.0)
    a, b = cap.measure(clip).overall, cap.measure(padded).overall
    assert b["start_s"] == pytest.approx(a["start_s"] + 3.0, abs=0.02)
    assert b["speaker_female_logit"] == pytest.approx(a["speaker_female_logit"], abs=0.02)
    for key in ("cpps_db", "hnr_db", "bandwidth_hz"):
        assert b[key] == pytest.approx(a[key], rel=0.02, abs=0.05), key
    # the batched pass (clsp caption's path) hears the same voice
    m = cap.measure(padded, speaker=False)
    cap.add_speaker_logits([(m, padded)])
    assert m.overall["speaker_female_logit"] == pytest.approx(a["speaker_female_logit"], abs=0.02)


def test_gain_leaves_speech_detection_and_dynamics_alone():
    # the speaker encoders' gender hears the level as recorded (AcousticCaptioner.voice): left out here
    cap = AcousticCaptioner.from_bins_file(loudness=LoudnessReference("recording"), speaker_gender=False)
    clip = _pad(_syllables(2.5), 0.3, 0.3)
    ref = cap.caption_waveform(clip, rec_id="x")
    for db in (-20, -40, -50):
        out = cap.caption_waveform(clip * 10 ** (db / 20), rec_id="x")
        o, r = out["measurements"]["overall"], ref["measurements"]["overall"]
        for key in ("speech_s", "syllable_rate", "loudness_std_db", "pause_count", "voiced_ratio"):
            assert o[key] == pytest.approx(r[key], rel=1e-6, abs=1e-9), (db, key)
        assert out["global_captions"] == ref["global_captions"]
        assert out["finegrained_captions"] == ref["finegrained_captions"]
    # only a recording that holds nothing but a few 16-bit steps is silent
    rng = np.random.default_rng(0)
    with pytest.raises(AudioError, match="silent"):
        measure(rng.uniform(-2, 2, SR) / 32768)
    with pytest.raises(AudioError, match="silent"):
        measure(np.zeros(SR))


def test_a_long_pause_is_called_long_and_does_not_make_the_pace_change():
    cap = AcousticCaptioner.from_bins_file()
    burst = _syllables(2.4)
    gap = np.concatenate([burst, np.zeros(4 * SR), burst])
    out = cap.caption_waveform(gap, rec_id="gap")
    o = out["measurements"]["overall"]
    assert o["pause_count"] == 1 and o["pause_long_count"] == 1 and o["pause_max_s"] > 3.9
    assert all(seg["speech_s"] >= 1.2 for seg in out["measurements"]["segments"])  # none is the pause alone
    fine = out["finegrained_captions"][0]
    assert "one long pause" in fine and "brief" not in fine
    assert "the pace slows" not in fine and "the pace quickens" not in fine
    short = cap.caption_waveform(np.concatenate([burst, np.zeros(int(0.4 * SR)), burst]), rec_id="gap")
    assert short["measurements"]["overall"]["pause_long_count"] == 0
    assert "one brief pause" in short["finegrained_captions"][0]


@pytest.mark.parametrize("count,long,words", [(1, 0, "with one brief pause"), (1, 1, "with one long pause"),
                                              (2, 0, "with two short pauses"), (3, 3, "with three long pauses"),
                                              (3, 1, "with three pauses, one of them long"),
                                              (8, 2, "with frequent pauses, some of them long")])
def test_pause_words_follow_their_length(count, long, words):
    voice = Voice(gender="female", pitch="medium", pitch_range=None, slope=None, rate="moderate",
                  loudness="moderate", dynamics=None, voicing="voiced", pause_count=count, long_pauses=long)
    text = finegrained_caption(voice, random.Random(0))
    assert f"delivers the words {words}" in text
