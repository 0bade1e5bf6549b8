"""A caption never calls a quality steady beside a change it states in the same clip: no "even,
steady loudness" beside "grows louder / softer", no "flat, monotone intonation" beside "pitch
rises / drops" (in the global caption of that clip either), as no "even pace" beside a stated
change of pace."""

from __future__ import annotations

import random

import pytest

from clsp.caption.writer import Voice, finegrained_caption, global_caption


def _seg(pitch: float = 0.0, loud: float = 0.0) -> dict:
    return {"pitch_delta_st": pitch, "rate_ratio": 1.0, "loudness_delta_db": loud, "rate_label": "moderate",
            "loudness_label": "moderate", "slope_label": "level", "pitch_threshold": 1.5,
            "rate_threshold": 0.2, "loudness_threshold": 3.0}


def _captions(**kw) -> tuple[list[str], list[str]]:
    base = dict(gender="male", pitch="medium", pitch_range="moderately varied", slope="level", rate="moderate",
                loudness="moderate", dynamics="steady", voicing="voiced")
    voice = Voice(**{**base, **kw})
    rngs = [random.Random(i) for i in range(30)]
    return [global_caption(voice, r) for r in rngs], [finegrained_caption(voice, r) for r in rngs]


@pytest.mark.parametrize("segments", [[_seg(), _seg(loud=4.0), _seg()], [_seg(), _seg(loud=-5.0)],
                                      [_seg(), _seg(), _seg(loud=3.5)]])
def test_no_steady_loudness_beside_a_stated_loudness_change(segments):
    glob, fine = _captions(segments=segments)
    assert any("grows" in t for t in fine), fine[:2]
    for text in glob + fine:
        assert "steady loudness" not in text, text


@pytest.mark.parametrize("segments", [[_seg(), _seg(pitch=2.0), _seg()], [_seg(), _seg(pitch=-3.0)]])
def test_no_monotone_beside_a_stated_pitch_change(segments):
    glob, fine = _captions(pitch_range="monotone", segments=segments)
    assert any("pitch rises" in t or "pitch drops" in t for t in fine), fine[:2]
    for text in glob + fine:
        assert "monotone" not in text, text


def test_steady_and_monotone_stay_where_nothing_changes():
    glob, fine = _captions(pitch_range="monotone", segments=[_seg(), _seg(pitch=1.0, loud=2.0), _seg()])
    assert all("steady loudness" in t and "monotone" in t for t in fine), fine[:2]
    assert any("monotone" in t for t in glob)


def test_a_whispered_clip_states_no_pitch_change_and_keeps_its_dynamics_word():
    glob, fine = _captions(voicing="whispered", segments=[_seg(), _seg(pitch=4.0), _seg()])
    assert all("steady loudness" in t for t in fine), fine[:2]


def _seg_labels(rate: str, loud: str, rate_ratio: float = 1.0) -> dict:
    return {**_seg(), "rate_label": rate, "loudness_label": loud, "rate_ratio": rate_ratio}


def test_a_first_part_across_a_bin_edge_without_a_stated_change_opens_with_the_clips_pace_and_volume():
    """The parts' rates differ by less than a stated change (1.1 vs 1.0), but the first part's rate
    and loudness fall in the bins above the clip's: both captions say the clip's."""
    glob, fine = _captions(segments=[_seg_labels("fast", "loud", 1.1), _seg_labels("moderate", "moderate"),
                                     _seg_labels("moderate", "moderate")])
    for text in glob + fine:
        assert "brisk" not in text and "projected" not in text, text
    assert all("moderate, even pace" in t and "moderate volume" in t for t in fine), fine[:2]


def test_a_first_part_opens_with_its_own_pace_when_a_change_of_pace_follows():
    _, fine = _captions(segments=[_seg_labels("fast", "moderate", 1.3), _seg_labels("moderate", "moderate", 0.9)])
    assert all("begins speaking at a fast" in t and "pace slows" in t for t in fine), fine[:2]


def test_a_first_part_no_louder_or_faster_than_the_clip_opens_with_the_clips_words_before_a_change():
    """A loud clip whose first part is 1 dB below it (a bin edge away: "moderate") and then grows
    louder opened "at a moderate volume" beside the global "loud"; so for pace."""
    first = {**_seg_labels("fast", "moderate", 1.1), "loudness_delta_db": -1.0}
    glob, fine = _captions(loudness="loud", segments=[first, {**_seg_labels("slow", "loud", 0.85), "loudness_delta_db": 3.0}])
    assert all("grows louder" in t and "pace slows" in t for t in fine), fine[:2]
    assert all("begins speaking at a moderate pace and a loud, projected volume" in t for t in fine), fine[:2]
    assert all("projected" in t for t in glob), glob[:2]
    first["loudness_delta_db"] = -4.0  # a first part a stated change below the clip opens with its own words
    _, fine = _captions(loudness="loud", segments=[first, {**_seg_labels("slow", "loud", 0.85), "loudness_delta_db": 3.0}])
    assert all("and a moderate volume" in t for t in fine), fine[:2]
