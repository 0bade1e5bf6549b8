"""Test models and corpora shared by every test: deterministic tones, a small clip folder,
and one tiny random-weight model built once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]  # the checkout: clsp/, examples/, tests/
TEST_DATA = REPO / "tests" / "data"  # fixtures shipped with the tests


def tone(seconds: float, freq: float = 220.0, sr: int = 16000, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise, swelling 4 times a second as syllables do (a steady
    tone is no speech to a captioner): cheap, deterministic stand-in for a voice."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    sig = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5)) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return (amp * sig / 2 + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, seconds: float, freq: float = 220.0, sr: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    data = tone(seconds, freq, sr, seed=seed)
    if channels > 1:
        data = np.stack([data] * channels, axis=1)
    sf.write(str(path), data, sr)
    return path


def make_clips(folder: Path) -> Path:
    """Six clips of 0.5-3 s and a manifest ``clips.jsonl`` (relative paths) in ``folder``."""
    recs = []
    for i, (sec, f) in enumerate([(1.0, 120), (2.5, 220), (0.5, 300), (3.0, 180), (1.7, 250), (2.2, 140)]):
        write_wav(folder / f"c{i}.wav", sec, f, seed=i)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav", "speaker": f"s{i % 2}"})
    (folder / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return folder


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """A folder with six clips of 0.5-3 s and a manifest ``clips.jsonl`` (relative paths)."""
    return make_clips(tmp_path)


@pytest.fixture(scope="session")
def tiny_model():
    """The built-in ``tiny-random`` model (eval mode), built once per session; do not modify it."""
    from clsp.models import load_model

    return load_model("tiny-random").eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model) -> Path:
    """``tiny_model`` saved once per session as a model folder (``--model DIR``)."""
    from clsp.models import save_model

    path = tmp_path_factory.mktemp("tiny-model") / "tiny"
    save_model(tiny_model, path)
    return path
