"""Phonetic measurements by Praat (through parselmouth): pitch, formants, intensity, voice quality.

Pitch is Praat's autocorrelation method (Boersma 1993, ``To Pitch (ac)``); formants are
Burg LPC tracks (``To Formant (burg)``) with the ceiling set per voice (5,000 Hz for voices
with a median F0 below 165 Hz, 5,500 Hz above, as the Praat manual advises for adult men and
women) and never above the recording's own bandwidth; formants that fall in the top 15 % of
that band are reported as unknown (None). Voice quality: harmonics-to-noise ratio
(``To Harmonicity (cc)``, dB), local jitter and shimmer (fractions, Praat's defaults: period
range 0.1-20 ms, maximum period factor 1.3, amplitude factor 1.6) and smoothed cepstral peak
prominence (CPPS, Hillenbrand & Houde 1996; Praat ``Get CPPS``, dB).
"""

from __future__ import annotations

import numpy as np

PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 600.0
FORMANT_CEILING_MALE_HZ = 5000.0
FORMANT_CEILING_FEMALE_HZ = 5500.0
FORMANT_VOICE_SPLIT_HZ = 165.0
BAND_EDGE_FRACTION = 0.85


def _sound(x: np.ndarray, sample_rate: int):
    import parselmouth

    return parselmouth.Sound(np.asarray(x, dtype=np.float64), sampling_frequency=float(sample_rate))


def _on_grid(times: np.ndarray, values: np.ndarray, grid_s: np.ndarray, step_s: float) -> np.ndarray:
    """Values of a Praat track (frame times ``times``) at the nearest frame to each grid time; 0 outside."""
    out = np.zeros(len(grid_s))
    if len(times) == 0:
        return out
    idx = np.rint((grid_s - times[0]) / step_s).astype(int)
    inside = (idx >= 0) & (idx < len(times))
    out[inside] = values[idx[inside]]
    return np.nan_to_num(out, nan=0.0)


def pitch_track(x: np.ndarray, sample_rate: int, grid_s: np.ndarray, hop_s: float = 0.01) -> np.ndarray:
    """F0 in Hz at each time of ``grid_s`` (seconds; frame centres), 0 where Praat finds no voicing.

    Praat ``To Pitch (ac)`` with time step ``hop_s``, floor 60 Hz and ceiling 600 Hz.
    """
    pitch = _sound(x, sample_rate).to_pitch_ac(time_step=hop_s, pitch_floor=PITCH_FLOOR_HZ,
                                                pitch_ceiling=PITCH_CEILING_HZ)
    return _on_grid(np.asarray(pitch.xs()), pitch.selected_array["frequency"], grid_s, hop_s)


def bandwidth_hz(x: np.ndarray, sample_rate: int, source_rate: int | None = None, below_peak_db: float = 40.0) -> float:
    """Highest frequency the recording carries, in Hz.

    The smaller of half the source sample rate (``source_rate``: the file's rate before any
    resampling) and the highest frequency at which the long-term average spectrum (512-point
    frames, smoothed over 250 Hz) is within ``below_peak_db`` dB of its peak (40 dB: wideband EmoDB
    speech reaches 7.4 kHz or more, its 8 kHz copies resampled back to 16 kHz at most 4.9 kHz), so that a
    telephone-band file resampled to 16 kHz is still known to stop near 4 kHz.
    """
    nyquist = sample_rate / 2.0
    if source_rate:
        nyquist = min(nyquist, source_rate / 2.0)
    n = 512
    if len(x) < n:
        return nyquist
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    width = max(1, int(round(250.0 / (freqs[1] - freqs[0]))))
    smooth = np.convolve(power, np.ones(width) / width, mode="same")
    level = 10.0 * np.log10(np.maximum(smooth, 1e-30))
    carried = np.flatnonzero(level >= level.max() - below_peak_db)
    return float(min(nyquist, freqs[carried[-1]])) if len(carried) else nyquist


def voice_ceiling_hz(f0_median_hz: float | None) -> float:
    """The Praat manual's Burg ceiling for a voice: 5,500 Hz (median F0 >= 165 Hz) or 5,000 Hz."""
    return FORMANT_CEILING_FEMALE_HZ if (f0_median_hz or 0.0) >= FORMANT_VOICE_SPLIT_HZ else FORMANT_CEILING_MALE_HZ


def formants(
    x: np.ndarray, sample_rate: int, voiced_times_s: np.ndarray, f0_median_hz: float | None, band_hz: float,
    count: int = 4,
) -> dict:
    """Median F1..F``count`` (Hz; None when unknown) over voiced frames, the ceiling and the spacing.

    The voice's ceiling holds five formants (one per 1,000 or 1,100 Hz); the analysis ceiling
    is that capped at the band, with proportionally fewer Burg poles. Formant i is unknown
    when the band cannot hold it: its expected place (2i - 1) / 2 x (voice ceiling / 5) or its
    measured median lies above 85 % of the analysis ceiling, or it is found in fewer than half
    the voiced frames. The spacing dF is the least-squares fit of F_i = (2i - 1) dF / 2 over
    the known formants (uniform tube).
    """
    voice = voice_ceiling_hz(f0_median_hz)
    ceiling = float(min(voice, band_hz))
    empty = {"formants_hz": None, "formant_spacing_hz": None, "formant_ceiling_hz": ceiling}
    if len(voiced_times_s) < 5:
        return empty
    n_formants = max(2.0, round(2 * 5.0 * ceiling / voice) / 2)
    track = _sound(x, sample_rate).to_formant_burg(time_step=0.01, max_number_of_formants=n_formants,
                                                   maximum_formant=ceiling, window_length=0.025,
                                                   pre_emphasis_from=50.0)
    edge = BAND_EDGE_FRACTION * ceiling
    values: list[float | None] = []
    for i in range(1, count + 1):
        if (2 * i - 1) / 2 * voice / 5.0 >= edge:
            values.append(None)
            continue
        found = np.array([track.get_value_at_time(i, float(t)) for t in voiced_times_s], dtype=np.float64)
        found = found[np.isfinite(found)]
        median = float(np.median(found)) if len(found) >= 0.5 * len(voiced_times_s) else None
        values.append(median if median is not None and median < edge else None)
    known = [(i, f) for i, f in enumerate(values, start=1) if f is not None]
    if not known:
        return {**empty, "formants_hz": values}
    weights = np.array([(2 * i - 1) / 2.0 for i, _ in known])
    freqs = np.array([f for _, f in known])
    spacing = float(np.dot(freqs, weights) / np.dot(weights, weights))
    return {"formants_hz": values, "formant_spacing_hz": spacing, "formant_ceiling_hz": ceiling}


def voice_quality(x: np.ndarray, sample_rate: int) -> dict:
    """HNR (dB, mean over voiced frames), local jitter and shimmer (fractions), CPPS (dB), intensity (dB).

    Values are None when Praat finds too few periods to measure them. Intensity is Praat's
    mean energy intensity (dB re 2e-5, i.e. of a waveform read as pascals): a relative level.
    """
    from parselmouth.praat import call

    snd = _sound(x, sample_rate)
    out: dict = {"hnr_db": None, "jitter_local": None, "shimmer_local": None, "cpps_db": None, "intensity_db": None}
    harmonicity = snd.to_harmonicity_cc(time_step=0.01, minimum_pitch=75.0).values[0]
    voiced = harmonicity[harmonicity > -199.0]
    if len(voiced) >= 5:
        out["hnr_db"] = float(np.mean(voiced))
    points = call(snd, "To PointProcess (periodic, cc)", 75.0, PITCH_CEILING_HZ)
    if call(points, "Get number of points") >= 10:
        out["jitter_local"] = _finite(call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3))
        out["shimmer_local"] = _finite(call([snd, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6))
    if snd.duration >= 0.2:
        cepstrogram = call(snd, "To PowerCepstrogram", 60.0, 0.002, 5000.0, 50.0)
        out["cpps_db"] = _finite(call(cepstrogram, "Get CPPS", "no", 0.01, 0.001, 60.0, 330.0, 0.05,
                                      "parabolic", 0.001, 0.0, "Straight", "Robust"))
    if snd.duration >= 0.1:
        out["intensity_db"] = _finite(call(snd.to_intensity(minimum_pitch=75.0, time_step=0.01), "Get mean", 0, 0, "energy"))
    return out


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
