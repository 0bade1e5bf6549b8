"""A compact speech encoder for small models: conv subsampling + Transformer layers.

fbank (100 Hz) -> two stride-2 convolutions with no time padding (25 Hz) -> linear ->
sinusoidal positions -> pre-norm Transformer layers with a key padding mask. Valid output
frames never see padding, so a clip's embedding does not depend on its batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from clsp.models.pitch import PITCH_STATS_DIM, pitch_stats, pitch_track, voiced_mask
from clsp.models.registry import register_speech_encoder


def subsampled_lengths(lens: torch.Tensor) -> torch.Tensor:
    """Frames left after two kernel-3, stride-2 convolutions without time padding."""
    return torch.clamp((torch.clamp((lens - 1) // 2, min=0) - 1) // 2, min=0)


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


@register_speech_encoder("compact")
class CompactSpeechEncoder(nn.Module):
    """Small Transformer speech encoder at 25 Hz; every size comes from the arguments."""

    def __init__(
        self,
        num_mel_bins: int = 128,
        dim: int = 256,
        layers: int = 4,
        heads: int = 4,
        ff_dim: int = 1024,
        conv_channels: int = 32,
        dropout: float = 0.1,
        stats_dim: int = 0,
        pitch: bool = False,
    ):
        super().__init__()
        sizes = {"num_mel_bins": num_mel_bins, "dim": dim, "layers": layers, "heads": heads, "ff_dim": ff_dim,
                 "conv_channels": conv_channels}
        bad = [f"{k}={v}" for k, v in sizes.items() if v < 1] + ([f"dropout={dropout}"] if not 0 <= dropout < 1 else [])
        if bad:
            raise ValueError(f"compact encoder: {', '.join(bad)} (sizes must be at least 1, dropout in [0, 1))")
        self.subsample = nn.Sequential(
            nn.Conv2d(1, conv_channels, 3, stride=2, padding=(0, 1)),
            nn.GELU(),
            nn.Conv2d(conv_channels, conv_channels, 3, stride=2, padding=(0, 1)),
            nn.GELU(),
        )
        freq = ((num_mel_bins + 1) // 2 + 1) // 2
        self.input_proj = nn.Linear(conv_channels * freq, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        # Optional utterance statistics of the input (level, spectral shape, modulation),
        # projected and appended to every output frame: cheap cues for loudness, pitch
        # register, voicing and pace that a small, briefly trained encoder learns slowly.
        self.pitch = pitch
        n_stats = 4 * num_mel_bins + 2 + MODULATION_DIM + (PITCH_STATS_DIM if pitch else 0)
        self.stats_proj = nn.Sequential(nn.Linear(n_stats, stats_dim), nn.GELU()) if stats_dim else None
        # Optional pitch track read off the fbank (clsp.models.pitch): per frame log F0,
        # voicing and match confidence, averaged to 25 Hz and added to the frame inputs;
        # its utterance statistics join the others. The convolutions' frequency stride
        # blurs the harmonics, so without it a small encoder hears register and
        # intonation only faintly.
        self.pitch_proj = nn.Linear(3, dim) if pitch else None
        self.output_dim = dim + stats_dim
        self.input_kind = "fbank"

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.subsample(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.input_proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        x = x + sinusoidal_positions(t, x.shape[-1], x.device).to(x.dtype)
        lens = subsampled_lengths(feat_lens.to(x.device))
        pitch = None
        if self.pitch:
            in_lens = feat_lens.to(feats.device)
            logf0, conf = pitch_track(feats)
            voiced = voiced_mask(feats, in_lens, conf)
            inside = (torch.arange(feats.shape[1], device=feats.device).unsqueeze(0) < in_lens.unsqueeze(1)).float()
            track = torch.stack([logf0 * voiced, voiced.float(), conf * inside], dim=1)  # (B, 3, T)
            track = nn.functional.avg_pool1d(track, 4, 4)[:, :, :t].transpose(1, 2)
            x = x + self.pitch_proj(track.to(x.dtype))
            if self.stats_proj is not None:
                pitch = pitch_stats(logf0, conf, voiced, in_lens)
        pad = torch.arange(t, device=x.device).unsqueeze(0) >= lens.unsqueeze(1)
        x = self.norm(self.encoder(x, src_key_padding_mask=pad))
        if self.stats_proj is not None:
            stats = utterance_stats(feats, feat_lens.to(feats.device))
            if pitch is not None:
                stats = torch.cat([stats, pitch.to(stats.dtype)], dim=-1)
            stats = self.stats_proj(stats)
            x = torch.cat([x, stats.unsqueeze(1).expand(-1, t, -1)], dim=-1)
        return x, lens


def utterance_stats(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Masked mean/std of fbank and of its frame-to-frame deltas, level and speech share,
    and the modulation of the energy envelope (pace).

    ``(B, T, F)`` -> ``(B, 4F + 2 + MODULATION_DIM)``; padding never enters, so a clip's
    statistics do not depend on its batch.
    """
    b, t, _ = feats.shape
    mask = (torch.arange(t, device=feats.device).unsqueeze(0) < lens.unsqueeze(1)).to(feats.dtype).unsqueeze(-1)
    n = mask.sum(1).clamp(min=1.0)
    mean = (feats * mask).sum(1) / n
    std = (((feats - mean.unsqueeze(1)) ** 2 * mask).sum(1) / n).clamp(min=1e-6).sqrt()
    dmask = mask[:, 1:] * mask[:, :-1]
    delta = (feats[:, 1:] - feats[:, :-1]) * dmask
    dn = dmask.sum(1).clamp(min=1.0)
    dmean = delta.abs().sum(1) / dn
    dstd = ((delta ** 2).sum(1) / dn).clamp(min=1e-6).sqrt()
    energy = torch.logsumexp(feats, dim=-1, keepdim=True)  # frame log-energy
    emean = (energy * mask).sum(1) / n
    loud = ((energy > emean.unsqueeze(1) - 10.0).to(feats.dtype) * mask).sum(1) / n  # share of frames near the level (speech vs pause)
    modulation = torch.stack([envelope_modulation(energy[i, : int(n), 0]) for i, n in enumerate(lens.tolist())])
    return torch.cat([mean, std, dmean, dstd, emean / 10.0, loud, modulation.to(feats.dtype)], dim=-1)


# Modulation bands (Hz) of the 100 Hz frame-energy envelope; syllable rates of slow to
# fast speech fall between about 2 and 8 Hz.
MODULATION_BANDS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 13.0, 16.0, 25.0)
MODULATION_DIM = len(MODULATION_BANDS)  # one value per band (len - 1) and the peak rate
_FRAME_RATE = 100.0
_WINDOW = 200  # frames (2 s) per Welch window, hop half a window
_NFFT = 256
_FREQS = torch.arange(_NFFT // 2 + 1) * _FRAME_RATE / _NFFT
# (frequency bin, band) 0/1 matrix: band power = power spectrum @ _BAND_OF_BIN
_BAND_OF_BIN = torch.stack([(_FREQS >= lo) & (_FREQS < hi) for lo, hi in zip(MODULATION_BANDS[:-1], MODULATION_BANDS[1:])],
                           dim=1).float()


def envelope_modulation(energy: torch.Tensor) -> torch.Tensor:
    """Pace cues of one clip from its frame log-energy ``(T,)`` at 100 Hz: the share of
    envelope-modulation power in each band of ``MODULATION_BANDS`` (log, Welch average over
    2 s windows) and the rate of energy peaks per second (/5, about syllables)."""
    out = torch.zeros(MODULATION_DIM, dtype=torch.float32, device=energy.device)
    t = energy.shape[0]
    if t < 16:
        return out
    e = energy.float() - energy.float().mean()
    win = min(_WINDOW, t)
    frames = e.unfold(0, win, max(win // 2, 1))
    frames = (frames - frames.mean(1, keepdim=True)) * torch.hann_window(win, periodic=False, device=e.device)
    power = torch.fft.rfft(frames, n=_NFFT).abs().pow(2).mean(0)
    bands = power @ _BAND_OF_BIN.to(power.device)
    out[:-1] = torch.log(bands / bands.sum().clamp(min=1e-12) + 1e-4)
    smooth = torch.nn.functional.avg_pool1d(e.view(1, 1, -1), 7, stride=1, padding=3, count_include_pad=False).view(-1)
    floor = smooth.median()
    peaks = (smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & (smooth[1:-1] > floor)
    out[-1] = peaks.sum() / (t / _FRAME_RATE) / 5.0
    return out


def envelope_modulation_batch(energy: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """``envelope_modulation`` of every clip of a padded batch at once: frame log-energy
    ``(B, T)`` at 100 Hz (padding: any finite value) and frame counts ``(B,)`` ->
    ``(B, MODULATION_DIM)``. The same numbers as one clip at a time, to float rounding: the
    Welch spectra of all clips of at least one 2 s window in one FFT (clips under 2 s, whose
    single window is as long as the clip, one by one), the peak count of all clips from one
    masked moving average."""
    b, t = energy.shape
    device = energy.device
    lens = lens.to(device)
    out = torch.zeros(b, MODULATION_DIM, dtype=torch.float32, device=device)
    if b == 0 or t < 16:
        return out
    inside = torch.arange(t, device=device).unsqueeze(0) < lens.unsqueeze(1)
    count = lens.clamp(min=1).float()
    raw = torch.where(inside, energy.float(), 0.0)
    e = torch.where(inside, raw - (raw.sum(1) / count).unsqueeze(1), 0.0)
    long = lens >= _WINDOW
    if bool(long.any()):
        hop = _WINDOW // 2
        frames = e[long].unfold(1, _WINDOW, hop)  # (L, windows, _WINDOW)
        windows = (lens[long] - _WINDOW) // hop + 1
        valid = (torch.arange(frames.shape[1], device=device).unsqueeze(0) < windows.unsqueeze(1)).unsqueeze(-1)
        frames = (frames - frames.mean(2, keepdim=True)) * torch.hann_window(_WINDOW, periodic=False, device=device)
        power = torch.where(valid, torch.fft.rfft(frames, n=_NFFT).abs().pow(2), 0.0).sum(1) / windows.unsqueeze(1)
        bands = power @ _BAND_OF_BIN.to(device)
        out[long, :-1] = torch.log(bands / bands.sum(1, keepdim=True).clamp(min=1e-12) + 1e-4)
    for i in torch.nonzero((lens >= 16) & ~long).reshape(-1).tolist():  # one window as long as the clip
        out[i, :-1] = envelope_modulation(energy[i, : int(lens[i])])[:-1]
    # moving average over 7 frames, cut at each clip's own edges (as avg_pool1d, count_include_pad=False)
    kernel = torch.ones(1, 1, 7, device=device)
    sums = torch.nn.functional.conv1d(e.unsqueeze(1), kernel, padding=3).squeeze(1)
    near = torch.nn.functional.conv1d(inside.float().unsqueeze(1), kernel, padding=3).squeeze(1)
    smooth = sums / near.clamp(min=1.0)
    floor = torch.where(inside, smooth, float("nan")).nanmedian(dim=1).values
    mid = smooth[:, 1:-1]
    within = torch.arange(1, t - 1, device=device).unsqueeze(0) < (lens - 1).unsqueeze(1)
    peaks = (mid > smooth[:, :-2]) & (mid >= smooth[:, 2:]) & (mid > floor.unsqueeze(1)) & within
    out[:, -1] = torch.where(lens >= 16, peaks.sum(1) / (lens.float() / _FRAME_RATE) / 5.0, 0.0)
    return out
