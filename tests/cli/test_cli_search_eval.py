"""``clsp search build/eval`` in-process: --npy rows in every mode, named bad records,
the hit layout, and valid JSON when nothing could be evaluated."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from clsp.metrics.retrieval import speech_text_retrieval
from clsp_cli.app import app

PROV = {"model": "vec-model", "checksum": "c1", "dim": 8, "normalized": True}


def cli(*args, stdin=None):
    return CliRunner().invoke(app, list(args), input=stdin)


def lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.fixture
def pool(tmp_path):
    """Speech rows and caption rows in one matrix (captions after speech), as 'clsp embed --npy' writes."""
    rng = np.random.default_rng(0)
    speech = rng.standard_normal((12, 8)).astype(np.float32)
    speech /= np.linalg.norm(speech, axis=1, keepdims=True)
    caps = speech + 0.8 * rng.standard_normal(speech.shape).astype(np.float32)
    caps /= np.linalg.norm(caps, axis=1, keepdims=True)
    np.save(tmp_path / "both.npy", np.vstack([speech, caps]))
    write(tmp_path / "sp.jsonl", [{"id": f"c{i}", "row": i, "provenance": PROV} for i in range(12)])
    write(tmp_path / "cap.jsonl", [{"id": f"t{i}", "row": 12 + i, "audio_id": f"c{i}", "provenance": PROV}
                                   for i in range(12)])
    return tmp_path, speech, caps


def test_pool_eval_resolves_rows_into_the_npy_matrix(pool):
    tmp, speech, caps = pool
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0", "-q")
    assert r.exit_code == 0, r.output
    got = lines(r)[0]
    want = speech_text_retrieval(speech, caps, n_boot=0)
    assert got["speech"] == 12 and got["captions"] == 12 and got["failed"] == 0
    for key, value in want.items():
        assert got["metrics"][key] == pytest.approx(value)


def test_pool_eval_refuses_a_speech_id_given_twice(pool):
    tmp, _, _ = pool
    recs = [json.loads(line) for line in (tmp / "sp.jsonl").read_text().splitlines()]
    write(tmp / "dup.jsonl", recs + recs[:1])
    r = cli("search", "eval", "--speech", str(tmp / "dup.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0", "-q")
    assert r.exit_code == 1 and "'c0' appears more than once" in r.stderr and "records 1 and 13" in r.stderr
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0", "--match-key", "clip")
    assert r.exit_code == 2 and "--match-key 'clip': no caption record has this field" in r.stderr


def test_pool_eval_names_a_non_finite_row_and_stays_valid_json(pool):
    tmp, speech, caps = pool
    both = np.load(tmp / "both.npy")
    both[12 + 4, 2] = np.nan
    np.save(tmp / "both.npy", both)
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0")
    assert r.exit_code == 3
    assert "t4" in r.stderr and "row 16 of the --npy matrix holds NaN" in r.stderr
    got = lines(r)[0]
    keep = [i for i in range(12) if i != 4]
    want = speech_text_retrieval(speech, caps[keep], np.asarray(keep), n_boot=0)
    assert got["captions"] == 11 and got["failed"] == 1
    assert got["metrics"]["t2s_R@1"] == pytest.approx(want["t2s_R@1"])


def test_pool_eval_names_a_left_out_speech_record_as_the_reason_its_captions_go(pool):
    tmp, _, _ = pool
    both = np.load(tmp / "both.npy")
    both[3, 0] = np.inf  # speech record c3 cannot be used
    np.save(tmp / "both.npy", both)
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0")
    assert r.exit_code == 3 and lines(r)[0]["failed"] == 2, r.output
    assert "caption t3: its speech record 'c3' was left out (" in r.stderr, r.stderr
    assert "no speech record with id 'c3'" not in r.stderr


def test_build_with_npy_rows_then_query_and_eval(pool):
    tmp, speech, caps = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    assert r.exit_code == 0, r.output
    assert lines(r)[0]["count"] == 12
    queries = [{"id": f"t{i}", "row": 12 + i, "relevant": f"c{i}", "provenance": PROV} for i in range(12)]
    write(tmp / "q.jsonl", queries)
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"),
            "--n-boot", "0", "-q")
    assert r.exit_code == 0, r.output
    want = speech_text_retrieval(speech, caps, n_boot=0)
    assert lines(r)[0]["metrics"]["R@1"] == pytest.approx(want["t2s_R@1"])
    assert "has no 'provenance'" not in r.output
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"),
            "--group-key", "kind", "--n-boot", "0", "-q")  # a field no query has: was one group named "None"
    assert r.exit_code == 2 and "--group-key 'kind': no query record has this field" in r.stderr, r.output
    assert "their fields: id, relevant)" in r.stderr, r.stderr  # not a field they lack (was: e.g. caption_type)
    # query vectors of unknown origin against a model's index: searched, and said once
    write(tmp / "q.jsonl", [{k: v for k, v in q.items() if k != "provenance"} for q in queries])
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"), "-q")
    assert r.exit_code == 0 and len(lines(r)) == 12
    assert r.output.count("has no 'provenance'") == 1 and "index's model, 'vec-model'" in r.output


def test_query_records_with_a_row_and_their_audio_use_the_row(pool):
    """'clsp embed --npy' writes the clip's audio beside its row: the query is the row's vector
    (the audio files here do not exist, so embedding them would fail)."""
    tmp, _, _ = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    assert r.exit_code == 0, r.output
    recs = [{**json.loads(line), "audio": f"missing-{n}.wav"} for n, line in
            enumerate((tmp / "sp.jsonl").read_text().splitlines())]
    write(tmp / "q.jsonl", recs)
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"), "-k", "1", "-q")
    assert r.exit_code == 0, r.output
    assert [h["hits"][0]["id"] for h in lines(r)] == [f"c{i}" for i in range(12)]
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "-k", "1", "-q")
    assert r.exit_code == 3 and all("give it with --npy" in h["error"]["message"] for h in lines(r))


def test_index_eval_skips_and_names_queries_whose_relevant_ids_are_not_in_the_index(pool):
    tmp, speech, caps = pool
    assert cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"),
               "-q").exit_code == 0
    queries = [{"id": f"t{i}", "row": 12 + i, "relevant": f"c{i}", "provenance": PROV} for i in range(12)]
    queries[3]["relevant"] = "nope"
    queries[5]["relevant"] = ["gone", "c5"]  # one relevant id is enough to score it
    write(tmp / "q.jsonl", queries)
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"),
            "--n-boot", "0")
    assert r.exit_code == 3, r.output
    assert "'t3'" in r.stderr and "none of its relevant ids ('nope') is in the index" in r.stderr
    got = lines(r)[0]
    assert got["queries"] == 11 and got["failed"] == 1
    keep = [i for i in range(12) if i != 3]
    want = speech_text_retrieval(speech, caps[keep], np.asarray(keep), n_boot=0)
    assert got["metrics"]["R@1"] == pytest.approx(want["t2s_R@1"])


def test_index_eval_with_a_relevant_key_no_query_has_is_a_usage_error(pool):
    """A mistyped --relevant-key failed every query one by one (exit 3), as if the queries were bad."""
    tmp, _, _ = pool
    assert cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"),
               "-q").exit_code == 0
    queries = [{"id": f"t{i}", "row": 12 + i, "relevant": f"c{i}", "provenance": PROV} for i in range(12)]
    write(tmp / "q.jsonl", queries)
    args = ["search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"),
            "--n-boot", "0"]
    r = cli(*args, "--relevant-key", "relevent")
    assert r.exit_code == 2, r.output
    assert "--relevant-key 'relevent': no query record has this field" in r.stderr and "skipped" not in r.stderr
    del queries[0]["relevant"], queries[1]["relevant"]  # some queries lacking it: those two fail, named
    write(tmp / "q.jsonl", queries)
    r = cli(*args)
    assert r.exit_code == 3, r.output
    assert "'t0'" in r.stderr and "'t1'" in r.stderr and lines(r)[0]["failed"] == 2 and lines(r)[0]["queries"] == 10


def test_eval_with_no_usable_query_gives_nulls_not_nan(pool):
    tmp, _, _ = pool
    assert cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"),
               "-q").exit_code == 0
    write(tmp / "q.jsonl", [{"id": "q", "embedding": [0.0] * 8, "relevant": "c0"}])  # no direction to rank by
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--n-boot", "5")
    assert r.exit_code == 3
    assert "'q'" in r.stderr and "all zeros" in r.stderr
    got = lines(r)[0]
    assert got["queries"] == 0 and got["metrics"]["R@1"] is None


def test_build_names_bad_records_and_hits_keep_user_fields_apart(tmp_path):
    vecs = np.random.default_rng(1).standard_normal((4, 8))
    recs = [{"id": f"v{i}", "embedding": vecs[i].tolist(), "score": i + 0.5, "age": 30 + i, "provenance": PROV,
             "row": 10 * i} for i in range(4)]  # 'row' beside an inline embedding is the user's own field
    recs.append({"id": "flag", "embedding": [True] * 8, "provenance": PROV})  # booleans are not numbers
    write(tmp_path / "e.jsonl", recs)
    r = cli("search", "build", str(tmp_path / "e.jsonl"), "-o", str(tmp_path / "i.idx"), "-q")
    assert r.exit_code == 3 and lines(r)[0]["added"] == 4 and lines(r)[0]["failed"] == 1
    r = cli("search", "query", str(tmp_path / "i.idx"), "-k", "4", "-q",
            stdin=json.dumps({"id": "q", "embedding": vecs[2].tolist()}) + "\n")
    assert r.exit_code == 0, r.output
    hits = lines(r)[0]["hits"]
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    for hit in hits:
        n = int(hit["id"][1:])
        assert hit["score"] == pytest.approx(float(unit[n] @ unit[2]), abs=1e-5)
        assert hit["metadata"] == {"score": n + 0.5} and hit["age"] == 30 + n
        assert hit["row"] == 10 * n


def test_lock_timeout_must_not_be_negative(tmp_path):
    write(tmp_path / "e.jsonl", [{"id": "a", "embedding": [1.0] * 8}])
    r = cli("search", "build", str(tmp_path / "e.jsonl"), "-o", str(tmp_path / "i.idx"), "--lock-timeout", "-1")
    assert r.exit_code == 2


def test_non_finite_thresholds_are_usage_errors(tmp_path):
    write(tmp_path / "e.jsonl", [{"id": "a", "embedding": [1.0] * 8}])
    assert cli("search", "build", str(tmp_path / "e.jsonl"), "-o", str(tmp_path / "i.idx"), "-q").exit_code == 0
    r = cli("search", "query", str(tmp_path / "i.idx"), "--threshold", "nan", "-q",
            stdin=json.dumps({"id": "q", "embedding": [1.0] * 8}) + "\n")
    assert r.exit_code == 2 and r.stdout == ""
    r = cli("similarity", "a.wav", "b.wav", "--above", "nan", "-q")
    assert r.exit_code == 2


@pytest.fixture
def two_matrices(pool):
    """The same pool as 'clsp embed --npy' writes it run by run: one matrix per side, rows from 0 each."""
    tmp, speech, caps = pool
    np.save(tmp / "sp.npy", speech)
    np.save(tmp / "cap.npy", caps)
    write(tmp / "cap0.jsonl", [{"id": f"t{i}", "row": i, "audio_id": f"c{i}", "provenance": PROV} for i in range(12)])
    return tmp, speech, caps


def test_pool_eval_refuses_caption_rows_read_from_the_speech_matrix(two_matrices):
    tmp, _, _ = two_matrices
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap0.jsonl"),
            "--npy", str(tmp / "sp.npy"), "--n-boot", "0", "-q")
    assert r.exit_code == 2
    assert "same rows" in r.stderr and "--captions-npy" in r.stderr
    assert r.stdout == ""  # no (perfect, false) scores


def test_pool_eval_reads_each_side_from_its_own_matrix(two_matrices):
    tmp, speech, caps = two_matrices
    owner = np.arange(12)
    want = speech_text_retrieval(speech, caps, owner, n_boot=0)
    for extra in (["--speech-npy", str(tmp / "sp.npy"), "--captions-npy", str(tmp / "cap.npy")],
                  ["--npy", str(tmp / "sp.npy"), "--captions-npy", str(tmp / "cap.npy")]):
        r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap0.jsonl"),
                *extra, "--n-boot", "0", "-q")
        assert r.exit_code == 0, r.output
        got = lines(r)[0]["metrics"]
        for key in ("s2t_R@1", "t2s_R@1", "s2t_mAP@10", "t2s_mAP@10"):
            assert got[key] == pytest.approx(want[key], abs=1e-6)
        assert got["s2t_R@1"] < 1.0


def test_side_matrices_are_for_pool_mode_only(two_matrices):
    tmp, _, _ = two_matrices
    r = cli("search", "eval", str(tmp / "x.idx"), "--queries", str(tmp / "cap0.jsonl"), "--captions-npy",
            str(tmp / "cap.npy"), "-q")
    assert r.exit_code == 2 and "pool mode" in r.stderr


def test_forgotten_npy_gives_one_warning_per_input_not_per_record(pool):
    tmp, _, _ = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "-o", str(tmp / "x.idx"))
    assert r.exit_code == 1
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "12 records" in warnings[0] and "--npy" in warnings[0]
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"), "--n-boot", "0")
    assert r.exit_code == 1
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 2 and all("12 records" in w for w in warnings)


def test_the_readme_pool_mode_of_a_captioned_manifest(tmp_path):
    """The captioned manifest embedded as clips and as captions (one text record per caption)
    scores in pool mode with its caption types as groups."""
    from tests.helpers.assets import REPO

    manifest = REPO / "examples" / "data" / "captions.jsonl"
    source = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for args, out in ((["--model", "tiny-random"], "sp.jsonl"), (["--modality", "text", "--model", "tiny-random"], "cap.jsonl")):
        r = cli("embed", str(manifest), *args, "-o", str(tmp_path / out), "-q")
        assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "cap.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(r.get("global_captions", [])) + len(r.get("finegrained_captions", [])) for r in source)
    assert {r["audio_id"] for r in rows} == {r["id"] for r in source} and len({r["id"] for r in rows}) == len(rows)
    assert all(r["text"] and r["caption_type"] in ("global", "finegrained") for r in rows)
    r = cli("search", "eval", "--speech", str(tmp_path / "sp.jsonl"), "--captions", str(tmp_path / "cap.jsonl"),
            "--group-key", "caption_type", "--n-boot", "0", "-q")
    summary = lines(r)[0]
    assert r.exit_code == 0 and summary["speech"] == len(source) and summary["captions"] == len(rows)
    assert set(summary["groups"]) == {"global", "finegrained"}
    # a --group-key no caption has gave one group named "None" and exit 0
    r = cli("search", "eval", "--speech", str(tmp_path / "sp.jsonl"), "--captions", str(tmp_path / "cap.jsonl"),
            "--group-key", "kind", "--n-boot", "0", "-q")
    assert r.exit_code == 2 and "--group-key 'kind': no caption record has this field" in r.stderr, r.output
    assert "their fields: " in r.stderr and "caption_type" in r.stderr and "audio_id" in r.stderr  # those they have


def test_both_pool_sides_on_stdin_is_a_usage_error():
    res = cli("search", "eval", "--speech", "-", "--captions", "-", stdin="")
    assert res.exit_code == 2 and "cannot both read stdin" in res.output


def test_each_pool_side_and_each_index_holds_one_modality(pool):
    """Speech embeddings given as the captions too (or a caption file as speech) would score
    every clip against itself: refused by the modality clsp embed writes in provenance.
    An index holds one modality, also across --add."""
    tmp, _, _ = pool
    speech = [{**r, "provenance": {**PROV, "modality": "audio"}}
              for r in map(json.loads, (tmp / "sp.jsonl").read_text().splitlines())]
    caps = [{**r, "provenance": {**PROV, "modality": "text"}}
            for r in map(json.loads, (tmp / "cap.jsonl").read_text().splitlines())]
    write(tmp / "sp.jsonl", speech)
    write(tmp / "cap.jsonl", caps)
    npy = ["--npy", str(tmp / "both.npy"), "--n-boot", "0", "-q"]
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap.jsonl"), *npy)
    assert r.exit_code == 0, r.output
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "sp.jsonl"), *npy)
    assert r.exit_code == 1 and lines(r) == []
    assert "record 'c0' is speech (embedded from audio), but --captions takes text embeddings" in r.output
    r = cli("search", "eval", "--speech", str(tmp / "cap.jsonl"), "--captions", str(tmp / "cap.jsonl"), *npy)
    assert r.exit_code == 1 and "'t0' is a caption (embedded from text), but --speech takes audio" in r.output
    write(tmp / "mixed.jsonl", speech[:3] + caps[:1])
    r = cli("search", "build", str(tmp / "mixed.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "m.idx"), "-q")
    assert r.exit_code == 1 and "an index holds one modality" in r.output and not (tmp / "m.idx").exists()
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    assert r.exit_code == 0 and json.loads((tmp / "s.idx/index.json").read_text())["modality"] == "audio"
    r = cli("search", "build", str(tmp / "cap.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"),
            "--add", "-q")
    assert r.exit_code == 1 and "the index holds audio embeddings" in r.output
    assert json.loads((tmp / "s.idx/index.json").read_text())["count"] == 12


def test_records_of_unknown_origin_do_not_join_a_models_records(pool):
    """A record without provenance cannot be checked to come from the model of the others:
    one build refuses the mix, whichever comes first."""
    tmp, _, _ = pool
    recs = [json.loads(x) for x in (tmp / "sp.jsonl").read_text().splitlines()]
    bare = [{k: v for k, v in r.items() if k != "provenance"} for r in recs]
    for name, mix, needle in [("late", recs[:6] + bare[6:], "record 'c6': no 'provenance' says which model"),
                              ("early", bare[:6] + recs[6:], "record 'c6' came from model 'vec-model', but record 'c0'")]:
        write(tmp / f"{name}.jsonl", mix)
        r = cli("search", "build", str(tmp / f"{name}.jsonl"), "--npy", str(tmp / "both.npy"),
                "-o", str(tmp / f"{name}.idx"), "-q")
        assert r.exit_code == 1 and needle in r.output, r.output
        assert not (tmp / f"{name}.idx").exists()
    write(tmp / "bare.jsonl", bare)  # all of unknown origin: an index of unknown origin
    r = cli("search", "build", str(tmp / "bare.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "b.idx"), "-q")
    assert r.exit_code == 0 and json.loads((tmp / "b.idx/index.json").read_text())["model"] is None


def test_a_provenance_that_is_not_an_object_is_that_records_error(pool):
    """It ended search query in a traceback, losing every query."""
    tmp, _, _ = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    assert r.exit_code == 0, r.output
    write(tmp / "q.jsonl", [{"id": "bad", "row": 12, "provenance": "vec-model"},
                            {"id": "list", "row": 13, "provenance": ["vec-model"]}, {"id": "ok", "row": 14, "provenance": PROV}])
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "--npy", str(tmp / "both.npy"), "-k", "1", "-q")
    out = lines(r)
    assert r.exit_code == 3 and [o["id"] for o in out] == ["bad", "list", "ok"]
    assert "'provenance' must be an object" in out[0]["error"]["message"] and "hits" in out[2]


def test_a_zero_query_vector_is_named_by_its_query(pool):
    tmp, _, _ = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    write(tmp / "q.jsonl", [{"id": "ok", "embedding": [1.0] * 8}, {"id": "zero", "embedding": [0.0] * 8}])
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "-k", "1", "-q")
    out = lines(r)
    assert r.exit_code == 3 and "hits" in out[0]
    assert out[1]["error"]["message"] == "query 'zero': its vector is all zeros, which has no direction for cosine search"


def test_records_of_older_versions_without_a_stated_modality_are_read_by_their_fields(pool):
    """Records written before provenance said the modality: an 'audio' field is speech, a 'text'
    field a caption, so pool eval, build and --add still refuse the other modality."""
    tmp, _, _ = pool
    speech = [{**r, "audio": f"{r['id']}.wav"} for r in map(json.loads, (tmp / "sp.jsonl").read_text().splitlines())]
    caps = [{**r, "text": f"caption {r['id']}"} for r in map(json.loads, (tmp / "cap.jsonl").read_text().splitlines())]
    write(tmp / "sp.jsonl", speech)
    write(tmp / "cap.jsonl", caps)
    npy = ["--npy", str(tmp / "both.npy"), "-q"]
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "sp.jsonl"), "--n-boot", "0", *npy)
    assert r.exit_code == 1 and "is speech (embedded from audio), but --captions takes text" in r.output
    r = cli("search", "build", str(tmp / "sp.jsonl"), "-o", str(tmp / "s.idx"), *npy)
    assert r.exit_code == 0 and json.loads((tmp / "s.idx/index.json").read_text())["modality"] == "audio"
    r = cli("search", "build", str(tmp / "cap.jsonl"), "-o", str(tmp / "s.idx"), "--add", *npy)
    assert r.exit_code == 1 and "the index holds audio embeddings" in r.output


def test_an_integer_query_id_stays_an_integer(pool):
    tmp, _, _ = pool
    cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    write(tmp / "q.jsonl", [{"id": 7, "embedding": [1.0] * 8}, {"id": "7b", "embedding": [1.0] * 8}])
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "q.jsonl"), "-k", "1", "-q")
    assert [o["id"] for o in lines(r)] == [7, "7b"]


def test_recall_a_small_pool_cannot_miss_is_null_and_said(pool):
    """Captions pointing at the wrong clips: R@1 is 0, yet in a pool of 3 every clip is within
    the top 5, so R@5/R@10 would read 1.0; they are null, with a warning, in both modes."""
    tmp, _, _ = pool
    write(tmp / "sp3.jsonl", [{"id": f"c{i}", "row": i, "provenance": PROV} for i in range(3)])
    write(tmp / "cap3.jsonl", [{"id": f"t{i}", "row": 12 + i, "audio_id": f"c{(i + 1) % 3}", "provenance": PROV}
                               for i in range(3)])
    r = cli("search", "eval", "--speech", str(tmp / "sp3.jsonl"), "--captions", str(tmp / "cap3.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "20")
    assert r.exit_code == 0, r.output
    got = lines(r)[-1]["metrics"]
    assert got["s2t_R@5"] is None and got["t2s_R@10"] is None and got["t2s_R@10_lo"] is None
    assert got["t2s_R@1"] is not None and "t2s_R@5, t2s_R@10: null" in r.output
    r = cli("search", "build", str(tmp / "sp3.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s3.idx"), "-q")
    write(tmp / "q3.jsonl", [{"id": f"t{i}", "row": 12 + i, "relevant": f"c{(i + 1) % 3}", "provenance": PROV}
                             for i in range(3)])
    r = cli("search", "eval", str(tmp / "s3.idx"), "--queries", str(tmp / "q3.jsonl"), "--npy", str(tmp / "both.npy"),
            "--n-boot", "0")
    assert r.exit_code == 0, r.output
    got = lines(r)[-1]["metrics"]
    assert got["R@5"] is None and got["R@10"] is None and got["R@1"] is not None
    assert "R@5, R@10: null" in r.output


def test_queries_placed_by_position_must_be_one_per_row(pool):
    """Queries without 'row' take the --npy row at their position: a lost line shifted every
    later query onto another row (R@1 0.0, exit 0); mixing them with 'row' records doubled rows."""
    tmp, _, _ = pool
    r = cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"), "-q")
    assert r.exit_code == 0, r.output
    write(tmp / "short.jsonl", [{"id": f"q{i}", "relevant": f"c{i}"} for i in range(1, 24)])  # 23 queries, 24 rows
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "short.jsonl"), "--npy", str(tmp / "both.npy"),
            "--n-boot", "0")
    assert r.exit_code == 1 and "23 queries for the 24 rows of the --npy matrix" in r.output, r.output
    r = cli("search", "query", str(tmp / "s.idx"), str(tmp / "short.jsonl"), "--npy", str(tmp / "both.npy"), "-q")
    assert r.exit_code == 1 and "23 queries for the 24 rows" in r.output
    write(tmp / "mixed.jsonl", [{"id": "c0", "row": 5}, *({"id": f"c{i}"} for i in range(1, 24))])
    r = cli("search", "build", str(tmp / "mixed.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "m.idx"), "-q")
    assert r.exit_code == 1 and "records that name their 'row' are mixed with records" in r.output
    assert not (tmp / "m.idx").exists()


def test_pool_eval_counts_a_repeated_caption_text_as_each_clips_own(tmp_path):
    """Captions written from labels repeat: a model that hears each clip's label perfectly
    scores R@1 = 1, and the summary says how many captions another clip's caption repeats."""
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    words = ["A happy man.", "A sad woman.", "An angry man."]
    rng = np.random.default_rng(1)
    speech = np.eye(8)[labels] + 0.05 * rng.standard_normal((12, 8))
    speech[0, 7] += 0.5  # clip c0 also whispers
    caps = np.eye(8)[labels]  # one embedding per text, as the same caption string always embeds
    write(tmp_path / "sp.jsonl", [{"id": f"c{i}", "embedding": speech[i].tolist(), "provenance": PROV}
                                  for i in range(12)])
    recs = [{"id": f"t{i}", "text": words[lab], "audio_id": f"c{i}", "embedding": caps[i].tolist(), "provenance": PROV}
            for i, lab in enumerate(labels)]
    recs.append({"id": "t12", "text": "A whisper.", "audio_id": "c0", "embedding": np.eye(8)[7].tolist(),
                 "provenance": PROV})  # a caption no other clip has
    write(tmp_path / "cap.jsonl", recs)
    r = cli("search", "eval", "--speech", str(tmp_path / "sp.jsonl"), "--captions", str(tmp_path / "cap.jsonl"),
            "--n-boot", "0", "-q")
    assert r.exit_code == 0, r.output
    got = lines(r)[0]
    assert got["captions"] == 13 and got["shared_captions"] == 12
    assert got["metrics"]["s2t_R@1"] == 1.0 and got["metrics"]["t2s_R@1"] == 1.0
    unit = speech / np.linalg.norm(speech, axis=1, keepdims=True)
    apart = speech_text_retrieval(unit, np.vstack([caps, np.eye(8)[7]]), list(range(12)) + [0], n_boot=0)
    assert apart["s2t_R@1"] < 0.2  # the same pool with every caption its own: ties sink the clips


def test_eval_of_no_records_writes_nothing_and_no_scored_query_still_draws(pool):
    """An empty query file (or two empty pool sides) writes no summary and no figure, exit 0 with
    a warning, as every command treats an input with no records; queries none of which could be
    scored keep their summary of nulls (exit 3) and a figure that says nothing was measured."""
    tmp, _, _ = pool
    assert cli("search", "build", str(tmp / "sp.jsonl"), "--npy", str(tmp / "both.npy"), "-o", str(tmp / "s.idx"),
               "-q").exit_code == 0
    (tmp / "empty.jsonl").write_text("")
    for args in (("s.idx", "--queries", "empty.jsonl"), ("--speech", "empty.jsonl", "--captions", "empty.jsonl")):
        r = cli("search", "eval", *[str(tmp / a) if a.endswith((".idx", ".jsonl")) else a for a in args],
                "-o", str(tmp / "ev.json"), "--plot", str(tmp / "ev.png"))
        assert r.exit_code == 0 and "no records" in r.stderr, (args, r.output)
        assert not (tmp / "ev.json").exists() and not (tmp / "ev.png").exists()
    write(tmp / "q.jsonl", [{"id": "q1", "embedding": [1.0] * 8, "relevant": ["nope"], "provenance": PROV}])
    r = cli("search", "eval", str(tmp / "s.idx"), "--queries", str(tmp / "q.jsonl"), "--plot", str(tmp / "q.png"),
            "-o", str(tmp / "q.json"))
    assert r.exit_code == 3, r.output
    assert json.loads((tmp / "q.json").read_text())["metrics"]["R@1"] is None and (tmp / "q.png").stat().st_size > 0


def test_pool_recall_curves_reach_each_directions_own_candidates(pool):
    """Speech-to-text ranks the distinct caption texts, text-to-speech the clips: with 4 clips of
    3 captions each, the speech-to-text curve goes past k = 4."""
    from clsp.retrieval_eval import evaluate_pool

    tmp, speech, _ = pool
    rng = np.random.default_rng(1)
    write(tmp / "sp4.jsonl", [{"id": f"c{i}", "embedding": speech[i].tolist(), "provenance": PROV} for i in range(4)])
    caps = [{"id": f"t{i}-{j}", "embedding": (speech[i] + 0.5 * rng.standard_normal(8)).tolist(), "audio_id": f"c{i}",
             "provenance": PROV | {"modality": "text"}} for i in range(4) for j in range(3)]
    write(tmp / "cap4.jsonl", caps)
    ev = evaluate_pool(str(tmp / "sp4.jsonl"), str(tmp / "cap4.jsonl"), curves=True)
    assert max(ev.curves["speech to text"]) > 4 and max(ev.curves["text to speech"]) <= 4


def test_pool_mode_with_one_side_empty_names_it(pool):
    tmp, _, _ = pool
    (tmp / "none.jsonl").write_text("")
    r = cli("search", "eval", "--speech", str(tmp / "none.jsonl"), "--captions", str(tmp / "cap.jsonl"),
            "--npy", str(tmp / "both.npy"))
    assert r.exit_code == 1 and f"--speech {tmp / 'none.jsonl'} holds no record" in r.stderr, r.output


def test_pool_eval_counts_a_caption_that_matches_no_clip_once(pool):
    """A caption read and then matched to no clip was counted twice in 'read embeddings: N records'."""
    tmp, _, _ = pool
    caps = [json.loads(line) for line in (tmp / "cap.jsonl").read_text().splitlines()]
    caps[0]["audio_id"] = "nope"
    caps[1]["embedding"], caps[1]["provenance"] = "bad", PROV
    del caps[1]["row"]
    write(tmp / "cap2.jsonl", caps)
    r = cli("search", "eval", "--speech", str(tmp / "sp.jsonl"), "--captions", str(tmp / "cap2.jsonl"),
            "--npy", str(tmp / "both.npy"), "--n-boot", "0")
    assert r.exit_code == 3, r.output
    assert "read embeddings: 24 records (2 failed)" in r.stderr, r.stderr
    assert lines(r)[0]["failed"] == 2 and lines(r)[0]["captions"] == 10
