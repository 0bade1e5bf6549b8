"""Index edges: --add settings checked under the lock, declared files and metrics checked on load,
no data deleted behind a missing index.json, field names that round-trip, --ids records that are
metadata only, l2/ip ties, queries with 'row' but no matrix, and JSON-ish --group-key names."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from clsp.errors import ConfigError, IndexFileError
from clsp.index import build_index, load_index
from clsp.index.records import index_embeddings
from clsp.index.store import read_info
from clsp.retrieval_eval import evaluate_index
from tests.helpers.cli import invoke, jsonl


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def unit_rows(n, dim, seed):
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records(prefix, vecs):
    return [{"id": f"{prefix}{i}", "embedding": v.tolist()} for i, v in enumerate(vecs)]


# ------------------------------------------------------------------ 1: --add settings under the lock
def test_add_with_another_metric_onto_an_index_built_while_it_waited_is_a_usage_error(tmp_path):
    """The index does not exist when the --add run starts; another writer builds it (cosine)
    while holding the lock; the --add --metric l2 run, once it holds the lock, refuses."""
    idx = tmp_path / "race.idx"
    src = write_jsonl(tmp_path / "cb.jsonl", records("b", unit_rows(3, 4, 2)))
    code = textwrap.dedent(f"""
        import time, numpy as np
        from clsp.index.folder import write_index
        from clsp.index.lock import index_writer
        with index_writer({str(idx)!r}):
            print("locked", flush=True)
            time.sleep(1.5)
            write_index({str(idx)!r}, np.eye(4, dtype=np.float32), [{{"id": f"a{{i}}"}} for i in range(4)], add=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        p = invoke("--threads", "1", "search", "build", src, "-o", idx, "--add", "--metric", "l2", "-q",
                   "--lock-timeout", "60", text=True)
    finally:
        assert proc.wait(timeout=60) == 0
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "--metric l2" in p.stderr and "--add appends to it as it is" in p.stderr
    info = read_info(idx)
    assert info.metric == "cosine" and info.count == 4  # nothing appended


def test_library_add_refuses_settings_the_index_was_not_built_with(tmp_path):
    idx = tmp_path / "a.idx"
    src = write_jsonl(tmp_path / "a.jsonl", records("a", unit_rows(4, 4, 1)))
    more = write_jsonl(tmp_path / "b.jsonl", records("b", unit_rows(2, 4, 2)))
    index_embeddings(idx, src)
    with pytest.raises(ConfigError, match="--metric l2: index .* was built with --metric cosine"):
        index_embeddings(idx, more, add=True, metric="l2")
    with pytest.raises(ConfigError, match="--factory HNSW8"):
        index_embeddings(idx, more, add=True, factory="HNSW8")
    assert index_embeddings(idx, more, add=True)["count"] == 6  # the index's own settings: appended


# ------------------------------------------------------------------ 2: a declared vectors.npy missing
def test_compressed_index_without_its_stored_vectors_is_an_error_naming_the_file(tmp_path):
    vecs = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    index = build_index(vecs, [{"id": f"p{i}"} for i in range(300)], factory="PQ4")
    index.save(tmp_path / "pq.idx")
    info = read_info(tmp_path / "pq.idx")
    assert info.stored_vectors
    (info.data_dir(tmp_path / "pq.idx") / "vectors.npy").unlink()
    with pytest.raises(IndexFileError, match=rf"{info.data}/vectors.npy is missing"):
        load_index(tmp_path / "pq.idx")


# ------------------------------------------------------------------ 3: --add behind a missing index.json
def test_add_to_a_folder_whose_index_json_is_missing_refuses_and_keeps_the_data(tmp_path):
    idx = tmp_path / "o.idx"
    index_embeddings(idx, write_jsonl(tmp_path / "a.jsonl", records("a", unit_rows(3, 4, 1))))
    data = read_info(idx).data_dir(idx)
    (idx / "index.json").unlink()
    new = write_jsonl(tmp_path / "new.jsonl", records("n", unit_rows(1, 4, 5)))
    p = invoke("--threads", "1", "search", "build", new, "-o", idx, "--add", "-q", text=True)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "index.json is missing" in p.stderr and data.name in p.stderr and "index's data" in p.stderr
    assert (data / "index.faiss").is_file() and (data / "meta.parquet").is_file()
    assert not (idx / "index.json").exists()


# ------------------------------------------------------------------ 4: l2 / ip ties are relative to the pair
@pytest.mark.parametrize("metric, vecs, query", [
    ("l2", [[1, 0, 0], [0, 1.4142135, 0], [3000, 0, 0]], [0, 0, 1e-4]),  # distances 1, 2, 9e6
    ("ip", [[1, 0, 0], [0.5, 0, 0], [-9e6, 0, 0]], [1, 0, 0]),  # inner products 1, 0.5, -9e6
])
def test_strictly_nearest_item_is_not_a_tie_for_l2_and_ip(tmp_path, metric, vecs, query):
    idx = tmp_path / f"{metric}.idx"
    index_embeddings(idx, write_jsonl(tmp_path / "e.jsonl", [{"id": n, "embedding": v} for n, v in zip("abf", vecs)]),
                     metric=metric)
    q = write_jsonl(tmp_path / "q.jsonl", [{"id": "q", "embedding": query, "relevant": "a"}])
    assert evaluate_index(str(idx), q, n_boot=0).summary["metrics"]["R@1"] == 1.0
    # an exact tie still counts against the query: a and a copy of it are both nearest
    index_embeddings(idx, write_jsonl(tmp_path / "t.jsonl", [{"id": "t", "embedding": vecs[0]}]), add=True)
    assert evaluate_index(str(idx), q, n_boot=0).summary["metrics"]["R@1"] == 0.0


# ------------------------------------------------------------------ 5: field names round-trip
def test_every_field_name_comes_back_as_it_went_in(tmp_path):
    idx = tmp_path / "k.idx"
    recs = [{"id": "k1", "embedding": [1, 0, 0], "": "empty", "column_1": "real", "_note": 1},
            {"id": "k2", "embedding": [0, 1, 0], "__index_level_0__": "x", "__index_level_1__": 2, "\x00x": 3}]
    index_embeddings(idx, write_jsonl(tmp_path / "k.jsonl", recs))
    out = index_embeddings(idx, write_jsonl(tmp_path / "k2.jsonl", [{"id": "k3", "embedding": [0, 0, 1], "": 4}]),
                           add=True)
    assert out["count"] == 3
    hits = {h["id"]: h for h in load_index(idx).search(np.ones(3, np.float32), k=3)[0]}
    assert {k: v for k, v in hits["k1"].items() if k != "score"} == {"id": "k1", "": "empty", "column_1": "real",
                                                                       "_note": 1}
    assert {k: v for k, v in hits["k2"].items() if k != "score"} == {"id": "k2", "__index_level_0__": "x",
                                                                       "__index_level_1__": 2, "\x00x": 3}
    assert {k: v for k, v in hits["k3"].items() if k != "score"} == {"id": "k3", "": 4}
    # what reading a clip's record adds for itself (its resolved path) is not one of its fields
    index_embeddings(tmp_path / "c.idx", write_jsonl(tmp_path / "c.jsonl", [{"id": "c", "embedding": [1, 0],
                                                                             "audio": "c.wav"}]))
    hit = load_index(tmp_path / "c.idx").search(np.ones(2, np.float32), k=1)[0][0]
    assert "_path" not in hit and hit["audio"].endswith("c.wav")


# ------------------------------------------------------------------ 6: index.json's metric vs index.faiss
@pytest.mark.parametrize("built, edited", [("cosine", "l2"), ("l2", "cosine"), ("ip", "l2")])
def test_an_edited_metric_is_an_error_naming_the_files(tmp_path, built, edited):
    idx = tmp_path / "m.idx"
    index_embeddings(idx, write_jsonl(tmp_path / "e.jsonl", records("a", unit_rows(3, 4, 1))), metric=built)
    info = json.loads((idx / "index.json").read_text())
    info["metric"] = edited
    (idx / "index.json").write_text(json.dumps(info))
    with pytest.raises(IndexFileError, match=rf"index.faiss compares vectors by .*index.json says metric '{edited}'"):
        load_index(idx)


# ------------------------------------------------------------------ 7: --ids records are metadata only
@pytest.mark.parametrize("own", [{"embedding": [0.0, 0.0, 1.0]}, {"row": 1}])
def test_ids_record_carrying_its_own_vector_is_refused_by_name(tmp_path, own):
    np.save(tmp_path / "two.npy", unit_rows(2, 8, 3))
    ids = write_jsonl(tmp_path / "ids.jsonl", [{"id": "x1", **own}, {"id": "x2"}])
    p = invoke("--threads", "1", "search", "build", tmp_path / "two.npy", "--ids", ids, "-o", tmp_path / "i.idx",
               text=True)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "record 'x1'" in p.stderr and "--ids records are the metadata of the matrix rows" in p.stderr
    summary = jsonl(p.stdout)[-1]
    assert summary["count"] == 1 and summary["dim"] == 8 and summary["failed"] == 1
    assert load_index(tmp_path / "i.idx").ids == ["x2"]


# ------------------------------------------------------------------ 8: 'row' without a matrix, group names
def test_query_with_row_but_no_matrix_asks_for_npy(tmp_path):
    idx = tmp_path / "v.idx"
    index_embeddings(idx, write_jsonl(tmp_path / "e.jsonl", records("a", unit_rows(3, 4, 1))))
    q = write_jsonl(tmp_path / "q.jsonl", [{"id": "q1", "row": 0}])
    p = invoke("--threads", "1", "search", "query", idx, q, "-q", text=True)
    assert "'row' 0 points into a matrix" in jsonl(p.stdout)[0]["error"]["message"]
    assert "--npy" in jsonl(p.stdout)[0]["error"]["message"]


def test_eval_warns_once_per_file_for_queries_with_row_but_no_matrix(tmp_path):
    idx = tmp_path / "v.idx"
    index_embeddings(idx, write_jsonl(tmp_path / "e.jsonl", records("a", unit_rows(3, 4, 1))))
    q = write_jsonl(tmp_path / "q.jsonl", [{"id": "q1", "row": 0, "relevant": "a0"},
                                          {"id": "q2", "row": 1, "relevant": "a1"},
                                          {"id": "q3", "embedding": unit_rows(1, 4, 1)[0].tolist(), "relevant": "a0"}])
    p = invoke("--threads", "1", "search", "eval", idx, "--queries", q, "--n-boot", "0", "-q", text=True)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert p.stderr.count("hold 'row'") == 1 and "2 records of" in p.stderr and "skipped" not in p.stderr
    assert jsonl(p.stdout)[-1]["failed"] == 2


def test_group_names_are_json_ish_in_index_and_pool_mode(tmp_path):
    idx = tmp_path / "v.idx"
    vecs = unit_rows(4, 4, 1)
    index_embeddings(idx, write_jsonl(tmp_path / "e.jsonl", records("a", vecs)))
    values = [{}, {"grp": None}, {"grp": ["a"]}, {"grp": True}]
    q = write_jsonl(tmp_path / "q.jsonl", [{"id": f"q{i}", "embedding": v.tolist(), "relevant": f"a{i}", **extra}
                                          for i, (v, extra) in enumerate(zip(vecs, values))])
    groups = evaluate_index(str(idx), q, group_key="grp", n_boot=0).summary["groups"]
    assert set(groups) == {"null", '["a"]', "true"} and groups["null"]["count"] == 2
    from clsp.retrieval_eval import evaluate_pool

    sp = write_jsonl(tmp_path / "sp.jsonl", [{"id": f"a{i}", "embedding": v.tolist()} for i, v in enumerate(vecs)])
    cap = write_jsonl(tmp_path / "cap.jsonl", [{"id": f"c{i}", "embedding": v.tolist(), "audio_id": f"a{i}", **extra}
                                              for i, (v, extra) in enumerate(zip(vecs, values))])
    assert set(evaluate_pool(sp, cap, group_key="grp", n_boot=0).summary["groups"]) == {"null", '["a"]', "true"}
