"""The signal statistics are computed for a whole padded batch at once; each clip's numbers
must equal their one-clip-at-a-time definitions (written out here as plain loops)."""

import pytest
import torch

from clsp.models.compact import envelope_modulation, envelope_modulation_batch
from clsp.models.pitch import PITCH_STATS_DIM, pitch_stats
from clsp.models.signal_stats import (
    FRAME_RATE, LOUD_WITHIN_PEAK, MIN_PAUSE_FRAMES, PAUSE_BELOW_PEAK, SIGNAL_STATS_DIM, _level_stats, _pauses,
    frame_stats, signal_stats,
)

LENGTHS = (0, 1, 2, 4, 5, 15, 16, 17, 120, 199, 200, 201, 299, 450, 1003)


def _pitch_one(logf0, conf, v):
    out = torch.zeros(PITCH_STATS_DIM)
    n = logf0.numel()
    f = logf0[v]
    out[0] = v.float().mean() if n else 0.0
    if f.numel() < 5:
        return out
    out[1:6] = torch.quantile(f, torch.tensor([0.5, 0.1, 0.25, 0.75, 0.9]))
    out[6] = 4.0 * f.std()
    both = v[1:] & v[:-1]
    if both.any():
        out[7] = 10.0 * (logf0[1:] - logf0[:-1])[both].abs().mean()
    out[8] = conf[v].mean()
    pos = torch.nonzero(v).reshape(-1).float() / 1000.0
    pos = pos - pos.mean()
    out[9] = (pos * (f - f.mean())).sum() / (pos ** 2).sum().clamp(min=1e-6)
    return out


def _pauses_one(speech):
    idx = torch.nonzero(speech).reshape(-1)
    if idx.numel() < 2:
        return torch.zeros(3)
    inner = ~speech[int(idx[0]) : int(idx[-1]) + 1]
    edges = torch.diff(torch.cat([torch.zeros(1), inner.float(), torch.zeros(1)]))
    starts, ends = torch.nonzero(edges == 1).reshape(-1), torch.nonzero(edges == -1).reshape(-1)
    runs = (ends - starts)[(ends - starts) >= MIN_PAUSE_FRAMES].float()
    if runs.numel() == 0:
        return torch.zeros(3)
    return torch.tensor([runs.numel() / (inner.numel() / FRAME_RATE), float(runs.sum()) / inner.numel(),
                         float(runs.mean()) / FRAME_RATE])


def _level_one(energy, balance, voiced):
    out = torch.zeros(SIGNAL_STATS_DIM - PITCH_STATS_DIM)
    if energy.numel() < 2:
        return out
    q10, q50, q95 = torch.quantile(energy, torch.tensor([0.1, 0.5, 0.95])).tolist()
    rel = energy - q95
    out[0:6] = torch.tensor([float(rel.mean()) / 10, float(rel.std()) / 10, (q10 - q95) / 10, (q50 - q95) / 10,
                             float((rel > -LOUD_WITHIN_PEAK).float().mean()), (q95 - q10) / 10])
    speech = rel > -PAUSE_BELOW_PEAK
    out[6:9] = _pauses_one(speech)
    out[9:21] = envelope_modulation(energy)
    v, u = speech & voiced, speech & ~voiced
    out[21] = v.sum() / speech.sum().clamp(min=1)
    out[22] = balance[v].mean() / 10 if v.any() else 0.0
    out[23] = balance[u].mean() / 10 if u.any() else 0.0
    out[24] = torch.log1p(speech.sum() / FRAME_RATE)
    return out


def _batch(seed: int):
    """Padded frame series of clips of ``LENGTHS`` frames: an energy envelope with syllables
    and pauses of 0.1-0.6 s, a spectral balance, pitch, confidence and a voiced mask."""
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(LENGTHS)
    t = int(lens.max())
    energy = torch.randn(len(LENGTHS), t, generator=g) * 0.5 + torch.sin(torch.arange(t) * 0.3) * 2
    for row in range(len(LENGTHS)):  # pauses: stretches far below the peak
        for _ in range(3):
            start, width = int(torch.randint(0, max(LENGTHS[row], 1), (1,), generator=g)), int(torch.randint(15, 60, (1,), generator=g))
            energy[row, start : start + width] -= 12.0
    balance = torch.randn(len(LENGTHS), t, generator=g)
    logf0 = torch.randn(len(LENGTHS), t, generator=g).cumsum(1) * 0.02
    conf = torch.rand(len(LENGTHS), t, generator=g)
    voiced = (conf > 0.4) & (torch.arange(t).unsqueeze(0) < lens.unsqueeze(1))
    voiced[3, :] = False  # a clip without voiced frames
    padding = torch.arange(t).unsqueeze(0) >= lens.unsqueeze(1)
    for x in (energy, balance, logf0, conf):
        x[padding] = 7.0  # any finite padding: it must never enter
    return energy, balance, logf0, conf, voiced, lens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_statistics_equal_their_one_clip_definitions(seed):
    energy, balance, logf0, conf, voiced, lens = _batch(seed)
    pitch = pitch_stats(logf0, conf, voiced, lens)
    level = _level_stats(energy, balance, voiced, lens)
    modulation = envelope_modulation_batch(energy, lens)
    checked_pauses = 0
    for i, n in enumerate(lens.tolist()):
        assert torch.allclose(pitch[i], _pitch_one(logf0[i, :n], conf[i, :n], voiced[i, :n]), atol=2e-5, rtol=1e-4), n
        one = _level_one(energy[i, :n], balance[i, :n], voiced[i, :n])
        assert torch.allclose(level[i], one, atol=2e-5, rtol=1e-4), (n, (level[i] - one).abs().argmax())
        assert torch.allclose(modulation[i], envelope_modulation(energy[i, :n]), atol=2e-5, rtol=1e-4), n
        checked_pauses += bool(one[6] > 0)
    assert checked_pauses >= 6  # the pause statistics were exercised, not only their zeros
    assert (pitch[:, 1:] == 0).all(1).sum() < len(LENGTHS) - 2


def test_pause_runs_are_counted_per_clip():
    speech = torch.ones(3, 200, dtype=torch.bool)
    speech[0, 50:80] = False  # one pause of 30 frames
    speech[0, 100:110] = False  # too short to count
    speech[1, :40] = False  # leading silence is outside the speech span
    speech[1, 60:85] = speech[1, 120:145] = False  # two pauses of 25 frames
    speech[2] = False
    speech[2, 5] = True  # a single speech frame: nothing to measure
    out = _pauses(speech)
    assert torch.allclose(out[0], torch.tensor([1 / 2.0, 30 / 200, 0.30]))
    assert torch.allclose(out[1], torch.tensor([2 / 1.6, 50 / 160, 0.25]))
    assert (out[2] == 0).all()


def test_frame_stats_of_unpadded_frames_equal_signal_stats_of_the_padded_batch():
    g = torch.Generator().manual_seed(3)
    counts = [0, 1, 180, 420]
    frames = torch.randn(sum(counts), 128, generator=g) - 8.0
    padded = torch.full((len(counts), max(counts), 128), -30.0)
    start = 0
    for i, n in enumerate(counts):
        padded[i, :n] = frames[start : start + n]
        start += n
    flat = frame_stats(frames, counts, "telephone")
    assert flat.shape == (4, SIGNAL_STATS_DIM) and torch.isfinite(flat).all()
    assert torch.allclose(flat, signal_stats(padded, torch.tensor(counts), "telephone"), atol=1e-5)
    assert (flat[0] == 0).all() and (flat[1, PITCH_STATS_DIM:] == 0).all()
    assert frame_stats(torch.zeros(0, 128), [], "full").shape == (0, SIGNAL_STATS_DIM)
