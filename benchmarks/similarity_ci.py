"""Share of a `clsp similarity --human-key` run spent on bootstrap confidence intervals.

    python benchmarks/similarity_ci.py --emodb ../shared/data/emodb   # 1,440 clip pairs, 5 groups
    python benchmarks/similarity_ci.py --pairs 5000                     # caption pairs (no audio)

Runs the real command on the same pairs file in one process, with ``--n-boot 0`` and with
``--n-boot 1000``, alternately ``--repeat`` times (default 3), and prints the median wall
times and the share of a run spent on the intervals ((t_ci - t_none) / t_ci). A warm-up run
loads the model first. On a shared machine that difference is noisy, so the script also
times the correlation reports alone on the run's own scores and ratings (the work that
``--n-boot`` adds, without the model), and their share of the median ``--n-boot 1000`` run.
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
import statistics

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


def reports_alone(out: Path, n_boot: int) -> float:
    """Seconds for the correlation reports of a finished run (overall + per group) with ``n_boot``."""
    from clsp.metrics.correlation import correlation_report

    rows = [json.loads(line) for line in open(out)]
    pairs = [(r["score"], r["rating"], r["category"]) for r in rows if "score" in r and "rating" in r]
    groups = sorted({g for _, _, g in pairs})
    t0 = time.perf_counter()
    correlation_report([p[0] for p in pairs], [p[1] for p in pairs], n_boot=n_boot)
    for g in groups:
        sel = [p for p in pairs if p[2] == g]
        correlation_report([p[0] for p in sel], [p[1] for p in sel], n_boot=n_boot)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1440)
    ap.add_argument("--groups", type=int, default=5)
    ap.add_argument("--emodb", help="folder with EmoDB (audio/*.flac): pairs of its clips instead of captions")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each setting (medians are reported)")
    args = ap.parse_args()
    clips = sorted(glob.glob(str(Path(args.emodb).resolve() / "audio" / "*.flac"))) if args.emodb else []
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        make_pairs(pairs, args.pairs, args.groups, seed=0, clips=clips)
        run(pairs, Path(tmp) / "warm.jsonl", 0)
        nones, cis = [], []
        for _ in range(args.repeat):
            nones.append(run(pairs, Path(tmp) / "none.jsonl", 0))
            cis.append(run(pairs, Path(tmp) / "ci.jsonl", 1000))
        alone = statistics.median(reports_alone(Path(tmp) / "ci.jsonl", 1000) - reports_alone(Path(tmp) / "ci.jsonl", 0)
                                  for _ in range(args.repeat))
    t_none, t_ci = statistics.median(nones), statistics.median(cis)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; {args.pairs} {'clip' if clips else 'caption'} pairs, {args.groups} groups")
    print(f"| run | wall s (median of {args.repeat}) | all runs |\n|---|---|---|")
    print(f"| --n-boot 0 | {t_none:.2f} | {' '.join(f'{t:.2f}' for t in nones)} |")
    print(f"| --n-boot 1000 | {t_ci:.2f} | {' '.join(f'{t:.2f}' for t in cis)} |")
    print(f"share of the run spent on CIs: {100 * max(t_ci - t_none, 0.0) / t_ci:.1f} % (difference of medians)")
    print(f"the reports' intervals alone: {alone:.2f} s, {100 * alone / t_ci:.1f} % of the median --n-boot 1000 run")


if __name__ == "__main__":
    main()
