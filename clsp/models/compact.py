"""A compact speech encoder for small models: conv subsampling + Transformer layers.

fbank (100 Hz) -> two stride-2 convolutions with no time padding (25 Hz) -> linear ->
sinusoidal positions -> pre-norm Transformer layers with a key padding mask. Valid output
frames never see padding, so a clip's embedding does not depend on its batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

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
    ):
        super().__init__()
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
        self.stats_proj = nn.Sequential(nn.Linear(4 * num_mel_bins + 2, stats_dim), nn.GELU()) if stats_dim else None
        self.output_dim = dim + stats_dim
        self.input_kind = "fbank"

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.subsample(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.input_proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        x = x + sinusoidal_positions(t, x.shape[-1], x.device).to(x.dtype)
        lens = subsampled_lengths(feat_lens.to(x.device))
        pad = torch.arange(t, device=x.device).unsqueeze(0) >= lens.unsqueeze(1)
        x = self.norm(self.encoder(x, src_key_padding_mask=pad))
        if self.stats_proj is not None:
            stats = self.stats_proj(utterance_stats(feats, feat_lens.to(feats.device)))
            x = torch.cat([x, stats.unsqueeze(1).expand(-1, t, -1)], dim=-1)
        return x, lens


def utterance_stats(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Masked mean/std of fbank and of its frame-to-frame deltas, plus energy-modulation stats.

    ``(B, T, F)`` -> ``(B, 4F + 2)``; padding never enters, so a clip's statistics do not
    depend on its batch.
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
    return torch.cat([mean, std, dmean, dstd, emean / 10.0, loud], dim=-1)
