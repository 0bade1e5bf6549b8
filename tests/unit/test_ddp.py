"""A 2-process torchrun (gloo, CPU) gives the same loss and gradients as one process on
the same global batch, for the global loss and the local-loss variant, both stages.

This file is also the worker script: ``torchrun --nproc_per_node 2 tests/test_ddp.py OUT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clsp.losses import caption_keys, gathered_contrastive_loss
from tests.helpers.assets import REPO

SIZES = [2, 4]  # uneven shards on purpose: duration-bucketed batches differ per rank
CAPTIONS = ["calm", "angry", "calm", "fast", "slow", "angry", "x", "y", "fast", "z", "w", "v"]


class TinyTowers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.audio = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
        self.text = torch.nn.Linear(10, 8)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, audio_x: torch.Tensor, text_x: torch.Tensor):
        a = torch.nn.functional.normalize(self.audio(audio_x), dim=-1)
        t = torch.nn.functional.normalize(self.text(text_x), dim=-1)
        return a, t, self.logit_scale


def global_batch(stage: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(1)
    n = sum(SIZES)
    return torch.randn(n, 12, generator=g), torch.randn(n * stage, 10, generator=g), CAPTIONS[: n * stage]


def shard(stage: int, rank: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """This rank's clips and texts, texts laid out [c1..., c2...] per rank."""
    audio, text, caps = global_batch(stage)
    n, start = sum(SIZES), sum(SIZES[:rank])
    idx = list(range(start, start + SIZES[rank]))
    tidx = [c * n + i for c in range(stage) for i in idx]  # global c1 block then c2 block
    return audio[idx], text[tidx], [caps[i] for i in tidx]


def reference(stage: int) -> tuple[float, dict[str, list]]:
    model = TinyTowers()
    audio, text, caps = global_batch(stage)
    # single process: the text axis is [c1 (all clips), c2 (all clips)] == one rank's layout
    a, t, s = model(audio, text)
    loss = gathered_contrastive_loss(a, t, s, stage, caption_keys(caps))
    loss.backward()
    return loss.item(), {k: p.grad.flatten().tolist() for k, p in model.named_parameters()}


def worker(out: str) -> None:
    import torch.distributed as dist

    from clsp.distributed import all_reduce_sum, init_distributed

    info, _ = init_distributed("cpu")
    model = torch.nn.parallel.DistributedDataParallel(TinyTowers())
    results = {}
    for stage in (1, 2):
        for local in (False, True):
            model.zero_grad()
            audio, text, caps = shard(stage, info.rank)
            a, t, s = model(audio, text)
            loss = gathered_contrastive_loss(a, t, s, stage, caption_keys(caps), local_loss=local)
            (loss * info.world_size).backward()
            value = all_reduce_sum(loss).item() if local else loss.item()
            grads = {k.removeprefix("module."): p.grad.flatten().tolist() for k, p in model.named_parameters()}
            results[f"{stage}-{local}"] = {"loss": value, "grads": grads}
    if info.rank == 0:
        Path(out).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_rank_gloo_equals_one_process(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for stage in (1, 2):
        ref_loss, ref_grads = reference(stage)
        for local in (False, True):
            got = results[f"{stage}-{local}"]
            assert abs(got["loss"] - ref_loss) < 1e-5, (stage, local)
            for name, ref in ref_grads.items():
                diff = max(abs(x - y) for x, y in zip(got["grads"][name], ref))
                assert diff < 1e-5, (stage, local, name, diff)


def _torchrun_train(tmp_path: Path, rows: list[dict], name: str, *extra: str, procs: int = 2,
                    ) -> subprocess.CompletedProcess:
    manifest = tmp_path / "data" / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), CLSP_THREADS="1")
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else []
    settings = [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.num_workers=0",
                "data.min_duration=0.1", "data.max_duration=1", "data.max_batch_seconds=10", "data.num_buckets=1",
                "valid_every=0", "checkpoint_every=0", "tensorboard=false", "log_every=1", "max_steps=3", "seed=0"]
    given = {e.split("=", 1)[0] for e in extra if "=" in e}
    if "--resume" in extra:  # the run's own config; only what is given changes
        settings = []
    cmd = [sys.executable, *launch, "-m", "clsp_cli.app", "train",
           *[x for x in settings if x.split("=", 1)[0] not in given], *extra, "-o", str(tmp_path / name)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_clips_left_when_another_process_ends_its_epoch_are_counted(tmp_path: Path) -> None:
    """With unequal batch counts per process the epoch ends for all at the first to run out: the
    other's last clips were never trained on, every epoch, and nothing counted them."""
    from clsp.train.toy_corpus import write_toy_corpus

    rows = [json.loads(line) for line in open(write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.4,
                                                                max_seconds=0.4))][:5]
    # rank 0 reads rows 0, 2, 4 (batches of 2 and 1 clips under 0.85 s), rank 1 rows 1, 3 (one batch)
    proc = _torchrun_train(tmp_path, rows, "uneven", "data.max_batch_seconds=0.85", "data.max_duration=0.42")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "uneven" / "metrics.jsonl").read_text().splitlines()]
    assert [m["clips"] for m in metrics] == [4, 4, 4] and metrics[-1]["skipped_rows"] == 1, metrics
    assert "left at an uneven epoch end" in proc.stderr


@pytest.mark.slow
def test_a_one_process_run_resumes_with_two(tmp_path: Path) -> None:
    """Rank 1 found no state of its own and stopped; rank 0 went on and died in gloo."""
    from clsp.train.toy_corpus import write_toy_corpus

    rows = [json.loads(line) for line in open(write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3,
                                                                max_seconds=0.5))]
    first = _torchrun_train(tmp_path, rows, "up", "checkpoint_every=2", "max_steps=2", procs=1)
    assert first.returncode == 0, first.stderr[-3000:]
    more = _torchrun_train(tmp_path, rows, "up", "--resume", "latest", "max_steps=4")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "2 processes now, 1 when step-00000002 was written" in more.stderr and "Traceback" not in more.stderr
    metrics = [json.loads(line) for line in (tmp_path / "up" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4], metrics


@pytest.mark.slow
def test_two_rank_training_logs_counts_over_both_ranks_and_names_a_rank_left_without_clips(tmp_path: Path) -> None:
    from clsp.train.toy_corpus import write_toy_corpus

    good = [json.loads(line) for line in open(write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3,
                                                                max_seconds=0.5))]
    bare = [{k: v for k, v in r.items() if "caption" not in k} for r in good]  # rows without captions: skipped
    # rows 1, 3, 5: one caption-less row at each odd index up to 5, so only rank 1 skips any
    mixed = [good[0], bare[0], good[1], bare[1], good[2], bare[2], *good[3:]]
    proc = _torchrun_train(tmp_path, mixed, "mixed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "mixed" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["skipped_rows"] == 3  # all three, though rank 0 skipped none
    assert metrics[0]["clips"] == len(good)  # one batch per rank holds its share's 6 and 2 clips: the global batch
    # every odd row bad: rank 1's share holds no usable clip
    odd = [r for pair in zip(good, bare) for r in pair]
    proc = _torchrun_train(tmp_path, odd, "odd")
    assert proc.returncode != 0
    assert "no training batch on every one of the 2 processes" in proc.stderr and "rank 1 skipped" in proc.stderr


if __name__ == "__main__":
    worker(sys.argv[1])
