"""Training throughput: step time, samples/s, audio-s/s and peak memory.

CPU (always): the tiny config (examples/configs/tiny.yaml) on the synthetic style corpus,
through the real trainer (data plan, decoding, loss, AdamW step).
GPU (when CUDA is present): the full CLSP architecture (Zipformer2 XLarge + RoBERTa-base
sized towers, random weights) in bf16 autocast on synthetic fbank batches, with model
FLOPs utilisation from a counted forward+backward. Without CUDA the GPU part says so and
is skipped.

    python benchmarks/train.py [--steps 20] [--gpu-seconds 200] [--gpu-clip-seconds 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def cpu_benchmark(steps: int, warmup: int, threads: int) -> dict:
    from clsp.train import load_config
    from clsp.train.loop import Trainer
    from clsp.train.toy_corpus import write_toy_splits

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        train, _ = write_toy_splits(Path(tmp) / "toy", clips_per_style=16)
        cfg = load_config(ROOT / "examples/configs/tiny.yaml",
                          [f"data.train={train}", "data.valid=null", f"output_dir={tmp}/exp", f"max_steps={steps + warmup}"])
        trainer = Trainer(cfg)
        trainer._train_mode()
        it, times, clips, audio = trainer._epoch_loader(), [], 0, 0.0
        for i in range(steps + warmup):
            batches = trainer._next_batches(it)
            if batches is None:
                trainer.epoch += 1
                trainer.batch_in_epoch = 0
                it = trainer._epoch_loader()
                batches = trainer._next_batches(it)
            t0 = time.perf_counter()
            trainer._optimizer_step(batches)
            trainer.step += 1
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                clips += sum(len(b["clips"]) for b in batches)
                audio += sum(c["duration"] for b in batches for c in b["clips"])
    total = sum(times)
    return {"device": f"cpu ({threads} threads)", "config": "tiny (fp32)", "steps": steps,
            "step_ms": 1000 * statistics.median(times), "samples_s": clips / total, "audio_s_s": audio / total,
            "peak_mem_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "mfu": None}


def _peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def gpu_benchmark(steps: int, warmup: int, batch_seconds: float, clip_seconds: float, checkpointing: bool) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from clsp.losses import gathered_contrastive_loss
    from clsp.models.base import build_model
    from clsp.models.icefall_format import clsp_full_config
    from clsp.train.config import TrainConfig
    from clsp.train.setup import ContrastiveTowers, enable_gradient_checkpointing, param_groups

    dev = torch.device("cuda")
    model = build_model(clsp_full_config(tokenizer="all-MiniLM-L6-v2")).to(dev).train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    towers = ContrastiveTowers(model)
    opt = torch.optim.AdamW(param_groups(model, TrainConfig()), fused=True)
    n = max(2, int(batch_seconds // clip_seconds))
    frames = int(clip_seconds * 100)
    feats = torch.randn(n, frames, 128, device=dev)
    lens = torch.full((n,), frames, device=dev)
    tokens = {"input_ids": torch.randint(3, 30000, (n, 64), device=dev), "attention_mask": torch.ones(n, 64, device=dev, dtype=torch.long)}

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            a, t, s = towers(feats, lens, tokens)
        gathered_contrastive_loss(a, t, s).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    name = torch.cuda.get_device_name()
    peak = _peak_tflops(name)
    return {"device": name, "config": f"full CLSP (bf16, {n} x {clip_seconds:g} s{', ckpt' if checkpointing else ''})",
            "steps": steps, "step_ms": 1000 * step_s, "samples_s": n / step_s, "audio_s_s": n * clip_seconds / step_s,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
            "mfu": (flops / step_s / 1e12 / peak) if peak else None}


def _table(rows: list[dict]) -> str:
    head = "| device | config | steps | step ms | samples/s | audio-s/s | peak mem GiB | MFU |\n|---|---|---|---|---|---|---|---|"
    lines = [head]
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        lines.append(f"| {r['device']} | {r['config']} | {r['steps']} | {r['step_ms']:.1f} | {r['samples_s']:.1f} | "
                     f"{r['audio_s_s']:.1f} | {r['peak_mem_gib']:.2f} | {mfu} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-seconds", type=float, default=200.0, help="audio seconds per GPU batch")
    ap.add_argument("--gpu-clip-seconds", type=float, default=10.0)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--skip-cpu", action="store_true")
    args = ap.parse_args()
    rows = []
    if not args.skip_cpu:
        rows.append(cpu_benchmark(args.steps, args.warmup, args.threads))
    if torch.cuda.is_available():
        rows.append(gpu_benchmark(args.steps, args.warmup, args.gpu_seconds, args.gpu_clip_seconds, args.gradient_checkpointing))
    else:
        print("no CUDA device: GPU benchmark (full config, bf16, MFU) skipped", file=sys.stderr)
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
