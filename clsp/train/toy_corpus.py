"""A small synthetic speech-style corpus with known styles, for tests, examples and benchmarks.

Each clip is a harmonic tone with a little noise whose pitch (four levels) and loudness
(two levels) are its "style"; every clip has a global caption naming the style and
several fine-grained paraphrases. Styles are exactly recoverable from the audio, so a
working trainer must make retrieval rise far above chance.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

PITCHES = [("very low", "deep", 110.0), ("low", "low-pitched", 180.0), ("high", "high-pitched", 300.0),
           ("very high", "shrill", 480.0)]
LOUDNESS = [("quiet", "softly", 0.03), ("loud", "loudly", 0.4)]
FINE_TEMPLATES = [
    "The speaker has a {pitch} pitch and talks {manner} from start to finish.",
    "A {adj} voice that stays {level} the whole time, speaking {manner}.",
    "Throughout the clip a {adj} speaker talks {manner}, never changing the {pitch} pitch.",
]
SAMPLE_RATE = 16000


def styles() -> list[dict]:
    """The eight styles: pitch x loudness, with their captions."""
    out = []
    for pitch, adj, freq in PITCHES:
        for level, manner, amp in LOUDNESS:
            fine = [t.format(pitch=pitch, adj=adj, manner=manner, level=level) for t in FINE_TEMPLATES]
            out.append({"freq": freq, "amp": amp, "global": f"A {adj} voice speaking {manner}.", "fine": fine})
    return out


def synth(freq: float, amp: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = freq * (1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))  # a little vibrato
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wave = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    wave = amp * wave / 1.8 + 0.002 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def write_toy_corpus(folder: str | Path, clips_per_style: int = 8, seed: int = 0,
                     min_seconds: float = 0.6, max_seconds: float = 1.4, name: str = "train") -> Path:
    """Write wavs and ``<name>.jsonl`` (paths relative to it) into ``folder``; returns the manifest."""
    import soundfile as sf

    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for s, style in enumerate(styles()):
        for i in range(clips_per_style):
            seconds = float(rng.uniform(min_seconds, max_seconds))
            rel = f"wav/{name}-{s}-{i}.wav"
            sf.write(folder / rel, synth(style["freq"], style["amp"], seconds, rng), SAMPLE_RATE)
            rows.append({"id": f"{name}-{s}-{i}", "audio": rel, "duration": round(seconds, 4),
                         "global_captions": [style["global"]], "finegrained_captions": style["fine"], "style": s})
    random.Random(seed).shuffle(rows)
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def write_toy_splits(folder: str | Path, clips_per_style: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """``train.jsonl`` (``clips_per_style`` clips per style) and ``valid.jsonl`` (one per style)."""
    train = write_toy_corpus(folder, clips_per_style, seed, 0.4, 0.8, "train")
    valid = write_toy_corpus(folder, 1, seed + 1, 0.4, 0.8, "valid")
    return train, valid


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m clsp.train.toy_corpus OUT_DIR")
    for path in write_toy_splits(sys.argv[1]):
        print(path)
