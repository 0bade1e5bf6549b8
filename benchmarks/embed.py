"""CPU throughput of `clsp embed`: batched vs one clip at a time, same model, same run.

    python benchmarks/embed.py --model default --clips 200

Makes 200 clips of 2-10 s (harmonic tones with noise), then embeds them with the library's
AudioEmbedder (decoding + fbank + model), first with batches of one clip, then batched.
Prints clips/s, audio-s/s and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def make_clips(folder: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        sec = rng.uniform(2.0, 10.0)
        t = np.arange(int(sec * 16000)) / 16000
        f0 = rng.uniform(90, 260)
        sig = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.1 + 0.01 * rng.standard_normal(t.size)
        sf.write(str(folder / f"{i}.wav"), sig.astype(np.float32), 16000)
        lines.append(json.dumps({"id": str(i), "audio": f"{i}.wav"}))
    manifest = folder / "clips.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def run(model, manifest: Path, batch_size: int, workers: int) -> tuple[float, float, int]:
    from clsp.embed import AudioEmbedder, EmbedConfig
    from clsp.records import iter_items

    cfg = EmbedConfig(batch_size=batch_size, workers=workers, device="cpu", dtype="float32")
    start = time.perf_counter()
    seconds, count = 0.0, 0
    for res in AudioEmbedder(model, cfg).run(iter_items(manifest, "audio")):
        seconds += res.seconds
        count += res.error is None
    return time.perf_counter() - start, seconds, count


def run_naive(model, manifest: Path) -> tuple[float, float, int]:
    """The by-hand loop: decode one file, embed it, next file (no workers, no batching)."""
    from clsp.audio import load_audio

    folder = manifest.parent
    start = time.perf_counter()
    seconds, count = 0.0, 0
    with torch.no_grad():
        for line in manifest.read_text().splitlines():
            wave = load_audio(folder / json.loads(line)["audio"])
            model.encode_audio(wave[None], torch.tensor([wave.numel()]))
            seconds += wave.numel() / 16000
            count += 1
    return time.perf_counter() - start, seconds, count


def random_zipformer(dim: int):
    """CLSP's Zipformer structure (7 stacks, 13 layers) at a reduced width, random weights."""
    from clsp.models import ModelConfig, build_model, tiny_config

    cfg = tiny_config().to_dict()
    cfg["speech_encoder"] = {"type": "zipformer", "encoder_dim": [dim], "feedforward_dim": [3 * dim], "num_heads": [4],
                             "dropout": 0.0}
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(cfg)).eval()
    model.name = f"random-zipformer-{dim}"
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--zipformer-dim", type=int, default=0,
                    help="Instead of --model, a random-weight 7-stack Zipformer of this width (same structure as CLSP).")
    args = ap.parse_args()
    from clsp.models import load_model

    if args.zipformer_dim:
        model = random_zipformer(args.zipformer_dim)
    else:
        model = load_model(args.model, with_text=False)
    print(f"model={model.name} params={sum(p.numel() for p in model.parameters()):,} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_clips(Path(tmp), args.clips)
        rows = []
        wall, audio_s, n = run_naive(model, manifest)
        rows.append(("one at a time, by hand (load_audio + encode_audio)", n, wall, n / wall, audio_s / wall))
        for label, bs in (("one at a time, AudioEmbedder batch 1", 1), (f"batched ({args.batch_size}), AudioEmbedder", args.batch_size)):
            wall, audio_s, n = run(model, manifest, bs, args.workers)
            rows.append((label, n, wall, n / wall, audio_s / wall))
    print(f"| mode | clips | wall s | clips/s | audio-s/s |\n|---|---|---|---|---|")
    for label, n, wall, cps, aps in rows:
        print(f"| {label} | {n} | {wall:.1f} | {cps:.2f} | {aps:.1f} |")
    print(f"speed-up batched / by-hand loop: {rows[2][3] / rows[0][3]:.2f}x; "
          f"batched / AudioEmbedder batch 1: {rows[2][3] / rows[1][3]:.2f}x")


if __name__ == "__main__":
    main()
