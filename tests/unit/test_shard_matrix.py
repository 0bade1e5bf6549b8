"""Two shard runs given one ``--npy`` file: the second is refused before any work, naming the
shard whose records point into that matrix (it would have left them pointing at its rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clsp_cli.app import app
from tests.conftest import write_wav

EMBED = ("-m", "tiny-random", "--max-seconds", "3", "-q")


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID",
                "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)


def _clsp(*args):
    return CliRunner().invoke(app, list(args))


def _four_clips(folder: Path) -> None:
    """c0-c3.wav of 0.5-1.1 s and list.jsonl naming them, in ``folder``."""
    lines = []
    for i in range(4):
        write_wav(folder / f"c{i}.wav", 0.5 + 0.2 * i, 120 + 31 * i, seed=i)
        lines.append(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav"}))
    (folder / "list.jsonl").write_text("\n".join(lines) + "\n")


def test_a_second_shard_may_not_replace_the_first_shards_matrix(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    _four_clips(tmp_path)
    first = _clsp("embed", "list.jsonl", *EMBED, "--shard", "0/2", "-o", "out/a0.jsonl", "--npy", "out/m.npy")
    assert first.exit_code == 0, first.output
    before = np.load(tmp_path / "out" / "m.npy").copy()
    second = _clsp("embed", "list.jsonl", *EMBED, "--shard", "1/2", "-o", "out/a1.jsonl", "--npy", "out/m.npy")
    assert second.exit_code == 2, second.output
    assert "is the matrix of shard 0000-of-0002" in second.output and "a0.jsonl" in second.output
    assert np.array_equal(np.load(tmp_path / "out" / "m.npy"), before) and not (tmp_path / "out" / "a1.jsonl").exists()
    # the same shard run again (a rerun after a failure) still replaces its own matrix
    again = _clsp("embed", "list.jsonl", *EMBED, "--shard", "0/2", "-o", "out/a0.jsonl", "--npy", "out/m.npy")
    assert again.exit_code == 0, again.output
    # to stdout, the matrix is checked too
    to_stdout = _clsp("embed", "list.jsonl", *EMBED, "--shard", "1/2", "--npy", "out/m.npy")
    assert to_stdout.exit_code == 2 and "is the matrix of shard 0000-of-0002" in to_stdout.output


def test_a_shared_matrix_is_refused_wherever_the_first_shards_records_lie(tmp_path: Path, monkeypatch):
    """The first shard's records in another folder (or on stdout redirected elsewhere) were not
    found, so the second shard replaced the matrix they point into."""
    monkeypatch.chdir(tmp_path)
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    _four_clips(tmp_path)
    first = _clsp("embed", "list.jsonl", *EMBED, "--shard", "0/2", "-o", "a/p0.jsonl", "--npy", "m.npy")
    assert first.exit_code == 0, first.output
    before = np.load(tmp_path / "m.npy").copy()
    for out in (("-o", "b/p1.jsonl"), ()):
        second = _clsp("embed", "list.jsonl", *EMBED, "--shard", "1/2", *out, "--npy", "m.npy")
        assert second.exit_code == 2, second.output
        assert "--npy m.npy exists, and this shard's output" in second.output and "remove m.npy first" in second.output
        assert np.array_equal(np.load(tmp_path / "m.npy"), before) and not (tmp_path / "b" / "p1.jsonl").exists()
    again = _clsp("embed", "list.jsonl", *EMBED, "--shard", "0/2", "-o", "a/p0.jsonl", "--npy", "m.npy")
    assert again.exit_code == 0, again.output  # its own matrix: replaced on a rerun
    alone = _clsp("embed", "list.jsonl", *EMBED, "-o", "b/all.jsonl", "--npy", "m.npy")
    assert alone.exit_code == 0, alone.output  # a run that is no shard replaces a file as any output does


def test_merge_of_a_partial_output_whose_matrix_was_never_written_says_to_resume(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "c0.wav", 0.6, 140, seed=0)
    (tmp_path / "list.jsonl").write_text(json.dumps({"id": "c0", "audio": "c0.wav"}) + "\n")
    done = _clsp("embed", "list.jsonl", *EMBED, "--shard", "0/1", "-o", "p.jsonl", "--npy", "p.npy")
    assert done.exit_code == 0, done.output
    (tmp_path / "p.jsonl").rename(tmp_path / "p.jsonl.partial")  # as a stopped run leaves it: no matrix yet
    (tmp_path / "p.npy").unlink()
    merged = _clsp("merge", "p.jsonl.partial", "-o", "m.jsonl", "-q")
    assert merged.exit_code == 2, merged.output
    assert "the .partial output of a stopped run" in merged.output and "--resume" in merged.output


def test_merge_of_two_runs_of_other_models_names_the_models_not_a_shard_given_twice(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "c0.wav", 0.6, 140, seed=0)
    (tmp_path / "list.jsonl").write_text(json.dumps({"id": "c0", "audio": "c0.wav"}) + "\n")
    for name, model in (("a", "tiny-random"), ("b", "default")):
        done = _clsp("embed", "list.jsonl", "-m", model, "-q", "--shard", "0/1", "-o", f"{name}.jsonl")
        assert done.exit_code == 0, done.output
    merged = _clsp("merge", "a.jsonl", "b.jsonl", "-o", "m.jsonl", "-q")
    assert merged.exit_code == 1 and "different models" in merged.output and "given twice" not in merged.output
