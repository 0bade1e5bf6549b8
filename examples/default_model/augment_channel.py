"""Channel-augmented copies of training clips: telephone band, low-bitrate codecs, reverberation,
additive noise and gain, deterministic from a seed.

Each copy draws one channel (8 kHz telephone band, optionally G.711 mu-law or GSM; mp3 or
Ogg Vorbis at a low bitrate; room reverberation; or none), then additive white or
brown-ish noise at 10-30 dB SNR with probability 0.5, then a gain. Every setting is
recorded in the row's ``augment`` field, and the copy keeps the source's captions, which
stay true:

* Synthetic rows (with ``segments``): the gain is drawn from -12..+12 dB (lowered where
  it would clip) and every
  segment's level moves with it, so each segment's loudness level is re-derived from its
  new level (the bands of synthetic_styles.LOUDNESS_DBFS, split at the middle of the gaps
  between them) and the captions are written again from the updated attributes. Changes
  of loudness inside a clip are untouched by a gain.
* Other rows (EmoDB, captioned by ``clsp caption`` from the measured level): the copy is
  brought back to the source's active-speech level, so the captions' loudness words hold.

    python augment_channel.py --manifest syn/train.jsonl --out syn/train_channel.jsonl \
        --audio-dir syn/channel --copies 1 [--meta syn/meta.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_styles as st  # noqa: E402
from jsonl import read_jsonl, write_jsonl  # noqa: E402
from make_synthetic import SAMPLE_RATE, active_dbfs, add_captions, set_level  # noqa: E402
from prepare_emodb import add_noise  # noqa: E402

CHANNELS = ("telephone", "mp3", "ogg", "reverb", "none")


def draw_channel(rng: random.Random) -> tuple[dict, list[str], str]:
    """One channel: its description, sox output options and effects, and the intermediate file's suffix."""
    kind = rng.choice(CHANNELS)
    if kind == "telephone":
        codec = rng.choice(["pcm", "ulaw", "gsm"])
        opts = {"pcm": ["-b", "16"], "ulaw": ["-e", "u-law", "-b", "8"], "gsm": []}[codec]
        return ({"channel": "telephone", "codec": codec},
                ["-r", "8000", *opts, "highpass", "300", "lowpass", "3400"], "gsm" if codec == "gsm" else "wav")
    if kind == "mp3":
        kbps = rng.choice([16, 24, 32])
        return {"channel": "mp3", "kbps": kbps}, ["-C", str(kbps)], "mp3"
    if kind == "ogg":
        quality = rng.choice([-1, 0])
        return {"channel": "ogg", "quality": quality}, ["-C", str(quality)], "ogg"
    if kind == "reverb":
        desc = {"channel": "reverb", "reverberance": rng.randint(20, 80), "room_scale": rng.randint(30, 100)}
        return desc, ["-b", "16", "reverb", str(desc["reverberance"]), "50", str(desc["room_scale"])], "wav"
    return {"channel": "none"}, ["-b", "16"], "wav"


def apply_channel(src: str, sox_args: list[str], suffix: str) -> np.ndarray:
    """Encode the file through sox (output options and effects ``sox_args``) into a ``suffix``
    file and decode it back; mono float32 at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        mid, back = Path(tmp) / f"mid.{suffix}", Path(tmp) / "back.wav"
        opts = sox_args[: _first_effect(sox_args)]
        effects = sox_args[len(opts):]
        subprocess.run(["sox", src, "-c", "1", *opts, str(mid), *effects], check=True, capture_output=True)
        subprocess.run(["sox", str(mid), "-b", "16", str(back), "rate", str(SAMPLE_RATE)], check=True,
                       capture_output=True)
        wave, _ = sf.read(back, dtype="float32")
    return wave


def _first_effect(sox_args: list[str]) -> int:
    """Index of the first sox effect name in an options-then-effects list."""
    names = {"highpass", "lowpass", "reverb", "rate"}
    return next((i for i, a in enumerate(sox_args) if a in names), len(sox_args))


def loudness_level(dbfs: float) -> str:
    """The synthetic loudness level of an active-speech level (dBFS), split at the gaps' middles."""
    bands = list(st.LOUDNESS_DBFS.items())
    for (name, (_, hi)), (_, (lo_next, _)) in zip(bands, bands[1:]):
        if dbfs < (hi + lo_next) / 2:
            return name
    return bands[-1][0]


def augment_one(job: tuple[dict, Path, int, int]) -> dict:
    """Write one channel-augmented copy of a row and return its row (captions not yet rewritten)."""
    row, out_dir, k, seed = job
    rng = random.Random(seed)
    desc, sox_args, suffix = draw_channel(rng)
    source, _ = sf.read(row["audio"], dtype="float32")
    wave = apply_channel(row["audio"], sox_args, suffix)
    synthetic = "segments" in row
    gain = rng.uniform(-12, 12) if synthetic else 0.0
    wave = set_level(wave, active_dbfs(source) + gain)
    headroom = 20 * np.log10(0.99 / max(float(np.abs(wave).max()), 1e-9))
    if headroom < 0:  # a gain that would clip is lowered until the peak fits
        wave, gain = wave * 10 ** (headroom / 20), gain + headroom
    gain = round(float(gain), 1)
    dst = out_dir / f"{row['id']}-ch{k}.flac"
    sf.write(dst, wave, SAMPLE_RATE, subtype="PCM_16")
    if rng.random() < 0.5:
        desc["snr_db"] = round(rng.uniform(10, 30), 1)
        add_noise(dst, desc["snr_db"], seed)
    desc["gain_db"] = gain
    out = {**row, "id": f"{row['id']}-ch{k}", "audio": str(dst.resolve()), "augment": desc,
           "duration": round(sf.info(dst).frames / SAMPLE_RATE, 3)}
    if synthetic:
        out["segments"] = [{**s, "dbfs": round(s["dbfs"] + gain, 2), "loudness": loudness_level(s["dbfs"] + gain)}
                           for s in row["segments"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--audio-dir", type=Path, required=True)
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--fraction", type=float, default=1.0, help="share of rows that get copies")
    ap.add_argument("--meta", type=Path, help="synthetic meta.json (pitch thresholds) to rewrite captions")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--caption-seed", type=int, default=1237, help="make_synthetic's --seed + 3")
    ap.add_argument("--global-captions", type=int, default=2)
    ap.add_argument("--fine-captions", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rows = read_jsonl(args.manifest)
    picked = random.Random(args.seed).sample(rows, round(len(rows) * args.fraction))
    args.audio_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(r, args.audio_dir, k, args.seed * 100003 + i * 101 + k) for i, r in enumerate(picked)
            for k in range(args.copies)]
    with ThreadPoolExecutor(args.workers) as pool:
        out = list(pool.map(augment_one, jobs))
    synthetic = [r for r in out if "segments" in r]
    if synthetic:
        if not args.meta:
            sys.exit("--meta is needed to rewrite the captions of synthetic rows")
        thresholds = json.loads(args.meta.read_text())["pitch_thresholds_hz"]
        add_captions(synthetic, thresholds, args.caption_seed, args.global_captions, args.fine_captions)
    write_jsonl(args.out, out)
    kinds = {c: sum(r["augment"]["channel"] == c for r in out) for c in CHANNELS}
    print(f"{args.out}: {len(out)} copies of {len(picked)} rows, channels {kinds}", file=sys.stderr)


if __name__ == "__main__":
    main()
