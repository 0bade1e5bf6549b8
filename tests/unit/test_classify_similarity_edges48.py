"""``clsp classify`` / ``clsp similarity`` edges: reading their own output again, prompts the model
embeds alike, Unicode normal forms of class names, binary files given as a pack or matrix, and
summaries of one item (tiny random model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from clsp.errors import ConfigError
from tests.conftest import invoke, jsonl

TINY = ["-m", "tiny-random", "--quiet"]
NFC, NFD = "m\u00e4nnlich", "ma\u0308nnlich"


def run(*args, cwd):
    return invoke(*args, cwd=cwd, text=True)


def tone(path, freq: float, seconds: float = 1.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), 16000)


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def records_and_summary(out: str) -> tuple[list[dict], dict | None]:
    recs = jsonl(out)
    summary = next((r["summary"] for r in recs if r.get("id") == "__summary__"), None)
    return [r for r in recs if r.get("id") != "__summary__"], summary


# 1. a command's own output read again is the input it was made from


def test_similarity_on_its_own_output_reads_the_ratings_not_its_earlier_scores(tmp_path):
    texts = ["a calm voice", "an angry shout", "a whisper", "a fast talker", "a slow deep voice"]
    pairs = [{"id": f"p{i}", "a_text": texts[i], "b_text": texts[(i + 1) % 5], "score": rating}
             for i, rating in enumerate([1, 5, 2, 4, 3])]
    pairs[0]["metadata"] = {"note": "own"}
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    first = run("similarity", "pairs.jsonl", "--human-key", "score", "--n-boot", "0", *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    recs1, summary1 = records_and_summary(first.stdout)
    assert [r["metadata"]["score"] for r in recs1] == [1, 5, 2, 4, 3]
    write_jsonl(tmp_path / "again.jsonl", recs1)
    again = run("similarity", "again.jsonl", "--human-key", "score", "--n-boot", "0", *TINY, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    recs2, summary2 = records_and_summary(again.stdout)
    assert recs2 == recs1  # the ratings read again, one metadata level deep, no metadata.metadata
    assert recs2[0]["metadata"] == {"score": 1, "metadata": {"note": "own"}}
    assert summary2["overall"] == summary1["overall"]
    assert summary2["overall"]["pearson"] != pytest.approx(1.0)


def test_classify_on_its_own_output_reads_the_gold_label_not_its_earlier_label(tmp_path):
    recs = []
    for i, freq in enumerate([110, 180, 260, 330]):
        tone(tmp_path / f"c{i}.wav", freq)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav", "label": "female"})
    write_jsonl(tmp_path / "gold.jsonl", recs)
    first = run("classify", "gold.jsonl", "--pack", "gender", "--label-key", "label", "--n-boot", "0",
                "--top-k", "1", *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    recs1, summary1 = records_and_summary(first.stdout)
    assert all(r["metadata"] == {"label": "female"} for r in recs1)
    write_jsonl(tmp_path / "again.jsonl", recs1)
    again = run("classify", "again.jsonl", "--pack", "gender", "--label-key", "label", "--n-boot", "0",
                "--top-k", "1", *TINY, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    recs2, summary2 = records_and_summary(again.stdout)
    assert recs2 == recs1
    assert summary2["wa"] == summary1["wa"]
    assert summary2["confusion"] == summary1["confusion"]


def test_a_users_own_label_and_scores_fields_are_not_taken_for_a_prediction():
    from clsp.results import pair_score_record, prediction_record

    assert prediction_record({"label": "male", "scores": {"male": 0.9, "female": 0.1}})
    assert not prediction_record({"label": "male", "scores": [3, 4]})
    assert not prediction_record({"label": "robot", "scores": {"male": 0.9, "female": 0.1}})
    assert pair_score_record({"score": 0.25, "pair": "audio-text"})
    assert not pair_score_record({"score": 4.5, "pair": "audio-text"})  # a rating, not a cosine
    assert not pair_score_record({"score": 0.5, "pair": "human"})


# 2. prompts the text model does not tell apart


@pytest.mark.parametrize("other", ["A MAN SPEAKING.", "a man speaking."])
def test_classes_whose_prompts_embed_alike_are_refused(tmp_path, other):
    (tmp_path / "case.json").write_text(json.dumps(
        {"name": "a", "attribute": "g", "classes": {"male": {"prompts": ["A man speaking."]},
                                                    "female": {"prompts": [other]}}}))
    tone(tmp_path / "c.wav", 150)
    p = run("classify", "c.wav", "--pack", "case.json", *TINY, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "'male'" in p.stderr and "'female'" in p.stderr and "same text embedding" in p.stderr
    assert p.stdout == ""


def test_identical_class_vectors_are_refused_by_the_library():
    from clsp.prompts import pack_from_dict
    from clsp.zeroshot import ensemble_class_embeddings

    s = pack_from_dict({"attribute": "g", "classes": {"x": {"prompts": ["one"]}, "y": {"prompts": ["two"]},
                                                      "z": {"prompts": ["three"]}}}).get()
    vectors = {"one": [1.0, 0.0], "two": [0.0, 1.0], "three": [2.0, 1e-9]}  # "three" is "one" to the model
    with pytest.raises(ConfigError, match="'x' and 'z'"):
        ensemble_class_embeddings(s, lambda texts: np.array([vectors[t] for t in texts]))


# 3. Unicode normal forms of class names and gold labels


def test_gold_labels_match_class_names_in_any_normal_form():
    from clsp.prompts import pack_from_dict

    s = pack_from_dict({"attribute": "g", "classes": {NFC: {"prompts": ["A man."], "aliases": ["Herr"]},
                                                      "weiblich": {"prompts": ["A woman."], "aliases": [NFD + "e"]}}}).get()
    assert s.canonical_label(NFD) == NFC
    assert s.canonical_label(NFD.upper()) == NFC
    assert s.canonical_label(NFC + "e") == "weiblich"


@pytest.mark.parametrize("classes", [
    {NFC: {"prompts": ["A man."]}, NFD: {"prompts": ["A deep male voice."]}, "w": {"prompts": ["A woman."]}},
    {NFC: {"prompts": ["A man."]}, "w": {"prompts": ["A woman."], "aliases": [NFD]}},
])
def test_names_equal_after_nfc_are_duplicates(classes):
    from clsp.prompts import pack_from_dict

    with pytest.raises(ConfigError, match="duplicate class"):
        pack_from_dict({"attribute": "g", "classes": classes})


def test_merge_names_a_class_in_another_normal_form():
    from clsp.prompts import pack_from_dict

    s = pack_from_dict({"attribute": "g", "classes": {NFC: {"prompts": ["A man."]}, "w": {"prompts": ["A woman."]},
                                                      "x": {"prompts": ["A boy."]}}, "merge": {"x": NFD}}).get()
    assert s.output_classes == [NFC, "w"]
    assert s.output_class("x") == NFC


def test_nfd_gold_labels_are_counted_by_classify(tmp_path):
    (tmp_path / "de.json").write_text(json.dumps(
        {"name": "de", "attribute": "g", "classes": {NFC: {"prompts": ["A man speaking."]},
                                                     "weiblich": {"prompts": ["A woman speaking."]}}}))
    tone(tmp_path / "a.wav", 120)
    tone(tmp_path / "b.wav", 250)
    write_jsonl(tmp_path / "gold.jsonl", [{"id": "a", "audio": "a.wav", "g": NFD},
                                         {"id": "b", "audio": "b.wav", "g": "weiblich"}])
    p = run("classify", "gold.jsonl", "--pack", "de.json", "--label-key", "g", "--n-boot", "0", *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    _, summary = records_and_summary(p.stdout)
    assert summary["n"] == 2 and summary["skipped_gold"] == {}
    assert summary["support"] == {NFC: 1, "weiblich": 1}


# 4. binary files given where a pack or a matrix is read


@pytest.mark.parametrize("name,kind", [("clip.flac", "an audio file"), ("pack.json", "an audio file"),
                                       ("m.npy", "NumPy .npy matrix"), ("m.json", "NumPy .npy matrix"),
                                       ("w.yaml", "an audio file"), ("blob.json", "binary data")])
def test_a_binary_pack_file_is_named_for_what_it_holds(tmp_path, name, kind):
    tone(tmp_path / "c.wav", 150)
    if "npy" in kind:
        np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype="float32"))
        (tmp_path / name).write_bytes((tmp_path / "x.npy").read_bytes())
    elif name == "w.yaml":  # a WAV header that happens to be valid UTF-8
        (tmp_path / name).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    elif name == "blob.json":
        (tmp_path / name).write_bytes(b"\x01\x02\x00\x00\x00\x00\x8f\xff" * 64)
    else:
        sf.write(tmp_path / "t.flac", np.zeros(1600, dtype="float32"), 16000)
        (tmp_path / name).write_bytes((tmp_path / "t.flac").read_bytes())
    p = run("classify", "c.wav", "--pack", name, *TINY, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert name in p.stderr and kind in p.stderr and "UTF-8" not in p.stderr and "not valid" not in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("name,kind", [("clip.wav", "an audio file"), ("recs.jsonl", "text")])
def test_npy_that_is_no_matrix_is_named_for_what_it_holds(tmp_path, name, kind):
    tone(tmp_path / "clip.wav", 150)
    write_jsonl(tmp_path / "recs.jsonl", [{"id": "a", "row": 0}])
    p = run("classify", "recs.jsonl", "--npy", name, *TINY, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"--npy {name}" in p.stderr and kind in p.stderr and "pickled" not in p.stderr


# 5. summaries have the same keys whatever their size


def test_similarity_summary_of_one_pair_has_every_key(tmp_path):
    def summary(n):
        pairs = [{"id": i, "a_text": f"voice number {i}", "b_text": f"a speaker {i * 7}", "rating": i % 3, "kind": "B"}
                 for i in range(n)]
        write_jsonl(tmp_path / "p.jsonl", pairs)
        p = run("similarity", "p.jsonl", "--human-key", "rating", "--group-key", "kind", "--n-boot", "50", *TINY,
                cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return records_and_summary(p.stdout)[1]

    one, many = summary(1), summary(6)
    keys = set(many["overall"]) - {"ci_undefined"}
    assert set(one["overall"]) == keys and set(one["groups"]["B"]) == keys
    assert one["overall"]["pearson_ci"] == [None, None] and one["groups"]["B"]["kendall_ci"] == [None, None]
    assert one["overall"]["ci_level"] == 0.95


def test_classify_summary_without_known_gold_labels_has_every_key(tmp_path):
    tone(tmp_path / "a.wav", 120)
    write_jsonl(tmp_path / "g0.jsonl", [{"id": "a", "audio": "a.wav", "g": "robot"}])
    write_jsonl(tmp_path / "g1.jsonl", [{"id": "a", "audio": "a.wav", "g": "male"}])
    sums = []
    for name in ("g0.jsonl", "g1.jsonl"):
        p = run("classify", name, "--pack", "gender", "--label-key", "g", "--n-boot", "50", *TINY, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        sums.append(records_and_summary(p.stdout)[1])
    zero, one = sums
    assert set(zero) == set(one)
    assert zero["n"] == 0 and zero["wa"] is None
    assert zero["wa_ci"] == [None, None] and zero["ua_ci"] == [None, None] and zero["ci_level"] == 0.95
