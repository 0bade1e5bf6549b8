"""A YIN-style fundamental-frequency tracker in numpy (deterministic, CPU only).

de Cheveigné & Kawahara (2002): the cumulative-mean-normalised difference function of each
frame is searched for its first dip below a threshold; the dip position is the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PitchConfig:
    """Settings of the pitch tracker; the defaults suit adult speech at 16 kHz."""

    sample_rate: int = 16000
    hop_s: float = 0.01
    window_s: float = 0.032
    fmin_hz: float = 60.0
    fmax_hz: float = 500.0
    threshold: float = 0.35
    lowpass_hz: float = 1000.0
    min_run_frames: int = 4
    median_frames: int = 5


def frame_signal(x: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """Frames (N, frame_len) starting every ``hop`` samples; the tail is zero-padded."""
    n_frames = max(1, 1 + int(np.ceil(max(0, len(x) - hop) / hop)))
    padded = np.zeros((n_frames - 1) * hop + frame_len, dtype=np.float64)
    padded[: len(x)] = x
    stride = padded.strides[0]
    return np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, frame_len), strides=(hop * stride, stride), writeable=False
    )


def _cmnd(frames: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """Cumulative-mean-normalised difference d'(tau) for tau in [0, max_lag], per frame."""
    n_fft = 1 << int(np.ceil(np.log2(frames.shape[1] + window)))
    head = np.zeros_like(frames)
    head[:, :window] = frames[:, :window]
    spec = np.conj(np.fft.rfft(head, n_fft)) * np.fft.rfft(frames, n_fft)
    corr = np.fft.irfft(spec, n_fft)[:, : max_lag + 1]
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    lags = np.arange(max_lag + 1)
    energy_lag = sq[:, lags + window] - sq[:, lags]
    diff = np.maximum(energy_lag[:, :1] + energy_lag - 2.0 * corr, 0.0)
    running = np.cumsum(diff[:, 1:], axis=1) / lags[1:]
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(running, 1e-12)
    return cmnd


def _first_dips(cmnd: np.ndarray, min_lag: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Lag of the first dip below ``threshold`` (refined to its local minimum) and its depth."""
    n, length = cmnd.shape
    search = cmnd.copy()
    search[:, :min_lag] = np.inf
    below = search < threshold
    found = below.any(axis=1)
    first = np.where(found, below.argmax(axis=1), 0)
    after = np.arange(length)[None, :] >= first[:, None]
    run = np.logical_and.accumulate(below | ~after, axis=1) & after
    lag = np.where(run, search, np.inf).argmin(axis=1)
    depth = cmnd[np.arange(n), lag]
    return np.where(found, lag, 0), np.where(found, depth, 1.0)


def _refine(cmnd: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Parabolic interpolation of the dip position for sub-sample period estimates."""
    rows = np.arange(len(lag))
    inner = (lag > 0) & (lag < cmnd.shape[1] - 1)
    safe = np.clip(lag, 1, cmnd.shape[1] - 2)
    a, b, c = cmnd[rows, safe - 1], cmnd[rows, safe], cmnd[rows, safe + 1]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    return np.where(inner, lag + np.clip(shift, -1, 1), lag.astype(np.float64))


def _clean_runs(f0: np.ndarray, min_run: int, median_frames: int) -> np.ndarray:
    """Drop voiced runs shorter than ``min_run`` frames and median-smooth the rest."""
    out = np.zeros_like(f0)
    voiced = f0 > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(int), [0]])))
    half = median_frames // 2
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start < min_run:
            continue
        run = f0[start:end]
        padded = np.pad(run, half, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, median_frames)
        out[start:end] = np.median(windows, axis=1)
    return out


def _fix_octaves(f0: np.ndarray) -> np.ndarray:
    """Fold frames an octave away from the clip median back towards it."""
    voiced = f0 > 0
    if voiced.sum() < 3:
        return f0
    ref = np.median(f0[voiced])
    out = f0.copy()
    high = voiced & (f0 > 1.7 * ref)
    low = voiced & (f0 < ref / 1.7)
    out[high] = f0[high] / 2.0
    out[low] = f0[low] * 2.0
    return out


def lowpass(x: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Zero-phase FFT low-pass with a raised-cosine roll-off over [0.8, 1.2] x cutoff."""
    n_fft = 1 << int(np.ceil(np.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, hi = 0.8 * cutoff_hz, 1.2 * cutoff_hz
    ramp = np.clip((freqs - lo) / (hi - lo), 0.0, 1.0)
    return np.fft.irfft(spec * 0.5 * (1.0 + np.cos(np.pi * ramp)), n_fft)[: len(x)]


def track_pitch(x: np.ndarray, active: np.ndarray, config: PitchConfig = PitchConfig()) -> np.ndarray:
    """F0 in Hz per hop (0 where unvoiced); ``active`` marks frames loud enough to be speech."""
    sr = config.sample_rate
    hop = int(round(config.hop_s * sr))
    window = int(round(config.window_s * sr))
    max_lag = int(np.ceil(sr / config.fmin_hz))
    min_lag = int(np.floor(sr / config.fmax_hz))
    x = lowpass(x, config.lowpass_hz, sr)
    frames = frame_signal(x, window + max_lag, hop)[: len(active)]
    cmnd = _cmnd(frames, window, max_lag)
    lag, depth = _first_dips(cmnd, min_lag, config.threshold)
    period = _refine(cmnd, lag)
    voiced = (lag > 0) & active[: len(lag)] & (depth < config.threshold)
    f0 = np.where(voiced, sr / np.maximum(period, 1e-9), 0.0)
    f0 = _clean_runs(_fix_octaves(f0), config.min_run_frames, config.median_frames)
    out = np.zeros(len(active))
    out[: len(f0)] = f0
    return out
