"""``clsp merge`` reads a shard's inline vectors as every other vector reader does: booleans,
strings, nested lists, NaN and a wrong width are refused naming the shard and the record,
never merged as numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clsp_cli.app import app
from tests.conftest import write_wav

EMBED = ("-m", "tiny-random", "--max-seconds", "3")


def clsp(*args: str, code: int = 0):
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return res


@pytest.fixture
def shards(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    lines = []
    for i in range(4):
        write_wav(tmp_path / f"c{i}.wav", 0.5 + 0.2 * i, 120 + 31 * i, seed=i)
        lines.append(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav"}))
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n")
    for i in range(2):
        clsp("embed", "list.jsonl", *EMBED, "-q", "--shard", f"{i}/2", "-o", "q-{shard}.jsonl")
    return tmp_path


def _edit_first(path: Path, value) -> None:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    recs[0]["embedding"] = value(recs[0]["embedding"])
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.mark.parametrize("value, reason", [
    (lambda v: [True] + v[1:], "a boolean"),
    (lambda v: ["1_0"] + v[1:], "a string"),
    (lambda v: "0.5", "not a list"),
    (lambda v: [v], "flat"),
    (lambda v: v[:-1], "values"),
    (lambda v: [float("nan")] + v[1:], "NaN"),
    (lambda v: [1e39] + v[1:], "float32"),
])
def test_a_bad_inline_vector_in_a_shard_is_refused_by_name(shards, value, reason):
    shard = next(p for p in sorted(shards.glob("q-*.jsonl")))
    _edit_first(shard, value)
    res = clsp("merge", *sorted(str(p) for p in shards.glob("q-*.jsonl")), "-o", "all.jsonl", code=1)
    assert reason in res.output and "c0" in res.output and shard.name in res.output, res.output
    assert not (shards / "all.jsonl").exists()


def test_good_shards_still_merge_to_the_exact_vectors(shards):
    clsp("merge", *sorted(str(p) for p in shards.glob("q-*.jsonl")), "-o", "all.jsonl")
    merged = {r["id"]: r["embedding"] for r in map(json.loads, (shards / "all.jsonl").read_text().splitlines())}
    for p in shards.glob("q-*.jsonl"):
        for r in map(json.loads, p.read_text().splitlines()):
            assert np.array_equal(np.float32(merged[r["id"]]), np.float32(r["embedding"]))
