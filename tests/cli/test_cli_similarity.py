"""``clsp similarity``: one-off checks, pair batches, filters in-process; ``| head`` through the real executable;
correlation reports."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import invoke


def run(cmd: str, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)


def cli(*args, cwd, stdin: str | None = None):
    return invoke(*args, cwd=cwd, stdin=stdin, text=True)


def tone(path, freq: float, seconds: float = 1.0, noise: float = 0.0) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * freq * t) + noise * np.random.default_rng(int(freq)).normal(size=t.size)
    sf.write(path, x.astype("float32"), 16000)


def test_one_off_audio_pair_agrees_with_clsp_embed(tmp_path):
    tone(tmp_path / "a.wav", 150)
    tone(tmp_path / "b.wav", 300, noise=0.1)
    p = cli("similarity", "a.wav", "b.wav", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (rec,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert rec["pair"] == "audio-audio" and -1 <= rec["score"] <= 1
    # oracle: cosine of the embeddings written by 'clsp embed'
    e = cli("embed", "-m", "tiny-random", "-q", cwd=tmp_path, stdin="a.wav\nb.wav\n")
    va, vb = (np.array(json.loads(line)["embedding"]) for line in e.stdout.splitlines())
    assert abs(rec["score"] - va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)) < 1e-5


def test_one_off_audio_caption(tmp_path):
    tone(tmp_path / "a.wav", 150)
    p = cli("similarity", "a.wav", "a whispering young woman", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec["pair"] == "audio-text" and rec["b"] == "a whispering young woman" and -1 <= rec["score"] <= 1
    p = cli("similarity", "missing.wav", "a calm voice", "-m", "tiny-random", "-q", cwd=tmp_path)
    # a side named on the command line that names no file is a usage error, like any argument
    assert p.returncode == 2 and "missing.wav: no such file" in p.stderr and p.stdout == ""
    # a folder, or a path without an audio extension that names nothing, is not scored as a caption
    (tmp_path / "clips").mkdir()
    for side, why in (("clips", "clips: a folder"), ("sub/missing", "sub/missing: no such file"),
                      ("", "'': empty"), ("  ", "'  ': empty"),
                      ("http://x/a.wav", "http://x/a.wav: a URL; clsp reads local files only"),
                      ("s3://bucket/a.flac", "s3://bucket/a.flac: a URL")):
        p = cli("similarity", side, "a.wav", "-m", "tiny-random", "-q", cwd=tmp_path)
        assert p.returncode == 2 and why in p.stderr and p.stdout == "", (side, p.stderr)


def test_pairs_batch_errors_correlation_and_filters(tmp_path):
    tone(tmp_path / "a.wav", 150)
    tone(tmp_path / "b.wav", 300, noise=0.1)
    pairs = [
        {"id": "ab", "a": "a.wav", "b": "b.wav", "human": 1.0, "cat": "x"},
        {"id": "ba", "a": "b.wav", "b": "a.wav", "human": 2.0, "cat": "x"},
        {"id": "aa", "a": "a.wav", "b": "a.wav", "human": 5.0, "cat": "y"},
        {"id": "at", "a": "a.wav", "b_text": "a calm low voice", "human": 3.0, "cat": "y"},
        {"id": "gone", "a": "missing.wav", "b": "a calm voice", "human": 4.0},
        {"id": "empty", "a": "a.wav", "b": "  ", "human": 4.0},
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs) + "not json\n")
    p = cli("similarity", "pairs.jsonl", "--human-key", "human", "--group-key", "cat", "--n-boot", "50", "--above", "0.99999",
            "-m", "tiny-random", cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    # --above keeps only the identical pair; error records always come out, in input order
    assert [r["id"] for r in out[:-1]] == ["aa", "gone", "empty", "line-7"]
    assert abs(out[0]["score"] - 1.0) < 1e-5
    assert out[1]["error"]["type"] == "AudioError" and "missing.wav" in out[1]["error"]["message"]
    assert "empty text" in out[2]["error"]["message"]
    assert out[3]["error"]["message"].startswith("line 7: not a JSON record; a pairs file holds one JSON object")
    # correlations use every scored pair, before filtering
    summary = out[-1]["summary"]
    assert summary["overall"]["n"] == 4 and set(summary["groups"]) == {"x", "y"}
    assert -1 <= summary["overall"]["kendall"] <= 1
    assert summary["groups"]["x"]["n"] == 2
    assert "Kendall" in p.stderr and "kept 1 pairs" in p.stderr


@pytest.mark.slow
def test_mixed_pairs_stream_and_head_closes_pipe_quietly(tmp_path):
    tone(tmp_path / "a.wav", 150)
    tone(tmp_path / "b.wav", 300)
    lines = "".join(json.dumps({"a": "a.wav", "b": "b.wav" if i % 2 else f"caption number {i}"}) + "\n"
                    for i in range(40))
    p = run("clsp similarity -m tiny-random -q -b 4 | head -3", tmp_path, lines)
    assert p.returncode == 0
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["pair"] for r in out] == ["audio-text", "audio-audio", "audio-text"]
    assert out[1]["score"] != out[0]["score"]
    assert "Traceback" not in p.stderr


def test_small_tied_group_reports_no_interval_with_a_reason(tmp_path):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    words = ["calm", "loud", "angry", "soft", "slow", "fast", "deep", "high", "young", "old"]
    pairs = [{"id": i, "a": f"a {words[i % 10]} voice", "b": f"a {words[(3 * i + 1) % 10]} speaker",
              "rating": 1 + (7 * i) % 5, "g": "big"} for i in range(40)]
    # seven pairs whose ratings all tie but one: a third of the resamples leave that one out
    pairs += [{"id": 100 + i, "a": f"a {words[i]} voice", "b": f"a {words[i + 1]} voice", "rating": 2 if i == 6 else 1,
               "g": "tiny"} for i in range(7)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    r = CliRunner().invoke(app, ["similarity", str(tmp_path / "p.jsonl"), "--human-key", "rating", "--group-key", "g",
                                 "--n-boot", "200", "-m", "tiny-random"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    tiny, big = summary["groups"]["tiny"], summary["groups"]["big"]
    for name in ("pearson", "spearman", "kendall"):
        assert tiny[name] is not None and tiny[f"{name}_ci"] == [None, None]
        assert "resamples" in tiny["ci_undefined"][name]
        lo, hi = big[f"{name}_ci"]
        assert lo <= big[name] <= hi
    assert "ci_undefined" not in big
    assert "no CI" in r.stderr


def test_a_clip_named_without_its_extension_is_not_scored_as_a_caption(tmp_path):
    """`clsp similarity v1 v2` with v1.wav and v2.wav here scored the words 'v1' and 'v2'."""
    tone(tmp_path / "v1.wav", 150)
    tone(tmp_path / "v2.wav", 220)
    p = cli("similarity", "v1", "v2", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "v1: no such file, but v1.wav exists" in p.stderr and p.stdout == ""
    pairs = [{"id": "typo", "a": "v1", "b": "v2.wav"}, {"id": "forced", "a": {"text": "v1"}, "b": "v2.wav"},
             {"id": "word", "a": "calm", "b": "v2.wav"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 3 and "'v1' names no file, but v1.wav exists" in out[0]["error"]["message"]
    assert out[1]["pair"] == out[2]["pair"] == "text-audio"


def test_a_side_naming_a_folder_is_not_scored_as_a_caption(tmp_path):
    """{"a": "spk1"} with a folder spk1/ here scored the word 'spk1' (the command line and
    'spk1/' called it a folder)."""
    tone(tmp_path / "v2.wav", 220)
    (tmp_path / "spk1").mkdir()
    pairs = [{"id": "folder", "a": "spk1", "b": "v2.wav"}, {"id": "forced", "a": {"text": "spk1"}, "b": "v2.wav"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 3 and "'spk1' is a folder, not an audio file" in out[0]["error"]["message"]
    assert out[1]["pair"] == "text-audio"


def test_a_human_key_no_pair_has_is_a_usage_error(tmp_path):
    """--human-key with a mistyped field wrote a summary of n=0 and exited 0 (classify refuses such a key)."""
    tone(tmp_path / "v1.wav", 150)
    pairs = [{"a": "v1.wav", "b": "a calm voice", "rating": 3}, {"a": "v1.wav", "b": "an angry voice", "rating": 1}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "--human-key", "rate", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "--human-key 'rate': no pair record has this field (their fields besides the two sides: id, rating)" in p.stderr
    assert p.stdout == ""  # held back: no record went out before the usage error
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "--human-key", "rating", "--n-boot", "0", "-q", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[-1])["summary"]["overall"]["n"] == 2
    # every rating null: the field is there, nothing is rated (the message said no pair had the field)
    nulls = [{**x, "rating": None} for x in pairs]
    (tmp_path / "nulls.jsonl").write_text("".join(json.dumps(x) + "\n" for x in nulls))
    p = cli("similarity", "nulls.jsonl", "-m", "tiny-random", "--human-key", "rating", "-q", cwd=tmp_path)
    assert p.returncode == 2 and "no pair has a numeric rating there (2 of 2 scored pairs have the field" in p.stderr
    assert p.stdout == "", p.stdout
    # a pair that fails is counted in the summary, as neither rated nor unrated
    (tmp_path / "more.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        *nulls, *pairs, {"a": "missing.wav", "b": "a calm voice", "rating": 2}]))
    p = cli("similarity", "more.jsonl", "-m", "tiny-random", "--human-key", "rating", "--n-boot", "0", "-q", cwd=tmp_path)
    summary = json.loads(p.stdout.splitlines()[-1])["summary"]
    assert p.returncode == 3 and (summary["overall"]["n"], summary["unrated"], summary["failed"]) == (2, 2, 1), summary
    # a --group-key no rated pair has gave one group named None and exit 0
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "--human-key", "rating", "--group-key", "kind", "-q",
            cwd=tmp_path)
    assert p.returncode == 2 and "--group-key 'kind': no rated pair record has this field" in p.stderr, p.stderr


def test_explicit_side_fields_take_objects(tmp_path):
    """a_audio given a segment object or a clsp embed record was 'empty audio path'; b_text
    given an object of audio says what it needs."""
    tone(tmp_path / "long.wav", 150, seconds=3.0)
    tone(tmp_path / "v.wav", 220)
    pairs = [{"id": "seg", "a_audio": {"audio": "long.wav", "start": 1, "end": 2}, "b": "v.wav"},
             {"id": "plain", "a": {"audio": "long.wav", "start": 1, "end": 2}, "b": "v.wav"},
             {"id": "bad", "a_audio": {"text": "x"}, "b": "v.wav"},
             {"id": "wrong", "a": "v.wav", "b_text": {"audio": "v.wav"}}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "p.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 3 and out[0]["score"] == out[1]["score"] and out[0]["pair"] == "audio-audio"
    assert "needs an 'audio' field" in out[2]["error"]["message"]
    assert "needs a 'text' field" in out[3]["error"]["message"]


def test_a_duration_past_the_file_end_reads_to_the_end_as_in_embed(tmp_path):
    """A side {"audio", "start", "duration"} running past the file's end reads up to the end, as
    clsp embed reads the same record (a duration is often a source clip's, stale); the end that
    start + duration gave was taken for an explicit 'end' past the file (an error record)."""
    tone(tmp_path / "long.wav", 150, seconds=3.0)
    tone(tmp_path / "v.wav", 220)
    pairs = [{"id": "dur", "a": {"audio": "long.wav", "start": 1.0, "duration": 9.0}, "b": "v.wav"},
             {"id": "open", "a": {"audio": "long.wav", "start": 1.0}, "b": "v.wav"},
             {"id": "end", "a": {"audio": "long.wav", "start": 1.0, "end": 10.0}, "b": "v.wav"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "p.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert "error" not in out[0], out[0]
    assert out[0]["score"] == pytest.approx(out[1]["score"], abs=1e-6)
    assert "past the end of the file" in out[2]["error"]["message"]  # an explicit end past it is still an error
    (tmp_path / "d.jsonl").write_text(json.dumps(pairs[0]["a"]) + "\n")
    e = cli("embed", "d.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr


def test_a_pair_records_error_field_is_kept_under_metadata_of_its_score(tmp_path):
    """A pair of `clsp embed` records with its own `error` note: the scored record carried it at
    the top, beside its score, and read as a failed record."""
    tone(tmp_path / "a.wav", 150)
    tone(tmp_path / "b.wav", 300, noise=0.1)
    e = cli("embed", "-m", "tiny-random", "-q", cwd=tmp_path, stdin="a.wav\nb.wav\n")
    a, b = (json.loads(line) for line in e.stdout.splitlines())
    note = {"type": "Flag", "message": "noisy take"}
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "p1", "a": a, "b": b, "error": note}) + "\n")
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (rec,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert "error" not in rec and -1 <= rec["score"] <= 1 and rec["metadata"] == {"error": note}


def test_an_upstream_error_record_passes_its_reason_on(tmp_path):
    (tmp_path / "up.jsonl").write_text(json.dumps({"id": "u1", "error": {"type": "AudioError",
                                                                       "message": "x.wav: no such file"}}) + "\n")
    p = cli("similarity", "up.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 3
    [rec] = [json.loads(x) for x in p.stdout.splitlines()]
    assert rec["id"] == "u1" and rec["error"]["message"] == "pair 'u1' is an upstream error: x.wav: no such file"


def test_a_lhotse_cut_side_is_decoded_by_lhotse_as_embed_does(tmp_path):
    """A side that is a Lhotse cut (a mix, a speed-perturbed cut) is the audio ``clsp embed``
    reads for that cut."""
    from lhotse import Recording

    tone(tmp_path / "a.wav", 150)
    tone(tmp_path / "b.wav", 300, noise=0.1)
    a, b = (Recording.from_file(tmp_path / n).to_cut() for n in ("a.wav", "b.wav"))
    mix, fast = a.mix(b, offset_other_by=0.2).with_id("mix1"), b.perturb_speed(1.1).with_id("speed1")
    (tmp_path / "cuts.jsonl").write_text("".join(json.dumps(c.to_dict()) + "\n" for c in (mix, fast)))
    e = cli("embed", "cuts.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    vm, vf = (np.array(json.loads(line)["embedding"]) for line in e.stdout.splitlines())
    pair = {"id": "p", "a": mix.to_dict(), "b_audio": fast.to_dict()}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair) + "\n")
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    [rec] = [json.loads(x) for x in p.stdout.splitlines()]
    assert rec["pair"] == "audio-audio"
    assert abs(rec["score"] - vm @ vf / np.linalg.norm(vm) / np.linalg.norm(vf)) < 1e-5


def test_the_fields_named_for_a_mistyped_key_leave_out_every_side_field(tmp_path):
    """Pairs given as a/b and as a_audio/b_text: the message lists the other fields only, and
    says that it leaves the sides out."""
    tone(tmp_path / "v1.wav", 150)
    pairs = [{"id": "p1", "a": "v1.wav", "b": "a calm voice", "rating": 3},
             {"id": "p2", "a_audio": "v1.wav", "b_text": "an angry voice", "rating": 1, "pair": "x"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "--human-key", "rating", "--group-key", "pairs",
            "-q", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "(the rated pairs' fields besides the two sides: id, pair, rating)" in p.stderr, p.stderr


def test_output_carries_absolute_audio_paths_and_scores_again_from_another_folder(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "out").mkdir()
    tone(tmp_path / "w" / "a.wav", 180, noise=0.05)
    pairs = [{"id": 1, "a": "w/a.wav", "b": "a calm voice", "rating": 3},
             {"id": 2, "a_audio": "w/a.wav", "b": {"audio": "w/a.wav", "start": 0.1}}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    first = cli("similarity", "pairs.jsonl", "--model", "tiny-random", "-q", "-o", "out/sim.jsonl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = [json.loads(line) for line in (tmp_path / "out" / "sim.jsonl").read_text().splitlines()]
    wav = str(tmp_path / "w" / "a.wav")
    assert out[0]["a"] == wav and out[0]["b"] == "a calm voice" and out[0]["rating"] == 3
    assert out[1]["a_audio"] == wav and out[1]["b"] == {"audio": wav, "start": 0.1}
    again = cli("similarity", "sim.jsonl", "--model", "tiny-random", "-q", cwd=tmp_path / "out")
    assert again.returncode == 0, again.stderr
    assert [json.loads(line)["score"] for line in again.stdout.splitlines()] == [r["score"] for r in out]


def test_a_device_or_fifo_side_on_the_command_line_is_a_usage_error(tmp_path):
    import os

    tone(tmp_path / "v.wav", 220)
    os.mkfifo(tmp_path / "pipe.wav")
    for a, b, says in (("v.wav", "/dev/null", "/dev/null: not a regular file (a character device)"),
                       ("pipe.wav", "a calm voice", "pipe.wav: not a regular file (a FIFO)")):
        p = cli("similarity", a, b, "-m", "tiny-random", cwd=tmp_path)
        assert p.returncode == 2 and says in p.stderr and not p.stdout, p.stderr


def test_cut_sides_are_written_absolute_and_read_under_audio_root(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    (tmp_path / "sub").mkdir()
    tone(tmp_path / "sub" / "a.wav", 180, noise=0.05)
    cut = lhotse.Recording.from_file(tmp_path / "sub" / "a.wav", recording_id="a").to_cut().to_dict()
    cut["recording"]["sources"][0]["source"] = "a.wav"  # relative, as a manifest made in sub/ holds it
    (tmp_path / "sub" / "pairs.jsonl").write_text(json.dumps({"id": "p", "a": cut, "b": "a calm voice"}) + "\n")
    first = cli("similarity", "pairs.jsonl", "--model", "tiny-random", "-q", "-o", "../out.jsonl", cwd=tmp_path / "sub")
    assert first.returncode == 0, first.stderr
    out = json.loads((tmp_path / "out.jsonl").read_text())
    assert out["a"]["recording"]["sources"][0]["source"] == str(tmp_path / "sub" / "a.wav")
    again = cli("similarity", "out.jsonl", "--model", "tiny-random", "-q", cwd=tmp_path)
    assert again.returncode == 0 and json.loads(again.stdout)["score"] == out["score"], again.stderr
    rooted = cli("similarity", "sub/pairs.jsonl", "--audio-root", "sub", "--model", "tiny-random", "-q", cwd=tmp_path)
    assert rooted.returncode == 0 and json.loads(rooted.stdout)["score"] == out["score"], rooted.stdout


def test_group_values_of_two_json_kinds_with_one_text_stay_two_groups(tmp_path):
    """The number 1 and the string "1" (a missing field and "null") were merged into one group."""
    from clsp.results import group_names

    assert group_names([1, "1", None, "null", True, "x", 2]) == ["1 (number)", "1", "null (null)", "null",
                                                                  "true", "x", "2"]
    assert group_names([1, "1", "1 (number)"]) == ["1 (number 2)", "1", "1 (number)"]  # a name no value has
    tone(tmp_path / "v1.wav", 150)
    pairs = [{"a": "v1.wav", "b": f"voice {n}", "rating": n, "g": g} for n, g in enumerate([1, 1, 1, "1", "1", "1"])]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "pairs.jsonl", "-m", "tiny-random", "--human-key", "rating", "--group-key", "g",
            "--n-boot", "0", "-q", cwd=tmp_path)
    groups = json.loads(p.stdout.splitlines()[-1])["summary"]["groups"]
    assert p.returncode == 0 and {g: r["n"] for g, r in groups.items()} == {"1": 3, "1 (number)": 3}, groups


def test_a_key_only_failed_pairs_have_is_no_typo_and_a_group_key_no_rated_pair_has_writes_nothing(tmp_path):
    """A --human-key that only a pair that failed (a missing file) had was called a typo (exit 2,
    the run lost); a --group-key that no rated pair has let every record out before its usage error."""
    tone(tmp_path / "v1.wav", 150)
    tone(tmp_path / "v2.wav", 220)
    pairs = [{"a": "gone.wav", "b": "a calm voice", "r": 3}, {"a": "v1.wav", "b": "a calm voice"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in pairs))
    p = cli("similarity", "p.jsonl", "-m", "tiny-random", "--human-key", "r", "--n-boot", "0", "-q", cwd=tmp_path)
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 3 and "error" in out[0] and out[1]["pair"] == "audio-text", p.stderr
    assert out[-1]["summary"]["overall"]["n"] == 0 and out[-1]["summary"]["failed"] == 1
    grouped = [{"a": "v1.wav", "b": "a calm voice", "r": 3}, {"a": "v2.wav", "b": "an angry voice", "r": 4},
               {"a": "v1.wav", "b": "v2.wav", "grp": "x"}]  # only the unrated pair has grp
    (tmp_path / "g.jsonl").write_text("".join(json.dumps(x) + "\n" for x in grouped))
    for key in ("grp", "nope"):
        p = cli("similarity", "g.jsonl", "-m", "tiny-random", "--human-key", "r", "--group-key", key, "-q", cwd=tmp_path)
        assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
        assert f"--group-key '{key}': no rated pair record has this field (the rated pairs' fields besides the two " \
               "sides: id, r)" in p.stderr, p.stderr


def test_a_rating_written_as_text_must_be_a_plain_decimal():
    """"1_0" counted as a rating of 10 and "١" (Arabic-Indic one) as 1: Python's float() takes them,
    where every other number written as text in a record must be a plain ASCII decimal."""
    from clsp.similarity_eval import numeric_rating

    assert [numeric_rating(v) for v in (3, 2.5, "4", "-1.5e1", " 4", "1_0", "\u0661", "0x3", "nan", "inf", True)] == \
        [3.0, 2.5, 4.0, -15.0, None, None, None, None, None, None, None]
