"""Peak memory of ``clsp embed``: flat over a 100,000-record stream, bounded on an hour-long file.

Streams records into the real ``clsp`` executable through a pipe and samples its resident
set size (VmRSS, and VmHWM for the peak) from /proc while it runs. Prints a table.

    python benchmarks/memory.py [--records 100000] [--audio-records 20000] [--hour]
    python benchmarks/memory.py --hour-lists 10,200 --hour-policy truncate  # N records of one 1-hour file

``--hour-lists`` writes the hour-long file once and streams lists of N lines pointing to
it: peak RSS must not grow with N (decoded audio in flight is bounded by seconds, long
files are decoded window by window).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CLSP = shutil.which("clsp") or str(Path(sys.executable).parent / "clsp")


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_stream(args: list[str], lines, marks: list[int], cwd: Path) -> tuple[list[tuple[int, float]], float, float]:
    """Feed ``lines`` to ``clsp``; RSS (MiB) when output reaches each mark, peak RSS, seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([CLSP, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=cwd, env=env)
    start = time.perf_counter()

    def feed() -> None:
        try:
            for line in lines:
                proc.stdin.write(line)
            proc.stdin.close()
        except BrokenPipeError:
            pass

    threading.Thread(target=feed, daemon=True).start()
    peak_kb = [0]

    def sample() -> None:  # VmHWM is gone once the process exits: keep the last value seen
        while proc.poll() is None:
            peak_kb[0] = max(peak_kb[0], _status_kb(proc.pid, "VmHWM"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    at, todo, n = [], list(marks), 0
    for _ in proc.stdout:
        n += 1
        if todo and n == todo[0]:
            at.append((n, _status_kb(proc.pid, "VmRSS") / 1024))
            todo.pop(0)
    proc.wait()
    sampler.join()
    peak = peak_kb[0] / 1024
    if proc.returncode not in (0, 3):
        raise SystemExit(f"clsp {' '.join(args)} exited with {proc.returncode}")
    return at, peak, time.perf_counter() - start


def text_lines(n: int):
    for i in range(n):
        yield (json.dumps({"id": f"t{i}", "text": f"a calm, low voice number {i} speaking slowly"}) + "\n").encode()


def audio_lines(n: int, folder: Path):
    rng = np.random.default_rng(0)
    for k in range(4):
        sf.write(folder / f"c{k}.wav", (0.1 * rng.standard_normal(int(16000 * (0.3 + 0.2 * k)))).astype(np.float32), 16000)
    return ((json.dumps({"id": f"a{i}", "audio": f"c{i % 4}.wav"}) + "\n").encode() for i in range(n))


def hour_file(folder: Path) -> Path:
    """One hour of 16 kHz audio: a tone every minute over noise, written in blocks."""
    path = folder / "hour.flac"
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as fh:
        rng = np.random.default_rng(1)
        for minute in range(60):
            t = np.arange(16000 * 60) / 16000
            fh.write((0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * (150 + minute) * t)).astype(np.float32))
    return path


def hour_lists(counts: list[int], policy: str) -> None:
    """Peak RSS of lists of N records that all point to one 1-hour file."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = hour_file(folder)
        for n in counts:
            lines = [(json.dumps({"id": f"h{i}", "audio": str(path)}) + "\n").encode() for i in range(n)]
            _, peak, secs = run_stream(["embed", "-", "--model", "tiny-random", "-q", "--long-audio", policy],
                                       lines, [], folder)
            rows.append((n, peak, secs))
    print(f"{'records of a 1 h file':<22} {'policy':<11} {'peak MiB':>9} {'seconds':>8}")
    for n, peak, secs in rows:
        print(f"{n:<22} {policy:<11} {peak:>9.0f} {secs:>8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--audio-records", type=int, default=100_000)
    ap.add_argument("--hour", action="store_true", help="Also embed an hour-long file under each long-audio policy.")
    ap.add_argument("--hour-lists", default="", help="Only embed lists of N records of one 1-hour file, e.g. 10,200.")
    ap.add_argument("--hour-policy", default="chunk-mean", help="--long-audio policy for --hour-lists.")
    a = ap.parse_args()
    if a.hour_lists:
        return hour_lists([int(n) for n in a.hour_lists.split(",")], a.hour_policy)
    marks = [m for m in (1_000, 10_000, 50_000, 100_000) if m <= a.records]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        at, peak, secs = run_stream(["embed", "-", "--modality", "text", "--model", "tiny-random", "-q"],
                                    text_lines(a.records), marks, folder)
        rows.append(("text", a.records, at, peak, secs))
        amarks = [m for m in (1_000, 5_000, 10_000, 20_000, 50_000, 100_000) if m <= a.audio_records]
        at, peak, secs = run_stream(["embed", "-", "--model", "tiny-random", "-q", "--workers", "2"],
                                    audio_lines(a.audio_records, folder), amarks, folder)
        rows.append(("audio", a.audio_records, at, peak, secs))
        if a.hour:
            path = hour_file(folder)
            for policy in ("chunk-mean", "windows"):
                line = [(json.dumps({"id": "hour", "audio": str(path)}) + "\n").encode()]
                at, peak, secs = run_stream(["embed", "-", "--model", "tiny-random", "-q", "--long-audio", policy],
                                            line, [], folder)
                rows.append((f"1 h file, {policy}", 1, at, peak, secs))
    print(f"{'stream':<22} {'records':>8}  {'RSS (MiB) after N output records':<44} {'peak MiB':>9} {'seconds':>8}")
    for name, n, at, peak, secs in rows:
        marks_txt = ", ".join(f"{k // 1000}k: {v:.0f}" for k, v in at) or "-"
        print(f"{name:<22} {n:>8}  {marks_txt:<44} {peak:>9.0f} {secs:>8.1f}")


if __name__ == "__main__":
    main()
