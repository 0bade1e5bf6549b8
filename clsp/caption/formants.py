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


BAND_HZ = 250.0  # width of the bands of the long-term spectrum read by ``effective_bandwidth``
BAND_FLOOR_DB = 30.0  # bands this far below the strongest one are the channel's roll-off
# Upper ends of F1-F4 for adult voices (Peterson & Barney 1952; Hillenbrand et al. 1995 reach
# about 1.0, 2.5, 3.5, 4.5 kHz). Linear prediction finds a formant reliably only when the
# recording's band reaches 1.5 times that far; otherwise it is reported unknown (None).
FORMANT_CEILINGS_HZ = (1000.0, 2500.0, 3500.0, 4500.0)
BAND_MARGIN = 1.5


def effective_bandwidth(x: np.ndarray, sample_rate: int = 16000) -> float:
    """Highest frequency (Hz) the recording carries: the upper edge of the highest 250 Hz band
    of the long-term power spectrum within 30 dB of the strongest band. A telephone (8 kHz)
    copy upsampled to 16 kHz gives about 4-4.5 kHz, a wideband recording 6-8 kHz."""
    n = 512
    if len(x) < n:
        return sample_rate / 2
    frames = frame_signal(x, n, n // 2) * np.hanning(n)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    bands = np.bincount((freqs // BAND_HZ).astype(int), weights=power)
    if bands.max() <= 0:
        return sample_rate / 2
    alive = np.flatnonzero(bands >= bands.max() * 10 ** (-BAND_FLOOR_DB / 10))
    return float(min(sample_rate / 2, (alive[-1] + 1) * BAND_HZ))


def formant_spacing(
    x: np.ndarray, voiced: np.ndarray, sample_rate: int = 16000, hop_s: float = 0.01,
    max_frames: int = 80,
) -> dict:
    """Median F1-F4 over voiced frames and the spacing dF fitted as F_i = (2i - 1) dF / 2.

    A formant whose ``FORMANT_CEILINGS_HZ`` times ``BAND_MARGIN`` lies above the recording's
    ``effective_bandwidth`` cannot be measured from it (linear prediction puts spurious poles
    near the band edge): it is reported as None and left out of the spacing fit, so a
    telephone copy reports F1 and F2 only. ``bandwidth_hz`` is reported too."""
    bandwidth = effective_bandwidth(x, sample_rate)
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
        return {"formants_hz": None, "formant_spacing_hz": None, "bandwidth_hz": bandwidth}
    medians = np.median(np.stack(found), axis=0)
    known = BAND_MARGIN * np.array(FORMANT_CEILINGS_HZ[: len(medians)]) <= bandwidth
    weights = (2 * np.arange(1, len(medians) + 1) - 1) / 2.0
    spacing = float(np.dot(medians[known], weights[known]) / np.dot(weights[known], weights[known])) if known.any() else None
    return {"formants_hz": [float(v) if k else None for v, k in zip(medians, known)],
            "formant_spacing_hz": spacing, "bandwidth_hz": bandwidth}
