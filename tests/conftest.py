"""Shared fixtures: small audio files made by the tests and a runner for the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Subprocess tests call `clsp` by name: make the interpreter's own scripts folder win.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CLSP = shutil.which("clsp") or str(Path(sys.executable).parent / "clsp")


def tone(seconds: float, freq: float = 220.0, sr: int = 16000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: cheap, deterministic stand-in for a voice."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    sig = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5))
    return (amp * sig / 2 + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, seconds: float, freq: float = 220.0, sr: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    data = tone(seconds, freq, sr, seed=seed)
    if channels > 1:
        data = np.stack([data] * channels, axis=1)
    sf.write(str(path), data, sr)
    return path


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """A folder with six clips of 0.5-3 s and a manifest ``clips.jsonl`` (relative paths)."""
    recs = []
    for i, (sec, f) in enumerate([(1.0, 120), (2.5, 220), (0.5, 300), (3.0, 180), (1.7, 250), (2.2, 140)]):
        write_wav(tmp_path / f"c{i}.wav", sec, f, seed=i)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav", "speaker": f"s{i % 2}"})
    (tmp_path / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp_path


def run_clsp(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``clsp`` executable; stdout and stderr captured separately."""
    return subprocess.run([CLSP, *args], input=stdin, capture_output=True, cwd=cwd, timeout=timeout)


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
