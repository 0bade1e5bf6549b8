"""Prompt packs: built-ins load, the paper's wording is exact, invalid packs are refused."""

from __future__ import annotations

import json
import re

import pytest

from clsp.errors import ConfigError
from clsp.prompts import builtin_pack_names, load_pack, pack_from_dict, parse_pack_text


def test_every_builtin_pack_loads_with_two_or_more_classes():
    names = builtin_pack_names()
    for required in ("emotion", "gender", "age", "pitch", "speaking-rate", "loudness", "voice-quality", "accent",
                     "iemocap", "ravdess", "cremad"):
        assert required in names
    for name in names:
        pack = load_pack(name)
        for prompt_set in pack.attributes.values():
            assert len(prompt_set.output_classes) >= 2
            assert all(c.prompts for c in prompt_set.classes)


def _prompts(pack: str, attribute: str) -> list[str]:
    return [p for c in load_pack(pack).get(attribute).classes for p in c.prompts]


def test_paper_prompts_are_verbatim_and_in_order():
    assert _prompts("iemocap", "emotion") == [
        "A speaker in a happy tone.", "A speaker in a excited tone.", "A speaker in a angry tone.",
        "A speaker in a sad tone.", "A speaker in a neutral tone."]
    assert _prompts("ravdess", "emotion") == [
        f"A speaker in a {w} tone." for w in ("angry", "calm", "disgust", "fear", "happy", "sad", "surprised", "neutral")]
    assert _prompts("ravdess", "gender") == ["A male speaker.", "A female speaker."]
    assert _prompts("cremad", "emotion") == [
        f"A speaker in a {w} tone." for w in ("happy", "sad", "angry", "fear", "disgust", "neutral")]
    assert _prompts("cremad", "age") == [
        "A child or young teenager speaker.", "An adult speaker.", "A middle-aged speaker.", "An older or elder speaker."]


def test_iemocap_merge_and_gold_label_aliases():
    s = load_pack("iemocap").get("emotion")
    assert s.output_classes == ["happy", "angry", "sad", "neutral"]
    assert s.canonical_label("exc") == "happy"
    assert s.canonical_label("Excited") == "happy"
    assert s.canonical_label("hap") == "happy"
    assert s.canonical_label("neu") == "neutral"
    assert s.canonical_label("fru") is None
    assert load_pack("cremad").get("emotion").canonical_label("F") == "fear"
    assert load_pack("ravdess").get("emotion").canonical_label("fearful") == "fearful"


def test_multi_attribute_pack_needs_attribute_choice():
    pack = load_pack("ravdess")
    with pytest.raises(ConfigError, match="several attributes"):
        pack.get()
    with pytest.raises(ConfigError, match="no attribute 'age'"):
        pack.get("age")


GOOD = {"attribute": "mood", "templates": ["A {label} voice."], "classes": {"calm": "calm", "tense": "tense"}}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"classes": {}}, "no classes"),
        ({"classes": {"calm": "calm"}}, "at least two classes"),
        ({"templates": ["A calm voice."]}, "has no {label} slot"),
        ({"templates": ["A {mood} voice."]}, "unknown slot"),
        ({"templates": ["A {label voice."]}, "malformed braces"),
        ({"templates": ["A {label:s} voice."]}, "writes its slot with a format or conversion"),  # was taken literally
        ({"templates": ["A {label!r} voice."]}, "writes its slot with a format or conversion"),
        ({"templates": ["A {label}, {label} voice."]}, "has 2 {label} slots"),
        ({"classes": {"calm": "calm", "Calm": "relaxed"}}, "duplicate class 'calm'"),
        ({"classes": ["calm", "tense", "calm"]}, "duplicate class 'calm'"),
        ({"classes": {"calm": {"label": "calm", "aliases": ["tense"]}, "tense": "tense"}}, "duplicate class 'tense'"),
        ({"classes": {"calm": "calm", "tense": {"label": "tense", "colour": "red"}}}, "unknown key"),
        ({"colour": "red"}, "unknown key"),
        ({"templates": []}, "no templates"),
        ({"classes": {"calm": {"prompts": ["Calm."]}, "tense": {"prompts": ["Calm."]}}}, "identical prompts"),
        ({"classes": {"calm": {"prompts": ["A {label} voice."]}, "tense": "tense"}}, "contains a slot"),
        ({"merge": {"calm": "sleepy"}}, "does not exist"),
        ({"classes": {"calm": {}, "tense": "tense"}}, "has no prompts"),
        ({"classes": {"calm": {"label": ""}, "tense": "tense"}}, "empty string"),
    ],
)
def test_invalid_packs_are_refused_with_the_problem_named(change, message):
    raw = {**GOOD, **change}
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        pack_from_dict(raw, name="mine")


def test_missing_attribute_and_missing_classes():
    with pytest.raises(ConfigError, match="missing 'attribute'"):
        pack_from_dict({k: v for k, v in GOOD.items() if k != "attribute"})
    with pytest.raises(ConfigError, match="no classes"):
        pack_from_dict({"attribute": "mood"})


def test_duplicate_json_keys_are_refused(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"attribute": "mood", "templates": ["A {label} voice."],'
                    ' "classes": {"calm": "calm", "tense": "tense", "calm": "serene"}}')
    with pytest.raises(ConfigError, match="duplicate key 'calm'"):
        load_pack(path)


def test_file_packs_json_and_yaml(tmp_path):
    path = tmp_path / "mood.json"
    path.write_text(json.dumps(GOOD))
    pack = load_pack(str(path))
    assert pack.name == "mood"
    assert [c.prompts for c in pack.get().classes] == [("A calm voice.",), ("A tense voice.",)]
    pytest.importorskip("yaml")
    ypath = tmp_path / "mood.yaml"
    ypath.write_text("attribute: mood\ntemplates: ['A {label} voice.']\nclasses:\n  calm: calm\n  tense: tense\n")
    assert load_pack(ypath).get().class_names == ["calm", "tense"]
    ypath.write_text("attribute: mood\ntemplates: ['A {label} voice.']\nclasses:\n  calm: calm\n  calm: x\n")
    with pytest.raises(ConfigError, match="duplicate key 'calm'"):
        load_pack(ypath)


def test_unknown_pack_and_missing_file():
    with pytest.raises(ConfigError, match="unknown prompt pack 'nope'.*built-in: "):
        load_pack("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_pack("missing/pack.json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_pack_text("{", "x.json")


def test_a_builtin_name_is_the_builtin_pack_whatever_the_working_directory_holds(tmp_path, monkeypatch):
    """A folder named emotion in the working directory broke classify's default pack."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "emotion").mkdir()
    (tmp_path / "gender").write_text("attribute: gender\n")
    assert "angry" in load_pack("emotion").get().class_names
    assert load_pack("gender").get().class_names == ["male", "female"]
    (tmp_path / "mine").write_text(json.dumps(GOOD))
    assert load_pack("mine").get().class_names == ["calm", "tense"]  # not a built-in name: the file
    with pytest.raises(ConfigError, match="gender"):
        load_pack("./gender")  # a path: the file, which is no valid pack


def test_a_pack_path_that_is_no_file_says_what_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gender").mkdir()
    (tmp_path / "gone.json").symlink_to(tmp_path / "nowhere.json")
    for name, says in (("./gender", "./gender: is a folder"), ("gone.json", "gone.json: no such file (a dangling"),
                       ("missing.yaml", "missing.yaml: does not exist")):
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_pack(name)
    assert load_pack("gender").get("gender") is not None  # the built-in name: the built-in pack


@pytest.mark.parametrize("pack, gold, want", [
    ("cremad", "ANG", "angry"), ("cremad", "DIS", "disgust"), ("cremad", "FEA", "fear"), ("cremad", "HAP", "happy"),
    ("cremad", "NEU", "neutral"), ("cremad", "SAD", "sad"), ("cremad", "A", "angry"),
    ("ravdess", "anger", "angry"), ("ravdess", "sadness", "sad"), ("ravdess", "happiness", "happy"),
    ("ravdess", "surprise", "surprised"), ("ravdess", "disgusted", "disgust"), ("iemocap", "exc", "happy"),
])
def test_paper_packs_read_the_datasets_label_spellings(pack, gold, want):
    """CREMA-D's file-name codes (ANG, DIS ...) and the common noun spellings are gold labels
    of the paper packs, as their doc says; the prompts stay as published."""
    assert load_pack(pack).attributes["emotion"].canonical_label(gold) == want


def test_paper_pack_prompts_are_as_published():
    prompts = [p for c in load_pack("cremad").attributes["emotion"].classes for p in c.prompts]
    assert "A speaker in a angry tone." in prompts and "A speaker in a fear tone." in prompts
