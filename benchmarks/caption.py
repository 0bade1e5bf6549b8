"""Acoustic caption backend: clips/s on CPU, and gender accuracy on EmoDB with no labels given.

    python benchmarks/caption.py                 # speed on EmoDB clips (or espeak-ng speech)
    python benchmarks/caption.py --gender-eval   # also state-gender accuracy over all EmoDB clips

Speed is timed for each ``--cpu-lstm`` format of the speaker encoders' LSTMs
(``CLSP_CPU_LSTM``, ``clsp.models.lstm_precision``) two ways: one clip at a time
(``caption_waveform``) and as ``clsp caption`` runs, the speaker encoders scoring 16 clips
per pass (``measure(..., speaker=False)`` + ``add_speaker_logits``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb"


def stated_gender(caption: str) -> str | None:
    text = f" {caption.lower()} "
    if " woman " in text or " female " in text:
        return "female"
    if " man " in text or " male " in text:
        return "male"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emodb", type=Path, default=EMODB)
    parser.add_argument("--clips", type=int, default=100, help="clips timed for speed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gender-eval", action="store_true", help="caption all clips and score gender")
    parser.add_argument("--cpu-lstm", nargs="+", default=["auto", "int8"], help="CLSP_CPU_LSTM values to time")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from clsp.audio import load_audio
    from clsp.caption.backend import AcousticCaptioner

    torch.set_num_threads(args.threads)
    rows = [json.loads(x) for x in (args.emodb / "labels.jsonl").read_text().splitlines() if x.strip()]
    captioner = AcousticCaptioner.from_bins_file()
    waves = [(r, load_audio(args.emodb / r["audio"])) for r in rows]
    timed = waves[: args.clips]
    audio_s = sum(w.numel() for _, w in timed) / 16000

    def one_at_a_time():
        for r, w in timed:
            captioner.caption_waveform(w, rec_id=r["id"])

    def sixteen_per_pass():
        for i in range(0, len(timed), 16):
            chunk = timed[i : i + 16]
            measured = [(captioner.measure(w, speaker=False), w) for _, w in chunk]
            captioner.add_speaker_logits(measured)
            for (r, _), (m, _) in zip(chunk, measured):
                captioner.caption_measurements(m, rec_id=r["id"])

    from clsp.models.lstm_precision import ENV, amx_available

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={args.threads}, "
          f"AMX: {amx_available()}")
    print("| CLSP_CPU_LSTM | speaker encoders | clips | audio s | wall s | clips/s | audio-s/s |\n|---|---|---|---|---|---|---|")
    for precision in args.cpu_lstm:
        os.environ[ENV] = precision
        captioner.caption_waveform(timed[0][1], rec_id="warmup")
        for label, fn in (("one clip per pass", one_at_a_time), ("16 clips per pass", sixteen_per_pass)):
            start = time.perf_counter()
            fn()
            dt = time.perf_counter() - start
            print(f"| {precision} | {label} | {len(timed)} | {audio_s:.1f} | {dt:.2f} | {len(timed) / dt:.1f} | "
                  f"{audio_s / dt:.1f} |")
    if args.gender_eval:
        os.environ[ENV] = args.cpu_lstm[0]
        print(f"gender under {ENV}={args.cpu_lstm[0]}")
        hits, confusion = 0, Counter()
        for r, w in waves:
            said = stated_gender(captioner.caption_waveform(w, {}, rec_id=r["id"])["global_captions"][0])
            hits += said == r["gender"]
            confusion[(r["gender"], said)] += 1
        print(f"gender stated = label: {hits}/{len(waves)} = {hits / len(waves):.3f}")
        print("confusion (label, stated):", dict(confusion))


if __name__ == "__main__":
    main()
