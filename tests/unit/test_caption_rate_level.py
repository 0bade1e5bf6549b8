"""What a caption says of pace and pauses is measured, not made up:

1. a clip or part with too little speech for a syllable rate (a 0.15 s cut holds no whole
   syllable, a 0.3 s one a single syllable) states no pace, and no part's pace change;
2. speech that grows quieter inside a clip is still speech: a second half 20-30 dB under the
   first keeps its syllables and its end, and reads as the voice growing softer, not as the
   pace slowing, as pauses, or as the utterance ending early;
3. a last part whose pitch drops is not said to end rising (nor a rising one falling).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clsp.caption.backend import RATE_MIN_SPEECH_S, AcousticCaptioner

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
SR = 16000


def _clip(name: str) -> np.ndarray:
    wave, sr = sf.read(DATA / name, dtype="float64")
    assert sr == SR
    return wave


@pytest.fixture(scope="module")
def captioner() -> AcousticCaptioner:
    return AcousticCaptioner.from_bins_file(speaker_gender=False, num_global=3, num_finegrained=3)


@pytest.mark.parametrize("seconds", [0.15, 0.3, 0.5])
def test_too_little_speech_for_a_rate_states_no_pace(captioner, seconds):
    wave = _clip("10a01Nb.flac")
    start = int(0.5 * SR)
    out = captioner.caption_waveform(wave[start : start + int(seconds * SR)], rec_id="cut")
    overall = out["measurements"]["overall"]
    assert overall["speech_s"] < RATE_MIN_SPEECH_S
    assert out["attributes"]["rate"] is None
    for text in out["global_captions"] + out["finegrained_captions"]:
        assert "pace" not in text, text
    # the whole clip has a pace
    whole = captioner.caption_waveform(wave, rec_id="whole")
    assert whole["attributes"]["rate"] is not None
    assert all("pace" in text for text in whole["global_captions"])
    # a one-part clip speaks; it does not "begin speaking" with nothing after
    one_part = [t for t in whole["finegrained_captions"]] if len(whole["measurements"]["segments"]) == 1 else []
    short = captioner.caption_waveform(wave[start : start + int(0.6 * SR)], rec_id="cut")
    for text in one_part + short["finegrained_captions"]:
        assert "begins" not in text and " speaks" in text, text


@pytest.mark.parametrize("name", ["03a01Wa.flac", "09a01Fa.flac", "09a01Nb.flac", "10a01Nb.flac", "13a01Wb.flac"])
def test_speech_that_grows_30_db_quieter_stays_speech_at_its_pace(captioner, name):
    """The clip said twice, the second time 30 dB quieter: before, the quiet half lost most of its
    frames (speech seconds down by a third or more) and read as pauses (two to four where the
    clip has at most one) and as the pace slowing."""
    wave = _clip(name)
    loud = captioner.caption_waveform(np.concatenate([wave, wave]), rec_id="x")
    quiet = captioner.caption_waveform(np.concatenate([wave, wave * 10 ** (-30 / 20)]), rec_id="x")
    a, b = loud["measurements"]["overall"], quiet["measurements"]["overall"]
    assert b["speech_s"] >= 0.85 * a["speech_s"], (a["speech_s"], b["speech_s"])
    assert b["pause_count"] <= a["pause_count"] + 1, (a["pause_count"], b["pause_count"])
    assert b["syllable_rate"] >= 0.8 * a["syllable_rate"], (a["syllable_rate"], b["syllable_rate"])
    assert all("softer" in text for text in quiet["finegrained_captions"])


@pytest.mark.parametrize(("step", "slope", "ends"), [(-3.0, "rising", False), (3.0, "falling", False),
                                                     (-3.0, "falling", True), (3.0, "rising", True), (0.0, "rising", True)])
def test_a_last_part_never_drops_in_pitch_and_ends_rising(step, slope, ends):
    """35 of 191 EmoDB held-out clips read "towards the close her pitch drops ... and she ends with
    a rising intonation" (the last part lower, its own contour rising): the ending contour is
    stated only where it agrees with the stated step."""
    import random

    from clsp.caption.writer import Voice, finegrained_caption

    def seg(pitch: float, slope_label: str = "level") -> dict:
        return {"pitch_delta_st": pitch, "rate_ratio": 1.0, "loudness_delta_db": 0.0, "rate_label": "moderate",
                "loudness_label": "moderate", "slope_label": slope_label, "pitch_threshold": 1.5,
                "rate_threshold": 0.2, "loudness_threshold": 3.0}

    voice = Voice(gender="female", pitch="medium", pitch_range="moderately varied", slope=slope, rate="moderate",
                  loudness="moderate", dynamics="steady", voicing="voiced", segments=[seg(0.0), seg(step, slope)])
    for i in range(20):
        text = finegrained_caption(voice, random.Random(i))
        assert (f"ends with a {slope} intonation" in text) == ends, text
        if step:
            assert ("drops" if step < 0 else "rises") in text, text


def test_a_long_pause_does_not_make_parts_of_under_a_second_of_speech(captioner):
    """A 1.5 s pause inserted into a 2.3 s sentence made three parts of 0.79 s of speech each (the
    span, pause included, was counted); the README promises parts of at least one second."""
    wave = _clip("13a01Wb.flac")
    half = len(wave) // 2
    out = captioner.caption_waveform(np.concatenate([wave[:half], np.zeros(int(1.5 * SR)), wave[half:]]), rec_id="p")
    segments = out["measurements"]["segments"]
    assert len(segments) == 2 and all(seg["speech_s"] >= 1.0 for seg in segments), segments
