"""Run training in a child process that signals itself at a given step (fault tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.helpers.assets import REPO

ROOT = REPO

DRIVER = """
import json, os, signal, sys, torch
torch.set_num_threads(1)
from clsp.train import load_config, train
args = json.loads(sys.argv[1])
cfg = load_config(None, args["overrides"])
def on_log(record):
    if record["step"] == args["signal_at"]:
        os.kill(os.getpid(), args["signal"])
result = train(cfg, resume=args["resume"], on_log=on_log)
print(json.dumps({"status": result.status, "step": result.step}))
"""


def run_training(overrides: list[str], resume: str | None = None, signal_at: int = -1,
                 sig: int = signal.SIGTERM) -> subprocess.CompletedProcess:
    """Train with ``overrides`` in a subprocess; send ``sig`` to itself after step ``signal_at``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    args = json.dumps({"overrides": overrides, "resume": resume, "signal_at": signal_at, "signal": int(sig)})
    return subprocess.run([sys.executable, "-c", DRIVER, args], env=env, capture_output=True, text=True, timeout=300)
