"""Share of a `clsp similarity --human-key` run spent on bootstrap confidence intervals.

    python benchmarks/similarity_ci.py --emodb ../shared/data/emodb   # 1,440 clip pairs, 5 groups
    python benchmarks/similarity_ci.py --pairs 5000                     # caption pairs (no audio)

Runs the real command twice on the same pairs file in one process, with ``--n-boot 0`` and
with ``--n-boot 1000``, and prints both wall times and the share of the second run spent on
the intervals ((t_ci - t_none) / t_ci). A warm-up run loads the model first.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import glob

WORDS = ["calm", "angry", "whispering", "loud", "slow", "fast", "deep", "high", "young", "old"]


def make_pairs(path: Path, n: int, groups: int, seed: int, clips: list[str]) -> None:
    """``n`` rated pairs: of two clips drawn from ``clips`` when given, else of two captions."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            if clips:
                a, b = rng.choice(clips), rng.choice(clips)
            else:
                a = f"a {rng.choice(WORDS)} {rng.choice(['male', 'female'])} voice"
                b = f"a {rng.choice(WORDS)} {rng.choice(['man', 'woman'])} speaking"
            rec = {"id": f"p{i}", "a": a, "b": b, "rating": rng.randint(1, 5), "category": f"g{i % groups}"}
            fh.write(json.dumps(rec) + "\n")


def run(pairs: Path, out: Path, n_boot: int) -> float:
    from typer.testing import CliRunner

    from clsp_cli.app import app

    t0 = time.perf_counter()
    res = CliRunner().invoke(app, ["similarity", str(pairs), "--human-key", "rating", "--group-key", "category",
                                   "--n-boot", str(n_boot), "-q", "-o", str(out)])
    if res.exit_code != 0:
        raise SystemExit(f"clsp similarity failed ({res.exit_code}): {res.output}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1440)
    ap.add_argument("--groups", type=int, default=5)
    ap.add_argument("--emodb", help="folder with EmoDB (audio/*.flac): pairs of its clips instead of captions")
    args = ap.parse_args()
    clips = sorted(glob.glob(str(Path(args.emodb).resolve() / "audio" / "*.flac"))) if args.emodb else []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        make_pairs(pairs, args.pairs, args.groups, seed=0, clips=clips)
        run(pairs, Path(tmp) / "warm.jsonl", 0)
        t_none = run(pairs, Path(tmp) / "none.jsonl", 0)
        t_ci = run(pairs, Path(tmp) / "ci.jsonl", 1000)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; {args.pairs} {'clip' if clips else 'caption'} pairs, {args.groups} groups")
    print(f"| run | wall s |\n|---|---|\n| --n-boot 0 | {t_none:.2f} |\n| --n-boot 1000 | {t_ci:.2f} |")
    print(f"share of the run spent on CIs: {100 * max(t_ci - t_none, 0.0) / t_ci:.1f} %")


if __name__ == "__main__":
    main()
