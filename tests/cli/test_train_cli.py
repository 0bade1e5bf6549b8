"""``clsp train`` end to end on a corpus with known styles: SIGTERM writes a checkpoint and
exits with 75, ``--resume latest`` finishes the run, and validation retrieval ends far
above chance (8 styles: chance R@1 = 0.125). Nothing is written to stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from clsp.train.toy_corpus import write_toy_splits
from tests.helpers.assets import REPO

from tests.conftest import CLSP

CONFIG = REPO / "examples" / "configs" / "tiny.yaml"


def _metrics(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_train_sigterm_resume_and_learn(tmp_path: Path) -> None:
    train, valid = write_toy_splits(tmp_path / "toy")
    out = tmp_path / "exp"
    args = [CLSP, "train", str(CONFIG), f"data.train={train}", f"data.valid={valid}", "valid_every=0",
            "checkpoint_every=0", "--output-dir", str(out), "--max-steps", "80"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not any(m.get("step", 0) >= 20 for m in _metrics(out)):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-3000:]
    assert stdout == ""
    stopped = sorted((out / "checkpoints").glob("step-*"))
    assert len(stopped) == 1 and 20 <= int(stopped[0].name.split("-")[1]) < 80

    done = subprocess.run(args + ["--resume", "latest"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""
    steps = [m["step"] for m in _metrics(out) if "loss" in m]
    assert steps[-1] == 80 and sorted(set(steps)) == list(range(10, 81, 10))
    final = [m for m in _metrics(out) if "valid/clips" in m][-1]
    assert final["valid/clips"] == 8
    r1 = [final[f"valid/{kind}/{d}_R@1"] for kind in ("global", "finegrained") for d in ("s2t", "t2s")]
    assert min(r1) >= 0.375 and sum(r1) / 4 >= 0.6, final  # chance is 0.125
    assert (out / "checkpoints" / "step-00000080" / "model" / "model.safetensors").exists()
