"""Join the captioned corpora into one training manifest per stage.

Single-style synthetic clips keep one style from start to end, so a random window of
``--crop`` seconds still matches every caption: training on windows costs less compute
than whole clips. Clips whose style changes (several segments) stay whole, and at most
``--max-multi`` of them are kept, since their fine-grained captions describe the whole.

    python make_manifests.py --synthetic syn/train.jsonl --emodb emodb/train.jsonl \
        --out stage1.jsonl --crop 2.2 --max-multi 0
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonl import read_jsonl, write_jsonl  # noqa: E402

KEEP = ("id", "audio", "start", "end", "duration", "speaker", "global_captions", "finegrained_captions")


def window(rng: random.Random, row: dict, crop: float) -> dict:
    """The row limited to a random window of crop seconds (whole clip if shorter)."""
    if crop <= 0 or row["duration"] <= crop + 0.2:
        return row
    start = round(rng.uniform(0.0, row["duration"] - crop), 3)
    return {**row, "start": start, "end": round(start + crop, 3), "duration": crop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=Path, nargs="+", required=True, help="synthetic manifests (and their copies)")
    ap.add_argument("--emodb", type=Path, nargs="+", required=True, help="EmoDB manifests (and their copies)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--crop", type=float, default=2.2, help="window length for single-style clips (0: whole)")
    ap.add_argument("--max-multi", type=int, default=-1, help="style-changing clips kept (-1: all)")
    ap.add_argument("--max-single", type=int, default=-1, help="single-style clips kept (-1: all)")
    ap.add_argument("--max-emodb", type=int, default=-1, help="EmoDB rows kept before repeating (-1: all)")
    ap.add_argument("--emodb-repeat", type=int, default=1, help="times each EmoDB row is listed")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    syn = [{**r, "speaker": f"syn-{r['voice']}"} for p in args.synthetic for r in read_jsonl(p)]  # hard-negative groups
    single = [window(rng, r, args.crop) for r in syn if len(r["segments"]) == 1]
    multi = [r for r in syn if len(r["segments"]) > 1]
    if args.max_single >= 0:
        single = rng.sample(single, min(args.max_single, len(single)))
    if args.max_multi >= 0:
        multi = rng.sample(multi, min(args.max_multi, len(multi)))
    emodb = [r for p in args.emodb for r in read_jsonl(p)]
    if args.max_emodb >= 0:
        emodb = rng.sample(emodb, min(args.max_emodb, len(emodb)))
    emodb = emodb * args.emodb_repeat
    rows = [{k: r[k] for k in KEEP if k in r} for r in single + multi + emodb]
    rng.shuffle(rows)
    write_jsonl(args.out, rows)
    seconds = sum(r["duration"] for r in rows)
    print(f"{args.out}: {len(rows)} clips ({len(single)} single-style, {len(multi)} style-changing, "
          f"{len(emodb)} emodb), {seconds / 3600:.2f} h")


if __name__ == "__main__":
    main()
