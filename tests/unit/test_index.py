"""Vector index: exactness against numpy, approximate structures, persistence and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clsp.errors import ClspError, ConfigError, IndexFileError, InputError, ProvenanceError
from clsp.index import add_to_index, build_index, load_index
from clsp.index.store import read_info


def data_dir(path):
    """The folder holding the current version's files."""
    return read_info(path).data_dir(path)

PROV = {"model": "tiny-a", "checksum": "abc123", "dim": 16, "normalized": True}


def corpus(n=300, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    meta = [{"id": f"clip{i:04d}", "path": f"/data/{i}.wav", "speaker": i % 7} for i in range(n)]
    return vecs, meta


def numpy_cosine_topk(vecs, queries, k):
    base = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = q.astype(np.float64) @ base.T.astype(np.float64)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, 1)


def test_flat_matches_brute_force_numpy():
    vecs, meta = corpus()
    queries = np.random.default_rng(1).standard_normal((25, 16)).astype(np.float32)
    index = build_index(vecs, meta, provenance=PROV)
    assert index.info.factory == "Flat" and index.info.metric == "cosine"
    hits = index.search(queries, k=10)
    order, scores = numpy_cosine_topk(vecs, queries, 10)
    for q in range(len(queries)):
        assert [h["id"] for h in hits[q]] == [meta[i]["id"] for i in order[q]]
        np.testing.assert_allclose([h["score"] for h in hits[q]], scores[q], rtol=0, atol=1e-5)
    assert hits[0][0]["path"] == meta[order[0, 0]]["path"]
    assert hits[0][0]["speaker"] == meta[order[0, 0]]["speaker"]


def test_inner_product_and_l2_metrics():
    vecs, meta = corpus(100)
    q = vecs[:3] * 2
    ip = build_index(vecs, meta, metric="ip").search_arrays(q, k=5)
    sim = q @ vecs.T
    np.testing.assert_array_equal(ip[1], np.argsort(-sim, axis=1)[:, :5])
    l2_scores, l2_rows = build_index(vecs, meta, metric="l2").search_arrays(vecs[:3], k=2)
    assert l2_rows[:, 0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(l2_scores[:, 0], 0, atol=1e-4)
    assert (l2_scores[:, 1] > l2_scores[:, 0]).all()


@pytest.mark.parametrize("factory", ["IVF8,Flat", "HNSW16"])
def test_approximate_indexes_find_the_nearest(tmp_path, factory):
    vecs, meta = corpus(600)
    index = build_index(vecs, meta, factory=factory)
    index.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    order, _ = numpy_cosine_topk(vecs, vecs[:20], 5)
    _, rows = loaded.search_arrays(vecs[:20], k=5, nprobe=8, ef=64)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(rows, order)])
    assert recall >= 0.95
    assert rows[:, 0].tolist() == list(range(20))


def test_pq_reranks_with_stored_vectors(tmp_path):
    vecs, meta = corpus(400, dim=8)
    index = build_index(vecs, meta, factory="PQ2x4")
    assert index.info.stored_vectors
    index.save(tmp_path / "pq")
    assert (data_dir(tmp_path / "pq") / "vectors.npy").exists()
    loaded = load_index(tmp_path / "pq")
    order, scores = numpy_cosine_topk(vecs, vecs[:10], 3)
    s, rows = loaded.search_arrays(vecs[:10], k=3, rerank=50)
    np.testing.assert_array_equal(rows, order)  # re-ranked over many candidates: exact
    np.testing.assert_allclose(s, scores, atol=1e-5)
    s0, _ = loaded.search_arrays(vecs[:10], k=3, rerank=0)
    assert not np.allclose(s0, scores, atol=1e-5)  # PQ codes alone give approximate scores


def test_threshold_and_short_answers():
    vecs, meta = corpus(5)
    index = build_index(vecs, meta)
    hits = index.search(vecs[:1], k=50)
    assert len(hits[0]) == 5  # k > count: every vector, no padding
    scores = [h["score"] for h in hits[0]]
    assert scores == sorted(scores, reverse=True)
    above = index.search(vecs[:1], k=50, threshold=0.5)[0]
    assert above and all(h["score"] >= 0.5 for h in above)
    assert len(above) == sum(s >= 0.5 for s in scores)


def test_empty_index_gives_empty_hits(tmp_path):
    index = build_index(np.zeros((0, 4), np.float32), [])
    index.save(tmp_path / "empty")
    loaded = load_index(tmp_path / "empty")
    assert len(loaded) == 0
    assert loaded.search(np.ones((2, 4)), k=3) == [[], []]


def test_save_load_and_add(tmp_path):
    vecs, meta = corpus(50)
    build_index(vecs[:30], meta[:30], provenance=PROV).save(tmp_path / "idx")
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["model"] == "tiny-a" and info["checksum"] == "abc123"
    assert info["dim"] == 16 and info["count"] == 30 and info["metric"] == "cosine"
    assert info["normalized"] is True and info["factory"] == "Flat"
    extra = [dict(m, note=["late", "batch"]) for m in meta[30:]]
    add_to_index(tmp_path / "idx", vecs[30:], extra, provenance=PROV)
    loaded = load_index(tmp_path / "idx")
    assert len(loaded) == 50 and loaded.info.count == 50
    hit = loaded.search(vecs[40], k=1)[0][0]
    assert hit["id"] == "clip0040" and hit["note"] == ["late", "batch"]
    assert "note" not in loaded.search(vecs[3], k=1)[0][0]
    assert not list(tmp_path.glob(".idx.*"))  # no temporary directories left behind


def test_duplicate_ids_refused():
    vecs, meta = corpus(10)
    index = build_index(vecs, meta)
    with pytest.raises(InputError, match="clip0003"):
        index.add(vecs[3:4], [meta[3]])
    assert len(index) == 10


def test_other_model_refused_on_add_and_query(tmp_path):
    vecs, meta = corpus(20)
    build_index(vecs, meta, provenance=PROV).save(tmp_path / "idx")
    other = {"model": "tiny-b", "dim": 16}
    with pytest.raises(ProvenanceError, match="tiny-b.*tiny-a"):
        add_to_index(tmp_path / "idx", vecs, [{"id": f"n{i}"} for i in range(20)], provenance=other)
    index = load_index(tmp_path / "idx")
    with pytest.raises(ProvenanceError, match="tiny-b"):
        index.search(vecs[:1], provenance=other)
    with pytest.raises(ProvenanceError, match="dimension 8.*dimension 16"):
        index.search(np.ones((1, 8)))
    with pytest.raises(ProvenanceError, match="checksum"):
        index.search(vecs[:1], provenance={"model": "tiny-a", "checksum": "zzz"})
    assert len(load_index(tmp_path / "idx")) == 20  # unchanged on disk


def test_missing_and_corrupt_index(tmp_path):
    with pytest.raises(IndexFileError, match="no such directory"):
        load_index(tmp_path / "nope")
    vecs, meta = corpus(10)
    build_index(vecs, meta).save(tmp_path / "idx")
    (data_dir(tmp_path / "idx") / "index.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexFileError, match="index.faiss"):
        load_index(tmp_path / "idx")
    build_index(vecs, meta).save(tmp_path / "idx2")
    (tmp_path / "idx2" / "index.json").write_text("{")
    with pytest.raises(IndexFileError, match="index.json"):
        load_index(tmp_path / "idx2")
    build_index(vecs, meta).save(tmp_path / "idx3")
    (data_dir(tmp_path / "idx3") / "meta.parquet").write_bytes(b"junk")
    with pytest.raises(IndexFileError, match="meta.parquet"):
        load_index(tmp_path / "idx3")


def test_bad_inputs_are_clsp_errors():
    vecs, meta = corpus(10)
    with pytest.raises(InputError, match="9 metadata rows"):
        build_index(vecs, meta[:9])
    bad = vecs.copy()
    bad[4] = np.nan
    with pytest.raises(InputError, match="row 4"):
        build_index(bad, meta)
    with pytest.raises(InputError, match="zero vector"):
        build_index(np.zeros((2, 3)), [{"id": "a"}, {"id": "b"}])
    with pytest.raises(InputError, match="missing 'id'"):
        build_index(vecs[:1], [{"path": "x"}])
    with pytest.raises(ConfigError, match="factory"):
        build_index(vecs, meta, factory="NotAFactory")
    index = build_index(vecs, meta)
    with pytest.raises(ConfigError):
        index.search(vecs[:1], k=0)
    with pytest.raises(ClspError):
        index.search(np.full((1, 16), np.inf))


def test_mixed_type_metadata_round_trips(tmp_path):
    vecs, _ = corpus(3)
    meta = [{"id": "a", "x": 1}, {"id": "b", "x": "one"}, {"id": "c", "x": {"k": [1, 2]}}]
    build_index(vecs, meta).save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    got = {h["id"]: h.get("x") for h in loaded.search(vecs[:1], k=3)[0]}
    assert got == {"a": 1, "b": "one", "c": {"k": [1, 2]}}


def test_rerank_by_reconstruction_on_a_mapped_ivf(tmp_path):
    vecs, meta = corpus(500)
    build_index(vecs, meta, factory="IVF8,Flat").save(tmp_path / "ivf")
    loaded = load_index(tmp_path / "ivf", mmap=True)
    order, scores = numpy_cosine_topk(vecs, vecs[:10] + 0.1, 5)
    s, rows = loaded.search_arrays(vecs[:10] + 0.1, k=5, nprobe=8, rerank=3)
    np.testing.assert_array_equal(rows, order)
    np.testing.assert_allclose(s, scores, atol=1e-5)


def test_huge_k_is_a_short_answer_not_a_huge_allocation():
    vecs, meta = corpus(7)
    scores, rows = build_index(vecs, meta).search_arrays(vecs[:2], k=10**12)
    assert scores.shape == rows.shape == (2, 7)


def test_vectors_of_unknown_origin_are_not_added_to_a_models_index(tmp_path):
    vecs, meta = corpus(20)
    build_index(vecs, meta, provenance=PROV).save(tmp_path / "idx")
    with pytest.raises(ProvenanceError, match="no provenance says which model"):
        add_to_index(tmp_path / "idx", vecs, [{"id": f"n{i}"} for i in range(20)], provenance=None)
    build_index(vecs, meta).save(tmp_path / "anon")  # an index of unknown origin takes them
    add_to_index(tmp_path / "anon", vecs, [{"id": f"n{i}"} for i in range(20)], provenance=None)


def test_a_repeated_id_is_named_by_its_places_and_an_empty_query_says_so():
    import pytest

    from clsp.errors import InputError
    from clsp.index.query import parse_query
    from clsp.index.vectors import _check_ids

    with pytest.raises(InputError, match=r"id 'b' appears more than once in the index \(records 2 and 4 added"):
        _check_ids(["a", "b", "c", "b"])
    with pytest.raises(InputError, match=r"id 'c' .*\(record 3 added, and already in the index"):
        _check_ids(["a", "b", "c"], {"c"})
    _check_ids(["a", "b"], {"c"})
    for record, field in (({"id": "", "text": ""}, "text"), ({"id": "q", "text": "  "}, "text"), ({"id": "q", "audio": ""}, "audio")):
        with pytest.raises(InputError, match=f"its '{field}' is empty"):
            parse_query(record, None, 0, None)
    with pytest.raises(InputError, match="needs an 'embedding', a 'text' or an 'audio' field"):
        parse_query({"id": "q", "caption": "x"}, None, 0, None)


def test_an_id_holding_a_file_names_non_utf8_bytes_comes_back_as_it_went_in(tmp_path):
    # a file name's byte 0xe9 read as a surrogate escape; the table keeps ids as UTF-8 text, so it
    # stores an escape, but hits, ids and messages give the id the records had
    vecs, _ = corpus(4)
    odd, literal = "caf\udce9.wav", "caf\\udce9.txt"  # the second holds a backslash of its own
    meta = [{"id": odd, "audio": "/x/" + odd}, {"id": literal}, {"id": "b"}, {"id": 7}]
    build_index(vecs[:3], meta[:3], provenance=PROV).save(tmp_path / "idx")
    add_to_index(tmp_path / "idx", vecs[3:], meta[3:], provenance=PROV)
    loaded = load_index(tmp_path / "idx")
    assert loaded.ids == [odd, literal, "b", "7"]
    hits = {h["id"] for h in loaded.search(vecs[0], k=4)[0]}
    assert hits == {odd, literal, "b", "7"}
    assert loaded.search(vecs[0], k=1)[0][0]["audio"] == "/x/" + odd
    with pytest.raises(InputError, match=r"id 'caf\\udce9\.wav' appears more than once .*already in the index"):
        loaded.add(vecs[:1], [{"id": odd}], provenance=PROV)
    with pytest.raises(InputError, match=r"records 1 and 2 added"):
        build_index(vecs[:2], [{"id": odd}, {"id": odd}])


def test_integer_ids_come_back_as_integers_while_every_record_had_one(tmp_path):
    vecs, _ = corpus(6)
    build_index(vecs[:3], [{"id": i} for i in range(3)], provenance=PROV).save(tmp_path / "ints")
    add_to_index(tmp_path / "ints", vecs[3:5], [{"id": 3}, {"id": 4}], provenance=PROV)
    loaded = load_index(tmp_path / "ints")
    assert sorted(h["id"] for h in loaded.search(vecs[0], k=5)[0]) == [0, 1, 2, 3, 4]
    assert loaded.ids == ["0", "1", "2", "3", "4"]  # compared as text
    add_to_index(tmp_path / "ints", vecs[5:], [{"id": "five"}], provenance=PROV)  # now a mix: text, as compared
    assert sorted(h["id"] for h in load_index(tmp_path / "ints").search(vecs[0], k=6)[0]) == \
        ["0", "1", "2", "3", "4", "five"]
    build_index(vecs[:2], [{"id": True}, {"id": 1}], provenance=PROV).save(tmp_path / "bools")
    assert {h["id"] for h in load_index(tmp_path / "bools").search(vecs[0], k=2)[0]} == {"True", "1"}


def test_a_library_built_index_keeps_one_modality_across_adds(tmp_path):
    vecs, meta = corpus(20)
    with pytest.raises(ConfigError, match="modality"):
        build_index(vecs, meta, provenance=PROV, modality="speech")
    build_index(vecs, meta, provenance=PROV, modality="audio").save(tmp_path / "audio")
    assert read_info(tmp_path / "audio").modality == "audio"
    with pytest.raises(ProvenanceError, match="holds one modality"):
        add_to_index(tmp_path / "audio", vecs, [{"id": f"t{i}"} for i in range(20)], provenance={**PROV, "modality": "text"})
    # built without saying what it holds: embeddings of a stated modality cannot be checked against it
    build_index(vecs, meta, provenance=PROV).save(tmp_path / "unsaid")
    with pytest.raises(ProvenanceError, match="does not say what its 20 embeddings were embedded from"):
        add_to_index(tmp_path / "unsaid", vecs, [{"id": f"t{i}"} for i in range(20)], provenance={**PROV, "modality": "text"})
    assert load_index(tmp_path / "unsaid").info.count == 20
    # an empty index takes the modality of its first embeddings, then keeps it
    build_index(np.zeros((0, 16), np.float32), [], provenance=PROV).save(tmp_path / "empty")
    add_to_index(tmp_path / "empty", vecs, meta, provenance={**PROV, "modality": "text"})
    assert read_info(tmp_path / "empty").modality == "text"
    with pytest.raises(ProvenanceError, match="holds one modality"):
        add_to_index(tmp_path / "empty", vecs, [{"id": f"a{i}"} for i in range(20)], provenance={**PROV, "modality": "audio"})


def test_vectors_of_two_cpu_lstm_formats_are_added_with_one_warning(tmp_path, caplog):
    """An index of int8 vectors took bfloat16 vectors of the same model (another node, or
    CLSP_CPU_LSTM=auto on another CPU) without a word; `clsp merge` refuses that mix. The index
    records the format, and adding or building from two formats warns once (used together:
    they are about 1e-3 apart); one format, or records that do not say, give no warning."""
    import logging

    from clsp.index import store

    store._lstm_pairs_warned.clear()
    vecs, meta = corpus(20)
    int8 = {**PROV, "modality": "audio", "cpu_lstm": "int8"}
    build_index(vecs[:10], meta[:10], provenance=int8).save(tmp_path / "idx")
    assert read_info(tmp_path / "idx").cpu_lstm == "int8"
    with caplog.at_level(logging.WARNING, logger="clsp.index"):
        add_to_index(tmp_path / "idx", vecs[10:15], meta[10:15], provenance=int8)
        add_to_index(tmp_path / "idx", vecs[15:18], meta[15:18], provenance={**PROV, "modality": "audio"})
        assert not caplog.records
        add_to_index(tmp_path / "idx", vecs[18:], meta[18:], provenance={**int8, "cpu_lstm": "bfloat16"})
    assert load_index(tmp_path / "idx").info.count == 20
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "in bfloat16" in warned[0] and "in int8" in warned[0]
    assert "CLSP_CPU_LSTM=int8" in warned[0]
    with pytest.raises(ProvenanceError):  # another model is still refused, whatever its format
        add_to_index(tmp_path / "idx", vecs[:1], [{"id": "x"}], provenance={**int8, "checksum": "other"})


def test_a_python_built_index_records_the_cpu_lstm_format_of_the_model_it_names(tmp_path, monkeypatch, caplog):
    """``build_index(..., provenance=model.provenance())`` named no LSTM format, so vectors of
    another format (a CLI run elsewhere) were added to it without the warning a CLI-built index gives."""
    import logging

    from clsp.index import store
    from clsp.models import load_model

    store._lstm_pairs_warned.clear()
    monkeypatch.setenv("CLSP_CPU_LSTM", "float32")
    model = load_model("default", with_text=False, device="cpu")
    prov = model.provenance()
    assert prov["cpu_lstm"] == "float32"
    assert "cpu_lstm" not in load_model("tiny-random", device="cpu").provenance()  # no speaker-encoder LSTM
    vecs = np.random.default_rng(0).standard_normal((6, prov["dim"])).astype(np.float32)
    build_index(vecs[:3], [{"id": f"a{i}"} for i in range(3)], provenance=prov).save(tmp_path / "idx")
    with caplog.at_level(logging.WARNING, logger="clsp.index"):
        add_to_index(tmp_path / "idx", vecs[3:], [{"id": f"b{i}"} for i in range(3)],
                     provenance={**prov, "cpu_lstm": "bfloat16"})
    assert any("in bfloat16" in r.getMessage() and "in float32" in r.getMessage() for r in caplog.records)
