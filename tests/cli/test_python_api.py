"""The public Python API (clsp.classify / compare / search) and the README's example of it."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.assets import REPO
import clsp
from clsp.results import PairScore, Prediction, SearchHits
from clsp_cli.app import app

ROOT = REPO
DATA = ROOT / "examples/data"


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _cli(*args: str) -> list[dict]:
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("api")
    _cli("embed", str(DATA / "clips.jsonl"), "-m", "tiny-random", "-o", str(tmp / "clips.emb.jsonl"), "-q")
    _cli("search", "build", str(tmp / "clips.emb.jsonl"), "-o", str(tmp / "clips.idx"), "-q")
    return tmp / "clips.idx"


def test_readme_python_api_example_runs(index_dir, monkeypatch):
    code = _readme_snippet().replace('"default"', '"tiny-random"').replace('"clips.idx"', repr(str(index_dir)))
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # two clips classified, two pairs compared, one query
    assert lines[2].split()[0] == "audio-audio" and lines[3].split()[0] == "audio-text"
    assert lines[4].startswith("an angry, loud female voice [(")


def test_api_results_match_the_commands(index_dir):
    clips = [str(DATA / "03a01Wa.flac"), str(DATA / "missing.flac")]
    preds = list(clsp.classify("tiny-random", clips, pack="gender"))
    assert isinstance(preds[0].value, Prediction) and preds[0].ok
    assert not preds[1].ok and "missing.flac" in str(preds[1].error)
    cli = _cli("classify", clips[0], "-m", "tiny-random", "--pack", "gender", "-q")
    assert preds[0].to_dict() == cli[0]

    pairs = [(clips[0], str(DATA / "09a01Nb.flac")), (clips[0], "")]
    scores = list(clsp.compare("tiny-random", pairs))
    assert isinstance(scores[0].value, PairScore) and -1.0 <= scores[0].value.score <= 1.0
    assert not scores[1].ok and "empty text" in str(scores[1].error)
    one = _cli("similarity", pairs[0][0], pairs[0][1], "-m", "tiny-random", "-q")[0]
    assert one["score"] == scores[0].value.score and one["pair"] == scores[0].value.pair

    found = list(clsp.search(index_dir, texts=["a calm voice"], k=2))
    assert isinstance(found[0].value, SearchHits) and len(found[0].value.hits) == 2
    cli = _cli("search", "query", str(index_dir), "--text", "a calm voice", "-k", "2", "-q")
    assert found[0].to_dict() == cli[0]
    from clsp.errors import ProvenanceError
    from clsp.models import load_model, tiny_model

    loaded = list(clsp.search(index_dir, texts=["a calm voice"], k=2, model=load_model("tiny-random")))
    assert loaded[0].to_dict() == cli[0]  # a loaded model, as classify and compare take one
    with pytest.raises(ProvenanceError, match="the index"):
        list(clsp.search(index_dir, texts=["a calm voice"], k=2, model=tiny_model(seed=3)))
    with pytest.raises(TypeError, match="model: a model name or directory, or a loaded clsp model"):
        clsp.search(index_dir, texts=["a calm voice"], model=3)


def test_paths_are_taken_where_a_path_is_and_wrong_types_are_type_errors(index_dir, tmp_path):
    from clsp.models import save_model, tiny_model

    model_dir = save_model(tiny_model(), tmp_path / "m")
    clip = DATA / "03a01Wa.flac"
    by_path = list(clsp.classify(Path(model_dir), [clip, {"id": "rec", "audio": clip}], pack="gender"))
    by_text = list(clsp.classify(str(model_dir), [str(clip)], pack="gender"))
    assert [r.ok for r in by_path] == [True, True] and by_path[0].value.scores == by_text[0].value.scores
    score = list(clsp.compare(Path(model_dir), [(clip, Path(DATA / "09a01Nb.flac"))]))[0]
    assert score.ok and score.value.pair == "audio-audio"
    found = list(clsp.search(index_dir, audios=[clip], k=1))
    assert found[0].ok and found[0].id == str(clip)
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"id": 5, "text": "a calm voice"}) + "\n")
    assert list(clsp.search(Path(index_dir), queries, k=1))[0].ok  # the queries file as a Path
    for call, message in ((lambda: clsp.classify(None, [clip]), "model: a model name or directory"),
                          (lambda: clsp.classify("tiny-random", str(clip)), "inputs: a list of audio paths or records, not one str"),
                          (lambda: list(clsp.classify("tiny-random", [3])), r"inputs\[0\]: an audio path or a record"),
                          (lambda: clsp.compare("tiny-random", str(clip)), "pairs: a list of"),
                          (lambda: list(clsp.compare("tiny-random", [(clip,)])), r"pairs\[0\]: a pair is two sides"),
                          (lambda: clsp.search(index_dir, texts="an angry man"), "texts: a list of captions, not one str")):
        with pytest.raises(TypeError, match=message):
            call()


def test_classify_with_own_labels_gives_a_distribution_over_them():
    labels = {"calm": "A calm voice.", "angry": ["An angry voice.", "Someone shouting."]}
    (res,) = clsp.classify("tiny-random", [str(DATA / "03a01Wa.flac")], labels=labels, top_k=2)
    assert set(res.value.scores) == {"calm", "angry"} and res.value.label in labels
    assert sum(res.value.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert [t["label"] for t in res.value.top_k][0] == res.value.label


def test_a_second_loop_over_streamed_results_says_so_rather_than_finding_nothing(index_dir):
    clips = [str(DATA / "03a01Wa.flac")]
    for run in (clsp.classify("tiny-random", clips, pack="gender"), clsp.search(index_dir, texts=["a calm voice"], k=2),
                clsp.compare("tiny-random", [(clips[0], "a calm voice")])):
        assert len(list(run)) == 1
        with pytest.raises(RuntimeError, match="already iterated: it streams them once; keep them with list"):
            list(run)


def test_own_labels_as_a_list_of_prompts_and_bad_labels_named():
    from clsp.errors import ConfigError

    prompts = ["a man speaking", "a woman speaking"]
    (res,) = clsp.classify("tiny-random", [str(DATA / "03a01Wa.flac")], labels=prompts)
    assert set(res.value.scores) == set(prompts) and res.value.label in prompts
    for labels, says in (({"a": 1, "b": "a woman"}, r"class 'a': give its prompt as a string or a list of strings"),
                         (["a man", 3], r"labels\[1\]: a prompt sentence must be a string, got int"),
                         ("a man speaking", "not one string"), (7, "got int"),
                         (["a man", "a woman", "a man"], r"labels\[2\]: 'a man' is given twice")):
        with pytest.raises(ConfigError, match=says):
            clsp.classify("tiny-random", [str(DATA / "03a01Wa.flac")], labels=labels)
    with pytest.raises(ConfigError, match="give pack= or labels=, not both"):  # the pack would go unused
        clsp.classify("tiny-random", [str(DATA / "03a01Wa.flac")], pack="gender", labels=prompts)


def test_search_takes_a_list_of_query_records_and_names_strings_given_there(index_dir):
    by_text = list(clsp.search(index_dir, texts=["a calm voice"], k=2))
    by_record = list(clsp.search(index_dir, [{"id": "q", "text": "a calm voice"}], k=2))
    by_generator = list(clsp.search(index_dir, texts=(t for t in ["a calm voice"]), k=2))
    assert [h.id for h in by_generator[0].value.hits] == [h.id for h in by_text[0].value.hits]
    assert by_record[0].id == "q" and by_record[0].ok
    assert [h.id for h in by_record[0].value.hits] == [h.id for h in by_text[0].value.hits]
    clip = str(DATA / "03a01Wa.flac")
    both = list(clsp.search(index_dir, [{"audio": clip}], texts=["a calm voice"], k=1))
    assert [r.ok for r in both] == [True, True] and both[1].value.hits
    with pytest.raises(TypeError, match=r"queries\[0\]: a query record .*texts=\[...\]"):
        clsp.search(index_dir, ["a calm voice"], k=1)


def test_search_with_a_model_that_does_not_load_raises_at_the_call(index_dir, tmp_path):
    from clsp.errors import ClspError

    with pytest.raises(ClspError, match="nonexistent"):
        clsp.search(index_dir, texts=["a calm voice"], model=tmp_path / "nonexistent", k=1)


def test_a_classify_output_read_back_in_python_skips_its_summary_line(tmp_path):
    from clsp.records import read_jsonl

    out = tmp_path / "g.jsonl"
    rec = {"id": "a", "audio": str(DATA / "03a01Wa.flac"), "gender": "male"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    _cli("classify", str(tmp_path / "m.jsonl"), "-m", "tiny-random", "--pack", "gender", "--label-key", "gender",
         "-o", str(out), "-q")
    assert '"__summary__"' in out.read_text()
    back = read_jsonl(out)
    assert [r["id"] for r in back] == ["a"]
    assert [r.ok for r in clsp.classify("tiny-random", back, pack="gender")] == [True]


def test_classify_reads_a_manifest_path_and_resolves_relative_audio_against_base_dir(tmp_path, monkeypatch):
    """clsp.classify had no base_dir (clsp.compare has), and a manifest's path in a list was
    read as an audio file (failing each time as undecodable audio)."""
    monkeypatch.chdir(tmp_path)
    manifest = DATA / "clips.jsonl"
    from_file = list(clsp.classify("tiny-random", manifest, pack="gender"))
    recs = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    assert len(from_file) == len(recs) and all(r.ok for r in from_file), [r.error for r in from_file if not r.ok]
    assert [r.id for r in from_file] == [str(rec["id"]) for rec in recs]
    relative = [{"id": rec["id"], "audio": rec["audio"]} for rec in recs]
    assert not list(clsp.classify("tiny-random", relative[:1], pack="gender"))[0].ok  # not found from tmp_path
    based = list(clsp.classify("tiny-random", relative, pack="gender", base_dir=DATA))
    assert [r.value.scores for r in based] == [r.value.scores for r in from_file]
    with pytest.raises(TypeError, match=r"inputs\[0\]: .*clips.jsonl' names a JSON Lines manifest, not an audio file"):
        list(clsp.classify("tiny-random", [str(manifest)], pack="gender"))


def test_compare_reads_a_pairs_file_by_its_path_and_a_missing_file_is_named(tmp_path, monkeypatch):
    """clsp.compare("pairs.jsonl") asked to wrap it in a list, and the list then said "got str";
    a manifest path that names no file was "wrap it in a list", then "give the path itself"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    pairs = [{"id": "p1", "a": "03a01Wa.flac", "b": "a calm voice"}, {"id": "p2", "a": "03a01Wa.flac", "b": "09a01Nb.flac"}]
    for name in ("03a01Wa.flac", "09a01Nb.flac"):
        (tmp_path / "data" / name).write_bytes((DATA / name).read_bytes())
    (tmp_path / "data" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    got = list(clsp.compare("tiny-random", Path("data/pairs.jsonl")))  # audio next to the pairs file
    assert [r.id for r in got] == ["p1", "p2"] and all(r.ok for r in got), [r.error for r in got]
    assert [r.value.pair for r in got] == ["audio-text", "audio-audio"]
    for call, what in ((lambda: list(clsp.compare("tiny-random", "nope.jsonl")), "pairs: nope.jsonl: no such file"),
                       (lambda: list(clsp.classify("tiny-random", "nope.jsonl")), "inputs: nope.jsonl: no such file")):
        with pytest.raises(clsp.errors.InputError, match=what):
            call()


def test_a_base_dir_that_is_no_folder_is_refused_at_the_call(tmp_path):
    """base_dir= naming nothing gave one "no such file" per record, where --audio-root is refused."""
    (tmp_path / "f.txt").write_text("x")
    clip = {"id": "a", "audio": "03a01Wa.flac"}
    for base, why in ((tmp_path / "nope", "no such folder"), (tmp_path / "f.txt", "not a folder"), ("", "is empty")):
        for call in (lambda: clsp.classify("tiny-random", [clip], pack="gender", base_dir=base),
                     lambda: clsp.compare("tiny-random", [(clip["audio"], "a calm voice")], base_dir=base)):
            with pytest.raises(clsp.errors.ConfigError, match=f"base_dir=.*{why}"):
                call()
    assert list(clsp.classify("tiny-random", [clip], pack="gender", base_dir=DATA))[0].ok


def test_a_folder_or_a_pattern_stands_for_its_audio_files_as_on_the_command_line(tmp_path, monkeypatch):
    """A folder given to clsp.classify was refused ("wrap it in a list"), and in a list it was one
    failed record ("is a directory"); a glob pattern in a list was "no such file"."""
    from clsp.errors import ConfigError

    (tmp_path / "ex" / "sub").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    shutil.copy(DATA / "03a01Wa.flac", tmp_path / "ex")
    shutil.copy(DATA / "09a01Nb.flac", tmp_path / "ex" / "sub")
    monkeypatch.chdir(tmp_path)
    both = ["ex/03a01Wa.flac", "ex/sub/09a01Nb.flac"]
    for inputs in (["ex"], [Path("ex")], "ex", tmp_path / "ex"):
        res = list(clsp.classify("tiny-random", inputs, pack="gender"))
        assert all(r.ok for r in res) and len(res) == 2
        if inputs != tmp_path / "ex":
            assert [r.id for r in res] == both
    res = list(clsp.classify("tiny-random", ["ex/*.flac", "ex/sub/09a01Nb.flac"], pack="gender"))
    assert [r.id for r in res] == both and all(r.ok for r in res)
    assert [r.id for r in clsp.classify("tiny-random", ["sub"], pack="gender", base_dir="ex")] == ["sub/09a01Nb.flac"]
    for bad, says in ((["empty"], "folder holds no audio files"), (["none*.flac"], "no files match it as a pattern")):
        with pytest.raises(ConfigError, match=says):
            list(clsp.classify("tiny-random", bad, pack="gender"))


def test_compare_takes_the_rows_of_a_numpy_array_of_pairs():
    """``np.array(pairs)`` (as a pandas user has them) was "pairs[0]: an (a, b) tuple or a pair
    record, got ndarray", while clsp.classify takes a NumPy array of paths."""
    import numpy as np

    pairs = [(str(DATA / "03a01Wa.flac"), str(DATA / "09a01Nb.flac")), (str(DATA / "03a01Wa.flac"), "a calm voice")]
    as_tuples = [r.value.score for r in clsp.compare("tiny-random", pairs)]
    as_rows = list(clsp.compare("tiny-random", np.array(pairs)))
    assert [r.value.score for r in as_rows] == as_tuples
    assert [type(r.value.to_dict()["b"]) for r in as_rows] == [str, str]
