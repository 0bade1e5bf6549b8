"""Utterance signal measurements that speaker encoders do not carry, from the 100 Hz fbank.

Per clip (``SIGNAL_STATS_DIM`` numbers, all from the clip's own valid frames):

* pitch (10): ``clsp.models.pitch.pitch_stats`` - voiced share, median and 10/25/75/90th
  percentiles of log2(F0 / 150 Hz), spread, frame-to-frame movement, confidence, slope.
* loudness relative to the recording (6): frame log-energy minus the clip's 95th
  percentile (so gain and absolute dBFS cancel out): mean, std and 10/50th percentiles
  (nepers / 10), share of frames within 3 nepers (13 dB) of that peak, and the dynamic
  range p95 - p10 (/ 10).
* pauses (3): inside the speech span, pauses are runs of at least 20 frames (0.2 s) more
  than 5 nepers (22 dB) below the peak: pauses per second, share of time paused, mean
  pause length (s).
* pace (12): ``clsp.models.compact.envelope_modulation`` - energy-envelope modulation
  bands and peak rate (syllables).
* voicing / whisper and spectral balance (3): voiced share of speech frames, and of the
  speech frames the mean log-energy ratio of 1-3.4 kHz to 100 Hz-1 kHz (a band a telephone
  channel keeps) for voiced and for unvoiced frames (/ 10).
* length (1): log(1 + speech seconds).

Padding never enters (each clip is measured alone), so a clip's statistics do not depend
on its batch.

Frame phase: the fbank frames every 10 ms start at the clip's first sample, so cutting a few
milliseconds off a clip's start moves every frame against the speech; pitch movement and
spread, voicing and pace then change by up to several times their spread across clips
(EmoDB held-out clips cut by 5 ms). ``waveform_stats(..., phases=k)`` averages the
statistics over k frame grids offset by 10 ms / k, so a cut that is a multiple of 10 ms / k
reproduces the same grids (measured in ``docs/default-model.md``).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from clsp.audio import SPEAKER_BANDS
from clsp.features import FRAME_SHIFT, fbank_frames
from clsp.models.compact import envelope_modulation
from clsp.models.pitch import PITCH_STATS_DIM, pitch_stats, pitch_track, voiced_frames

SIGNAL_STATS_DIM = PITCH_STATS_DIM + 6 + 3 + 12 + 3 + 1
FRAME_RATE = 100.0
MIN_PAUSE_FRAMES = 20
PAUSE_BELOW_PEAK = 5.0  # nepers of power (about 22 dB)
LOUD_WITHIN_PEAK = 3.0


@lru_cache(maxsize=4)
def _band_masks(num_mel_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mel bins centred in 100 Hz-1 kHz and in 1-3.4 kHz (the Kaldi fbank of clsp.features)."""
    import torchaudio

    from clsp.audio import TELEPHONE_BAND_HZ
    from clsp.features import HIGH_FREQ, LOW_FREQ, PADDED_WINDOW, SAMPLE_RATE

    _, centers = torchaudio.compliance.kaldi.get_mel_banks(
        num_mel_bins, PADDED_WINDOW, float(SAMPLE_RATE), LOW_FREQ, HIGH_FREQ, 100.0, -500.0, 1.0)
    hz = 700.0 * (torch.exp(centers.reshape(-1) / 1127.0) - 1.0)
    low, high = TELEPHONE_BAND_HZ
    return (hz >= low) & (hz < 1000), (hz >= 1000) & (hz < high)


def _pauses(speech: torch.Tensor) -> tuple[float, float, float]:
    """(pauses per second, paused share, mean pause seconds) of a boolean frame mask."""
    idx = torch.nonzero(speech).reshape(-1)
    if idx.numel() < 2:
        return 0.0, 0.0, 0.0
    inner = ~speech[int(idx[0]) : int(idx[-1]) + 1]
    edges = torch.diff(torch.cat([torch.zeros(1), inner.float(), torch.zeros(1)]))
    starts, ends = torch.nonzero(edges == 1).reshape(-1), torch.nonzero(edges == -1).reshape(-1)
    runs = (ends - starts)[(ends - starts) >= MIN_PAUSE_FRAMES].float()
    span_s = inner.numel() / FRAME_RATE
    if runs.numel() == 0:
        return 0.0, 0.0, 0.0
    return runs.numel() / span_s, float(runs.sum()) / inner.numel(), float(runs.mean()) / FRAME_RATE


_LEVEL_QUANTILES = torch.tensor([0.1, 0.5, 0.95])


def _one_clip(energy: torch.Tensor, balance: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """The non-pitch statistics of one clip from its valid frames' log-energy ``(T,)``, the
    log-energy ratio of 1-3.4 kHz to 100 Hz-1 kHz ``(T,)`` and the voiced mask ``(T,)``."""
    out = torch.zeros(SIGNAL_STATS_DIM - PITCH_STATS_DIM)
    if energy.numel() < 2:
        return out
    q10, q50, q95 = torch.quantile(energy, _LEVEL_QUANTILES).tolist()
    rel, q10, q50 = energy - q95, q10 - q95, q50 - q95
    out[0:6] = torch.tensor([float(rel.mean()) / 10, float(rel.std()) / 10, q10 / 10, q50 / 10,
                             float((rel > -LOUD_WITHIN_PEAK).float().mean()), -q10 / 10])
    speech = rel > -PAUSE_BELOW_PEAK
    out[6:9] = torch.tensor(_pauses(speech))
    out[9:21] = envelope_modulation(energy)
    v, u = speech & voiced, speech & ~voiced
    out[21] = v.sum() / speech.sum().clamp(min=1)
    out[22] = balance[v].mean() / 10 if v.any() else 0.0
    out[23] = balance[u].mean() / 10 if u.any() else 0.0
    out[24] = torch.log1p(speech.sum() / FRAME_RATE)
    return out


STATS_BANDS = SPEAKER_BANDS  # "full" or "telephone" (clsp.audio.TELEPHONE_BAND_HZ)


def signal_stats(feats: torch.Tensor, lens: torch.Tensor, band: str = "full") -> torch.Tensor:
    """Padded fbank ``(B, T, bins)`` at 100 Hz and frame counts ``(B,)`` -> ``(B, SIGNAL_STATS_DIM)``.

    ``band``: the frame energy behind the loudness, pause and pace statistics is summed over
    all bins (``"full"``) or over the bins centred in 100 Hz-3.4 kHz (``"telephone"``), so
    that a copy through a telephone channel (which keeps that band) measures the same.
    ``ValueError`` for another band."""
    feats = feats.float()
    inside = torch.arange(feats.shape[1], device=feats.device).unsqueeze(0) < lens.to(feats.device).unsqueeze(1)
    return frame_stats(feats[inside], lens.tolist(), band)


def frame_stats(frames: torch.Tensor, counts: list[int], band: str = "full") -> torch.Tensor:
    """``signal_stats`` of unpadded fbank frames: every clip's valid frames one clip after
    another ``(sum T_i, bins)`` and the counts ``[T_i]`` -> ``(B, SIGNAL_STATS_DIM)``.
    ``ValueError`` for an unknown band."""
    if band not in STATS_BANDS:
        raise ValueError(f"signal_stats: band must be one of {STATS_BANDS}, got {band!r}")
    frames = frames.float()
    device = frames.device
    lens = torch.tensor(counts, dtype=torch.long, device=device)
    inside = torch.arange(max(counts, default=0), device=device).unsqueeze(0) < lens.unsqueeze(1)
    logf0, conf, level = (torch.zeros(inside.shape, device=device) for _ in range(3))
    logf0[inside], conf[inside] = pitch_track(frames)
    # log-energy over all bins, the telephone band, 1-3.4 kHz and 100 Hz-1 kHz: one exp, one product
    low, high = _band_masks(frames.shape[-1])
    masks = torch.stack([torch.ones_like(low), low | high, high, low], dim=1).float().to(device)
    peak = frames.amax(-1, keepdim=True)
    full, tel, hi, lo = (torch.log((frames - peak).exp() @ masks) + peak).unbind(-1)
    level[inside] = full
    voiced = voiced_frames(level, lens, conf)
    pitch = pitch_stats(logf0, conf, voiced, lens)
    energy = tel if band == "telephone" else full
    balance = hi - lo
    per_clip = zip(energy.cpu().split(counts), balance.cpu().split(counts), voiced[inside].cpu().split(counts))
    rest = [_one_clip(*clip) for clip in per_clip]
    return torch.cat([pitch, torch.stack(rest).to(device)], dim=-1) if rest else pitch


def valid_phases(phases) -> bool:
    """Whether ``phases`` is a frame-grid count ``waveform_stats`` takes: an integer in 1..160."""
    return isinstance(phases, int) and not isinstance(phases, bool) and 1 <= phases <= FRAME_SHIFT


def waveform_stats(waves: list[torch.Tensor], num_mel_bins: int = 128, band: str = "full",
                   phases: int = 1) -> torch.Tensor:
    """``signal_stats`` of 16 kHz waveforms ``(S_i,)`` through ``clsp.features.fbank_frames``,
    each clip's statistics averaged over ``phases`` frame grids: the clip from sample
    ``round(k * 160 / phases)`` on, k = 0 .. phases - 1 (``phases=1``: the clip as it is).
    Returns ``(B, SIGNAL_STATS_DIM)``. ``ValueError`` when ``phases`` is not in 1..160 or for an
    unknown ``band``."""
    if not valid_phases(phases):
        raise ValueError(f"waveform_stats: phases must be an integer in 1..{FRAME_SHIFT}, got {phases!r}")
    if not waves:
        return torch.zeros(0, SIGNAL_STATS_DIM)
    waves = [w.float().reshape(-1) for w in waves]
    total = None
    for k in range(phases):  # one grid at a time: a batch of all grids at once ran about 1.7x slower
        offset = round(k * FRAME_SHIFT / phases)
        stats = frame_stats(*fbank_frames([w[offset:] for w in waves], num_mel_bins), band=band)
        total = stats if total is None else total + stats
    return total / phases
