"""The result type, Options and the caption-backend registry."""

from __future__ import annotations

from enum import Enum

import pytest

from clsp.caption import backends
from clsp.errors import AudioError, ConfigError
from clsp.records import Item
from clsp.results import PairScore, Prediction, Result, SearchHit, SearchHits, under_metadata
from clsp_cli.options import Options


def test_result_records_keep_the_output_fields():
    hit = SearchHit.from_dict({"id": "c1", "score": 0.123456789, "speaker": "03", "metadata": {"score": 4}})
    assert hit.to_dict() == {"id": "c1", "score": 0.123457, "speaker": "03", "metadata": {"score": 4}}
    assert list(SearchHits("q", [hit]).to_dict()) == ["id", "hits"]
    pred = Prediction({"id": "a", "audio": "/x.wav"}, "calm", {"calm": 0.75, "angry": 0.25})
    assert list(pred.to_dict()) == ["id", "audio", "label", "scores"]
    pair = PairScore("p", 0.5, "audio-text", {"id": "p", "a": "x.wav", "b": "calm"}, {"score": 3.0})
    assert pair.to_dict() == {"id": "p", "a": "x.wav", "b": "calm", "score": 0.5, "pair": "audio-text",
                              "metadata": {"score": 3.0}}
    assert pair.field("score") == 3.0 and pair.field("a") == "x.wav"


def test_a_failed_result_is_an_error_record_named_by_its_item():
    res = Result(Item(index=0, id="clip-7"), error=AudioError("/d/clip-7.wav: no such file"))
    assert not res.ok and res.id == "clip-7"
    assert res.to_dict() == {"id": "clip-7", "error": {"type": "AudioError", "message": "/d/clip-7.wav: no such file"}}


def test_options_hold_enum_choices_as_values():
    class Color(str, Enum):
        red = "red"

    o = Options.of({"color": Color.red, "k": 3})
    assert o.color == "red" and type(o.color) is str and o.k == 3


def test_a_new_caption_backend_is_one_class_and_one_registration(monkeypatch):
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))

    @backends.register_caption_backend("echo")
    class Echo:
        def __init__(self, suffix: str):
            self.suffix = suffix

        @classmethod
        def from_options(cls, suffix: str = "!", **others):
            return cls(suffix)

        def caption_items(self, items):
            for item in items:
                if item.error is not None:
                    yield Result(item, error=item.error)
                else:
                    yield Result(item, {**item.record, "global_captions": [item.id + self.suffix]})

    assert "echo" in backends.caption_backend_names() and "acoustic" in backends.caption_backend_names()
    items = [Item(0, "a", {"id": "a"}), Item(1, "b", error=AudioError("b.wav: unreadable"))]
    out = list(backends.caption_clips(items, "echo", suffix="?"))
    assert out[0].value["global_captions"] == ["a?"] and not out[1].ok
    # a backend that copies its input record: the reader's private fields stay out of its captions
    [res] = backends.caption_clips(["clip.wav"], "echo")
    assert res.value == {"id": "clip.wav", "audio": res.item.record["audio"], "global_captions": ["clip.wav!"]}
    with pytest.raises(ConfigError, match="unknown caption backend 'nope'.*acoustic, echo, model"):
        backends.build_caption_backend("nope")


def test_caption_backends_refuse_options_that_are_not_theirs():
    with pytest.raises(ConfigError, match="belong to --backend model"):
        backends.build_caption_backend("acoustic", model="some/audio-lm")
    with pytest.raises(ConfigError, match="needs --model"):
        backends.build_caption_backend("model")
    with pytest.raises(ConfigError, match="not both 0"):
        backends.build_caption_backend("acoustic", num_global=0, num_finegrained=0)


def test_a_prediction_keeps_colliding_input_fields_under_metadata():
    pred = Prediction({"id": "a", "label": "female", "scores": 4.5, "speaker": "s1", "error": "none"}, "male",
                      {"male": 0.9, "female": 0.1})
    out = pred.to_dict()
    assert out["label"] == "male" and out["scores"] == {"male": 0.9, "female": 0.1} and "error" not in out
    assert out["metadata"] == {"label": "female", "scores": 4.5, "error": "none"} and out["speaker"] == "s1"
    assert "metadata" not in Prediction({"id": "b"}, "male", {"male": 1.0}).to_dict()


def test_under_metadata_moves_reserved_fields_and_the_records_own_metadata_with_them():
    rec = {"id": "a", "error": {"type": "Flag"}, "row": 17, "metadata": {"row": 1}, "spk": "s1"}
    fields, kept = under_metadata(rec, ("row", "error"))
    assert fields == {"id": "a", "spk": "s1"} and kept == {"error": {"type": "Flag"}, "row": 17, "metadata": {"row": 1}}
    assert under_metadata({"id": "b", "metadata": {"k": 1}}, ("row",)) == ({"id": "b", "metadata": {"k": 1}}, {})
    assert under_metadata({"id": "b", "metadata": 3}, ("metadata",)) == ({"id": "b"}, {"metadata": 3})


def test_a_pair_score_keeps_an_input_error_field_under_metadata():
    from clsp.similarity import pair_result, record_field

    out = pair_result({"id": "p", "a": "x", "b": "y", "error": {"type": "Flag"}}, "p", 0.5, "text-text").to_dict()
    assert "error" not in out and out["score"] == 0.5 and out["metadata"] == {"error": {"type": "Flag"}}
    assert record_field(out, "error") == {"type": "Flag"}


def test_undefined_statistics_are_null_and_bad_numbers_are_usage_errors():
    import json
    import math

    from clsp.metrics.classification import classification_report
    from clsp_cli.errors import check_numbers

    report = classification_report(["female"], ["male"], labels=["male", "female"], n_boot=50)
    assert report["wa_ci"] == [None, None] and report["ua_ci"] == [None, None]
    json.dumps(report, allow_nan=False)
    for bad in ({"max_seconds": math.nan}, {"below": math.inf}, {"max_inflight_seconds": -math.inf}):
        with pytest.raises(ConfigError, match="not a finite number"):
            check_numbers(bad)
    check_numbers({"lock_timeout": math.inf, "k": 3, "temperature": 1.0})  # inf: wait without a limit


def test_an_embedding_moves_under_metadata_with_its_provenance():
    """caption kept embed's provenance under metadata but left its `embedding` (or `row` and
    `row_sha256`) at the top: a vector without the model that made it, read as the command's own."""
    prov = {"model": "my-voices", "dim": 2}
    fields, kept = under_metadata({"id": "a", "embedding": [1.0, 0.0], "provenance": prov}, ("provenance",))
    assert fields == {"id": "a"} and kept == {"embedding": [1.0, 0.0], "provenance": prov}
    fields, kept = under_metadata({"id": "a", "row": 3, "row_sha256": "ab", "provenance": prov, "metadata": {"k": 1}},
                                  ("provenance",))
    assert fields == {"id": "a"} and kept == {"row": 3, "row_sha256": "ab", "provenance": prov, "metadata": {"k": 1}}
    assert under_metadata({"id": "a", "embedding": [1.0]}, ("score",)) == ({"id": "a", "embedding": [1.0]}, {})


def test_a_prediction_keeps_input_fields_named_like_an_embedding_records_under_metadata():
    """classify dropped a record's own `provenance` (a note, a caption backend's) and left a
    spreadsheet `row` at the top, where a later reader takes it for a matrix row."""
    cap = {"backend": "acoustic", "version": "2"}
    out = Prediction({"id": "a", "audio": "a.wav", "provenance": cap, "row": 17}, "male", {"male": 1.0}).to_dict()
    assert out == {"id": "a", "audio": "a.wav", "label": "male", "scores": {"male": 1.0},
                   "metadata": {"provenance": cap, "row": 17}}
