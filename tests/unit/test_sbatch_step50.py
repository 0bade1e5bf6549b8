"""examples/slurm/embed.sbatch reruns one task of a stepped array (--array=0-14:2) as the shard
that task embedded in the whole array, and refuses a task that is not one of its steps."""

from __future__ import annotations

import pytest

from tests.unit.test_misc49 import ONE_TASK, run_sbatch, shard_of


@pytest.mark.parametrize("task, first, shard", [("6", "0", "3/8"), ("14", "0", "7/8"), ("7", "1", "3/8")])
def test_sbatch_reruns_one_task_of_a_stepped_array(tmp_path, task, first, shard):
    res, called = run_sbatch(tmp_path, SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN=task, SLURM_ARRAY_TASK_MAX=task,
                             **{**ONE_TASK, "SHARDS": "8", "ARRAY_STEP": "2", "ARRAY_FIRST": first})
    assert res.returncode == 0, res.stderr
    assert shard_of(called) == shard


@pytest.mark.parametrize("extra", [{"ARRAY_STEP": "2", "SLURM_ARRAY_TASK_ID": "5"}, {"ARRAY_STEP": "0"},
                                   {"ARRAY_STEP": "two"}, {"ARRAY_STEP": "2", "SLURM_ARRAY_TASK_ID": "16"}])
def test_sbatch_refuses_a_task_off_the_steps(tmp_path, extra):
    env = {**ONE_TASK, "SHARDS": "8", "SLURM_ARRAY_TASK_ID": "6", **extra}
    res, called = run_sbatch(tmp_path, SLURM_ARRAY_TASK_MIN=env["SLURM_ARRAY_TASK_ID"],
                             SLURM_ARRAY_TASK_MAX=env["SLURM_ARRAY_TASK_ID"], **env)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "ARRAY_STEP" in res.stderr, res.stderr
    assert not called.exists()
