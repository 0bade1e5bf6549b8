"""The captioner's analysis frame grid: 10 ms hops of 32 ms frames (F0 itself comes from Praat)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PitchConfig:
    """Frame grid of the acoustic analysis (``sample_rate`` Hz, ``hop_s``/``window_s`` seconds)."""

    sample_rate: int = 16000
    hop_s: float = 0.01
    window_s: float = 0.032


def frame_signal(x: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """Frames (N, frame_len) starting every ``hop`` samples; the tail is zero-padded."""
    n_frames = max(1, 1 + int(np.ceil(max(0, len(x) - hop) / hop)))
    padded = np.zeros((n_frames - 1) * hop + frame_len, dtype=np.float64)
    padded[: len(x)] = x
    stride = padded.strides[0]
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, frame_len), strides=(hop * stride, stride), writeable=False
    )
