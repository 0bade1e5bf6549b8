"""Sharded `clsp embed` (explicit, job-array and torchrun shards) and `clsp merge` back to one output."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clsp_cli.app import app
from tests.conftest import write_wav
from tests.helpers.assets import REPO

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
               "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "SLURM_PROCID", "SLURM_NTASKS")


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    for key in LAUNCH_VARS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """13 records: clips of 0.4-2.6 s, one long enough for two windows, one missing file."""
    lines = []
    for i in range(13):
        if i == 7:
            lines.append(json.dumps({"id": "gone", "audio": "gone.wav"}))
            continue
        write_wav(tmp_path / f"c{i}.wav", 5.0 if i == 4 else 0.4 + 0.2 * i, 100 + 17 * i, seed=i)
        lines.append(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav", "n": i}))
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def clsp(*args: str, env: dict | None = None, code: int | tuple = (0, 3)):
    res = CliRunner().invoke(app, list(args), env=env)
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (res.exit_code, res.output, res.exception)
    return res


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def vectors(recs: list[dict], npy: Path | None = None) -> np.ndarray:
    mat = np.load(npy) if npy else None
    return np.stack([np.asarray(r["embedding"]) if "embedding" in r else mat[r["row"]] for r in recs if "error" not in r])


def assert_same(merged: list[dict], single: list[dict], m_npy=None, s_npy=None):
    """Same ids, order, fields and provenance; embeddings within 1e-6 (batches differ)."""
    assert [r["id"] for r in merged] == [r["id"] for r in single]
    strip = [{k: v for k, v in r.items() if k not in ("embedding", "row", "row_sha256")} for r in merged]
    assert strip == [{k: v for k, v in r.items() if k not in ("embedding", "row", "row_sha256")} for r in single]
    assert [("embedding" in r, "row" in r) for r in merged] == [("embedding" in r, "row" in r) for r in single]
    np.testing.assert_allclose(vectors(merged, m_npy), vectors(single, s_npy), atol=1e-6)


EMBED = ("embed", "list.jsonl", "-m", "tiny-random", "--max-seconds", "3", "--long-audio", "windows")


def test_job_array_shards_with_a_killed_and_resumed_task_merge_to_the_single_run(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    clsp(*EMBED, "-o", "single.jsonl")
    for task in range(8):
        env = {"SLURM_ARRAY_TASK_ID": str(task + 1), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}
        res = clsp(*EMBED, "--shard", "auto", "-o", "parts/part-{shard}.jsonl", env=env)
        assert f"shard {task:04d}-of-0008 from SLURM_ARRAY_TASK_ID={task + 1}" in res.stderr
    # task 4 is interrupted after its first input record: FILE.partial and its lock are left
    from clsp.embed import AudioEmbedder

    part = corpus / "parts" / "part-0004-of-0008.jsonl"
    part.unlink()
    whole_run = AudioEmbedder.run

    def interrupted_run(self, items):
        for n, res in enumerate(whole_run(self, items)):
            if n == 1:
                raise KeyboardInterrupt
            yield res

    monkeypatch.setattr(AudioEmbedder, "run", interrupted_run)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}
    res = CliRunner().invoke(app, [*EMBED, "--shard", "auto", "-o", "parts/part-{shard}.jsonl"], env=env)
    assert res.exit_code not in (0, 3) and not part.exists()
    assert Path(str(part) + ".partial").exists() and Path(str(part) + ".lock").exists()
    monkeypatch.setattr(AudioEmbedder, "run", whole_run)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}  # requeued
    clsp(*EMBED, "--shard", "auto", "-o", "parts/part-{shard}.jsonl", "--resume", env=env)
    shards = sorted(str(p) for p in (corpus / "parts").glob("part-*.jsonl"))
    assert len(shards) == 8
    res = clsp("merge", *shards, "-o", "merged.jsonl", code=3)  # the missing file stays an error record
    merged, single = read(corpus / "merged.jsonl"), read(corpus / "single.jsonl")
    assert_same(merged, single)
    assert [r["id"] for r in merged if "error" in r] == ["gone"]


def test_npy_shards_merge_to_one_matrix_or_inline(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    clsp(*EMBED, "-o", "single.jsonl", "--npy", "single.npy")
    for i in range(3):
        clsp(*EMBED, "--shard", f"{i}/3", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    shards = [f"p-{i:04d}-of-0003.jsonl" for i in range(3)]
    moved = corpus / "moved"  # shard outputs moved together still find their matrices
    moved.mkdir()
    for name in shards + [s.replace(".jsonl", ".npy") for s in shards]:
        shutil.move(name, moved / name)
    clsp("merge", *[str(moved / s) for s in shards], "-o", "m.jsonl", "--npy", "m.npy", code=3)
    assert_same(read(corpus / "m.jsonl"), read(corpus / "single.jsonl"), corpus / "m.npy", corpus / "single.npy")
    no_check = lambda recs: [{k: v for k, v in r.items() if k != "row_sha256"} for r in recs]  # noqa: E731
    assert no_check(read(corpus / "m.jsonl")) == no_check(read(corpus / "single.jsonl"))  # rows and all
    from clsp.index.records import row_checksum

    mat = np.load(corpus / "m.npy")
    assert all(r["row_sha256"] == row_checksum(mat[r["row"]]) for r in read(corpus / "m.jsonl") if "row" in r)
    clsp("merge", *[str(moved / s) for s in shards], "-o", "inline.jsonl", code=3)
    inline = read(corpus / "inline.jsonl")
    np.testing.assert_allclose(vectors(inline), vectors(read(corpus / "single.jsonl"), corpus / "single.npy"), atol=1e-6)
    assert all("row" not in r for r in inline) and sum("embedding" in r for r in inline) == len(inline) - 1


@pytest.fixture
def four_shards(corpus, monkeypatch) -> list[Path]:
    monkeypatch.chdir(corpus)
    for i in range(4):
        clsp(*EMBED, "--shard", f"{i}/4", "-o", "q-{shard}.jsonl")
    return [corpus / f"q-{i:04d}-of-0004.jsonl" for i in range(4)]


def test_merge_refuses_missing_repeated_and_foreign_shards(four_shards, corpus, tmp_path):
    s = [str(p) for p in four_shards]
    res = clsp("merge", s[0], s[1], s[3], "-o", "x.jsonl", code=2)
    assert "0002-of-0004" in res.stderr and "missing" in res.stderr
    res = clsp("merge", *s, s[2], "-o", "x.jsonl", code=2)
    assert "0002-of-0004 given twice" in res.stderr
    clsp(*EMBED, "--shard", "1/3", "-o", "other.jsonl")
    res = clsp("merge", s[0], str(corpus / "other.jsonl"), "-o", "x.jsonl", code=2)
    assert "different shard counts" in res.stderr
    from clsp.models import save_model, tiny_model

    save_model(tiny_model(seed=1), corpus / "other-model")
    clsp(*EMBED[:3], str(corpus / "other-model"), *EMBED[4:], "--shard", "2/4", "-o", "foreign.jsonl")
    res = clsp("merge", s[0], s[1], str(corpus / "foreign.jsonl"), s[3], "-o", "x.jsonl", code=1)
    assert "different models" in res.stderr and "checksum" in res.stderr and "foreign.jsonl" in res.stderr
    assert not (corpus / "x.jsonl").exists()


def test_merge_refuses_shards_embedded_with_other_settings_and_a_folder(four_shards, corpus):
    s = [str(p) for p in four_shards]
    for option, value, named in (("--max-seconds", "1", "max_seconds: 3.0 vs 1.0"),
                                 ("--long-audio", "chunk-mean", "long_audio: 'windows' vs 'chunk-mean'")):
        at = list(EMBED).index(option)
        other = [*EMBED[:at + 1], value, *EMBED[at + 2:]]
        clsp(*other, "--shard", "2/4", "-o", "odd.jsonl")
        res = clsp("merge", s[0], s[1], str(corpus / "odd.jsonl"), s[3], "-o", "x.jsonl", code=1)
        assert "different settings" in res.stderr and named in res.stderr, res.stderr
        assert not (corpus / "x.jsonl").exists()
    clsp(*EMBED, "--dtype", "bfloat16", "--shard", "2/4", "-o", "bf16.jsonl")  # a precision of its own
    res = clsp("merge", s[0], s[1], str(corpus / "bf16.jsonl"), s[3], "-o", "x.jsonl", code=1)
    assert "different settings" in res.stderr and "dtype: 'float32' vs 'bfloat16'" in res.stderr, res.stderr
    merged = read(Path(clsp("merge", *s, "-o", "ok.jsonl") and corpus / "ok.jsonl"))
    assert not any("settings" in (r.get("provenance") or {}) for r in merged)  # as a single process writes them
    (corpus / "a-folder").mkdir()
    res = clsp("merge", s[0], str(corpus / "a-folder"), "-o", "y.jsonl", code=2)
    assert "is a folder, not a shard output file" in res.stderr


def test_merge_names_missing_and_repeated_records(four_shards, corpus):
    s = [str(p) for p in four_shards]
    lines = four_shards[1].read_text().splitlines(keepends=True)  # input records 1, 5, 9
    four_shards[1].write_text(lines[0] + lines[2])
    res = clsp("merge", *s, "-o", "x.jsonl", code=1)
    assert "input record 5 is missing from shard 0001-of-0004" in res.stderr
    four_shards[1].write_text(lines[0] + lines[1] + lines[1] + lines[2])
    res = clsp("merge", *s, "-o", "x.jsonl", code=1)
    assert "input record 5" in res.stderr and "twice" in res.stderr
    four_shards[1].write_text("".join(lines[:2]))  # the last record of shard 1 gone, shard 2 goes on
    res = clsp("merge", *s, "-o", "x.jsonl", code=1)
    assert "input record 9 is missing from shard 0001-of-0004" in res.stderr
    plain = corpus / "plain.jsonl"
    clsp(*EMBED, "-o", str(plain))
    res = clsp("merge", str(plain), "-o", "x.jsonl", code=1)
    assert "no shard provenance" in res.stderr


def test_more_shards_than_records_and_usage_errors(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    (corpus / "two.txt").write_text("c0.wav\nc1.wav\n")
    for i in range(4):
        clsp("embed", "two.txt", "-m", "tiny-random", "-q", "--shard", f"{i}/4", "-o", "t-{shard}.jsonl")
    assert (corpus / "t-0003-of-0004.jsonl").read_text() == ""  # an empty shard is named by its file
    clsp("embed", "two.txt", "-m", "tiny-random", "-q", "-o", "t.jsonl")
    clsp("merge", *[f"t-{i:04d}-of-0004.jsonl" for i in range(4)], "-o", "tm.jsonl")
    assert_same(read(corpus / "tm.jsonl"), read(corpus / "t.jsonl"))
    res = clsp("embed", "two.txt", "-m", "tiny-random", "--shard", "auto", code=2)
    assert "RANK" in res.stderr and "SLURM_ARRAY_TASK_ID" in res.stderr
    res = clsp("embed", "two.txt", "-m", "tiny-random", "-o", "x-{shard}.jsonl", code=2)
    assert "{shard}" in res.stderr


@pytest.mark.slow
def test_torchrun_processes_each_embed_a_shard(corpus):
    """`torchrun --standalone --nproc_per_node 4 -m clsp_cli.app embed ... --shard auto` on CPU."""
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    good = [line for line in (corpus / "list.jsonl").read_text().splitlines() if "gone" not in line]
    (corpus / "good.jsonl").write_text("\n".join(good) + "\n")  # every rank exits 0, so torchrun does
    embed = ["embed", "good.jsonl", *EMBED[2:]]
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "4", "-m", "clsp_cli.app", *embed,
           "--shard", "auto", "-o", "r-{shard}.jsonl", "--npy", "r-{shard}.npy"]
    run = subprocess.run(cmd, cwd=corpus, env=env, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    for rank in range(4):
        assert f"shard {rank:04d}-of-0004 from torchrun RANK={rank}" in run.stderr.decode()
    single = subprocess.run([sys.executable, "-m", "clsp_cli.app", *embed, "-o", "s.jsonl"], cwd=corpus, env=env,
                            capture_output=True, timeout=300)
    assert single.returncode == 0, single.stderr.decode()
    merged = subprocess.run([sys.executable, "-m", "clsp_cli.app", "merge", *[f"r-{i:04d}-of-0004.jsonl" for i in range(4)],
                             "-q"], cwd=corpus, env=env, capture_output=True, timeout=300)
    assert merged.returncode == 0, merged.stderr.decode()
    out = [json.loads(line) for line in merged.stdout.decode().splitlines()]
    assert len(out) == 12 + 1  # 12 clips, one of them in two windows
    assert_same(out, read(corpus / "s.jsonl"))


def _command_lines(text: str) -> list[list[str]]:
    """The clsp command lines of a shell script, commented usage lines included, as argument
    lists from the subcommand on; continuations joined, shell variables made placeholders."""
    import re
    import shlex

    out = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip().lstrip("#").strip().split(" || ")[0].replace('"$@"', "")
        found = re.search(r"(^|\s)(clsp|-m clsp_cli\.app) (embed|merge|search)\b", line)
        if found:
            line = re.sub(r"\$\{(\w+)(:-[^}]*)?\}|\$(\w+)", "4", line[found.start(3):])
            out.append(shlex.split(line, comments=True))
    return out


def test_slurm_example_is_valid_shell_and_valid_clsp_commands():
    import click
    import typer

    path = REPO / "examples" / "slurm" / "embed.sbatch"
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --array=" in text
    script = _command_lines(text)
    assert [a[0] for a in script] == ["merge", "search", "embed", "embed"]  # usage lines, torchrun and plain runs
    readme = (path.parents[2] / "README.md").read_text().split("### Embedding at cluster scale")[1].split("\n### ")[0]
    documented = _command_lines(readme)
    assert [a[0] for a in documented] == ["embed", "merge", "search"]
    group = typer.main.get_command(app)
    for args in script + documented:
        cmd = group
        while hasattr(cmd, "commands"):  # a command group (search): descend to the subcommand
            name, args = args[0], args[1:]
            cmd = cmd.commands.get(name)
            assert cmd is not None, name
        ctx = cmd.make_context(cmd.name, list(args))  # unknown options and extra arguments raise here
        if cmd.name == "embed":
            shard = ctx.params["shard"]  # the script's "$SHARD" (a placeholder here): auto, or I/N with SHARDS=N
            assert shard in ("auto", "4") and "{shard}" in ctx.params["output"] and "{shard}" in ctx.params["npy"]
            assert ctx.params["resume"] or args not in script


def test_slurm_example_embeds_again_for_another_list_and_refuses_a_task_resubmitted_alone(corpus):
    import os
    import sys

    script = REPO / "examples" / "slurm" / "embed.sbatch"
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", SLURM_CPUS_PER_TASK="1",
               CLSP_THREADS="1")
    (corpus / "a.txt").write_text("c0.wav\nc1.wav\nc2.wav\n")
    (corpus / "b.txt").write_text("c3.wav\nc5.wav\nc6.wav\n")

    def task(listing: str, task_id: int, tasks: int = 2, **extra: str) -> subprocess.CompletedProcess:
        array = {"SLURM_ARRAY_TASK_ID": str(task_id), "SLURM_ARRAY_TASK_COUNT": str(tasks),
                 "SLURM_ARRAY_TASK_MIN": str(task_id if tasks == 1 else 0),
                 "SLURM_ARRAY_TASK_MAX": str(task_id if tasks == 1 else tasks - 1)}
        return subprocess.run(["bash", str(script), listing, "out", "-m", "tiny-random", "-q"], cwd=corpus,
                              env={**env, **array, **extra}, capture_output=True, text=True)

    for listing in ("a.txt", "b.txt"):  # another list into the same folder: embedded again, not skipped
        assert [task(listing, t).returncode for t in (0, 1)] == [0, 0]
    clsp("merge", str(corpus / "out" / "part-0000-of-0002.jsonl"), str(corpus / "out" / "part-0001-of-0002.jsonl"),
         "-o", str(corpus / "merged.jsonl"))
    assert [r["id"] for r in read(corpus / "merged.jsonl")] == ["c3.wav", "c5.wav", "c6.wav"]
    again = task("b.txt", 0)  # the same run again: skipped
    assert again.returncode == 0 and "already done" in again.stderr
    (corpus / "out" / "part-0001-of-0002.jsonl").unlink()
    alone = task("b.txt", 1, tasks=1)  # sbatch --array=1: an array of one task cannot tell the shard count
    assert alone.returncode == 2 and "only task of its array" in alone.stderr
    assert not (corpus / "out" / "part-0000-of-0001.jsonl").exists()
    assert task("b.txt", 1, tasks=1, SHARDS="2").returncode == 0  # given the array's size, it makes its shard
    clsp("merge", str(corpus / "out" / "part-0000-of-0002.jsonl"), str(corpus / "out" / "part-0001-of-0002.jsonl"),
         "-o", str(corpus / "merged2.jsonl"))
    assert (corpus / "merged2.jsonl").read_text() == (corpus / "merged.jsonl").read_text()


def test_shards_never_write_over_each_others_outputs(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    res = clsp(*EMBED, "--shard", "0/2", "-o", "p-{shard}.jsonl", "--npy", "one.npy", code=2)
    assert "--npy one.npy is one file for every shard" in res.stderr and not (corpus / "one.npy").exists()
    clsp(*EMBED, "-q", "--shard", "0/2", "-o", "same.jsonl")
    before = (corpus / "same.jsonl").read_text()
    res = clsp(*EMBED, "--shard", "1/2", "-o", "same.jsonl", code=2)
    assert "same.jsonl holds the records of shard 0000-of-0002; this run is shard 0001-of-0002" in res.stderr
    assert (corpus / "same.jsonl").read_text() == before
    clsp(*EMBED, "-q", "--shard", "0/2", "-o", "same.jsonl")  # the same shard again replaces its own output


def test_compressed_shards_merge_like_plain_ones(four_shards, corpus):
    import gzip

    s = [str(p) for p in four_shards]
    clsp("merge", *s, "-o", "plain.jsonl")
    packed = Path(s[1] + ".gz")
    packed.write_bytes(gzip.compress(Path(s[1]).read_bytes()))
    clsp("merge", s[0], str(packed), s[2], s[3], "-o", "packed.jsonl")
    assert (corpus / "packed.jsonl").read_text() == (corpus / "plain.jsonl").read_text()


def test_merge_refuses_shards_embedded_from_different_inputs(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    lines = (corpus / "list.jsonl").read_text().splitlines()
    (corpus / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    for i, source in ((0, "list.jsonl"), (1, "list.jsonl"), (2, "reversed.jsonl")):
        clsp("embed", source, *EMBED[2:], "--shard", f"{i}/3", "-o", "p-{shard}.jsonl")
    res = clsp("merge", *[f"p-{i:04d}-of-0003.jsonl" for i in range(3)], "-o", "x.jsonl", code=1)
    assert "input record 2" in res.stderr and "another input" in res.stderr and "p-0002-of-0003.jsonl" in res.stderr
    assert not (corpus / "x.jsonl").exists()


def test_merge_reads_the_matrix_that_holds_the_shards_rows(corpus, monkeypatch):
    """Shard outputs copied elsewhere, then the originals overwritten by a run on other input:
    the merge of the copies reads the copied matrices (their rows match the records)."""
    monkeypatch.chdir(corpus)
    clsp(*EMBED, "-o", "single.jsonl", "--npy", "single.npy")
    shards = [f"p-{i:04d}-of-0003.jsonl" for i in range(3)]
    for i in range(3):
        clsp(*EMBED, "--shard", f"{i}/3", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    (corpus / "copy").mkdir()
    for name in shards + [s.replace(".jsonl", ".npy") for s in shards]:
        shutil.copy(name, corpus / "copy" / name)
    lines = (corpus / "list.jsonl").read_text().splitlines()
    (corpus / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    for i in range(3):
        clsp("embed", "reversed.jsonl", *EMBED[2:], "--shard", f"{i}/3", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    clsp("merge", *[f"copy/{s}" for s in shards], "-o", "m.jsonl", "--npy", "m.npy", code=3)
    assert_same(read(corpus / "m.jsonl"), read(corpus / "single.jsonl"), corpus / "m.npy", corpus / "single.npy")
    np.save(corpus / "copy" / "p-0001-of-0003.npy", np.load(corpus / "p-0001-of-0003.npy"))  # no right matrix left
    res = clsp("merge", *[f"copy/{s}" for s in shards], "-o", "m2.jsonl", code=1)
    assert "row_sha256 differs" in res.stderr and not (corpus / "m2.jsonl").exists()


def assert_stale_refused(stderr: str) -> None:
    """12 of the 13 clips' rows moved; with the missing clip, 13 of 14 records fail (10 listed)."""
    skipped = [line for line in stderr.splitlines() if line.startswith("warning: skipped") and ": record " in line]
    assert len(skipped) == 10 and all("row_sha256 differs" in s or "gone" in s for s in skipped)
    assert re.search(r"\b14 records \(13 failed\)", stderr), stderr


def test_rows_of_a_matrix_another_run_overwrote_are_refused(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    lines = (corpus / "list.jsonl").read_text().splitlines()
    (corpus / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    clsp(*EMBED, "-o", "a.jsonl", "--npy", "shared.npy")
    clsp("search", "build", "a.jsonl", "--npy", "shared.npy", "-o", "good.idx", code=(0, 3))
    clsp("embed", "reversed.jsonl", *EMBED[2:], "-o", "b.jsonl", "--npy", "shared.npy")  # the matrix overwritten
    res = clsp("search", "build", "a.jsonl", "--npy", "shared.npy", "-o", "stale.idx", code=3)
    assert_stale_refused(res.stderr)  # a clip whose row did not move is still right
    res = clsp("search", "query", "good.idx", "a.jsonl", "--npy", "shared.npy", "-k", "1", code=3)
    errors = [json.loads(line) for line in res.stdout.splitlines() if '"error"' in line]
    assert errors and all("row_sha256 differs" in e["error"]["message"] or "gone" in e["id"] for e in errors)
    stale = np.load(corpus / "shared.npy")
    for dtype in (">f4", "<f8"):  # same values, other storage: still checked
        np.save(corpus / "other.npy", stale.astype(dtype))
        res = clsp("search", "build", "a.jsonl", "--npy", "other.npy", "-o", f"x{dtype[1:]}.idx", code=3)
        assert_stale_refused(res.stderr)
    np.save(corpus / "half.npy", stale.astype("<f2"))  # narrower: cannot be checked, so refused with the fix
    res = clsp("search", "build", "a.jsonl", "--npy", "half.npy", "-o", "half.idx", code=(1, 3))
    assert "is float16" in res.stderr and "float32 matrix" in res.stderr


def test_merge_sees_records_missing_at_the_end_of_the_input(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    lines = (corpus / "list.jsonl").read_text().splitlines()
    (corpus / "short.jsonl").write_text("\n".join(lines[:12]) + "\n")  # the same input without its last record
    for i, source in ((0, "short.jsonl"), (1, "list.jsonl"), (2, "list.jsonl")):
        clsp("embed", source, *EMBED[2:], "--shard", f"{i}/3", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    shards = [f"p-{i:04d}-of-0003.jsonl" for i in range(3)]
    last = read(corpus / shards[1])[-1]["provenance"]
    assert last["input_total"] == 13 and len(last["input_final"]) == 16 and last["input_final"] != last["input_chain"]
    res = clsp("merge", *shards, "-o", "x.jsonl", "--npy", "x.npy", code=1)
    assert "different lengths" in res.stderr and "0000-of-0003: 12" in res.stderr
    assert not list(corpus.glob("x.*"))  # a refused merge leaves no .partial or .lock behind
    clsp("embed", "list.jsonl", *EMBED[2:], "--shard", "0/3", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    clsp("merge", *shards, "-o", "x.jsonl", code=3)
    assert len(read(corpus / "x.jsonl")) == 14  # 13 inputs, one of them two windows
    cut = (corpus / shards[1]).read_text().splitlines(keepends=True)
    (corpus / shards[1]).write_text("".join(cut[:-1]))  # its last record lost
    res = clsp("merge", *shards, "-o", "y.jsonl", code=1)
    assert "lacks the end-of-input mark" in res.stderr or "missing" in res.stderr


def test_merge_refuses_shards_that_were_all_cut_short(four_shards, corpus):
    """Every shard without its last records (tasks stopped by a time limit leave .partial
    outputs): no shard carries the end-of-input mark, so the records after the cuts would be
    lost without a word; refused, nothing written."""
    for p in four_shards:
        lines = p.read_text().splitlines(keepends=True)
        p.with_suffix(".cut").write_text("".join(lines[:1]))
    res = clsp("merge", *[str(p.with_suffix(".cut")) for p in four_shards], "-o", "all.jsonl", code=1)
    assert "no shard carries the end-of-input mark" in res.stderr and "--resume" in res.stderr
    assert not (corpus / "all.jsonl").exists()
    clsp("merge", *[str(p) for p in four_shards], "-o", "all.jsonl", code=3)  # the finished shards merge


def test_a_record_whose_embedding_and_row_disagree_is_refused(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    clsp(*EMBED, "-o", "r.jsonl", "--npy", "r.npy")
    recs = [r for r in read(corpus / "r.jsonl") if "row" in r]
    mat = np.load(corpus / "r.npy")
    both = [{**r, "embedding": mat[(r["row"] + 1) % len(mat)].tolist()} for r in recs]  # the next clip's vector
    (corpus / "both.jsonl").write_text("".join(json.dumps(r) + "\n" for r in both))
    for npy in ((), ("--npy", "r.npy")):
        res = clsp("search", "build", "both.jsonl", *npy, "-o", f"b{len(npy)}.idx", code=1)
        assert "not the vector its row_sha256 names" in res.stderr or "row_sha256 differs" in res.stderr
    same = [{**r, "embedding": mat[r["row"]].tolist()} for r in recs]  # agreeing: fine
    (corpus / "same.jsonl").write_text("".join(json.dumps(r) + "\n" for r in same))
    clsp("search", "build", "same.jsonl", "-o", "same.idx", code=0)


def test_merge_never_publishes_its_matrix_over_a_shard_matrix_it_reads(corpus, monkeypatch):
    monkeypatch.chdir(corpus)
    for i in range(2):
        clsp(*EMBED, "--shard", f"{i}/2", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
    shard_npy = corpus / "p-0000-of-0002.npy"
    before = shard_npy.read_bytes()
    res = clsp("merge", "p-0000-of-0002.jsonl", "p-0001-of-0002.jsonl", "-o", "m.jsonl", "--npy", str(shard_npy), code=2)
    assert "this run read that file" in res.output
    assert shard_npy.read_bytes() == before


def test_merge_tells_a_repeated_record_from_one_out_of_order_and_points_at_a_stopped_shard(corpus, monkeypatch):
    """A record repeated after others was called "out of order"; a missing shard whose stopped
    run's .partial output lies beside the others was only "missing"."""
    monkeypatch.chdir(corpus)
    for i in range(3):
        clsp("embed", "list.jsonl", *EMBED[2:], "--shard", f"{i}/3", "-o", "p-{shard}.jsonl")
    shards = [f"p-{i:04d}-of-0003.jsonl" for i in range(3)]
    good = (corpus / shards[0]).read_text().splitlines(keepends=True)
    (corpus / shards[0]).write_text("".join(good[:3] + good[1:2] + good[3:]))  # its 2nd record again after the 3rd
    res = clsp("merge", *shards, "-o", "x.jsonl", code=1)
    assert "appears twice in shard 0000-of-0003" in res.stderr and "out of order" not in res.stderr, res.stderr
    for repeat in (good[-1], good[0]):  # a record repeated at the shard's end: that shard named, not another
        (corpus / shards[0]).write_text("".join(good + [repeat]))
        res = clsp("merge", *shards, "-o", "x.jsonl", code=1)
        assert "appears twice in shard 0000-of-0003" in res.stderr and "missing" not in res.stderr, res.stderr
    (corpus / shards[0]).write_text("".join(good[:1] + good[2:3] + good[1:2] + good[3:]))  # swapped: out of order
    res = clsp("merge", *shards, "-o", "x.jsonl", code=1)
    assert "reordered?" in res.stderr and "appears twice" not in res.stderr, res.stderr
    (corpus / shards[0]).write_text("".join(good))
    (corpus / shards[1]).rename(corpus / (shards[1] + ".partial"))
    res = clsp("merge", shards[0], shards[2], "-o", "x.jsonl", code=2)
    assert "missing shard output(s) 0001-of-0003 of 3; beside the others lie" in res.stderr, res.stderr
    assert "p-0001-of-0003.jsonl.partial" in res.stderr and "--resume" in res.stderr
    (corpus / (shards[1] + ".partial")).unlink()
    res = clsp("merge", shards[0], shards[2], "-o", "x.jsonl", code=2)
    assert "missing shard output(s) 0001-of-0003 of 3" in res.stderr and "beside" not in res.stderr


def test_shards_written_to_stdout_carry_the_end_of_input_mark_and_merge(corpus, monkeypatch):
    """`clsp embed --shard I/N > part.jsonl` lacked the end-of-input mark (it was added by
    rewriting the output file), so merge refused every such shard as cut short."""
    monkeypatch.chdir(corpus)
    for i in range(3):
        res = clsp("embed", "list.jsonl", *EMBED[2:], "--shard", f"{i}/3")
        (corpus / f"out{i}.jsonl").write_text(res.stdout)
    last = read(corpus / "out2.jsonl")[-1]["provenance"]
    assert last["input_total"] == 13 and "input_final" in last
    assert all("input_total" not in r["provenance"] for r in read(corpus / "out2.jsonl")[:-1])
    clsp("merge", "out0.jsonl", "out1.jsonl", "out2.jsonl", "-o", "m.jsonl")
    clsp(*EMBED, "-o", "whole.jsonl")
    assert [r["id"] for r in read(corpus / "m.jsonl")] == [r["id"] for r in read(corpus / "whole.jsonl")]
