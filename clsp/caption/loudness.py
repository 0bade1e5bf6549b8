"""Loudness by ITU-R BS.1770-4 (K-weighted, gated integrated loudness, LUFS) via pyloudnorm.

Loudness words can be relative to a reference the user chooses (``LoudnessReference``):
- ``corpus``: the median integrated loudness of the clips captioned together (or a given
  LUFS value, so that shards of one corpus share it); a quietly recorded corpus is then
  described by how loud each clip is *within* it, not as "very soft" throughout;
- ``recording``: gain-free vocal effort only (spectral tilt, the alpha ratio), for clips
  whose recording level says nothing about the voice;
- ``absolute``: the integrated loudness itself (LUFS bins), as a level meter reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clsp.errors import ConfigError

BLOCK_S = 0.4  # BS.1770 gating block
MODES = ("corpus", "recording", "absolute")


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness in LUFS (BS.1770-4); None for clips shorter than one 0.4 s block or silent."""
    import pyloudnorm

    x = np.asarray(x, dtype=np.float64)
    if len(x) < BLOCK_S * sample_rate:
        return None
    value = float(pyloudnorm.Meter(sample_rate, block_size=BLOCK_S).integrated_loudness(x))
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class LoudnessReference:
    """Which reference loudness words use: ``mode`` and, for ``corpus``, the reference LUFS."""

    mode: str = "corpus"
    lufs: float | None = None

    @classmethod
    def parse(cls, text: str) -> "LoudnessReference":
        """'corpus', 'recording', 'absolute', or a number: a corpus reference in LUFS (e.g. '-26')."""
        value = str(text).strip().lower()
        if value in MODES:
            return cls(mode=value)
        try:
            lufs = float(value)
        except ValueError:
            raise ConfigError(f"loudness reference {text!r}: expected corpus, recording, absolute or a LUFS value") from None
        if not math.isfinite(lufs) or not -100.0 <= lufs <= 10.0:
            raise ConfigError(f"loudness reference {text!r}: a LUFS value must lie in [-100, 10]")
        return cls(mode="corpus", lufs=lufs)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "lufs": None if self.lufs is None else round(self.lufs, 2)}


def corpus_reference(values: list[float | None]) -> float | None:
    """The median of the clips' integrated loudness (LUFS), ignoring clips without one."""
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None
