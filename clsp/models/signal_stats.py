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

Padding never enters (all clips are measured at once, each from its own frames only), so a
clip's statistics do not depend on its batch.

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
from clsp.models.compact import envelope_modulation_batch
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


def _pauses(speech: torch.Tensor) -> torch.Tensor:
    """``(B, 3)``: pauses per second, paused share and mean pause seconds of boolean frame masks
    ``(B, T)`` (False outside each clip): within the span from a clip's first to its last speech
    frame, runs of non-speech of at least ``MIN_PAUSE_FRAMES``. Zeros for a clip with under two
    speech frames or no such run."""
    b, t = speech.shape
    device = speech.device
    idx = torch.arange(t, device=device).unsqueeze(0)
    first = torch.where(speech, idx, t).amin(1, keepdim=True)
    last = torch.where(speech, idx, -1).amax(1, keepdim=True)
    inner = ~speech & (idx >= first) & (idx <= last)
    edges = torch.nn.functional.pad(inner.to(torch.int8), (1, 1)).diff(dim=1)
    row, start = torch.nonzero(edges == 1).unbind(1)  # row-major: each clip's starts and ends in order
    runs = torch.nonzero(edges == -1)[:, 1] - start
    keep = runs >= MIN_PAUSE_FRAMES
    row, runs = row[keep], runs[keep].float()
    count = torch.zeros(b, device=device).index_add_(0, row, torch.ones_like(runs))
    paused = torch.zeros(b, device=device).index_add_(0, row, runs)
    span = (last - first + 1).reshape(-1).clamp(min=1).float()
    out = torch.stack([count / (span / FRAME_RATE), paused / span, paused / count.clamp(min=1) / FRAME_RATE], dim=1)
    return torch.where(((speech.sum(1) >= 2) & (count > 0)).unsqueeze(1), out, 0.0)


_LEVEL_QUANTILES = torch.tensor([0.1, 0.5, 0.95])


def _level_stats(energy: torch.Tensor, balance: torch.Tensor, voiced: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """The non-pitch statistics ``(B, SIGNAL_STATS_DIM - PITCH_STATS_DIM)`` of padded frame
    log-energy ``(B, T)``, log-energy ratio of 1-3.4 kHz to 100 Hz-1 kHz ``(B, T)`` and voiced
    mask ``(B, T)`` (padding: any finite value), each clip from its first ``lens[i]`` frames;
    zeros for a clip of under two frames."""
    b, t = energy.shape
    device = energy.device
    inside = torch.arange(t, device=device).unsqueeze(0) < lens.unsqueeze(1)
    out = torch.zeros(b, SIGNAL_STATS_DIM - PITCH_STATS_DIM, device=device)
    if b == 0:
        return out
    q10, q50, q95 = torch.where(inside, energy, float("nan")).nanquantile(_LEVEL_QUANTILES.to(device), dim=1)
    rel = energy - q95.unsqueeze(1)
    count = lens.clamp(min=1).float()
    mean = torch.where(inside, rel, 0.0).sum(1) / count
    var = torch.where(inside, rel - mean.unsqueeze(1), 0.0).pow(2).sum(1) / (count - 1).clamp(min=1)
    loud = (inside & (rel > -LOUD_WITHIN_PEAK)).sum(1) / count
    out[:, 0:6] = torch.stack([mean / 10, var.sqrt() / 10, (q10 - q95) / 10, (q50 - q95) / 10, loud, (q95 - q10) / 10], 1)
    speech = inside & (rel > -PAUSE_BELOW_PEAK)
    out[:, 6:9] = _pauses(speech)
    out[:, 9:21] = envelope_modulation_batch(energy, lens)
    v, u = speech & voiced, speech & ~voiced
    n_speech, n_v, n_u = speech.sum(1), v.sum(1), u.sum(1)
    out[:, 21] = n_v / n_speech.clamp(min=1)
    out[:, 22] = torch.where(n_v > 0, torch.where(v, balance, 0.0).sum(1) / n_v.clamp(min=1) / 10, 0.0)
    out[:, 23] = torch.where(n_u > 0, torch.where(u, balance, 0.0).sum(1) / n_u.clamp(min=1) / 10, 0.0)
    out[:, 24] = torch.log1p(n_speech / FRAME_RATE)
    out[lens < 2] = 0.0
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
    padded_energy, balance = torch.zeros(inside.shape, device=device), torch.zeros(inside.shape, device=device)
    padded_energy[inside] = tel if band == "telephone" else full
    balance[inside] = hi - lo
    return torch.cat([pitch, _level_stats(padded_energy, balance, voiced, lens)], dim=-1)


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
