"""Acoustic measurements of one utterance: pitch, voicing, rate, loudness, pauses, segments.

Everything is computed in numpy on 10 ms frames, so the same waveform always gives the same
numbers. Values are plain floats/ints so that a record can carry them as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from clsp.caption.formants import formant_spacing
from clsp.caption.pitch import PitchConfig, frame_signal, track_pitch
from clsp.errors import AudioError


@dataclass(frozen=True)
class AcousticConfig:
    """Analysis settings (frame sizes, speech/pause detection, syllable peak picking)."""

    pitch: PitchConfig = field(default_factory=PitchConfig)
    floor_db: float = -60.0
    active_below_peak_db: float = 35.0
    min_pause_s: float = 0.2
    min_speech_s: float = 0.05
    nucleus_prominence_db: float = 2.0
    nucleus_min_gap_s: float = 0.06
    nucleus_below_peak_db: float = 25.0
    segments: int = 3

    @property
    def sample_rate(self) -> int:
        return self.pitch.sample_rate


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def frame_levels(x: np.ndarray, config: AcousticConfig) -> np.ndarray:
    """Frame RMS level in dBFS on the pitch tracker's hop grid."""
    sr = config.sample_rate
    hop = int(round(config.pitch.hop_s * sr))
    window = int(round(config.pitch.window_s * sr))
    frames = frame_signal(x, window, hop)
    return _db(np.mean(frames**2, axis=1))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def speech_mask(levels: np.ndarray, config: AcousticConfig) -> np.ndarray:
    """Frames that belong to speech; gaps shorter than ``min_pause_s`` are filled in."""
    peak = np.percentile(levels, 99)
    active = levels > max(config.floor_db, peak - config.active_below_peak_db)
    hop_s = config.pitch.hop_s
    for start, end in _runs(active):
        if (end - start) * hop_s < config.min_speech_s:
            active[start:end] = False
    inside = np.flatnonzero(active)
    if len(inside) == 0:
        return active
    gaps = ~active
    for start, end in _runs(gaps):
        if start > inside[0] and end <= inside[-1] and (end - start) * hop_s < config.min_pause_s:
            active[start:end] = True
    return active


def syllable_nuclei(levels: np.ndarray, candidates: np.ndarray, config: AcousticConfig) -> np.ndarray:
    """Frame indices of syllable nuclei: prominent level peaks inside ``candidates`` frames."""
    smooth = np.convolve(levels, np.hanning(7) / np.hanning(7).sum(), mode="same")
    top = np.percentile(smooth[candidates], 95) if candidates.any() else 0.0
    is_peak = np.zeros(len(smooth), dtype=bool)
    is_peak[1:-1] = (smooth[1:-1] >= smooth[:-2]) & (smooth[1:-1] > smooth[2:])
    peaks = np.flatnonzero(is_peak & candidates & (smooth > top - config.nucleus_below_peak_db))
    min_gap = int(round(config.nucleus_min_gap_s / config.pitch.hop_s))
    kept: list[int] = []
    for peak in peaks.tolist():
        if kept:
            last = kept[-1]
            dip = smooth[last : peak + 1].min()
            separated = peak - last >= min_gap
            prominent = min(smooth[last], smooth[peak]) - dip >= config.nucleus_prominence_db
            if not (separated and prominent):
                if smooth[peak] > smooth[last]:
                    kept[-1] = peak
                continue
        kept.append(peak)
    return np.asarray(kept, dtype=int)


def alpha_ratio(x: np.ndarray, voiced: np.ndarray, config: AcousticConfig) -> float | None:
    """Energy above 1 kHz over energy below it (dB) in voiced frames: a gain-free effort cue."""
    if voiced.sum() < 5:
        return None
    sr = config.sample_rate
    window = 512
    frames = frame_signal(x, window, int(round(config.pitch.hop_s * sr)))[: len(voiced)]
    spectra = np.abs(np.fft.rfft(frames[voiced[: len(frames)]] * np.hanning(window), axis=1)) ** 2
    power = spectra.mean(axis=0)
    freqs = np.fft.rfftfreq(window, 1.0 / sr)
    high = power[(freqs >= 1000) & (freqs < 5000)].sum()
    low = power[(freqs >= 50) & (freqs < 1000)].sum()
    return float(10.0 * np.log10(max(high, 1e-20) / max(low, 1e-20)))


def _semitones(f0: np.ndarray, ref: float) -> np.ndarray:
    return 12.0 * np.log2(f0 / ref)


def _pitch_stats(f0: np.ndarray, hop_s: float) -> dict:
    voiced = f0 > 0
    if voiced.sum() < 5:
        return {"f0_median_hz": None, "f0_p10_hz": None, "f0_p90_hz": None,
                "f0_range_st": None, "f0_slope_st_per_s": None}
    values = f0[voiced]
    median = float(np.median(values))
    p10, p90 = (float(v) for v in np.percentile(values, [10, 90]))
    times = np.flatnonzero(voiced) * hop_s
    st = _semitones(values, median)
    slope = float(np.polyfit(times, st, 1)[0]) if np.ptp(times) > 0.1 else 0.0
    return {"f0_median_hz": median, "f0_p10_hz": p10, "f0_p90_hz": p90,
            "f0_range_st": float(12.0 * np.log2(p90 / p10)), "f0_slope_st_per_s": slope}


def _span_stats(x_levels, f0, active, nuclei, lo, hi, config) -> dict:
    """Pitch, voicing, rate, loudness and pauses over frames [lo, hi)."""
    hop_s = config.pitch.hop_s
    act = active[lo:hi]
    speech_frames = int(act.sum())
    speech_s = speech_frames * hop_s
    levels = x_levels[lo:hi][act]
    power = np.mean(10 ** (levels / 10.0)) if speech_frames else 0.0
    voiced = int((f0[lo:hi] > 0).sum())
    n_nuclei = int(((nuclei >= lo) & (nuclei < hi)).sum())
    pauses = [(e - s) * hop_s for s, e in _runs(~act) if s > 0 and e < len(act)]
    stats = {
        "start_s": lo * hop_s, "end_s": hi * hop_s, "speech_s": speech_s,
        "voiced_ratio": voiced / speech_frames if speech_frames else 0.0,
        "syllable_rate": n_nuclei / speech_s if speech_s > 0 else 0.0,
        "loudness_dbfs": float(_db(np.asarray(power))) if speech_frames else config.floor_db,
        "loudness_std_db": float(np.std(levels)) if speech_frames else 0.0,
        "pause_count": len(pauses), "pause_total_s": float(sum(pauses)),
        "pause_mean_s": float(np.mean(pauses)) if pauses else 0.0,
    }
    stats.update(_pitch_stats(f0[lo:hi], hop_s))
    return stats


def segment_bounds(active: np.ndarray, first: int, last: int, count: int, hop_s: float) -> list[int]:
    """Cut [first, last) into ``count`` spans, moving each cut into a nearby pause if any."""
    span = last - first
    pauses = [(s, e) for s, e in _runs(~active[first:last])]
    cuts = [first]
    for k in range(1, count):
        target = first + span * k / count
        near = [first + (s + e) // 2 for s, e in pauses
                if abs(first + (s + e) / 2 - target) < 0.15 * span]
        cut = min(near, key=lambda c: abs(c - target)) if near else int(round(target))
        cuts.append(max(cut, cuts[-1] + 1))
    cuts.append(last)
    return cuts


@dataclass
class Measurements:
    """Whole-utterance statistics plus the same statistics per time segment."""

    duration_s: float
    overall: dict
    segments: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def to_numpy(wave) -> np.ndarray:
    """A mono float64 numpy copy of a 1-D tensor or array."""
    arr = wave.detach().cpu().numpy() if hasattr(wave, "detach") else np.asarray(wave)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise AudioError(f"expected a mono waveform, got shape {arr.shape}")
    return arr


def measure(wave, config: AcousticConfig = AcousticConfig()) -> Measurements:
    """Measure one mono waveform sampled at ``config.sample_rate``."""
    x = to_numpy(wave)
    if len(x) == 0 or not np.all(np.isfinite(x)):
        raise AudioError("waveform is empty or holds non-finite samples")
    x = x - np.mean(x)
    levels = frame_levels(x, config)
    active = speech_mask(levels, config)
    if active.sum() * config.pitch.hop_s < config.min_speech_s:
        raise AudioError("no speech found: the clip is silent or too short")
    f0 = track_pitch(x, active, config.pitch)
    voiced = f0 > 0
    rich_voicing = voiced.sum() >= 0.3 * active.sum()
    nuclei = syllable_nuclei(levels, voiced if rich_voicing else active, config)
    inside = np.flatnonzero(active)
    first, last = int(inside[0]), int(inside[-1]) + 1
    overall = _span_stats(levels, f0, active, nuclei, first, last, config)
    overall.update(formant_spacing(x, voiced, config.sample_rate, config.pitch.hop_s))
    overall["alpha_ratio_db"] = alpha_ratio(x, voiced, config)
    cuts = segment_bounds(active, first, last, config.segments, config.pitch.hop_s)
    segments = [_span_stats(levels, f0, active, nuclei, lo, hi, config)
                for lo, hi in zip(cuts[:-1], cuts[1:])]
    return Measurements(duration_s=len(x) / config.sample_rate, overall=overall, segments=segments)
