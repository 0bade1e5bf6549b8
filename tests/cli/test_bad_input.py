"""Broken and awkward inputs through every subcommand: each bad record becomes a named error
record (or the command stops with a usage error), every good record is still processed, in
order, nothing hangs and nothing prints a traceback.

Path policy checked here: a manifest's relative paths resolve against the manifest's folder
(whatever the working directory); absolute paths and ``..`` are read as the user wrote them,
since the manifest is the user's own file (a path into a non-audio file is a decoding error).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.helpers.assets import REPO
from tests.helpers.badinput import interleave, make_audio_corpus, write_manifest

TINY_CONFIG = REPO / "examples" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Files under ``root/data``; commands run from ``root/elsewhere`` to test path resolution."""
    root = tmp_path_factory.mktemp("bad")
    good, bad = make_audio_corpus(root / "data", with_hour=True)
    entries = interleave(good, bad)
    ids = write_manifest(root / "data" / "m.jsonl", entries)
    (root / "elsewhere").mkdir()
    good_ids = {g["id"] for g in good}
    return {"root": root, "manifest": root / "data" / "m.jsonl", "entries": entries, "ids": ids,
            "good": good_ids, "cwd": root / "elsewhere"}


def assert_clean(proc, codes=(3,)) -> list[dict]:
    """Exit code as expected, no traceback, stdout is JSON lines; returns the records."""
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode in codes, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


def assert_one_per_input(out: list[dict], ids: list[str], good: set[str], result_key: str) -> None:
    """One output per input in order; good ones carry ``result_key``, bad ones a named error."""
    assert len(out) == len(ids), (len(out), len(ids))
    for rec, rid in zip(out, ids):
        if rid in good:
            assert "error" not in rec, (rid, rec.get("error"))
            assert rec["id"] == rid and result_key in rec, rid
        else:
            assert set(rec["error"]) == {"type", "message"}, rec
            assert rec["error"]["type"].endswith("Error") and len(rec["error"]["message"]) > 5, rec
            if not rid.startswith(("invalid-json", "json-array")):
                assert rec["id"] == rid, (rid, rec["id"])


def test_corpus_has_thirty_kinds(corpus):
    assert len(corpus["ids"]) - len(corpus["good"]) >= 30
    assert len(set(corpus["ids"])) == len(corpus["ids"])


def test_embed_audio(corpus):
    proc = invoke("embed", str(corpus["manifest"]), "--model", "tiny-random", "-q", cwd=corpus["cwd"])
    out = assert_clean(proc)
    assert_one_per_input(out, corpus["ids"], corpus["good"] - {"silence"}, "embedding")
    by_id = {r["id"]: r for r in out}
    assert "silent (peak 0, below one 16-bit step)" in by_id["silence"]["error"]["message"]  # no voice: no vector
    # the same file read through three spellings of its path gives the same embedding
    assert by_id["plain"]["embedding"] == by_id["absolute"]["embedding"] == by_id["unknown-fields"]["embedding"]
    assert by_id["unknown-fields"]["x-extra"] == {"deep": [1, 2, {"a": None}]}
    assert "NaN" in by_id["json-nan-field"]["error"]["message"]
    for key in ("missing-file", "empty-file", "directory", "nan-samples"):
        assert str(corpus["root"] / "data") in by_id[key]["error"]["message"], by_id[key]


def test_embed_text(tmp_path):
    lines = [b'{"id": "ok", "text": "a calm low voice"}', b'{"id": "empty", "text": "   "}',
             b'{"id": "number", "text": 5}', b'{"id": "no-text", "caption": "x"}',
             b'{"id": "huge", "text": "' + b"loud " * 400_000 + b'"}', b'{"id": "bad-utf8", "text": "\xc3\x28"}',
             b'{"id": "control", "text": "tab\\tnul\\u0000 bell\\u0007"}', b"a bare line of text",
             b'{"id": "nan", "text": "x", "w": NaN}', b'{"id": "emoji", "text": "\xf0\x9f\x98\x80 whispering"}']
    (tmp_path / "t.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = assert_clean(invoke("embed", "t.jsonl", "--modality", "text", "--model", "tiny-random", "-q",
                              cwd=tmp_path))
    ids = ["ok", "empty", "number", "no-text", "huge", "bad-utf8", "control", "line-8", "nan", "emoji"]
    assert_one_per_input(out, ids, {"ok", "huge", "control", "line-8", "emoji"}, "embedding")


def test_caption(corpus):
    proc = invoke("caption", str(corpus["manifest"]), "-q", cwd=corpus["cwd"])
    out = assert_clean(proc)
    # no speech in silence; an hour is refused (measurements would not fit in memory)
    good = corpus["good"] - {"silence", "hour-long"}
    assert_one_per_input(out, corpus["ids"], good, "global_captions")
    hour = next(r for r in out if r["id"] == "hour-long")
    assert "too long" in hour["error"]["message"]
    assert not any(k.startswith("_") for r in out for k in r)


def test_classify(corpus):
    proc = invoke("classify", str(corpus["manifest"]), "--model", "tiny-random", "--n-boot", "0", "-q",
                  cwd=corpus["cwd"])
    assert_one_per_input(assert_clean(proc), corpus["ids"], corpus["good"] - {"silence"}, "label")


def test_similarity(corpus):
    entries = []
    for e in corpus["entries"]:
        if isinstance(e, dict) and "audio" in e:
            side = {k: e[k] for k in ("audio", "start", "end") if k in e}
            e = {"id": e["id"], "a": side, "b": "a calm low voice"}
        entries.append(e)
    write_manifest(corpus["root"] / "data" / "pairs.jsonl", entries)
    proc = invoke("similarity", str(corpus["root"] / "data" / "pairs.jsonl"), "--model", "tiny-random",
                  "--n-boot", "0", "-q", cwd=corpus["cwd"])
    assert_one_per_input(assert_clean(proc), corpus["ids"], corpus["good"] - {"silence"}, "score")


def _good_embeddings(corpus) -> Path:
    vecs = np.random.default_rng(0).standard_normal((6, 32)).astype(np.float32)
    path = corpus["root"] / "emb.jsonl"
    prov = {"model": "tiny-random", "checksum": "seed:0", "dim": 32, "normalized": True, "sample_rate": 16000}
    path.write_text("".join(json.dumps({"id": f"e{i}", "embedding": v.tolist(), "provenance": prov}) + "\n"
                            for i, v in enumerate(vecs)))
    return path


def test_search_query_with_bad_queries(corpus):
    idx = corpus["root"] / "idx"
    assert_clean(invoke("search", "build", str(_good_embeddings(corpus)), "-o", str(idx), "-q"), (0,))
    proc = invoke("search", "query", str(idx), str(corpus["manifest"]), "-k", "2", "-q", cwd=corpus["cwd"])
    assert_one_per_input(assert_clean(proc), corpus["ids"], corpus["good"] - {"silence"}, "hits")

    prov = {"model": "tiny-random", "checksum": "seed:0", "dim": 32, "normalized": True, "sample_rate": 16000}
    queries = [{"id": "ok", "embedding": [0.1] * 32, "provenance": prov},
               {"id": "short", "embedding": [0.1] * 8},
               {"id": "other-model", "embedding": [0.1] * 32, "provenance": {**prov, "model": "x", "checksum": "y"}},
               {"id": "not-numbers", "embedding": "abc"}, {"id": "nested", "embedding": [[1.0, 2.0]]},
               {"id": "zeros", "embedding": [0.0] * 32}, {"id": "nothing"}, {"id": "text-ok", "text": "a low voice"}]
    write_manifest(corpus["root"] / "q.jsonl", queries)
    proc = invoke("search", "query", str(idx), str(corpus["root"] / "q.jsonl"), "-q")
    assert_one_per_input(assert_clean(proc), [q["id"] for q in queries], {"ok", "text-ok"}, "hits")


BAD_NPY = {
    "object": lambda: np.array([{"a": 1}, None], dtype=object),
    "int": lambda: np.arange(12).reshape(3, 4),
    "complex": lambda: np.ones((3, 32), np.complex64),
    "vector": lambda: np.ones(5, np.float32),
    "cube": lambda: np.ones((2, 3, 4), np.float32),
    "empty": lambda: np.zeros((0, 32), np.float32),
}


@pytest.mark.parametrize("bad", [*BAD_NPY, "truncated", "garbage"])
def test_search_build_refuses_bad_npy(tmp_path, bad):
    path = tmp_path / f"{bad}.npy"
    if bad in BAD_NPY:
        np.save(path, BAD_NPY[bad](), allow_pickle=True)
    else:
        np.save(path, np.ones((4, 32), np.float32))
        data = path.read_bytes()
        path.write_bytes(data[:100] if bad == "truncated" else data[:8] + b"\x00garbage" * 10)
    proc = invoke("search", "build", str(path), "-o", str(tmp_path / "idx"), "-q")
    assert_clean(proc, (1, 2))
    assert f"{bad}.npy" in proc.stderr.decode()
    assert not (tmp_path / "idx").exists()


def test_search_build_skips_non_finite_rows(tmp_path):
    mat = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    mat[2, 3] = np.nan
    mat[4, 0] = np.inf
    np.save(tmp_path / "m.npy", mat)
    proc = invoke("search", "build", str(tmp_path / "m.npy"), "-o", str(tmp_path / "idx"), "-q")
    [summary] = assert_clean(proc)
    assert summary["added"] == 3 and summary["failed"] == 2
    assert "row-2" in proc.stderr.decode() and "row-4" in proc.stderr.decode()


def test_train_skips_bad_clips(corpus, tmp_path):
    rows = []
    for e in corpus["entries"]:
        if isinstance(e, dict) and e.get("id") != "hour-long":
            e = {**e, "global_captions": ["a calm voice"], "finegrained_captions": ["a calm, low voice"]}
        rows.append(e)
    rows.append(("no-captions", b'{"id": "no-captions", "audio": "plain.wav"}'))
    write_manifest(corpus["root"] / "data" / "train.jsonl", rows)
    proc = invoke("train", str(TINY_CONFIG), f"data.train={corpus['root'] / 'data' / 'train.jsonl'}", "init_from=tiny-random",
                  "data.valid=null", "device=cpu", "max_steps=2", "valid_every=0", "checkpoint_every=0", "log_every=1",
                  "data.max_batch_seconds=10", "data.num_buckets=1", "data.max_duration=5.0",
                  "--output-dir", str(tmp_path / "exp"), cwd=corpus["cwd"])
    assert_clean(proc, (0,))
    assert proc.stdout == b""
    assert (tmp_path / "exp" / "checkpoints" / "step-00000002" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("args", [
    ["train", "no-such-config.yaml"],
    ["train", "max_steps=abc", "init_from=tiny-random"],
    ["train", "optim.no_such_key=1", "init_from=tiny-random"],
    ["embed", "--shard", "3/2", "--model", "tiny-random"],
    ["embed", "--long-audio", "sideways", "--model", "tiny-random"],
    ["classify", "--pack", "no-such-pack", "--model", "tiny-random"],
    ["caption", "--num-global", "0", "--num-finegrained", "0"],
    ["search", "query", "no-such-index", "--text", "x"],
])
def test_usage_errors(tmp_path, args):
    proc = invoke(*args, stdin=b"", cwd=tmp_path)
    assert_clean(proc, (1, 2))
    assert proc.stdout == b""
    assert proc.stderr.strip(), "a usage error must say what is wrong"


@pytest.mark.parametrize("command", [["embed"], ["classify"], ["similarity", "a.wav", "a calm voice"],
                                     ["search", "query", "IDX", "--text", "x"], ["convert", "MODEL", "out"]])
@pytest.mark.parametrize("model", ["no-such-model", "garbage.pt", "empty-dir"])
def test_missing_or_broken_models(tmp_path, command, model):
    (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(2048))
    (tmp_path / "empty-dir").mkdir()
    np.save(tmp_path / "e.npy", np.ones((2, 4), np.float32))
    if "IDX" in command:
        invoke("search", "build", str(tmp_path / "e.npy"), "-o", str(tmp_path / "IDX"), "-q")
    args = [model if a == "MODEL" else a for a in command]
    if command[0] != "convert":
        args += ["--model", model]
    proc = invoke(*args, stdin=b"", cwd=tmp_path)
    assert_clean(proc, (1, 2))
    assert model in proc.stderr.decode(), proc.stderr.decode()[-500:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["embed", "-", "--model", "tiny-random"],
                                  ["classify", "-", "--pack", "gender", "--model", "tiny-random"]])
def test_an_empty_input_is_said_even_quietly(tmp_path, args):
    """No records in: exit 0 and no output records, with a warning on stderr (even with -q)."""
    proc = invoke(*args, "-q", stdin=b"\n", cwd=tmp_path)
    assert_clean(proc, (0,))
    assert proc.stdout == b""
    assert b"the input held no clips" in proc.stderr


@pytest.mark.parametrize("key", ["data.train", "data.valid"])
def test_train_on_an_audio_file_as_manifest_is_a_usage_error(tmp_path, key):
    """Read as text, a clip gave one skipped row per binary line, then 'no usable training batch'."""
    from tests.helpers.assets import write_wav

    write_wav(tmp_path / "clip.wav", 1.0)
    (tmp_path / "t.jsonl").write_text(json.dumps({"id": "a", "audio": str(tmp_path / "clip.wav"),
                                                  "global_captions": ["a calm voice"]}) + "\n")
    data = {"data.train": str(tmp_path / "t.jsonl"), "data.valid": "null", key: str(tmp_path / "clip.wav")}
    proc = invoke("train", str(TINY_CONFIG), *(f"{k}={v}" for k, v in data.items()), "init_from=tiny-random",
                  "device=cpu", "max_steps=1", "--output-dir", str(tmp_path / "exp"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{key}: {tmp_path / 'clip.wav'} is an audio file; expected a training manifest" in proc.stderr.decode()
    assert not (tmp_path / "exp").exists()
