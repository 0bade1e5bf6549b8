"""``clsp classify`` in-process (tiny random model): records, pipes of records, reports, usage errors."""

from __future__ import annotations

import json
import numpy as np
import soundfile as sf

from clsp.metrics.classification import unweighted_accuracy, weighted_accuracy
from tests.conftest import invoke

TINY = ["-m", "tiny-random", "--quiet"]


def run(*args, cwd, stdin: str | None = None):
    return invoke(*args, cwd=cwd, stdin=stdin, text=True)


def tone(path, freq: float, seconds: float = 1.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), 16000)


def test_audio_records_labels_errors_and_summary(tmp_path):
    recs = []
    for i, (freq, gold) in enumerate([(120, "male"), (220, "female"), (140, "m"), (260, "female")]):
        tone(tmp_path / f"c{i}.wav", freq)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav", "gender": gold})
    recs.append({"id": "gone", "audio": "missing.wav", "gender": "male"})
    recs.append({"id": "odd", "audio": "c0.wav", "gender": "robot"})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run("classify", "-", "--pack", "gender", "--label-key", "gender", "--top-k", "2", "--n-boot", "50", "-m", "tiny-random",
            cwd=tmp_path, stdin=(tmp_path / "in.jsonl").read_text())
    assert p.returncode == 3, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["id"] for r in out] == ["c0", "c1", "c2", "c3", "gone", "odd", "__summary__"]
    assert "missing.wav" in out[4]["error"]["message"]
    for r in out[:4]:
        assert r["label"] in ("male", "female")
        assert abs(sum(r["scores"].values()) - 1) < 1e-4
        assert [t["label"] for t in r["top_k"]][0] == r["label"]
    summary = out[-1]["summary"]
    gold = ["male", "female", "male", "female"]  # "m" is an alias of male; "robot" is left out
    pred = [r["label"] for r in out[:4]]
    assert summary["n"] == 4
    assert summary["wa"] == weighted_accuracy(gold, pred)
    assert summary["ua"] == unweighted_accuracy(gold, pred)
    assert summary["skipped_gold"] == {"robot": 1}
    assert sum(map(sum, summary["confusion"]["matrix"])) == 4
    assert "WA" in p.stderr and "robot" in p.stderr


def test_embedding_records_from_clsp_embed_pipe_and_report(tmp_path):
    # the prompts' own text embeddings are their classes' centroids: as vectors of no stated
    # modality they classify as their class; as caption embeddings classify refuses them as speech
    e = run("embed", "--modality", "text", "-m", "tiny-random", "-q", cwd=tmp_path,
            stdin="A male speaker.\nA female speaker.\nA speaker in a angry tone.\n")
    assert e.returncode == 0, e.stderr
    old = "".join(json.dumps({**{k: v for k, v in r.items() if k != "text"},
                              "provenance": {k: v for k, v in r["provenance"].items() if k != "modality"}}) + "\n"
                  for r in map(json.loads, e.stdout.splitlines()))
    p = run("classify", "--pack", "ravdess", "--attribute", "gender", "-m", "tiny-random", "-q", cwd=tmp_path, stdin=old)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["label"] for r in out[:2]] == ["male", "female"]
    assert "embedding" not in out[0]
    p = run("classify", "--pack", "ravdess", "--attribute", "gender", "-m", "tiny-random", "-q", cwd=tmp_path, stdin=e.stdout)
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 3 and len(out) == 3
    assert all("is a caption (embedded from text), but classify scores speech" in r["error"]["message"] for r in out)


def test_precomputed_embeddings_provenance_and_report(tmp_path):
    bad = {"id": "other", "embedding": [0.1] * 32, "provenance": {"model": "tiny-random", "checksum": "seed:9"}}
    short = {"id": "short", "embedding": [0.1] * 5, "gender": "male"}
    good = {"id": "ok", "embedding": list(np.linspace(-1, 1, 32)), "gender": "female"}
    np.save(tmp_path / "m.npy", np.stack([np.linspace(-1, 1, 32), -np.linspace(-1, 1, 32)]).astype("float32"))
    rows = [{"id": "r0", "row": 0, "gender": "female"}, {"id": "r9", "row": 9}]
    stdin = "".join(json.dumps(r) + "\n" for r in (bad, short, good, *rows))
    p = run("classify", "--pack", "ravdess", "-a", "gender", "--label-key", "gender", "--report", "rep.json", "--n-boot", "20",
            "--npy", "m.npy", "-m", "tiny-random", "-q", cwd=tmp_path, stdin=stdin)
    assert p.returncode == 3
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r.get("error", {}).get("type") for r in out] == ["ProvenanceError", "ProvenanceError", None, None, "InputError"]
    assert "seed:9" in out[0]["error"]["message"]
    assert out[3]["scores"] == out[2]["scores"]  # the same vector, from the matrix or inline
    assert "outside the --npy matrix" in out[4]["error"]["message"]
    assert p.stderr.count("has no 'provenance'") == 1 and "taken to come from model 'tiny-random'" in p.stderr
    report = json.loads((tmp_path / "rep.json").read_text())
    assert report["n"] == 2 and report["attribute"] == "gender" and report["support"] == {"female": 2}


def test_bad_pack_is_a_usage_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"attribute": "x", "templates": ["no slot"], "classes": {"a": "a", "b": "b"}}')
    p = run("classify", "--pack", "bad.json", "-m", "tiny-random", cwd=tmp_path, stdin="c.wav\n")
    assert p.returncode == 2
    assert p.stdout == ""
    assert "no {label} slot" in p.stderr
    p = run("classify", "--list-packs", cwd=tmp_path)
    assert "iemocap\temotion\thappy, angry, sad, neutral" in p.stdout


def test_label_key_that_no_record_has_is_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    recs = []
    for i, freq in enumerate([120, 220]):
        tone(tmp_path / f"c{i}.wav", freq)
        recs.append({"id": f"c{i}", "audio": str(tmp_path / f"c{i}.wav"), "gender": "male"})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = ["classify", str(tmp_path / "in.jsonl"), "--pack", "gender", "--n-boot", "0", *TINY]
    r = CliRunner().invoke(app, [*args, "--label-key", "sex"])
    assert r.exit_code == 2
    assert "--label-key 'sex'" in r.stderr and "gender" in r.stderr
    # a key that only some records lack is still a report, with the gaps counted
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs + [{"id": "x", "audio": recs[0]["audio"]}]))
    r = CliRunner().invoke(app, [*args, "--label-key", "gender"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["n"] == 2 and summary["skipped_gold"] == {"<missing>": 1}


def test_forgotten_npy_is_one_warning_and_an_error_record_each(tmp_path):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    prov = {"model": "tiny-random", "checksum": "seed:0", "dim": 32, "normalized": True, "sample_rate": 16000}
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "row": i, "provenance": prov}) + "\n"
                                                 for i in range(4)))
    r = CliRunner().invoke(app, ["classify", str(tmp_path / "rows.jsonl"), "--pack", "gender", "-m", "tiny-random"])
    assert r.exit_code == 3
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["id"] for o in out] == ["r0", "r1", "r2", "r3"] and all("--npy" in o["error"]["message"] for o in out)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "4 records" in warnings[0] and "--npy" in warnings[0]
    np.save(tmp_path / "m.npy", np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32))
    r = CliRunner().invoke(app, ["classify", str(tmp_path / "rows.jsonl"), "--pack", "gender", "-m", "tiny-random",
                                 "--npy", str(tmp_path / "m.npy")])
    assert r.exit_code == 0, r.stderr
    assert "warning" not in r.stderr


def test_an_empty_input_with_gold_labels_or_ratings_writes_nothing(tmp_path):
    """No summary of nothing: no record, no report, a warning, exit 0 (classify and similarity);
    and an earlier run's outputs are not replaced by empty ones (an upstream command that failed
    before writing a record left yesterday's -o and --npy empty, beside its old --report)."""
    (tmp_path / "empty.jsonl").write_text("")
    for args in (["classify", "empty.jsonl", "--pack", "gender", "--label-key", "gender", "--report", "r.json"],
                 ["similarity", "empty.jsonl", "--human-key", "rating", "--report", "r.json"],
                 ["embed", "empty.jsonl", "--npy", "r.json"], ["caption", "empty.jsonl", "--errors", "r.json"]):
        model = [] if args[0] == "caption" else ["-m", "tiny-random"]
        p = run(*args, *model, "-o", "out.jsonl", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "the input held no" in p.stderr and "n/a" not in p.stderr
        assert "no records: out.jsonl" in p.stderr, p.stderr
        assert sorted(f.name for f in tmp_path.iterdir()) == ["empty.jsonl"], args  # nothing made, no .partial
        (tmp_path / "out.jsonl").write_text("OLD\n")
        (tmp_path / "r.json").write_text("OLDREPORT\n")
        p = run(*args, *model, "-o", "out.jsonl", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "out.jsonl").read_text() == "OLD\n" and (tmp_path / "r.json").read_text() == "OLDREPORT\n"
        (tmp_path / "out.jsonl").unlink()
        (tmp_path / "r.json").unlink()


def test_audio_records_with_embedding_record_field_names_are_clips_their_fields_kept(tmp_path):
    """A clip with a `provenance` note or a spreadsheet `row` (which embed keeps under metadata)
    was refused as a malformed embedding record ("'provenance' must be an object", "'row' 17
    points into a matrix"), and a `provenance` note or a caption backend's was dropped."""
    tone(tmp_path / "c.wav", 120)
    cap = {"backend": "acoustic", "version": "2"}
    recs = [{"id": "pr", "audio": "c.wav", "provenance": "studio B", "row": 17},
            {"id": "r", "audio": "c.wav", "row": 17},
            {"id": "p", "audio": "c.wav", "provenance": "studio B"},
            {"id": "cap", "audio": "c.wav", "provenance": cap, "metadata": {"provenance": "studio B"}},
            {"id": "plain", "audio": "c.wav"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run("classify", "in.jsonl", "--pack", "gender", *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [o["scores"] for o in out] == [out[-1]["scores"]] * 5  # each one the clip itself
    assert [o.get("metadata") for o in out] == [{"provenance": "studio B", "row": 17}, {"row": 17},
                                                {"provenance": "studio B"},
                                                {"provenance": cap, "metadata": {"provenance": "studio B"}}, None]
    assert not any(k in o for o in out for k in ("provenance", "row", "embedding"))
    e = run("embed", "in.jsonl", "-o", "emb.jsonl", *TINY, cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    embedded = [json.loads(line) for line in (tmp_path / "emb.jsonl").read_text().splitlines()]
    assert embedded[0]["metadata"] == {"provenance": "studio B", "row": 17}  # as embed keeps them


def test_classify_drops_a_classified_vector_with_its_provenance(tmp_path):
    """classify of `clsp embed --npy` records dropped their provenance but left `row` and
    `row_sha256` at the top: a row of a matrix with no word of the model that made it."""
    tone(tmp_path / "c.wav", 120)
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "c", "audio": "c.wav", "provenance": "studio B"}) + "\n")
    e = run("embed", "in.jsonl", "-o", "emb.jsonl", "--npy", "emb.npy", *TINY, cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    p = run("classify", "emb.jsonl", "--npy", "emb.npy", "--pack", "gender", *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (out,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert not any(k in out for k in ("provenance", "row", "row_sha256", "embedding"))
    assert out["metadata"] == {"metadata": {"provenance": "studio B"}}  # embed kept the note; nothing lost


def test_a_multi_attribute_pack_takes_the_attribute_the_label_key_names(tmp_path):
    """`--pack cremad --label-key emotion` was a usage error asking for --attribute emotion;
    the gold labels' field names it. Without a label key, or one the pack has no attribute
    of, --attribute is still needed; and the output fed back in is read again (its summary
    line skipped), giving the same records."""
    recs = []
    for i, (freq, gold) in enumerate([(120, "angry"), (220, "sad"), (300, "happy")]):
        tone(tmp_path / f"c{i}.wav", freq)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav", "emotion": gold, "mood": gold})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run("classify", "in.jsonl", "--pack", "cremad", "--label-key", "emotion", "--n-boot", "0", "-o", "out.jsonl",
            *TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[-1]["summary"]["attribute"] == "emotion" and out[-1]["summary"]["n"] == 3
    for args in (["--label-key", "mood"], []):
        p = run("classify", "in.jsonl", "--pack", "cremad", *args, *TINY, cwd=tmp_path)
        assert p.returncode == 2 and "choose one with --attribute" in p.stderr, p.stderr
    again = run("classify", "out.jsonl", "--pack", "cremad", "--label-key", "emotion", "--n-boot", "0", *TINY,
                cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    redo = [json.loads(line) for line in again.stdout.splitlines()]
    assert [r["id"] for r in redo] == [r["id"] for r in out]
    assert [r["label"] for r in redo[:-1]] == [r["label"] for r in out[:-1]]


def test_a_record_whose_audio_is_no_path_says_so(tmp_path):
    """As clsp embed says it: an empty, numeric, null or list 'audio' is named, not taken for a
    record that lacks its stored embedding."""
    from tests.helpers.cli import invoke, jsonl

    recs = [{"id": "e", "audio": ""}, {"id": "n", "audio": 5}, {"id": "z", "audio": None}, {"id": "l", "audio": ["a"]}]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = invoke("classify", "bad.jsonl", "--model", "tiny-random", "--pack", "gender", "-q", cwd=tmp_path)
    out = jsonl(res.stdout)
    assert res.returncode == 3 and [r["id"] for r in out] == ["e", "n", "z", "l"]
    assert all("'audio' must be a non-empty path string" in r["error"]["message"] for r in out), out


def test_a_label_key_no_record_has_writes_no_record_even_to_stdout(tmp_path):
    """The records went out to stdout, then exit 2 for the mistyped key: a reader took them."""
    from tests.conftest import write_wav

    for n in "ab":
        write_wav(tmp_path / f"{n}.wav", 0.5)
    recs = [{"id": "a", "audio": "a.wav", "gender": "male"}, {"id": "b", "audio": "b.wav"},
            {"id": "c", "audio": "missing.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = run("classify", "m.jsonl", "--pack", "gender", "--label-key", "gendre", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "--label-key 'gendre': no record has this field" in p.stderr and p.stdout == "", p
    p = run("classify", "m.jsonl", "--pack", "gender", "--label-key", "gender", "-m", "tiny-random", "-q", cwd=tmp_path)
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 3 and [r["id"] for r in out] == ["a", "b", "c", "__summary__"], p.stderr
    summary = out[-1]["summary"]  # what was counted: one gold label, one record without, one failed
    assert (summary["n"], summary["skipped_gold"], summary["failed"]) == (1, {"<missing>": 1}, 1), summary
    (tmp_path / "late.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(recs)))  # the key comes last
    p = run("classify", "late.jsonl", "--pack", "gender", "--label-key", "gender", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 3 and [json.loads(x)["id"] for x in p.stdout.splitlines()] == ["c", "b", "a", "__summary__"]


def test_a_label_key_only_a_failed_record_has_is_no_typo(tmp_path):
    """Records went out, then "--label-key: no record has this field" (exit 2), when the one
    record with the key had failed (a missing file)."""
    tone(tmp_path / "v1.wav", 150)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "gone.wav", "g": "male"}) + "\n"
                                      + json.dumps({"id": "b", "audio": "v1.wav"}) + "\n")
    p = run("classify", "m.jsonl", "-m", "tiny-random", "--pack", "gender", "--label-key", "g", "--n-boot", "0", "-q",
            cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 3 and "error" in out[0] and out[1]["label"] in ("male", "female"), p.stderr
    assert out[-1]["summary"]["failed"] == 1 and "no record has this field" not in p.stderr
    p = run("classify", "m.jsonl", "-m", "tiny-random", "--pack", "gender", "--label-key", "gx", "-q", cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == "" and "--label-key 'gx': no record has this field" in p.stderr
