"""Runs that cannot go on fail loudly: divergence, checkpoint writes that fail, resuming with a
changed config, and validation sets that measure nothing."""

from __future__ import annotations

import errno
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clsp.errors import CheckpointError, ConfigError, TrainingDivergedError
from clsp.train import checkpoint as ckpt
from clsp.train import load_config
from clsp.train.loop import Trainer
from clsp.train.toy_corpus import write_toy_corpus


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    manifest = tmp_path / "data" / "train.jsonl"
    if not manifest.exists():
        manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    return [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.num_workers=0",
            "data.min_duration=0.1", "data.max_duration=1", "data.max_batch_seconds=10", "valid_every=0",
            "tensorboard=false", "log_every=1", f"output_dir={tmp_path / 'exp'}", "seed=0",
            "optim.schedule=constant", "optim.warmup_steps=0", *extra]


def _metrics(tmp_path: Path) -> list[dict]:
    def no_nan(name: str):
        raise AssertionError(f"metrics.jsonl holds {name}, which is not JSON")

    lines = (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line, parse_constant=no_nan) for line in lines]


def _nan_loss(trainer: Trainer) -> None:
    """Every loss becomes NaN while the weights stay finite (as after an overflow)."""
    forward = trainer._forward_loss
    trainer._forward_loss = lambda batch, micro: forward(batch, micro) * float("nan")


def test_nonfinite_weights_stop_the_run_without_a_checkpoint(tmp_path: Path) -> None:
    trainer = Trainer(load_config(None, _overrides(tmp_path, "max_steps=4", "checkpoint_every=1")))
    with torch.no_grad():
        trainer.model.audio_projection[0].weight[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"step 1: non-finite weights \(audio_projection\.0\.weight\)"):
        trainer.run()
    assert ckpt.list_checkpoints(tmp_path / "exp") == []
    rows = _metrics(tmp_path)
    assert len(rows) == 1 and rows[0]["loss"] is None and rows[0]["skipped_steps"] == 1


def test_consecutive_nonfinite_steps_stop_the_run(tmp_path: Path) -> None:
    trainer = Trainer(load_config(None, _overrides(tmp_path, "max_steps=8", "checkpoint_every=1", "max_nonfinite_steps=3")))
    _nan_loss(trainer)
    with pytest.raises(TrainingDivergedError, match="step 3: 3 steps in a row with a non-finite loss"):
        trainer.run()
    assert trainer.step == 3 and ckpt.list_checkpoints(tmp_path / "exp") == []  # periodic checkpoints deferred
    assert [r["loss"] for r in _metrics(tmp_path)] == [None, None, None]


def test_a_run_ending_on_nonfinite_steps_is_not_finished(tmp_path: Path) -> None:
    overrides = _overrides(tmp_path, "max_steps=2", "checkpoint_every=1")
    Trainer(load_config(None, overrides)).run()
    good = ckpt.list_checkpoints(tmp_path / "exp")[-1]
    trainer = Trainer(load_config(None, [*overrides, "max_steps=4"]), resume="latest")
    _nan_loss(trainer)
    with pytest.raises(TrainingDivergedError, match=f"ends with 2 non-finite step.*last checkpoint is {good}"):
        trainer.run()
    assert ckpt.list_checkpoints(tmp_path / "exp")[-1] == good


def test_finite_weights_whose_embeddings_overflow_are_not_saved(tmp_path: Path) -> None:
    overrides = _overrides(tmp_path, "max_steps=4", "checkpoint_every=1")
    trainer = Trainer(load_config(None, [*overrides, "max_steps=1"]))
    trainer.run()
    good = ckpt.list_checkpoints(tmp_path / "exp")[-1]
    trainer = Trainer(load_config(None, overrides), resume="latest")
    step = trainer._optimizer_step

    def overflowing(batches):  # the step's loss was finite; its update leaves huge finite weights
        stats = step(batches)
        with torch.no_grad():
            trainer.model.audio_projection[0].weight.mul_(1e30)
            trainer.model.text_projection[0].weight.mul_(1e30)
        return stats

    trainer._optimizer_step = overflowing
    with pytest.raises(TrainingDivergedError, match=f"step 2: the weights are finite but the model's embeddings are not.*"
                                                    f"last checkpoint is {good}"):
        trainer.run()
    assert ckpt.list_checkpoints(tmp_path / "exp") == [good]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_failed_checkpoint_write_names_path_and_reason_and_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    overrides = _overrides(tmp_path, "max_steps=1", "checkpoint_every=1")
    Trainer(load_config(None, overrides)).run()
    before = ckpt.list_checkpoints(tmp_path / "exp")
    real_save = ckpt._save_pt

    def disk_full(obj, path: Path) -> None:
        if path.name == ckpt.TRAINER_STATE:
            path.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(ckpt, "_save_pt", disk_full)
    trainer = Trainer(load_config(None, [*overrides, "max_steps=2"]), resume="latest")
    with pytest.raises(CheckpointError) as info:
        trainer.run()
    final = tmp_path / "exp" / "checkpoints" / "step-00000002"
    assert str(info.value) == f"cannot write checkpoint {final}: No space left on device (ENOSPC)"
    assert sorted(p.name for p in (tmp_path / "exp" / "checkpoints").iterdir()) == [before[0].name]
    monkeypatch.setattr(ckpt, "_save_pt", real_save)
    resumed = Trainer(load_config(None, [*overrides, "max_steps=2"]), resume="latest")
    assert resumed.resumed_from == before[0] and resumed.step == 1


@pytest.mark.slow
def test_file_size_limit_gives_the_os_reason(tmp_path: Path) -> None:
    """A real EFBIG from torch.save (whose own message is "unexpected pos ...")."""
    code = ("import resource, sys, torch; from clsp.train.checkpoint import _save_pt, os_reason\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "try:\n    _save_pt({'w': torch.zeros(10000)}, sys.argv[1])\n"
            "except Exception as exc:\n    print(os_reason(exc))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.pt")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "File too large (EFBIG)"


def test_resume_uses_the_new_optimizer_settings_and_refuses_a_new_freeze_list(tmp_path: Path, caplog) -> None:
    overrides = _overrides(tmp_path, "max_steps=2", "checkpoint_every=2", "optim.lr_heads=3e-3", "optim.lr_encoder=3e-3")
    Trainer(load_config(None, overrides)).run()
    changed = [*overrides, "max_steps=3", "optim.lr_heads=1e-5", "optim.weight_decay=0.5", "optim.betas=[0.8,0.9]"]
    with caplog.at_level(logging.INFO, logger="clsp.train"):
        trainer = Trainer(load_config(None, changed), resume="latest")
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["heads"]["base_lr"] == 1e-5 and groups["encoder"]["base_lr"] == 3e-3
    assert groups["heads"]["weight_decay"] == 0.5 and groups["heads_no_decay"]["weight_decay"] == 0.0
    assert all(g["betas"] == (0.8, 0.9) for g in groups.values())
    assert trainer.optimizer.state  # the moments are kept
    assert "resume: optim.lr_heads changed from 0.003 to 1e-05 (applied from step 2)" in caplog.text
    trainer.run()
    assert _metrics(tmp_path)[-1]["lr_heads"] == 1e-5
    with pytest.raises(ConfigError, match=r"changed freeze \(\[\] -> \['text'\]\).*start a new run"):
        Trainer(load_config(None, [*changed, "freeze=[text]"]), resume="latest")


def test_resume_with_nothing_to_train_leaves_config_and_checkpoint_as_trained(tmp_path: Path, caplog) -> None:
    overrides = _overrides(tmp_path, "max_steps=2", "checkpoint_every=2")
    Trainer(load_config(None, overrides)).run()
    [last] = ckpt.list_checkpoints(tmp_path / "exp")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "exp").rglob("*") if p.is_file()}
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        result = Trainer(load_config(None, [*overrides, "optim.schedule=eden", "optim.lr_heads=1e-5"]),
                         resume="latest").run()
    assert result.status == "finished" and result.step == 2 and result.checkpoint == last
    assert "already at step 2 (max_steps=2): nothing to train" in caplog.text
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "exp").rglob("*") if p.is_file()
             if p.name != "train.lock"}
    assert after == {k: v for k, v in before.items() if k.name != "train.lock"}  # config.json and step-2 untouched


def _validation_manifest(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "valid.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_validation_embeds_clips_longer_than_the_training_window(tmp_path: Path, caplog) -> None:
    from clsp.train.validate import validate

    long = write_toy_corpus(tmp_path / "long", clips_per_style=1, min_seconds=2.5, max_seconds=3.0, name="long")
    trainer = Trainer(load_config(None, _overrides(tmp_path)))  # training window: 0.1 - 1 s
    n = sum(1 for _ in open(long))
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        metrics = validate(trainer.model, str(long), trainer.cfg.data, trainer.device, trainer.autocast)
    assert metrics["valid/clips"] == n and metrics["valid/skipped_clips"] == 0
    assert 0.0 <= metrics["valid/global/s2t_R@1"] <= 1.0 and not caplog.records


def test_validation_that_measures_nothing_says_why(tmp_path: Path, caplog) -> None:
    from clsp.train.validate import validate

    trainer = Trainer(load_config(None, _overrides(tmp_path)))
    train_rows = [json.loads(line) for line in open(trainer.cfg.data.train)]
    missing = _validation_manifest(tmp_path, [{**r, "audio": f"nowhere/{i}.wav"} for i, r in enumerate(train_rows[:3])])
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        metrics = validate(trainer.model, missing, trainer.cfg.data, trainer.device, trainer.autocast)
    assert metrics == {"valid/clips": 0.0, "valid/skipped_clips": 3.0}
    assert f"validation set {missing}: 3 clip(s) dropped (3 missing audio)" in caplog.text
    assert f"validation set {missing}: 0 usable clip(s); retrieval needs at least 2" in caplog.text

    caplog.clear()
    one = Path(trainer.cfg.data.train).with_name("one.jsonl")
    one.write_text(json.dumps(train_rows[0]) + "\n")
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        metrics = validate(trainer.model, str(one), trainer.cfg.data, trainer.device, trainer.autocast)
    assert metrics == {"valid/clips": 1.0, "valid/skipped_clips": 0.0}
    assert f"validation set {one}: 1 usable clip(s); retrieval needs at least 2" in caplog.text


def test_nan_embeddings_are_misses_not_hits() -> None:
    from clsp.train.validate import retrieval_metrics

    audio = np.full((6, 6), np.nan, dtype=np.float32)
    text = np.eye(6, dtype=np.float32)
    metrics = retrieval_metrics(audio, text)
    assert all(metrics[k] == 0.0 for k in ("s2t_R@1", "s2t_R@5", "t2s_R@1", "t2s_R@5", "s2t_mAP@10", "t2s_mAP@10"))
    assert "s2t_R@10" not in metrics  # 6 clips: any model's R@10 is 1, so it is left out
    audio[1:] = text[1:]  # one NaN row among finite ones ranks below them
    metrics = retrieval_metrics(audio, text)
    assert metrics["s2t_R@1"] == 5 / 6


def test_a_batch_of_one_clip_is_reported(tmp_path: Path, caplog) -> None:
    rows = (write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)).read_text().splitlines()
    one = tmp_path / "data" / "one.jsonl"
    one.write_text(rows[0] + "\n")
    trainer = Trainer(load_config(None, [*_overrides(tmp_path, "max_steps=4", "checkpoint_every=0"), f"data.train={one}"]))
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        trainer.run()
    warnings = [r.getMessage() for r in caplog.records if "no negatives" in r.getMessage()]
    assert warnings[0] == f"step 1: a batch of 1 clip(s) from {one} gives the contrastive loss no negatives"
    assert len(warnings) == 3 and warnings[-1].endswith("(further ones not shown)") and trainer.small_batches == 4


def test_a_failed_metrics_write_names_the_file_and_reason(tmp_path: Path, monkeypatch) -> None:
    from clsp.errors import OutputError

    trainer = Trainer(load_config(None, _overrides(tmp_path, "max_steps=1")))
    real_open = open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(OutputError) as info:
        trainer.run()
    assert str(info.value) == f"cannot write {tmp_path / 'exp' / 'metrics.jsonl'}: No space left on device (ENOSPC)"


def test_output_folder_keeps_no_lock_file_and_a_file_is_no_output_folder(tmp_path: Path) -> None:
    """A finished run removes its train.lock; --output-dir naming a file is a usage error that
    leaves the file as it was; a checkpoint folder given as init_from names its model/ folder."""
    overrides = _overrides(tmp_path, "max_steps=2", "checkpoint_every=2")
    Trainer(load_config(None, overrides)).run()
    out = tmp_path / "exp"
    assert not (out / "train.lock").exists() and (out / "config.json").is_file()
    Trainer(load_config(None, [*overrides, "max_steps=3"]), resume="latest").run()  # a second run locks it again
    assert not (out / "train.lock").exists() and len(ckpt.list_checkpoints(out)) >= 1
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        Trainer(load_config(None, [*overrides, f"output_dir={afile}"]))
    assert afile.read_text() == "mine\n"
    [step] = ckpt.list_checkpoints(out)[-1:]
    from clsp.errors import ModelError

    with pytest.raises(ModelError, match=r"a training checkpoint folder; its model is .*step-\d+/model"):
        Trainer(load_config(None, [*overrides, f"init_from={step}", f"output_dir={tmp_path / 'exp2'}"]))
    assert not (tmp_path / "exp2").exists()


def test_resume_without_a_config_takes_the_checkpoints_settings_not_a_failed_runs(tmp_path: Path) -> None:
    """A resumed run that changed a rate and diverged before its first checkpoint rewrote
    config.json; the next --resume with no config file uses the checkpoint's own settings."""
    from clsp.train import load_run_config

    overrides = _overrides(tmp_path, "max_steps=2", "checkpoint_every=2", "optim.lr_heads=0.002")
    Trainer(load_config(None, overrides)).run()
    good = ckpt.list_checkpoints(tmp_path / "exp")[-1]
    trainer = Trainer(load_config(None, [*overrides, "max_steps=6", "optim.lr_heads=5.0"]), resume="latest")
    _nan_loss(trainer)
    with pytest.raises(TrainingDivergedError):
        trainer.run()
    assert json.loads((tmp_path / "exp" / "config.json").read_text())["optim"]["lr_heads"] == 5.0
    cfg = load_run_config(tmp_path / "exp", ["max_steps=3"], "latest")
    assert cfg.optim.lr_heads == 0.002 and cfg.max_steps == 3 and cfg.output_dir == str(tmp_path / "exp")
    assert load_run_config(tmp_path / "exp", [], str(good)).optim.lr_heads == 0.002
    assert load_run_config(tmp_path / "exp", [], None).optim.lr_heads == 5.0  # no checkpoint named: config.json
    assert load_run_config(tmp_path / "exp", ["optim.lr_heads=0.001"], "latest").optim.lr_heads == 0.001


def test_a_missing_validation_set_stops_the_set_up_and_one_lost_during_the_run_loses_no_checkpoint(tmp_path: Path,
                                                                                                     caplog) -> None:
    with pytest.raises(ConfigError, match="data.valid: .*no_such.jsonl: no such file"):
        Trainer(load_config(None, _overrides(tmp_path, f"data.valid={tmp_path / 'no_such.jsonl'}")))
    assert not (tmp_path / "exp").exists()  # refused before any work: no folder left
    valid = tmp_path / "data" / "valid.jsonl"  # beside the corpus: its audio paths are relative to it
    valid.write_text((tmp_path / "data" / "train.jsonl").read_text())
    trainer = Trainer(load_config(None, _overrides(tmp_path, f"data.valid={valid}", "max_steps=3", "valid_every=2",
                                                   "checkpoint_every=10")))
    valid.unlink()  # gone while the run trains
    with caplog.at_level(logging.ERROR, logger="clsp.train"):
        trainer.run()
    assert "validation at step 2 failed" in caplog.text and "training goes on" in caplog.text
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "exp")] == ["step-00000003"]


def test_a_validation_set_that_would_measure_nothing_is_said_at_set_up(tmp_path: Path, caplog) -> None:
    _overrides(tmp_path)  # writes the toy corpus
    data = tmp_path / "data"  # manifests beside the corpus: its audio paths are relative to it
    rows = [json.loads(line) for line in open(data / "train.jsonl")][:4]

    def manifest(name: str, lines: list[str]) -> Path:
        (data / name).write_text("".join(line + "\n" for line in lines))
        return data / name

    cases = [
        (manifest("uncaptioned.jsonl", [json.dumps({k: v for k, v in r.items() if "caption" not in k}) for r in rows]),
         0, "4 row\\(s\\) skipped: 4 unusable row \\(first: .*no captions"),
        (manifest("not_json.jsonl", ["{bad"] * 3), 0, "3 unreadable row"),
        (manifest("gone.jsonl", [json.dumps({**r, "audio": f"nowhere/{i}.wav"}) for i, r in enumerate(rows)]),
         0, "4 missing audio \\(first: .*nowhere/0.wav: no such audio file"),
        (manifest("one.jsonl", [json.dumps(rows[0])]), 1, "retrieval needs at least 2"),
        (manifest("twice.jsonl", [json.dumps(rows[0])] * 2), 1, "retrieval needs at least 2"),  # one clip, listed twice
    ]
    for path, usable, reason in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="clsp.train"):
            Trainer(load_config(None, _overrides(tmp_path, f"data.valid={path}")))  # before any step
        said = [r.getMessage() for r in caplog.records if "data.valid" in r.getMessage()]
        assert len(said) == 1 and f"validation set {path} (data.valid): {usable} usable clip" in said[0], said
        assert re.search(reason, said[0]), said[0]
    caplog.clear()
    two = manifest("two.jsonl", [json.dumps(r) for r in rows[:2]])  # two usable clips: nothing to say
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        Trainer(load_config(None, _overrides(tmp_path, f"data.valid={two}")))
    assert not [r for r in caplog.records if "data.valid" in r.getMessage()]


def test_a_final_validation_that_fails_costs_no_step(tmp_path: Path, monkeypatch, caplog) -> None:
    import clsp.train.validate as validate_module

    def broken(*args, **kwargs):
        raise RuntimeError("Index put requires the source and destination dtypes match")

    valid = tmp_path / "data" / "valid.jsonl"  # beside the corpus: its audio paths are relative to it
    _overrides(tmp_path)  # writes the toy corpus
    valid.write_text((tmp_path / "data" / "train.jsonl").read_text())
    monkeypatch.setattr(validate_module, "validate", broken)
    trainer = Trainer(load_config(None, _overrides(tmp_path, f"data.valid={valid}", "max_steps=3", "checkpoint_every=2")))
    with caplog.at_level(logging.ERROR, logger="clsp.train"):
        result = trainer.run()
    assert result.step == 3 and "validation at step 3 failed (RuntimeError: Index put" in caplog.text
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "exp")] == ["step-00000002", "step-00000003"]


def test_a_compressed_manifest_cut_short_is_refused_at_set_up(tmp_path: Path) -> None:
    """A cut train.jsonl.gz trained to exit 0 when the run ended before an epoch reached the
    cut (a shuffle buffer smaller than the file, a short run); a cut data.valid failed only at
    the first validation."""
    import gzip

    from clsp.streams import TruncatedInputError

    _overrides(tmp_path)  # writes the toy corpus
    data = tmp_path / "data"
    whole = gzip.compress((data / "train.jsonl").read_bytes() * 20)
    cut = data / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    (data / "whole.jsonl.gz").write_bytes(whole)
    for key in ("data.train", "data.valid"):
        with pytest.raises(TruncatedInputError, match="cut.jsonl.gz: gzip stream ends before its end marker"):
            Trainer(load_config(None, _overrides(tmp_path, f"{key}={cut}", "data.shuffle_buffer=4", "max_steps=1")))
        assert not list((tmp_path / "exp").glob("checkpoints/step-*"))
    Trainer(load_config(None, _overrides(tmp_path, f"data.train={data / 'whole.jsonl.gz'}",
                                         f"data.valid={data / 'whole.jsonl.gz'}", "data.shuffle_buffer=4")))


def test_validation_counts_a_clip_listed_again_once(tmp_path: Path) -> None:
    """One clip listed 8 times: set-up said no metrics, then R@1 and mAP@10 were logged over
    8 copies of it (each copy a wrong answer to the others)."""
    _overrides(tmp_path)  # writes the toy corpus
    data = tmp_path / "data"
    rows = (data / "train.jsonl").read_text().splitlines()
    (data / "same.jsonl").write_text((rows[0] + "\n") * 8)
    (data / "three.jsonl").write_text("".join(r + "\n" for r in [rows[0], rows[1], rows[0], rows[2], rows[1]]))
    for name, clips, skipped in [("same.jsonl", 1, 1), ("three.jsonl", 3, 2)]:
        Trainer(load_config(None, _overrides(tmp_path, f"data.valid={data / name}", "max_steps=1", "valid_every=1",
                                             f"output_dir={tmp_path / name}"))).run()
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        valid = [m for m in map(json.loads, lines) if "valid/clips" in m][-1]
        assert (valid["valid/clips"], valid["valid/skipped_clips"]) == (clips, skipped), valid
        assert any(k.startswith("valid/global") for k in valid) == (clips > 1), valid


def test_an_epoch_of_fewer_batches_than_one_step_takes_names_optim_accumulation(tmp_path: Path) -> None:
    """optim.accumulation larger than an epoch's batches said 'no usable training batch' of a
    manifest whose every clip was usable."""
    from clsp.errors import InputError

    cfg = load_config(None, _overrides(tmp_path, "data.max_batch_seconds=1000", "optim.accumulation=4", "max_steps=2"))
    with pytest.raises(InputError, match=r"an epoch holds [1-3] batch\(es\), fewer than the 4 one optimizer step takes "
                                         r"\(optim.accumulation=4\)"):
        Trainer(cfg).run()


def test_a_dangling_symlink_output_folder_is_followed(tmp_path: Path) -> None:
    """--output-dir naming a dangling symlink trains into the folder it points to (made for
    the run; the link stays a link), as every output follows a symlink; it said "cannot write
    LINK/train.lock: File exists (EEXIST)"."""
    link = tmp_path / "dang"
    link.symlink_to(tmp_path / "runs" / "exp1")
    overrides = _overrides(tmp_path, "max_steps=1", "checkpoint_every=1", f"output_dir={link}")
    Trainer(load_config(None, overrides)).run()
    assert link.is_symlink() and (tmp_path / "runs" / "exp1" / "config.json").is_file()
    assert len(ckpt.list_checkpoints(link)) == 1 and not (link / "train.lock").exists()
