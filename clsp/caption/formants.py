"""Formant frequencies by linear prediction, and the vocal-tract formant spacing they imply.

Formant spacing (the mean distance between adjacent resonances) depends on vocal-tract
length, which differs between adult men and women far more steadily across emotions than
F0 does, so it is a second, independent cue for inferring gender from a voice.
"""

from __future__ import annotations

import numpy as np

from clsp.caption.pitch import frame_signal


def _levinson(r: np.ndarray, order: int) -> np.ndarray | None:
    """LPC polynomial [1, a1..ap] from autocorrelation ``r`` (None when ill-conditioned)."""
    a = np.zeros(order + 1)
    a[0] = 1.0
    err = r[0]
    for i in range(1, order + 1):
        if err <= 1e-12 * r[0]:
            return None
        k = -(r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])) / err
        a[1 : i + 1] = a[1 : i + 1] + k * a[i - 1 :: -1][: i]
        err *= 1.0 - k * k
    return a


def frame_formants(frame: np.ndarray, sample_rate: int, order: int, count: int = 4) -> np.ndarray | None:
    """The lowest ``count`` formants (Hz) of one windowed frame, or None if too few are found."""
    r = np.array([np.dot(frame[: len(frame) - k], frame[k:]) for k in range(order + 1)])
    a = _levinson(r, order)
    if a is None:
        return None
    roots = np.roots(a)
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * sample_rate / (2 * np.pi)
    bandwidths = -np.log(np.maximum(np.abs(roots), 1e-12)) * sample_rate / np.pi
    keep = np.sort(freqs[(freqs > 200) & (freqs < sample_rate / 2 - 300) & (bandwidths < 500)])
    return keep[:count] if len(keep) >= count else None


def formant_spacing(
    x: np.ndarray, voiced: np.ndarray, sample_rate: int = 16000, hop_s: float = 0.01,
    max_frames: int = 80,
) -> dict:
    """Median F1-F4 over voiced frames and the spacing dF fitted as F_i = (2i - 1) dF / 2."""
    hop = int(round(hop_s * sample_rate))
    window = int(round(0.025 * sample_rate))
    emphasised = np.append(x[0], x[1:] - 0.97 * x[:-1])
    frames = frame_signal(emphasised, window, hop)[: len(voiced)]
    idx = np.flatnonzero(voiced[: len(frames)])
    if len(idx) > max_frames:
        idx = idx[np.linspace(0, len(idx) - 1, max_frames).astype(int)]
    taper = np.hamming(window)
    found = [f for f in (frame_formants(frames[i] * taper, sample_rate, 16) for i in idx) if f is not None]
    if len(found) < 5:
        return {"formants_hz": None, "formant_spacing_hz": None}
    medians = np.median(np.stack(found), axis=0)
    weights = (2 * np.arange(1, len(medians) + 1) - 1) / 2.0
    spacing = float(np.dot(medians, weights) / np.dot(weights, weights))
    return {"formants_hz": [float(v) for v in medians], "formant_spacing_hz": spacing}
