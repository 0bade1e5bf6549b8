"""Edges of sharded runs and their merge: a closed stdout, a refused merge to a stream, a pipe
given as a shard, a run onto another run's temporary file, and malformed shard values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsp.errors import ConfigError
from clsp.shards import resolve_shard, shard_from_env
from clsp_cli.app import app
from tests.conftest import write_wav
from tests.helpers.assets import REPO

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
               "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "SLURM_PROCID", "SLURM_NTASKS")
EMBED = ("-m", "tiny-random", "--max-seconds", "3")


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    for key in LAUNCH_VARS:
        monkeypatch.delenv(key, raising=False)


def clsp(*args: str, code: int | tuple = 0):
    res = CliRunner().invoke(app, list(args))
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (res.exit_code, res.output, res.exception)
    return res


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch) -> Path:
    """4 short clips in list.jsonl (other.jsonl: the same clips, another order), and the 2
    shards of list.jsonl with --npy (p-*) and inline (q-*)."""
    monkeypatch.chdir(tmp_path)
    lines = []
    for i in range(4):
        write_wav(tmp_path / f"c{i}.wav", 0.5 + 0.2 * i, 120 + 31 * i, seed=i)
        lines.append(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav"}))
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "other.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    for i in range(2):
        clsp("embed", "list.jsonl", *EMBED, "-q", "--shard", f"{i}/2", "-o", "p-{shard}.jsonl", "--npy", "p-{shard}.npy")
        clsp("embed", "list.jsonl", *EMBED, "-q", "--shard", f"{i}/2", "-o", "q-{shard}.jsonl")
    return tmp_path


def test_merge_to_a_closed_stdout_says_its_npy_was_not_written(corpus):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first record (`| true`)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        res = subprocess.run([sys.executable, "-m", "clsp_cli.app", "--threads", "1", "merge", "p-0000-of-0002.jsonl",
                              "p-0001-of-0002.jsonl", "--npy", "m.npy"], stdout=write, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=corpus, timeout=120)
    finally:
        os.close(write)
    assert res.returncode == 1, res.stderr
    assert "stdout was closed before the run ended, so m.npy was not written" in res.stderr
    assert not [p.name for p in corpus.glob("m.npy*")]


def test_merge_to_a_fifo_whose_reader_closed_names_that_fifo(corpus):
    fifo = corpus / "ff"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'rb').close()"])  # gone before a record
    try:
        res = subprocess.run([sys.executable, "-m", "clsp_cli.app", "--threads", "1", "merge", "p-0000-of-0002.jsonl",
                              "p-0001-of-0002.jsonl", "-o", "ff", "--npy", "m.npy"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=corpus, timeout=120)
    finally:
        reader.wait(timeout=60)
    assert res.returncode == 1, res.stderr
    assert "ff: its reader closed that pipe before the run ended, so m.npy was not written" in res.stderr, res.stderr
    assert "stdout" not in res.stderr and not [p.name for p in corpus.glob("m.npy*")]


HOLD = """import sys
from clsp_cli.output import MatrixSink, RecordSink
sink = RecordSink(sys.argv[1]) if sys.argv[2] == "records" else MatrixSink(sys.argv[1], 4)
if sys.argv[2] == "records":
    sink.write({"id": "kept"})
    sink.flush()
print("ready", flush=True)
sys.stdin.read()
sink.discard()
"""


def hold(path: Path, kind: str) -> subprocess.Popen:
    """Another process writing ``path`` (a RecordSink or a MatrixSink), until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline() == "ready\n"
    return proc


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(60)


def test_a_run_onto_another_runs_partial_file_is_refused(corpus):
    held = hold(corpus / "r1.jsonl", "records")  # a run writing r1.jsonl, through r1.jsonl.partial
    try:
        res = clsp("embed", "list.jsonl", *EMBED, "-o", "r1.jsonl.partial", code=1)
        assert f"r1.jsonl.partial is in use by PID {held.pid}" in res.stderr
        res = clsp("merge", "q-0000-of-0002.jsonl", "q-0001-of-0002.jsonl", "--npy", "r1.jsonl.partial", code=1)
        assert f"is in use by PID {held.pid}" in res.stderr
        assert (corpus / "r1.jsonl.partial").read_text() == '{"id":"kept"}\n'
    finally:
        release(held)
    assert not [p.name for p in corpus.glob("r1.jsonl*")]
    held = hold(corpus / "m2.npy.partial", "matrix")  # and the other way round: a run writing X.partial
    try:
        res = clsp("merge", "p-0000-of-0002.jsonl", "p-0001-of-0002.jsonl", "-o", "x.jsonl", "--npy", "m2.npy", code=1)
        assert f"m2.npy.partial is in use by PID {held.pid}" in res.stderr
        assert not (corpus / "x.jsonl").exists() and not (corpus / "m2.npy").exists()
    finally:
        release(held)


@pytest.mark.parametrize("case", ["other input", "cut short"])
def test_a_merge_to_stdout_that_is_refused_writes_no_record(corpus, case):
    if case == "other input":
        clsp("embed", "other.jsonl", *EMBED, "-q", "--shard", "1/2", "-o", "bad-{shard}.jsonl")
        bad = "bad-0001-of-0002.jsonl"
    else:  # a shard whose run was killed: its last record, with the end-of-input mark, is missing
        bad = "bad.jsonl"
        (corpus / bad).write_text((corpus / "q-0001-of-0002.jsonl").read_text().splitlines(keepends=True)[0])
    res = clsp("merge", "q-0000-of-0002.jsonl", bad, code=1)
    assert res.stdout == ""
    assert "different input" in res.stderr or "end-of-input mark" in res.stderr
    res = clsp("merge", "q-0000-of-0002.jsonl", bad, "-o", "x.jsonl", code=1)
    assert not [p.name for p in corpus.glob("x.jsonl*")]


def test_a_pipe_given_as_a_shard_is_read(corpus):
    want = clsp("merge", "q-0000-of-0002.jsonl", "q-0001-of-0002.jsonl", "-q").stdout
    fifo = corpus / "shard0.fifo"
    os.mkfifo(fifo)
    data = (corpus / "q-0000-of-0002.jsonl").read_bytes()

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    res = clsp("merge", str(fifo), "q-0001-of-0002.jsonl", "-q")
    writer.join(5)
    assert res.stdout == want and len(want.splitlines()) == 4


def test_an_empty_or_malformed_shard_is_a_usage_error(corpus):
    for spec in ("", " ", "1_0/20", "+1/2", "٠/2"):
        with pytest.raises(ConfigError, match="expected I/N"):
            resolve_shard(spec)
    assert resolve_shard(None) is None and resolve_shard("3/8").name == "0003-of-0008"
    res = clsp("embed", "list.jsonl", *EMBED, "--shard", "", "-o", "out.jsonl", code=2)
    assert "--shard is empty" in res.stderr and not [p.name for p in corpus.glob("out.jsonl*")]
    clsp("embed", "list.jsonl", *EMBED, "--shard", "1_0/20", "-o", "out.jsonl", code=2)
    for env in ({"RANK": "1_0", "WORLD_SIZE": "20"}, {"RANK": "0", "WORLD_SIZE": " 2"},
                {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "+4"}):
        with pytest.raises(ConfigError, match="plain digits"):
            shard_from_env(env)


def test_an_array_that_is_not_contiguous_names_the_array_to_use():
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
           "SLURM_ARRAY_TASK_MAX": "6"}
    with pytest.raises(ConfigError, match=r"such as --array=0-3$"):
        shard_from_env(env)


def test_a_partial_output_of_another_shard_is_not_replaced(corpus):
    """Shard 0 killed mid-run keeps out.jsonl.partial (which --resume continues): shard 1 onto
    the same -o is refused as it is for shard 0's published output."""
    (corpus / "q-0000-of-0002.jsonl").rename(corpus / "out.jsonl.partial")
    (corpus / "out.jsonl.lock").write_text('{"pid": 4242, "run": {"shard": "0000-of-0002"}}\n')  # its run record
    before = (corpus / "out.jsonl.partial").read_text()
    res = clsp("embed", "list.jsonl", *EMBED, "--shard", "1/2", "-o", "out.jsonl", code=2)
    assert "out.jsonl.partial holds the records of shard 0000-of-0002" in res.stderr
    assert "would replace them" in res.stderr
    assert (corpus / "out.jsonl.partial").read_text() == before and not (corpus / "out.jsonl").exists()
