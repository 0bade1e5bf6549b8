"""SIGKILL at step k, resume from the newest checkpoint, train to step n: the parameters are
bit-identical to an uninterrupted run (CPU, fp32, deterministic), with DataLoader workers
in the interrupted runs and none in the reference (the batch order must not depend on them)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clsp.train.toy_corpus import write_toy_corpus
from tests.helpers.train_driver import run_training

N_STEPS, KILL_AT, CHECKPOINT_EVERY = 8, 5, 3

def _run(overrides: list[str], resume: str | None, kill_at: int = -1) -> subprocess.CompletedProcess:
    return run_training(overrides, resume, signal_at=kill_at, sig=signal.SIGKILL)


def _train_here(overrides: list[str], resume: str | None):
    """Train in this process (single thread, deterministic), restoring torch's global settings."""
    from clsp.train import load_config, train

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    try:
        return train(load_config(None, overrides), resume=resume)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=2, min_seconds=0.3, max_seconds=0.6)
    common = [f"data.train={manifest}", "init_from=tiny-random", "seed=3", "deterministic=true", "device=cpu",
              "data.min_duration=0.1", "data.max_duration=1.0", "data.num_buckets=2", "data.max_batch_seconds=2.5",
              "data.shuffle_buffer=6", "log_every=1", "valid_every=0", f"checkpoint_every={CHECKPOINT_EVERY}",
              f"max_steps={N_STEPS}", "optim.warmup_steps=2", "optim.lr_encoder=1e-3", "optim.accumulation=2"]
    ref = _train_here(common + [f"output_dir={tmp_path / 'ref'}", "data.num_workers=0"], None)
    assert ref.status == "finished" and ref.step == N_STEPS

    out = tmp_path / "interrupted"
    killed = _run(common + [f"output_dir={out}", "data.num_workers=1"], None, kill_at=KILL_AT)
    assert killed.returncode == -9, killed.stderr[-3000:]
    done = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert done == [f"step-{CHECKPOINT_EVERY:08d}"]
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(epochs) >= 1  # the run crossed an epoch boundary before it was killed

    resumed = _train_here(common + [f"output_dir={out}", "data.num_workers=1"], "latest")
    assert resumed.status == "finished" and resumed.step == N_STEPS
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, N_STEPS + 1))  # the killed run's steps after its checkpoint are not kept twice

    final = f"checkpoints/step-{N_STEPS:08d}/model/model.safetensors"
    want, got = load_file(str(tmp_path / "ref" / final)), load_file(str(out / final))
    assert want.keys() == got.keys()
    first = load_file(str(out / f"checkpoints/step-{CHECKPOINT_EVERY:08d}/model/model.safetensors"))
    assert any(not torch.equal(first[k], want[k]) for k in want)  # training moved the weights
    for key in want:
        assert torch.equal(want[key], got[key]), key


def _small_run(tmp_path: Path) -> tuple[str, Path, list[str]]:
    """(manifest, output dir, overrides) of a few-clip run from tiny-random, checkpoints every 2 steps."""
    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    out = tmp_path / "run"
    return manifest, out, [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.min_duration=0.1",
                           "data.max_duration=1.0", "data.num_workers=0", "log_every=1", "valid_every=0",
                           "checkpoint_every=2", f"output_dir={out}"]


def test_a_folder_with_another_run_is_refused_and_a_broken_checkpoint_named(tmp_path: Path) -> None:
    from clsp.errors import CheckpointError, ConfigError

    manifest, out, common = _small_run(tmp_path)
    assert _train_here(common + ["max_steps=4"], None).step == 4
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds a training run.*--resume latest"):
        _train_here(common + ["max_steps=2", "optim.lr_heads=1e-4"], None)
    assert (out / "metrics.jsonl").read_text() == before
    weights = out / "checkpoints" / "step-00000004" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a checkpoint cut short by a full disk
    with pytest.raises(CheckpointError, match=r"cannot read the weights.*the one before it \(step-00000002\).*"
                                              r"mv \S+step-00000004 \S+step-00000004\.unreadable && "
                                              r"clsp train --resume latest -o \S+run$"):
        _train_here(common + ["max_steps=6"], "latest")
    step4 = out / "checkpoints" / "step-00000004"
    step4.rename(step4.with_name(step4.name + ".unreadable"))  # what the message says to do: it then goes on
    assert _train_here(common + ["max_steps=6"], "latest").step == 6
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cuda"):
            _train_here(common + ["device=cuda", f"output_dir={tmp_path / 'gpu'}"], None)


def test_resuming_a_checkpoint_that_would_mix_two_histories_is_refused_and_a_branch_goes_elsewhere(tmp_path: Path) -> None:
    from clsp.errors import ConfigError

    manifest, out, common = _small_run(tmp_path)
    common += ["keep_last=5"]
    assert _train_here(common + ["max_steps=6"], None).step == 6
    other = tmp_path / "other"
    assert _train_here(common + ["max_steps=2", f"output_dir={other}"], None).step == 2
    before = {p.name for p in (out / "checkpoints").iterdir()}, (out / "metrics.jsonl").read_text()
    # another folder's checkpoint into a folder holding a run
    with pytest.raises(ConfigError, match="already holds a training run .*not one of its checkpoints.*new --output-dir"):
        _train_here(common + ["max_steps=4"], str(other / "checkpoints" / "step-00000002"))
    # an older checkpoint of this run, with newer ones beside it
    with pytest.raises(ConfigError, match=r"newer than step-00000002 \(step-00000004, step-00000006\)"):
        _train_here(common + ["max_steps=3"], str(out / "checkpoints" / "step-00000002"))
    import shutil

    shutil.copytree(out / "checkpoints" / "step-00000004", out / "checkpoints" / "best")  # its step is in its state
    with pytest.raises(ConfigError, match=r"newer than best \(step-00000006\)"):
        _train_here(common + ["max_steps=5"], str(out / "checkpoints" / "best"))
    shutil.rmtree(out / "checkpoints" / "best")
    assert ({p.name for p in (out / "checkpoints").iterdir()}, (out / "metrics.jsonl").read_text()) == before
    with pytest.raises(ConfigError, match="no such checkpoint"):
        _train_here(common + ["max_steps=8"], str(out / "checkpoints" / "step-00000099"))
    with pytest.raises(ConfigError, match="not a complete training checkpoint"):
        _train_here(common + ["max_steps=8"], str(out))
    # the newest checkpoint by its path continues the run; an older one branches into a new folder
    assert _train_here(common + ["max_steps=7"], str(out / "checkpoints" / "step-00000006")).step == 7
    branch = tmp_path / "branch"
    run = _train_here(common + ["max_steps=3", f"output_dir={branch}"], str(out / "checkpoints" / "step-00000002"))
    assert run.step == 3 and [json.loads(line)["step"] for line in (branch / "metrics.jsonl").read_text().splitlines()
                              if "loss" in json.loads(line)] == [3]


def test_resume_refuses_a_manifest_whose_content_changed(tmp_path: Path) -> None:
    from clsp.errors import ConfigError

    manifest, out, common = _small_run(tmp_path)
    assert _train_here(common + ["max_steps=2"], None).step == 2
    original = Path(manifest).read_text()
    Path(manifest).write_text("".join(reversed(original.splitlines(keepends=True))))  # same path, other order
    with pytest.raises(ConfigError, match="manifest changed since .*step-00000002.*init_from="):
        _train_here(common + ["max_steps=4"], "latest")
    Path(manifest).write_text(original)  # restored: the run goes on
    assert _train_here(common + ["max_steps=4"], "latest").step == 4


def test_the_manifest_digest_is_of_its_records_not_of_its_compression(tmp_path: Path) -> None:
    import gzip

    from clsp.train.data import manifest_digest

    text = b'{"id": "a", "audio": "a.wav"}\n{"id": "b", "audio": "b.wav"}\n'
    (tmp_path / "m.jsonl").write_bytes(text)
    (tmp_path / "fast.jsonl.gz").write_bytes(gzip.compress(text, compresslevel=1))
    (tmp_path / "best.jsonl.gz").write_bytes(gzip.compress(text, compresslevel=9))
    digests = {manifest_digest(str(tmp_path / n)) for n in ("m.jsonl", "fast.jsonl.gz", "best.jsonl.gz")}
    assert len(digests) == 1 and None not in digests
    (tmp_path / "other.jsonl").write_bytes(text.replace(b'"b"', b'"c"'))
    assert manifest_digest(str(tmp_path / "other.jsonl")) not in digests
    assert manifest_digest(str(tmp_path)) is None  # a folder has no digest


def test_a_folder_another_process_trains_into_is_refused(tmp_path: Path) -> None:
    import fcntl

    from clsp.errors import OutputError

    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    out = tmp_path / "run"
    out.mkdir()
    common = [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.min_duration=0.1",
              "data.max_duration=1.0", "data.num_workers=0", "valid_every=0", "max_steps=2", f"output_dir={out}"]
    with open(out / "train.lock", "w") as held:  # what a run started first holds
        held.write("4242\n")
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="being trained into by PID 4242"):
            _train_here(common, None)
    assert not (out / "metrics.jsonl").exists()
    assert _train_here(common, None).step == 2  # the lock is free again once that run ends


def test_a_config_json_no_run_wrote_is_never_overwritten(tmp_path: Path, caplog) -> None:
    from clsp.errors import ConfigError

    manifest, out, common = _small_run(tmp_path)
    out.mkdir()
    (out / "config.json").write_text('{"my": "project settings"}')
    with pytest.raises(ConfigError, match="not the config a training run wrote"):
        _train_here(common + ["max_steps=2"], None)
    assert (out / "config.json").read_text() == '{"my": "project settings"}'
    (out / "config.json").unlink()
    with caplog.at_level("WARNING"):
        assert _train_here(common + ["max_steps=2", f"data.valid={manifest}"], None).step == 2
    assert "data.valid is the training manifest" in caplog.text


def test_a_resumed_run_counts_each_skipped_row_once(tmp_path: Path) -> None:
    """Rows skipped before the checkpoint are met again after the resume; the count and the
    metrics stay those of an uninterrupted run."""
    manifest, out, common = _small_run(tmp_path)
    rows = Path(manifest).read_text().splitlines()
    short = json.loads(rows[0])
    short.update({"id": "too-short", "end": 0.05}) if "end" in short else short.update({"id": "too-short"})
    Path(manifest).write_text("\n".join(rows + [json.dumps({**short, "duration": 0.05})]) + "\n")
    ref = _train_here(common + ["max_steps=6", f"output_dir={tmp_path / 'ref'}"], None)
    assert _train_here(common + ["max_steps=2"], None).step == 2
    resumed = _train_here(common + ["max_steps=6"], "latest")
    assert ref.step == resumed.step == 6
    want = [json.loads(x)["skipped_rows"] for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    got = [json.loads(x)["skipped_rows"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert want == got and want[-1] >= 1, (want, got)


def test_resuming_with_another_number_of_processes_says_so(tmp_path: Path, caplog) -> None:
    import logging

    manifest, out, common = _small_run(tmp_path)
    assert _train_here(common + ["max_steps=2"], None).step == 2
    state_file = out / "checkpoints" / "step-00000002" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2  # as if written by two torchrun processes
    torch.save(state, state_file)
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        assert _train_here(common + ["max_steps=3"], "latest").step == 3
    assert any("1 processes now, 2 when step-00000002 was written" in r.getMessage() for r in caplog.records)
