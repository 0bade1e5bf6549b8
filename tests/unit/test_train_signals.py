"""SIGTERM, SIGUSR1 or a first Ctrl-C (SIGINT) mid-training: a checkpoint at the current step,
then a resumed run ends with parameters bit-identical to an uninterrupted one (CPU, fp32,
deterministic); a second Ctrl-C stops at once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clsp.train.toy_corpus import write_toy_corpus
from tests.helpers.train_driver import run_training

N_STEPS, SIGNAL_AT = 7, 4


def _run(overrides, resume=None, signal_at=-1, sig=signal.SIGTERM):
    proc = run_training(overrides, resume, signal_at, sig)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_signal_checkpoints_and_resume_is_exact(tmp_path: Path, sig) -> None:
    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=2, min_seconds=0.3, max_seconds=0.6)
    common = [f"data.train={manifest}", "init_from=tiny-random", "seed=5", "deterministic=true", "device=cpu",
              "data.min_duration=0.1", "data.max_duration=1.0", "data.num_buckets=2", "data.max_batch_seconds=2.5",
              "data.shuffle_buffer=6", "log_every=1", "valid_every=0", "checkpoint_every=100",
              f"max_steps={N_STEPS}", "optim.warmup_steps=2", "optim.lr_encoder=1e-3", "data.num_workers=0"]
    ref = _run(common + [f"output_dir={tmp_path / 'ref'}"])
    assert ref == {"status": "finished", "step": N_STEPS}

    out = tmp_path / "preempted"
    first = _run(common + [f"output_dir={out}"], signal_at=SIGNAL_AT, sig=sig)
    assert first["status"] == "preempted" and first["step"] >= SIGNAL_AT
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved == [f"step-{first['step']:08d}"]  # written on the signal, not on the schedule

    resumed = _run(common + [f"output_dir={out}"], resume="latest")
    assert resumed == {"status": "finished", "step": N_STEPS}
    final = f"checkpoints/step-{N_STEPS:08d}/model/model.safetensors"
    want, got = load_file(str(tmp_path / "ref" / final)), load_file(str(out / final))
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_a_second_ctrl_c_stops_at_once_and_other_signals_do_not():
    """Ctrl-C once asks for a checkpoint (a long step or validation may follow); a second is
    the user's "now": ``KeyboardInterrupt``. A SIGTERM after a Ctrl-C leaves it a request."""
    import os

    from clsp.train.stop import StopRequest

    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal == signal.SIGINT
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGTERM
