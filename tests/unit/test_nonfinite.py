"""Non-finite numbers are named errors in search, eval, classify, similarity and metrics:
a NaN never ranks first, never reaches a record, and JSON output stays valid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clsp.errors import ConfigError, InputError
from clsp.index import VectorIndex, build_index
from clsp.index.query import QueryEncoder, SearchSettings, search_items
from clsp.index.records import EmbeddingReader
from clsp.index.store import IndexInfo, metadata_frame
from clsp.metrics.correlation import correlation_report
from clsp.metrics.retrieval import first_relevant_ranks, metrics_from_ranks, speech_text_retrieval
from clsp.prompts import load_pack
from clsp.records import Item
from clsp.similarity import cosine, score_pairs
from clsp.zeroshot import ZeroShotClassifier, ensemble_class_embeddings


def unit(n, dim=8, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_nan_similarity_is_refused_not_ranked_first():
    sim = np.array([[0.9, 0.1, 0.2], [0.3, np.nan, 0.1]])
    # a NaN compares false with everything: counted naively, query 1 would get rank 0 (R@1 credit)
    with pytest.raises(InputError, match="query 1 .*column 1"):
        first_relevant_ranks(sim, [[0], [1]])
    audio, text = unit(4), unit(4, seed=1)
    audio[2, 3] = np.inf
    with pytest.raises(InputError, match="speech embeddings: row 2"):
        speech_text_retrieval(audio, text, n_boot=0)


def test_metrics_over_no_queries_are_null_and_valid_json():
    out = metrics_from_ranks(np.array([], dtype=np.int64), n_boot=10)
    assert out["R@1"] is None and out["R@1_lo"] is None and out["count"] == 0.0
    json.dumps(out, allow_nan=False)


def test_non_finite_scores_or_ratings_are_named_in_correlations():
    with pytest.raises(InputError, match="item 2: score nan"):
        correlation_report([0.1, 0.2, float("nan"), 0.4], [1, 2, 3, 4], n_boot=0)
    with pytest.raises(InputError, match="item 0: rating inf"):
        correlation_report([0.1, 0.2], [float("inf"), 2], n_boot=0)


class NanEncoders:
    """Text 'broken' embeds to NaN; every other text to a fixed direction per text."""

    def embed_audio(self, sides):
        return [np.ones(4) for _ in sides]

    def embed_text(self, texts):
        return [np.full(4, np.nan) if t == "broken" else np.arange(1.0, 5.0) + len(t) for t in texts]


def test_similarity_names_the_pair_and_side_with_a_non_finite_embedding():
    recs = [{"id": "p1", "a": "a calm voice", "b": "broken"}, {"id": "p2", "a": "fine", "b": "also fine"}]
    out = list(score_pairs(recs, NanEncoders()))
    assert out[0]["error"]["type"] == "InputError"
    assert "pair 'p1'" in out[0]["error"]["message"] and "side b" in out[0]["error"]["message"]
    assert out[1]["score"] == pytest.approx(cosine(np.arange(1.0, 5.0) + 4, np.arange(1.0, 5.0) + 9), abs=1e-6)
    for rec in out:
        json.dumps(rec, allow_nan=False)
    big = np.array([1e308, 1e308, 0.0])
    assert cosine(big, big) == pytest.approx(1.0)  # huge but finite: no overflow to NaN


def test_classifier_refuses_nan_clips_and_prompts():
    prompts = load_pack("gender").get()
    rng = np.random.default_rng(0)
    clf = ZeroShotClassifier(prompts, ensemble_class_embeddings(prompts, lambda t: rng.standard_normal((len(t), 8))), 10.0)
    clip = rng.standard_normal(8)
    clip[5] = np.nan
    with pytest.raises(InputError, match="audio embedding 0 .*NaN"):
        clf.classify(clip)
    first = prompts.classes[1].prompts[0]

    def encode(texts):
        out = rng.standard_normal((len(texts), 8))
        out[texts.index(first)] = np.nan
        return out

    with pytest.raises(ConfigError, match=f"class {prompts.classes[1].name!r}"):
        ensemble_class_embeddings(prompts, encode)


class NanScoringIndex:
    """A FAISS-like structure whose search gives NaN for row 3, as a damaged index could."""

    ntotal, d = 5, 8

    def search(self, q, k):
        scores = np.tile(np.array([np.nan, 0.5, 0.4, 0.3, 0.2], np.float32)[:k], (len(q), 1))
        rows = np.tile(np.array([3, 0, 1, 2, 4], np.int64)[:k], (len(q), 1))
        return scores, rows


def test_a_stored_vector_scoring_nan_is_named_per_query():
    index = VectorIndex(NanScoringIndex(), IndexInfo(dim=8, count=5),
                        metadata_frame([{"id": f"v{i}"} for i in range(5)]))
    items = [Item(index=0, id="q0", record={"id": "q0", "embedding": unit(1, seed=2)[0].tolist()}),
             Item(index=1, id="q1", record={"id": "q1", "embedding": [float("inf")] + [0.0] * 7})]
    results = list(search_items(index, items, SearchSettings(k=5), QueryEncoder(index)))
    assert isinstance(results[0][1], InputError) and "indexed id 'v3' is nan" in str(results[0][1])
    assert isinstance(results[1][1], InputError) and "query 'q1'" in str(results[1][1])
    assert "'embedding' holds NaN" in str(results[1][1])


def test_faiss_never_ranks_a_nan_vector_first():
    import faiss

    vecs = unit(5).astype(np.float32)
    vecs[3] = np.nan
    flat = faiss.IndexFlatIP(8)
    flat.add(vecs)
    index = VectorIndex(flat, IndexInfo(dim=8, count=5), metadata_frame([{"id": f"v{i}"} for i in range(5)]))
    hits = index.search(unit(1, seed=2)[0], k=5)[0]
    assert [h["id"] for h in hits] and "v3" not in [h["id"] for h in hits]
    assert all(np.isfinite(h["score"]) for h in hits)


def test_reader_names_record_and_field(tmp_path):
    matrix = unit(3).astype(np.float32)
    matrix[1, 0] = np.nan
    recs = [{"id": "inline", "embedding": [1e39] + [0.0] * 7},  # beyond float32, finite: used by its direction
            {"id": "r1", "row": 1}, {"id": "r2", "row": 2}, {"id": "zero", "embedding": [0.0] * 8},
            {"id": "short", "embedding": [1.0, 2.0]}]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = {item.id: (vec, item.error) for item, vec in EmbeddingReader(matrix).read(str(path))}
    assert got["inline"][1] is None and np.allclose(got["inline"][0], [1.0] + [0.0] * 7)
    assert "record 'r1': row 1 of the --npy matrix holds NaN" in str(got["r1"][1])
    np.testing.assert_array_equal(got["r2"][0], matrix[2])
    assert "all zeros" in str(got["zero"][1])
    assert "dimension 2" in str(got["short"][1])


def test_index_refuses_non_finite_query_vectors_by_row():
    index = build_index(unit(4), [{"id": f"v{i}"} for i in range(4)])
    with pytest.raises(InputError, match="row 1 holds NaN"):
        index.search(np.stack([unit(1)[0], np.full(8, np.nan)]))


def test_classify_gives_an_error_record_for_a_non_finite_embedding(tmp_path):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    matrix = np.stack([np.linspace(-1, 1, 32), np.linspace(-1, 1, 32)]).astype(np.float32)
    matrix[1, 7] = np.inf
    np.save(tmp_path / "m.npy", matrix)
    recs = [{"id": "r0", "row": 0}, {"id": "r1", "row": 1}, {"id": "nan", "embedding": [1e39] + [0.5] * 31}]
    stdin = "".join(json.dumps(r) + "\n" for r in recs)
    r = CliRunner().invoke(app, ["classify", "--pack", "gender", "--npy", str(tmp_path / "m.npy"), "-m", "tiny-random",
                                 "-q"], input=stdin)
    assert r.exit_code == 3, r.output
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["id"] for o in out] == ["r0", "r1", "nan"]
    assert out[0]["label"] in ("male", "female") and abs(sum(out[0]["scores"].values()) - 1) < 1e-5
    assert "record 'r1': row 1 of the --npy matrix holds NaN or infinite" in out[1]["error"]["message"]
    assert out[2]["label"] in ("male", "female")  # a finite row beyond float32 is used by its direction


def test_embedders_turn_a_non_finite_model_output_into_a_named_error(clips):
    import torch

    from clsp.embed import AudioEmbedder, EmbedConfig, TextEmbedder
    from clsp.models import load_model

    net = load_model("tiny-random")
    tokenize, text_embed, encode_fbank = net.text_encoder.tokenize, net.text_embed_unnormalized, net.encode_fbank
    batches: list[list[str]] = []  # captions of each tokenized batch, in the order the model gets them

    def seen_tokenize(texts, device="cpu"):
        batches.append(list(texts))
        return tokenize(texts, device)

    def nan_text(**tokens):
        out = text_embed(**tokens)
        return torch.stack([row * float("nan") if t == "broken" else row for t, row in zip(batches.pop(0), out)])

    def nan_audio(feats, lens):
        out = encode_fbank(feats, lens)
        out[0, 0] = float("inf")  # the first clip of each batch
        return out

    net.text_encoder.tokenize, net.text_embed_unnormalized, net.encode_fbank = seen_tokenize, nan_text, nan_audio
    texts = [Item(index=i, id=f"t{i}", record={"text": t}) for i, t in enumerate(["calm voice", "broken", "loud"])]
    got = list(TextEmbedder(net, batch_size=8).run(texts))
    assert [r.error is None for r in got] == [True, False, True]
    assert "record 't1'" in str(got[1].error) and "'text' holds NaN" in str(got[1].error)
    items = [Item(index=i, id=f"c{i}", record={"audio": f"c{i}.wav", "_path": str(clips / f"c{i}.wav")})
             for i in range(2)]
    res = list(AudioEmbedder(net, EmbedConfig(batch_size=1, workers=0, device="cpu")).run(items))
    assert all(r.error is not None and "'audio' holds NaN or infinite" in str(r.error) for r in res)
    assert f"record {res[0].item.id!r}" in str(res[0].error)


def test_similarity_human_key_named_score_correlates_the_rating_not_the_cosine(tmp_path):
    from typer.testing import CliRunner

    from clsp.metrics.correlation import pearson
    from clsp_cli.app import app

    texts = ["a calm voice", "a loud angry man", "whispering", "a child laughing", "slow and low", "fast speech"]
    pairs = [{"id": i, "a": texts[i], "b": texts[(i + 1) % 6], "score": float(r)} for i, r in enumerate([5, 1, 4, 2, 3, 1])]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    r = CliRunner().invoke(app, ["similarity", str(tmp_path / "p.jsonl"), "--human-key", "score", "--n-boot", "0",
                                 "-m", "tiny-random", "-q"])
    assert r.exit_code == 0, r.output
    out = [json.loads(line) for line in r.stdout.splitlines()]
    results, summary = out[:-1], out[-1]["summary"]
    assert [o["metadata"]["score"] for o in results] == [p["score"] for p in pairs]
    cosines = [o["score"] for o in results]
    assert summary["overall"]["n"] == 6
    assert summary["overall"]["pearson"] == pytest.approx(pearson(cosines, [p["score"] for p in pairs]), abs=1e-9)
    assert summary["overall"]["pearson"] != pytest.approx(1.0)


def test_rows_of_any_finite_size_keep_their_direction_in_index_and_queries(tmp_path):
    """Cosine normalises in a way that neither overflows (rows of 1e20: an inf norm made them
    zero) nor underflows (rows of 1e-30: a zero norm made them inf), for indexed rows and
    queries alike, as classify and similarity score them."""
    from clsp.index.records import index_embeddings
    from clsp.retrieval_eval import _unit_rows
    from clsp.zeroshot import l2_normalize

    row = unit(1, 16)[0].astype(np.float32)
    big = np.stack([row, row * 1e20, row * 1e-30, -row]).astype(np.float32)
    with np.errstate(all="raise"):  # no RuntimeWarning either
        index = build_index(big, [{"id": f"b{i}"} for i in range(4)])
        hits = index.search(row, k=4)[0]
        np.testing.assert_allclose(index.search(big[2] * 1e30, k=1)[0][0]["score"], 1.0, atol=1e-5)
    assert [h["id"] for h in hits][-1] == "b3"
    np.testing.assert_allclose([h["score"] for h in hits], [1, 1, 1, -1], atol=1e-5)
    for rows in (_unit_rows(big), l2_normalize(big.astype(np.float64)), l2_normalize(big.astype(np.float64) * 1e280)):
        np.testing.assert_allclose(np.asarray(rows) @ row, [1, 1, 1, -1], atol=1e-5)
    # JSONL records, and a query of embedding * 1e38, through the reader and the index folder
    recs = [{"id": "h", "embedding": [float(x) * 1e38 for x in row]}, {"id": "o", "embedding": [float(x) for x in -row]}]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert index_embeddings(tmp_path / "e.idx", str(tmp_path / "e.jsonl"))["count"] == 2
    from clsp.index import load_index

    hits = load_index(tmp_path / "e.idx").search(np.asarray(recs[0]["embedding"], dtype=np.float32), k=2)[0]
    assert [(h["id"], round(h["score"], 5)) for h in hits] == [("h", 1.0), ("o", -1.0)]


def test_rows_whose_l2_or_ip_scores_would_overflow_are_refused_by_name(tmp_path):
    from clsp.index.records import index_embeddings

    row = unit(1, 16)[0]
    recs = [{"id": "ok", "embedding": row.tolist()}, {"id": "huge", "embedding": (row * 1e20).tolist()}]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    for metric in ("l2", "ip"):
        skipped = {}
        out = index_embeddings(tmp_path / f"{metric}.idx", str(tmp_path / "e.jsonl"), metric=metric,
                               on_skip=skipped.__setitem__)
        assert out["added"] == 1 and out["failed"] == 1
        assert f"record 'huge': 'embedding' is too large: its squared norm is beyond float32" in str(skipped["huge"])
        assert f"its {metric} scores would be infinite" in str(skipped["huge"])
        with pytest.raises(InputError, match="row 1 is too large"):
            build_index(np.stack([row, row * 1e20]), [{"id": "a"}, {"id": "b"}], metric=metric)


def test_a_bad_row_of_a_matrix_read_by_position_is_named_by_its_row(tmp_path):
    """Records without 'row' (--ids of a bare .npy, query records, classify records) take the
    row at their position: a message names that row, never 'row None'."""
    from typer.testing import CliRunner

    from clsp.index.query import parse_query
    from clsp_cli.app import app

    matrix = unit(5, 16).astype(np.float32)
    matrix[1] = np.nan
    matrix[3, 2] = np.inf
    matrix[4] = 0
    np.save(tmp_path / "nan.npy", matrix)
    ids = "".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(5))
    (tmp_path / "nan.ids.jsonl").write_text(ids)
    r = CliRunner().invoke(app, ["--threads", "1", "search", "build", str(tmp_path / "nan.npy"), "--ids",
                                 str(tmp_path / "nan.ids.jsonl"), "-o", str(tmp_path / "n.idx")])
    assert r.exit_code == 3 and json.loads(r.stdout.splitlines()[-1])["added"] == 2, r.output
    for n, why in ((1, "holds NaN or infinite values"), (3, "holds NaN or infinite values"), (4, "is all zeros")):
        assert f"record 'r{n}': row {n} of the --npy matrix {why}" in r.stderr
    assert "None" not in r.stderr
    with pytest.raises(InputError, match="query 'q': row 3 of the --npy matrix holds NaN"):
        parse_query({"id": "q"}, matrix, 3, None)
    wide = unit(5, 32).astype(np.float32)  # the tiny model's dimension
    wide[1] = np.nan
    np.save(tmp_path / "wide.npy", wide)
    r = CliRunner().invoke(app, ["classify", "--pack", "gender", "--npy", str(tmp_path / "wide.npy"), "-m",
                                 "tiny-random", "-q"], input=ids)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 3 and [o["id"] for o in out] == [f"r{i}" for i in range(5)], r.output
    assert "record 'r1': row 1 of the --npy matrix holds NaN" in out[1]["error"]["message"]
