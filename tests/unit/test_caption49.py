"""Captions state only what was measured and never contradict themselves; given metadata and a
cut's own captions are kept, clsp's own earlier captions replaced.

1. no volume word for a clip too short to measure loudness;
2. no steadiness word ("even pace") where the fine-grained caption states a pace change;
3. an unreadable accent is left out and listed under unused_metadata, never an error;
4. no child with a "very deep" voice;
5. ``--as-cuts`` keeps a cut's own corpus captions under custom["metadata"];
6. clsp's own ``--as-cuts`` output captioned again has those fields replaced.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf

from clsp.caption.backend import AcousticCaptioner
from clsp.caption.loudness import LoudnessReference
from clsp.caption.metadata import caption_metadata
from clsp.caption.pipeline import caption_acoustic
from clsp.caption.writer import Voice, finegrained_caption, global_caption
from tests.conftest import invoke
from tests.unit.test_caption_edges48 import _syllables

SR = 16000


def _seg(rate_ratio: float, rate_label: str | None = "moderate") -> dict:
    return {"pitch_delta_st": 0.0, "rate_ratio": rate_ratio, "loudness_delta_db": 0.0, "rate_label": rate_label,
            "loudness_label": "moderate", "slope_label": "level", "pitch_threshold": 1.5,
            "rate_threshold": 0.2, "loudness_threshold": 3.0}


def _voice(**kw) -> Voice:
    base = dict(gender="male", pitch="medium", pitch_range="moderately varied", slope="level", rate="moderate",
                loudness="moderate", dynamics="steady", voicing="voiced")
    return Voice(**{**base, **kw})


def _captions(voice: Voice, n: int = 40) -> tuple[list[str], list[str]]:
    rngs = [random.Random(i) for i in range(n)]
    return [global_caption(voice, r) for r in rngs], [finegrained_caption(voice, r) for r in rngs]


# 1. loudness not measured: no volume stated ---------------------------------------------------

def test_no_volume_word_without_a_measured_loudness():
    glob, fine = _captions(_voice(loudness=None, segments=[{**_seg(1.0), "loudness_label": None}]))
    for text in glob + fine:
        assert "volume" not in text, text


def test_a_clip_too_short_for_loudness_states_no_volume():
    cap = AcousticCaptioner.from_bins_file(loudness=LoudnessReference("absolute"), speaker_gender=False,
                                           num_global=3, num_finegrained=2)
    out = cap.caption_waveform(_syllables(0.35) * 10 ** (-40 / 20), rec_id="q40-seg")
    assert out["measurements"]["overall"]["loudness_lufs"] is None and out["attributes"]["loudness"] is None
    for text in out["global_captions"] + out["finegrained_captions"]:
        assert "volume" not in text, text


# 2. steadiness only without a stated pace change -----------------------------------------------

@pytest.mark.parametrize("ratios", [(1.12, 0.90), (1.0, 1.3, 0.7), (1.25, 1.0, 0.8)])
def test_no_even_pace_beside_a_stated_pace_change(ratios):
    glob, fine = _captions(_voice(segments=[_seg(r) for r in ratios]))
    assert any("the pace slows" in t or "the pace quickens" in t for t in fine)
    for text in glob + fine:
        assert "even pace" not in text, text
    # a pace that changes less than a stated change is still even, in both captions
    glob, fine = _captions(_voice(segments=[_seg(1.05), _seg(1.0), _seg(0.95)]))
    assert not any("the pace" in t for t in fine)
    assert all("moderate, even pace" in t for t in glob + fine)


# 3. accents: known words used, anything else left out and listed -----------------------------

@pytest.mark.parametrize("value", ["not given", "other", "zzqx", "Other", "no accent", "not applicable"])
def test_unreadable_accent_is_listed_not_used(value):
    readable, unused = caption_metadata({"accent": value})
    assert readable.get("accent") is None and unused == {"accent": value}
    for known in ("German", "Scottish English", "american", "Irish accent", "South African"):
        assert caption_metadata({"accent": known}) == ({"accent": known}, {})


def test_unreadable_accent_never_fails_the_clip(tmp_path):
    sf.write(tmp_path / "v.wav", _syllables(1.5, f0=120), SR)
    cap = AcousticCaptioner.from_bins_file(speaker_gender=False)
    for value in ("not given", "other", "zzqx"):
        out = caption_acoustic({"id": "a", "audio": str(tmp_path / "v.wav"), "accent": value}, cap)
        assert out["unused_metadata"] == {"accent": value}
        for text in out["global_captions"] + out["finegrained_captions"]:
            assert "accent" not in text and value not in text, text


# 4. a child is never "very deep" -------------------------------------------------------------

@pytest.mark.parametrize("given", [{"age": "child"}, {"age": "child", "gender": "m"}, {"age": 9}])
def test_a_child_is_never_given_a_very_deep_voice(given):
    cap = AcousticCaptioner.from_bins_file(speaker_gender=False, num_global=3, num_finegrained=2)
    out = cap.caption_waveform(_syllables(2.0, f0=67.0), given, rec_id="deepChild")
    assert out["measurements"]["overall"]["f0_median_hz"] < 80
    for text in out["global_captions"] + out["finegrained_captions"]:
        assert any(w in text for w in ("boy", "girl", "child")), text
        assert "very deep" not in text, text
    # an adult man of the same voice is still very deep
    adult = cap.caption_waveform(_syllables(2.0, f0=67.0), {"gender": "m"}, rec_id="deepChild")
    assert "very deep" in adult["global_captions"][0]


# 5./6. cuts keep their corpus captions, clsp's own earlier captions are replaced ---------------

def _corpus_cut(tmp_path) -> None:
    from lhotse import CutSet, Recording, SupervisionSegment

    sf.write(tmp_path / "v.wav", _syllables(2.0, f0=140), SR)
    cut = Recording.from_file(tmp_path / "v.wav", recording_id="v").to_cut()
    cut.supervisions = [SupervisionSegment("s1", "v", 0.0, cut.duration, speaker="spk",
                                           custom={"global_captions": ["corpus cap"], "emotion": "fear"})]
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_as_cuts_keeps_a_cuts_own_captions_and_replaces_its_own(tmp_path):
    _corpus_cut(tmp_path)
    p = invoke("caption", "cuts.jsonl.gz", "--as-cuts", "-q", "-o", "out.jsonl", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    [cut] = _lines(tmp_path / "out.jsonl")
    custom = cut["supervisions"][0]["custom"]
    assert custom["emotion"] == "fear" and custom["metadata"] == {"global_captions": ["corpus cap"]}
    assert custom["global_captions"] and custom["global_captions"] != ["corpus cap"]
    assert custom["caption_provenance"]["backend"] == "acoustic"
    # the flat caption of the corpus cut keeps them alike
    p = invoke("caption", "cuts.jsonl.gz", "-q", "-o", "flat.jsonl", cwd=tmp_path, text=True)
    [flat] = _lines(tmp_path / "flat.jsonl")
    assert flat["metadata"] == custom["metadata"]
    # clsp's own cut captioned again, as cuts and as flat records: the earlier captions replaced
    p = invoke("caption", "out.jsonl", "--as-cuts", "-q", "-o", "again.jsonl", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    [again] = _lines(tmp_path / "again.jsonl")
    assert again["supervisions"][0]["custom"]["metadata"] == {"global_captions": ["corpus cap"]}
    p = invoke("caption", "out.jsonl", "-q", "-o", "flat2.jsonl", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    [flat2] = _lines(tmp_path / "flat2.jsonl")
    assert "caption_provenance" not in flat2 and flat2["metadata"] == {"global_captions": ["corpus cap"]}
    assert flat2["emotion"] == "fear" and flat2["provenance"]["backend"] == "acoustic"


def test_own_cut_output_of_a_plain_record_is_captioned_again_as_flat(tmp_path):
    sf.write(tmp_path / "v.wav", _syllables(2.0, f0=140), SR)
    rec = {"id": "r1", "audio": "v.wav", "start": 0.2, "end": 1.8, "emotion": "anger"}
    (tmp_path / "seg.jsonl").write_text(json.dumps(rec) + "\n")
    p = invoke("caption", "seg.jsonl", "--as-cuts", "-q", "-o", "seg.cuts.jsonl", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    p = invoke("caption", "seg.cuts.jsonl", "-q", "-o", "flat.jsonl", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    [flat] = _lines(tmp_path / "flat.jsonl")
    assert "caption_provenance" not in flat and "metadata" not in flat, flat.get("metadata")
    assert flat["emotion"] == "anger" and flat["provenance"]["backend"] == "acoustic" and flat["global_captions"]
