"""Index folders: one writer at a time (real processes), whole versions for readers,
metadata that keeps its JSON types, and clsp's hit fields kept apart from the record's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from clsp.errors import InputError
from clsp.index import add_to_index, build_index, load_index
from clsp.index.lock import IndexBusyError, index_writer
from clsp.index.store import read_info

DIM = 8


def unit(n, seed):
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def holder(path, seconds, add_ids=()):
    """A second process that takes the write lock, says so, holds it, then maybe adds rows."""
    code = textwrap.dedent(f"""
        import sys, time, numpy as np
        from clsp.index import add_to_index
        from clsp.index.lock import index_writer
        with index_writer({str(path)!r}):
            print("locked", flush=True)
            time.sleep({seconds})
            ids = {list(add_ids)!r}
            if ids:
                v = np.random.default_rng(7).standard_normal((len(ids), {DIM})).astype(np.float32)
                add_to_index({str(path)!r}, v, [{{"id": i}} for i in ids])
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_second_writer_waits_and_both_adds_land(tmp_path):
    path = tmp_path / "i.idx"
    build_index(unit(20, 0), [{"id": f"base{i}"} for i in range(20)]).save(path)
    proc = holder(path, 1.5, add_ids=["p0", "p1", "p2"])
    messages = []
    start = time.monotonic()
    add_to_index(path, unit(4, 1), [{"id": f"m{i}"} for i in range(4)], lock_timeout=60, on_wait=messages.append)
    waited = time.monotonic() - start
    assert proc.wait(timeout=60) == 0
    assert waited > 0.5  # it really waited for the other writer
    assert len(messages) == 1 and f"in use by PID {proc.pid}" in messages[0]
    ids = set(load_index(path).ids)
    assert ids == {f"base{i}" for i in range(20)} | {"p0", "p1", "p2"} | {f"m{i}" for i in range(4)}


@pytest.mark.slow
def test_writer_gives_up_naming_the_holder(tmp_path):
    path = tmp_path / "i.idx"
    build_index(unit(5, 0), [{"id": f"b{i}"} for i in range(5)]).save(path)
    proc = holder(path, 3)
    try:
        with pytest.raises(IndexBusyError, match=f"index .*i.idx is in use by PID {proc.pid}"):
            add_to_index(path, unit(1, 1), [{"id": "late"}], lock_timeout=0.2)
    finally:
        proc.wait(timeout=60)
    assert "late" not in load_index(path).ids  # nothing half-written
    with index_writer(path, timeout=0):  # released when the holder exits
        pass


@pytest.mark.slow
def test_readers_see_whole_versions_while_a_writer_adds(tmp_path):
    path = tmp_path / "i.idx"
    build_index(unit(200, 0), [{"id": f"b{i}", "n": i} for i in range(200)]).save(path)
    code = textwrap.dedent(f"""
        import numpy as np
        from clsp.index import add_to_index
        for r in range(8):
            v = np.random.default_rng(r).standard_normal((50, {DIM})).astype(np.float32)
            add_to_index({str(path)!r}, v, [{{"id": f"r{{r}}-{{i}}", "n": i}} for i in range(50)])
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    counts = set()
    while proc.poll() is None:
        ix = load_index(path)  # never a torn version: count, vectors and metadata agree
        assert len(ix) == ix.meta.height == ix.info.count
        counts.add(len(ix))
    assert proc.wait() == 0
    assert counts <= {200 + 50 * r for r in range(9)}
    assert len(load_index(path)) == 600
    assert len([p for p in path.iterdir() if p.name.startswith("data-")]) == 1  # old versions removed


def test_build_refuses_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(Exception, match="not a clsp index"):
        build_index(unit(2, 0), [{"id": "a"}, {"id": "b"}]).save(tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "docs" / ".lock").exists()


def test_a_failed_data_write_is_named_and_the_old_version_stays(tmp_path, monkeypatch):
    import faiss

    from clsp.errors import OutputError

    path = tmp_path / "i.idx"
    build_index(unit(2, 0), [{"id": "a"}, {"id": "b"}]).save(path)

    def full_disk(index, name):
        raise RuntimeError("Error in void faiss::FileIOWriter::operator()(...):\nfwrite failed: No space left on device")

    monkeypatch.setattr(faiss, "write_index", full_disk)
    with pytest.raises(OutputError, match=r"index .*i\.idx: cannot write index\.faiss \(.*No space left on device"):
        add_to_index(path, unit(1, 5), [{"id": "c"}])
    monkeypatch.undo()
    assert load_index(path).ids == ["a", "b"]  # the old version, whole
    assert len([p for p in path.iterdir() if p.is_dir()]) == 1  # no half-written data folder left


VALUES = [31, 4.0, 4.5, True, False, None, "31", "", [1, "a", None], {"k": [1, 2.5]}, {}, [], 10**15, -0.0]


def test_metadata_keeps_json_types_through_build_add_and_query(tmp_path):
    path = tmp_path / "i.idx"
    first = [{"id": f"a{i}", "v": v, "only_a": i} for i, v in enumerate(VALUES)]
    later = [{"id": f"b{i}", "v": v, "only_b": str(i)} for i, v in enumerate(reversed(VALUES))]
    vecs = unit(len(first) + len(later), 3)
    build_index(vecs[: len(first)], first).save(path)
    add_to_index(path, vecs[len(first):], later)
    ix = load_index(path)
    hits = {h["id"]: h for h in ix.search(vecs[0], k=len(vecs))[0]}
    for rec in first + later:
        hit = hits[rec["id"]]
        assert set(hit) - {"score"} == set(rec)  # a field is absent only when the record lacked it
        for key, value in rec.items():
            assert hit[key] == value and type(hit[key]) is type(value), (rec["id"], key, hit[key])


def test_record_fields_named_like_hit_fields_are_kept_apart(tmp_path):
    vecs = unit(3, 4)
    meta = [{"id": "a", "score": 4.5, "age": 31}, {"id": "b", "score": 2, "metadata": {"x": 1}}, {"id": "c"}]
    build_index(vecs, meta).save(tmp_path / "i.idx")
    query = unit(1, 5)[0]
    hits = {h["id"]: h for h in load_index(tmp_path / "i.idx").search(query, k=3)[0]}
    cosine = vecs @ query
    for n, rid in enumerate("abc"):
        assert hits[rid]["score"] == pytest.approx(float(cosine[n]), abs=1e-5)
    assert hits["a"]["metadata"] == {"score": 4.5} and hits["a"]["age"] == 31
    assert hits["b"]["metadata"] == {"score": 2, "metadata": {"x": 1}}
    assert "metadata" not in hits["c"]


def test_non_finite_metadata_is_named(tmp_path):
    with pytest.raises(InputError, match="record 'b'.*field 'mos'"):
        build_index(unit(2, 0), [{"id": "a", "mos": 1.0}, {"id": "b", "mos": float("nan")}])


def test_format_1_index_is_read_and_upgraded_on_add(tmp_path):
    import faiss
    import polars as pl

    path = tmp_path / "old.idx"
    path.mkdir()
    vecs = unit(3, 6)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vecs)
    faiss.write_index(flat, str(path / "index.faiss"))
    pl.DataFrame({"id": ["a", "b", "c"], "age": [31, 45, None], "tags": ['["x"]', None, "7"]}).write_parquet(
        path / "meta.parquet")
    (path / "index.json").write_text(json.dumps({"dim": DIM, "count": 3, "json_columns": ["tags"],
                                                 "format_version": 1}))
    hits = {h["id"]: h for h in load_index(path).search(vecs[0], k=3)[0]}
    assert hits["a"]["age"] == 31 and hits["a"]["tags"] == ["x"] and hits["c"]["tags"] == 7 and "age" not in hits["c"]
    add_to_index(path, unit(1, 7), [{"id": "d", "age": "unknown"}])
    assert read_info(path).format_version == 2 and not (path / "index.faiss").exists()
    hits = {h["id"]: h for h in load_index(path).search(vecs[0], k=4)[0]}
    assert hits["a"]["age"] == 31 and hits["b"]["age"] == 45 and hits["d"]["age"] == "unknown"


def test_a_first_build_killed_half_way_can_be_built_again(tmp_path):
    path = tmp_path / "i.idx"
    (path / "data-0123456789ab").mkdir(parents=True)
    (path / "data-0123456789ab" / "index.faiss").write_bytes(b"partial")
    (path / ".lock").write_text("")
    build_index(unit(3, 0), [{"id": f"b{i}"} for i in range(3)]).save(path)
    assert load_index(path).ids == ["b0", "b1", "b2"]
    assert [p.name for p in path.iterdir() if p.name.startswith("data-")] == [read_info(path).data]


def test_folders_named_like_data_folders_are_the_users_own(tmp_path):
    """A folder holding only the user's ``data-2023`` is no half-built index, and a ``data-*``
    folder of the user's inside an index survives every rebuild."""
    store = tmp_path / "store"
    (store / "data-2023").mkdir(parents=True)
    (store / "data-2023" / "labels.csv").write_text("work")
    with pytest.raises(Exception, match="not a clsp index"):
        build_index(unit(2, 0), [{"id": "a"}, {"id": "b"}]).save(store)
    assert (store / "data-2023" / "labels.csv").read_text() == "work"
    idx = tmp_path / "idx"
    build_index(unit(2, 0), [{"id": "a"}, {"id": "b"}]).save(idx)
    (idx / "data-mine").mkdir()
    (idx / "data-mine" / "x.txt").write_text("keep")
    add_to_index(idx, unit(1, 1), [{"id": "c"}])
    assert (idx / "data-mine" / "x.txt").read_text() == "keep"
    assert len(load_index(idx)) == 3 and len([p for p in idx.iterdir() if p.name.startswith("data-")]) == 2


def test_a_failed_first_build_leaves_no_folder_and_a_waiting_writer_still_builds(tmp_path):
    from clsp.index.folder import write_index

    path = tmp_path / "new.idx"
    with pytest.raises(InputError, match="missing 'id'"):
        write_index(path, unit(3, 0), [{"id": "a"}, {"id": ""}, {"id": "c"}])
    assert not path.exists()  # not a folder holding only .lock
    code = textwrap.dedent(f"""
        import time
        from clsp.index.lock import index_writer
        try:
            with index_writer({str(path)!r}):
                print("locked", flush=True)
                time.sleep(1.0)
                raise RuntimeError("first build fails")
        except RuntimeError:
            pass
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    write_index(path, unit(3, 1), [{"id": i} for i in "xyz"], lock_timeout=60)  # waits, then locks the new folder
    assert proc.wait(timeout=60) == 0
    assert sorted(load_index(path).ids) == ["x", "y", "z"]


@pytest.mark.slow
def test_a_new_build_onto_an_index_in_use_stops_at_once_naming_the_writer(tmp_path):
    """A build without add replaces the whole index: while another writer holds it, a second
    build stops at once (never waiting to replace the other's records), as file outputs do."""
    from clsp.index.records import index_embeddings

    path = tmp_path / "same.idx"
    emb = tmp_path / "b.jsonl"
    emb.write_text("".join(json.dumps({"id": f"b{i}", "embedding": v.tolist()}) + "\n" for i, v in enumerate(unit(8, 2))))
    build_index(unit(3, 0), [{"id": f"base{i}"} for i in range(3)]).save(path)
    proc = holder(path, 3, add_ids=["a0", "a1"])
    try:
        start = time.monotonic()
        with pytest.raises(IndexBusyError, match=f"index .*same.idx is in use by PID {proc.pid} .*without --add"):
            index_embeddings(path, str(emb), lock_timeout=60)
        assert time.monotonic() - start < 2  # did not wait for the holder
    finally:
        assert proc.wait(timeout=60) == 0
    assert set(load_index(path).ids) == {"base0", "base1", "base2", "a0", "a1"}  # the other run's, not replaced
    assert index_embeddings(path, str(emb))["count"] == 8  # free again: a build replaces the index


@pytest.mark.slow
def test_two_concurrent_cli_builds_onto_one_index_never_both_succeed(tmp_path):
    from tests.helpers.cli import CLSP

    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}{i}", "embedding": v.tolist()}) + "\n"
                                                        for i, v in enumerate(unit(8, seed))))
    procs = [subprocess.Popen([CLSP, "--threads", "1", "search", "build", f"{name}.jsonl", "-o", "same.idx", "-q"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    done = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in done)
    ids = set(load_index(tmp_path / "same.idx").ids)
    if codes == [0, 1]:  # they overlapped: one stopped, naming the other's PID
        loser = next(n for n, (code, _, _) in enumerate(done) if code == 1)
        # the other's PID, or "unknown" when it had taken the lock but not yet written its PID there
        assert any(f"in use by PID {pid}" in done[loser][2] for pid in (procs[1 - loser].pid, "unknown")), done[loser][2]
        winner = "ab"[1 - loser]
        assert ids == {f"{winner}{i}" for i in range(8)} and json.loads(done[1 - loser][1])["count"] == 8
    else:  # one finished before the other started: the later build replaced the index
        assert codes == [0, 0] and ids in ({f"a{i}" for i in range(8)}, {f"b{i}" for i in range(8)})
