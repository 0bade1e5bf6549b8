"""``clsp search``: the command contract in-process; ``| head`` through the real executable."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from clsp.index import build_index
from clsp.index.store import read_info
from clsp.metrics.retrieval import speech_text_retrieval
from tests.conftest import invoke, jsonl

PROV = {"model": "vec-model", "checksum": "c1", "dim": 8, "normalized": True}


def sh(cmd: str, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)


def cli(*args, cwd, stdin: str | None = None):
    return invoke(*args, cwd=cwd, stdin=stdin, text=True)


def write_embeddings(path, vecs, prov=PROV, extra=None):
    recs = []
    for i, v in enumerate(vecs):
        rec = {"id": f"v{i}", "embedding": [float(x) for x in v], "provenance": prov, "group": f"g{i % 3}"}
        rec.update((extra or {}).get(i, {}))
        recs.append(rec)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


@pytest.fixture
def vecs():
    return np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)


def test_flat_query_matches_numpy_through_pipes(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    p = cli("search", "build", "-", "-o", "v.idx", "-q", cwd=tmp_path, stdin=(tmp_path / "emb.jsonl").read_text())
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["count"] == 40 and summary["factory"] == "Flat" and summary["model"] == "vec-model"
    queries = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    np.save(tmp_path / "q.npy", queries)
    p = cli("search", "query", "v.idx", "q.npy", "-k", "4", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    base = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ base.T
    for q, rec in enumerate(out):
        assert rec["id"] == f"row-{q}"
        order = np.argsort(-sim[q])[:4]
        assert [h["id"] for h in rec["hits"]] == [f"v{i}" for i in order]
        np.testing.assert_allclose([h["score"] for h in rec["hits"]], sim[q, order], atol=1e-5)
        assert rec["hits"][0]["group"] == f"g{order[0] % 3}"
        assert "embedding" not in rec["hits"][0] and "provenance" not in rec["hits"][0]


def test_stdin_vectors_find_themselves(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    emb = (tmp_path / "emb.jsonl").read_text()
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    p = cli("search", "query", "v.idx", "-k", "3", "--threads", "1", "-q", cwd=tmp_path, stdin=emb)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == 40
    assert all(r["hits"][0]["id"] == r["id"] and abs(r["hits"][0]["score"] - 1) < 1e-5 for r in out)
    p = cli("search", "query", "v.idx", "-k", "40", "--threshold", "0.5", "-q", cwd=tmp_path, stdin=emb)
    assert all(h["score"] >= 0.5 for r in map(json.loads, p.stdout.splitlines()) for h in r["hits"])


@pytest.mark.slow
def test_head_closes_the_pipe_quietly(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    p = sh("cat emb.jsonl | clsp search query v.idx -k 3 -q --batch-size 1 | head -1", tmp_path)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1 and "Traceback" not in p.stderr


def test_npy_with_ids_and_add(tmp_path, vecs):
    np.save(tmp_path / "m.npy", vecs[:30])
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps({"id": f"v{i}", "row": i}) + "\n" for i in range(30)))
    assert cli("search", "build", "ids.jsonl", "--npy", "m.npy", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    write_embeddings(tmp_path / "more.jsonl", vecs)
    more = [json.loads(line) for line in (tmp_path / "more.jsonl").read_text().splitlines()][30:]
    (tmp_path / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in more))
    # a model's records cannot join vectors of unknown origin (nor the other way round)
    p = cli("search", "build", "more.jsonl", "-o", "v.idx", "--add", "-q", cwd=tmp_path)
    assert p.returncode == 1 and "holds embeddings of unknown origin" in p.stderr
    (tmp_path / "more.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "provenance"}) + "\n"
                                                 for r in more))
    p = cli("search", "build", "more.jsonl", "-o", "v.idx", "--add", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["count"] == 40
    p = cli("search", "query", "v.idx", "-k", "1", "-q", cwd=tmp_path, stdin=json.dumps({"id": "q", "embedding": vecs[35].tolist()}))
    assert json.loads(p.stdout)["hits"][0]["id"] == "v35"


def test_ids_in_row_order_must_be_one_per_row(tmp_path, vecs):
    """Records without 'row' take the matrix row at their position: a lost line would shift
    every later id onto another vector, so the counts must agree."""
    np.save(tmp_path / "m.npy", vecs[:6])
    ids = [json.dumps({"id": f"v{i}"}) for i in range(6)]
    (tmp_path / "gap.jsonl").write_text("".join(line + "\n" for n, line in enumerate(ids) if n != 2))
    p = cli("search", "build", "m.npy", "--ids", "gap.jsonl", "-o", "gap.idx", "-q", cwd=tmp_path)
    assert p.returncode == 1 and "5 records for the 6 rows of the --npy matrix" in p.stderr, p.stderr
    assert not (tmp_path / "gap.idx").exists()
    p = cli("plot", "map", "gap.jsonl", "--npy", "m.npy", "-o", "gap.png", "-q", cwd=tmp_path)
    assert p.returncode == 1 and "5 records for the 6 rows" in p.stderr and not (tmp_path / "gap.png").exists()
    (tmp_path / "ids.jsonl").write_text("".join(line + "\n" for line in ids))
    p = cli("search", "build", "m.npy", "--ids", "ids.jsonl", "-o", "v.idx", "-q", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["count"] == 6
    p = cli("search", "query", "v.idx", "-k", "1", "-q", cwd=tmp_path, stdin=json.dumps({"id": "q", "embedding": vecs[3].tolist()}))
    assert json.loads(p.stdout)["hits"][0]["id"] == "v3"


def test_add_keeps_the_index_metric_and_factory_and_refuses_others(tmp_path, vecs):
    write_embeddings(tmp_path / "a.jsonl", vecs[:10], prov={**PROV, "dim": 8})
    assert cli("search", "build", "a.jsonl", "-o", "v.idx", "--metric", "l2", "-q", cwd=tmp_path).returncode == 0
    more = [dict(json.loads(line), id=f"w{n}") for n, line in enumerate((tmp_path / "a.jsonl").read_text().splitlines())]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in more))
    for flag, value, have in (("--metric", "cosine", "l2"), ("--factory", "HNSW32", "Flat")):
        p = cli("search", "build", "b.jsonl", "-o", "v.idx", "--add", flag, value, "-q", cwd=tmp_path)
        assert p.returncode == 2 and f"was built with {flag} {have}" in p.stderr, p.stderr
        assert read_info(tmp_path / "v.idx").count == 10
    p = cli("search", "build", "b.jsonl", "-o", "v.idx", "--add", "--max-memory", "1G", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "--max-memory 1G: it chooses the factory of a new index" in p.stderr
    p = cli("search", "build", "b.jsonl", "-o", "v.idx", "--add", "-q", cwd=tmp_path)  # no flag: the index's own
    assert p.returncode == 0 and json.loads(p.stdout)["metric"] == "l2" and read_info(tmp_path / "v.idx").count == 20


def test_errors_are_clear_never_tracebacks(tmp_path, vecs):
    p = invoke("search", "query", str(tmp_path / "missing.idx"), "--text", "x")
    assert p.returncode == 2 and p.stdout == b"" and b"no such directory" in p.stderr  # a usage error
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    other = {"model": "another", "dim": 8}
    queries = [{"id": "ok", "embedding": vecs[0].tolist(), "provenance": PROV},
               {"id": "other", "embedding": vecs[0].tolist(), "provenance": other},
               {"id": "short", "embedding": [1.0, 2.0]}]
    p = cli("search", "query", "v.idx", "-k", "50", "-q", cwd=tmp_path, stdin="".join(json.dumps(q) + "\n" for q in queries))
    assert p.returncode == 3, p.stderr
    ok, bad_model, bad_dim = map(json.loads, p.stdout.splitlines())
    assert len(ok["hits"]) == 40  # k larger than the index: every vector
    assert bad_model["error"]["type"] == "ProvenanceError" and "another" in bad_model["error"]["message"]
    assert "vec-model" in bad_model["error"]["message"]
    assert bad_dim["error"]["type"] == "ProvenanceError" and "dimension 2" in bad_dim["error"]["message"]
    p = cli("search", "query", "v.idx", "--on-error", "fail", "-q", cwd=tmp_path, stdin="".join(json.dumps(q) + "\n" for q in queries))
    assert p.returncode == 1 and len(p.stdout.splitlines()) == 2
    write_embeddings(tmp_path / "other.jsonl", vecs[:3], prov=other, extra={})
    p = cli("search", "build", "other.jsonl", "-o", "v.idx", "--add", "-q", cwd=tmp_path)
    assert p.returncode == 1 and "another" in p.stderr and "Traceback" not in p.stderr
    (read_info(tmp_path / "v.idx").data_dir(tmp_path / "v.idx") / "index.faiss").write_bytes(b"garbage")
    p = cli("search", "query", "v.idx", "-q", cwd=tmp_path, stdin=json.dumps(queries[0]))
    assert p.returncode == 1 and "corrupt" in p.stderr and "Traceback" not in p.stderr
    p = cli("search", "build", "-", "-o", "e.idx", "-q", cwd=tmp_path, stdin="")
    assert p.returncode == 1 and "no embeddings" in p.stderr


def test_empty_index_gives_short_answers(tmp_path):
    build_index(np.zeros((0, 8), np.float32), []).save(tmp_path / "empty.idx")
    p = cli("search", "query", "empty.idx", "-k", "5", "-q", cwd=tmp_path, stdin=json.dumps({"id": "q", "embedding": [1.0] * 8}))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"id": "q", "hits": []}


def test_eval_index_and_pool_modes(tmp_path, vecs):
    rng = np.random.default_rng(3)
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    write_embeddings(tmp_path / "speech.jsonl", vecs)
    caps = vecs + 0.3 * rng.standard_normal(vecs.shape).astype(np.float32)
    caps /= np.linalg.norm(caps, axis=1, keepdims=True)
    cap_recs = [{"id": f"t{i}", "embedding": caps[i].tolist(), "audio_id": f"v{i}", "relevant": f"v{i}",
                 "kind": "global" if i % 2 else "fine", "provenance": PROV} for i in range(40)]
    (tmp_path / "caps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in cap_recs))
    assert cli("search", "build", "speech.jsonl", "-o", "s.idx", "-q", cwd=tmp_path).returncode == 0
    p = cli("search", "eval", "s.idx", "--queries", "caps.jsonl", "--n-boot", "200", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)["metrics"]
    want = speech_text_retrieval(vecs, caps, n_boot=0)
    for name in ("R@1", "R@5", "R@10", "mAP@10"):
        assert got[name] == pytest.approx(want[f"t2s_{name}"])
        assert got[f"{name}_lo"] <= got[name] <= got[f"{name}_hi"]
    p = cli("search", "eval", "--speech", "speech.jsonl", "--captions", "caps.jsonl", "--group-key", "kind", "--n-boot", "0", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["metrics"]["s2t_R@1"] == pytest.approx(want["s2t_R@1"])
    assert summary["metrics"]["t2s_mAP@10"] == pytest.approx(want["t2s_mAP@10"])
    fine = speech_text_retrieval(vecs, caps[0::2], np.arange(0, 40, 2), n_boot=0)
    assert summary["groups"]["fine"]["s2t_R@5"] == pytest.approx(fine["s2t_R@5"])
    assert summary["groups"]["fine"]["s2t_count"] == 20


def test_text_and_audio_queries_with_the_model(clips, tiny_model):
    p = cli("embed", "clips.jsonl", "-m", "tiny-random", "-q", cwd=clips)
    assert p.returncode == 0, p.stderr
    (clips / "emb.jsonl").write_text(p.stdout)
    p = cli("search", "build", "-", "-o", "clips.idx", "-q", cwd=clips, stdin=p.stdout)
    assert p.returncode == 0, p.stderr
    p = cli("search", "query", "clips.idx", "--text", "a calm, low male voice", "--audio", "c2.wav", "-k", "3", "-q", cwd=clips)
    assert p.returncode == 0, p.stderr
    text_q, audio_q = map(json.loads, p.stdout.splitlines())
    assert text_q["id"] == "a calm, low male voice" and len(text_q["hits"]) == 3
    assert audio_q["hits"][0]["id"] == "c2" and audio_q["hits"][0]["score"] > 0.999
    assert audio_q["hits"][0]["speaker"] == "s0"
    # oracle: the text query's scores are cosines with the model's caption embedding
    import torch

    with torch.no_grad():
        tvec = tiny_model.encode_text(["a calm, low male voice"])[0].numpy()
    emb = {r["id"]: np.array(r["embedding"]) for r in jsonl((clips / "emb.jsonl").read_bytes())}
    for hit in text_q["hits"]:
        v = emb[hit["id"]]
        assert hit["score"] == pytest.approx(float(tvec @ v / np.linalg.norm(v)), abs=1e-4)


def test_a_query_record_with_both_text_and_audio_asks_which(clips):
    """A clip-and-caption record (a training manifest line) is not searched with one of the
    two picked silently: an error record naming --query-field; with it, the field chosen."""
    p = cli("embed", "clips.jsonl", "-m", "tiny-random", "-q", cwd=clips)
    p = cli("search", "build", "-", "-o", "clips.idx", "-q", cwd=clips, stdin=p.stdout)
    assert p.returncode == 0, p.stderr
    q = json.dumps({"id": "q", "audio": "c2.wav", "text": "a calm, low male voice"}) + "\n"
    p = cli("search", "query", "clips.idx", "-", "-q", cwd=clips, stdin=q)
    assert p.returncode == 3 and "--query-field text" in json.loads(p.stdout)["error"]["message"]
    p = cli("search", "query", "clips.idx", "-", "--query-field", "audio", "-k", "1", "-q", cwd=clips, stdin=q)
    hit = json.loads(p.stdout)["hits"][0]
    assert p.returncode == 0 and hit["id"] == "c2" and hit["score"] > 0.999
    p = cli("search", "query", "clips.idx", "-", "--query-field", "text", "-k", "1", "-q", cwd=clips, stdin=q)
    t = cli("search", "query", "clips.idx", "--text", "a calm, low male voice", "-k", "1", "-q", cwd=clips)
    assert p.returncode == 0 and json.loads(p.stdout)["hits"] == json.loads(t.stdout)["hits"]
    p = cli("search", "query", "clips.idx", "-", "--query-field", "embedding", "-q", cwd=clips, stdin=q)
    assert p.returncode == 3 and "no 'embedding' field" in p.stdout
    p = cli("search", "query", "clips.idx", "-", "--query-field", "caption", "-q", cwd=clips, stdin=q)
    assert p.returncode == 2 and "expected one of auto, embedding, text, audio" in p.stderr


def test_a_plain_list_of_captions_with_query_field_text(clips):
    """--query-field text reads plain lines as captions (without it, they are audio paths), each
    answered as the same caption given with --text, named by its text."""
    p = cli("embed", "clips.jsonl", "-m", "tiny-random", "-q", cwd=clips)
    p = cli("search", "build", "-", "-o", "clips.idx", "-q", cwd=clips, stdin=p.stdout)
    assert p.returncode == 0, p.stderr
    (clips / "q.txt").write_text("a calm, low male voice\nan angry woman\n")
    p = cli("search", "query", "clips.idx", "q.txt", "--query-field", "text", "-k", "2", "-q", cwd=clips)
    got = [json.loads(line) for line in p.stdout.splitlines()]
    t = cli("search", "query", "clips.idx", "--text", "a calm, low male voice", "--text", "an angry woman", "-k", "2",
            "-q", cwd=clips)
    assert p.returncode == 0 and got == [json.loads(line) for line in t.stdout.splitlines()], p.stderr
    p = cli("search", "query", "clips.idx", "q.txt", "-k", "2", "-q", cwd=clips)  # as paths: no such file
    assert p.returncode == 3 and "no such file" in p.stdout


def test_search_build_and_query_give_integer_ids_back_as_integers(tmp_path):
    rng = np.random.default_rng(0)
    recs = [{"id": 10 + i, "embedding": rng.standard_normal(8).tolist(), "note": i} for i in range(4)]
    (tmp_path / "int.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = invoke("search", "build", "int.jsonl", "-o", "int.idx", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = invoke("search", "query", "int.idx", "int.jsonl", "-k", "1", "-q", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    assert [(r["id"], r["hits"][0]["id"]) for r in jsonl(p.stdout)] == [(10, 10), (11, 11), (12, 12), (13, 13)]


def test_an_audio_query_whose_duration_runs_past_the_file_reads_to_its_end(clips):
    """A query record's start + duration past the file's end reads up to the end, as clsp embed
    reads that record; it was an error ("end=... is past the end of the file")."""
    p = cli("embed", "clips.jsonl", "-m", "tiny-random", "-q", cwd=clips)
    p = cli("search", "build", "-", "-o", "clips.idx", "-q", cwd=clips, stdin=p.stdout)
    assert p.returncode == 0, p.stderr
    q = json.dumps({"id": "q", "audio": "c2.wav", "start": 0.0, "duration": 60.0}) + "\n"
    p = cli("search", "query", "clips.idx", "-", "--query-field", "audio", "-k", "1", "-q", cwd=clips, stdin=q)
    assert p.returncode == 0, p.stdout + p.stderr
    hit = json.loads(p.stdout)["hits"][0]
    assert hit["id"] == "c2" and hit["score"] > 0.999


def test_an_input_inside_the_index_folder_is_refused_never_deleted(tmp_path, vecs):
    """Publishing removes the old data-* folder: an input there (records, --npy, --ids, stdin)
    is a usage error naming it, for --add and a rebuild alike, and stays as it was."""
    write_embeddings(tmp_path / "emb.jsonl", vecs[:8])
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    data = read_info(tmp_path / "v.idx").data
    write_embeddings(tmp_path / "v.idx" / data / "new.jsonl", vecs[8:12], extra={i: {"id": f"w{i}"} for i in range(4)})
    inside = f"v.idx/{data}/new.jsonl"
    np.save(tmp_path / "v.idx" / data / "m.npy", vecs[:3])
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps({"id": f"n{i}"}) + "\n" for i in range(3)))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "row": i}) + "\n" for i in range(3)))
    for args, named in (((inside, "--add"), inside), ((inside,), inside),
                        ((f"v.idx/{data}/m.npy", "--ids", "ids.jsonl"), f"v.idx/{data}/m.npy"),
                        (("rows.jsonl", "--npy", f"v.idx/{data}/m.npy", "--add"), f"v.idx/{data}/m.npy")):
        p = cli("search", "build", *args, "-o", "v.idx", "-q", cwd=tmp_path)
        assert p.returncode == 2 and f"{named}: it lies inside the index folder v.idx" in p.stderr, (args, p.stderr)
    assert (tmp_path / inside).is_file() and (tmp_path / "v.idx" / data / "m.npy").is_file()
    assert read_info(tmp_path / "v.idx").data == data and read_info(tmp_path / "v.idx").count == 8
    (tmp_path / "out").mkdir()
    (tmp_path / inside).rename(tmp_path / "out" / "new.jsonl")  # moved out, it is added
    p = cli("search", "build", "out/new.jsonl", "-o", "v.idx", "--add", "-q", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["count"] == 12 and (tmp_path / "out" / "new.jsonl").is_file()


@pytest.mark.slow
def test_stdin_redirected_from_a_file_inside_the_index_folder_is_refused(tmp_path, vecs):
    from tests.helpers.cli import CLSP

    write_embeddings(tmp_path / "emb.jsonl", vecs[:8])
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    data = read_info(tmp_path / "v.idx").data
    write_embeddings(tmp_path / "v.idx" / data / "new.jsonl", vecs[8:12])
    for add in (["--add"], []):
        with open(tmp_path / "v.idx" / data / "new.jsonl", "rb") as fh:
            p = subprocess.run([CLSP, "--threads", "1", "search", "build", "-", "-o", "v.idx", "-q", *add], stdin=fh,
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and f"stdin (v.idx/{data}/new.jsonl): it lies inside the index folder" in p.stderr
        assert (tmp_path / "v.idx" / data / "new.jsonl").is_file() and read_info(tmp_path / "v.idx").data == data


def test_mixed_and_speed_perturbed_cuts_query_as_embed_reads_them(tmp_path):
    """A cut record read back from a cuts file is decoded by Lhotse, as ``clsp embed`` decodes
    it: a mix or a speed-perturbed cut finds itself, not "mix:ID: no such file"."""
    import gzip

    import soundfile as sf
    from lhotse import Recording

    t = np.arange(16000) / 16000
    for name, freq in (("a.wav", 150), ("b.wav", 320)):
        sf.write(tmp_path / name, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    a, b = (Recording.from_file(tmp_path / n).to_cut() for n in ("a.wav", "b.wav"))
    mix = a.mix(b, offset_other_by=0.2).with_id("mix1")
    fast = b.perturb_speed(1.1).with_id("speed1")
    with gzip.open(tmp_path / "cuts.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(c.to_dict()) + "\n" for c in (a, b, mix, fast))
    p = cli("embed", "cuts.jsonl.gz", "-m", "tiny-random", "-o", "emb.jsonl", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = cli("search", "build", "emb.jsonl", "-o", "cuts.idx", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = cli("search", "query", "cuts.idx", "cuts.jsonl.gz", "-k", "1", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert [r["id"] for r in out] == [a.id, b.id, "mix1", "speed1"]
    for r in out:
        assert r["hits"][0]["id"] == r["id"] and r["hits"][0]["score"] > 0.999


def test_an_upstream_error_record_as_a_query_passes_its_reason_on(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "up.jsonl").write_text(json.dumps({"id": "u1", "error": {"type": "AudioError",
                                                                       "message": "x.wav: no such file"}}) + "\n")
    p = cli("search", "query", "v.idx", "up.jsonl", "-q", cwd=tmp_path)
    assert p.returncode == 3
    [rec] = [json.loads(x) for x in p.stdout.splitlines()]
    assert rec["error"]["message"] == "query 'u1' is an upstream error: x.wav: no such file"


def test_a_query_input_with_no_records_replaces_no_earlier_output_or_page(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "hits.jsonl").write_text("OLD\n")
    (tmp_path / "page.html").write_text("OLDPAGE\n")
    p = cli("search", "query", "v.idx", "-", "-o", "hits.jsonl", "--html", "page.html", cwd=tmp_path, stdin="")
    assert p.returncode == 0 and "the input held no queries" in p.stderr, p.stderr
    assert (tmp_path / "hits.jsonl").read_text() == "OLD\n" and (tmp_path / "page.html").read_text() == "OLDPAGE\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["emb.jsonl", "hits.jsonl", "page.html", "v.idx"]


def test_an_output_inside_the_index_folder_read_is_refused_before_any_work(tmp_path, vecs):
    write_embeddings(tmp_path / "emb.jsonl", vecs)
    assert cli("search", "build", "emb.jsonl", "-o", "v.idx", "-q", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "v.idx").rglob("*") if p.is_file()}
    for out in ("v.idx/index.json", "v.idx/hits.jsonl"):
        p = cli("search", "query", "v.idx", "emb.jsonl", "-o", out, "-q", cwd=tmp_path)
        assert p.returncode == 2 and "lies inside the index folder this run reads (v.idx)" in p.stderr, p.stderr
    p = cli("search", "eval", "v.idx", "--queries", "emb.jsonl", "-o", "v.idx/r.json", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "lies inside the index folder" in p.stderr, p.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "v.idx").rglob("*") if p.is_file()} == before  # no .partial


def test_query_field_applies_to_query_records_not_to_given_captions_and_clips(clips):
    """--audio next to a plain list of captions read with --query-field text is still a clip,
    and --text next to --query-field audio still a caption."""
    p = cli("embed", "clips.jsonl", "-m", "tiny-random", "-q", cwd=clips)
    p = cli("search", "build", "-", "-o", "clips.idx", "-q", cwd=clips, stdin=p.stdout)
    assert p.returncode == 0, p.stderr
    (clips / "q.txt").write_text("a calm, low male voice\n")
    p = cli("search", "query", "clips.idx", "--audio", "c2.wav", "q.txt", "--query-field", "text", "-k", "1", "-q",
            cwd=clips)
    got = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and len(got) == 2, (p.stdout, p.stderr)
    assert got[0]["hits"][0]["id"] == "c2" and got[0]["hits"][0]["score"] > 0.999
    p = cli("search", "query", "clips.idx", "--text", "an angry woman", "--query-field", "audio", "-k", "1", "-q",
            cwd=clips)
    assert p.returncode == 0 and json.loads(p.stdout)["hits"], (p.stdout, p.stderr)
