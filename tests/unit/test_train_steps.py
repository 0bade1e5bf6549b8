"""Optimizer steps: the non-finite guard skips a step without moving weights; freezing and
gradient checkpointing leave the computed gradients as they should be."""

from __future__ import annotations

from pathlib import Path

import torch

from clsp.train import load_config
from clsp.train.loop import Trainer
from clsp.train.toy_corpus import write_toy_corpus


def _trainer(tmp_path: Path, *extra: str) -> Trainer:
    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    cfg = load_config(None, [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.num_workers=0",
                             "data.min_duration=0.1", "data.max_duration=1", "data.max_batch_seconds=10",
                             f"output_dir={tmp_path / 'exp'}", "seed=0", *extra])
    trainer = Trainer(cfg)
    trainer._train_mode()
    return trainer


def test_nan_guard_freeze_and_checkpointing(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "freeze=[text]")
    batches = trainer._next_batches(trainer._epoch_loader())
    assert all(not p.requires_grad for p in trainer.model.text_encoder.parameters())
    assert not trainer.model.text_encoder.training  # a frozen tower runs without dropout

    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with torch.no_grad():
        trainer.model.audio_projection[0].weight[0, 0] = float("nan")
    stats = trainer._optimizer_step(batches)
    assert stats["skipped"] and trainer.skipped_steps == 1
    with torch.no_grad():
        trainer.model.audio_projection[0].weight[0, 0] = before["audio_projection.0.weight"][0, 0]
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key

    def grads(t: Trainer) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        t._forward_loss(batches[0], 0).backward()
        out = {k: p.grad.clone() for k, p in t.model.named_parameters() if p.grad is not None}
        t.optimizer.zero_grad(set_to_none=True)
        return out

    plain = grads(trainer)
    assert plain and not any(k.startswith("text_encoder.") for k in plain)
    from clsp.train.setup import enable_gradient_checkpointing

    assert enable_gradient_checkpointing(trainer.model) > 0
    checkpointed = grads(trainer)
    assert plain.keys() == checkpointed.keys()
    for key in plain:
        assert torch.allclose(plain[key], checkpointed[key], atol=1e-6), key
    stats = trainer._optimizer_step(batches)
    assert not stats["skipped"]
    assert not torch.equal(trainer.model.audio_projection[0].weight, before["audio_projection.0.weight"])


def test_a_run_shorter_than_log_every_still_logs_its_last_step(tmp_path: Path) -> None:
    import json

    trainer = _trainer(tmp_path, "max_steps=2", "log_every=10", "checkpoint_every=0", "valid_every=0")
    trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2]
