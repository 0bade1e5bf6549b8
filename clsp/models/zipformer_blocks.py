"""Building blocks of the Zipformer2 encoder: norms, activations, attention, convolution.

Every tensor here is laid out (batch, time, channels). Attribute names follow the
published Zipformer2 checkpoints so that their state dicts load without renaming.
The forward passes are the inference computation; see ``clsp.models.zipformer`` for
what is simplified at training time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + e^(x-4)) - 0.08 x - 0.035."""
    return F.softplus(x - 4.0) - 0.08 * x - 0.035


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + e^(x-1)) - 0.08 x - 0.313261687."""
    return F.softplus(x - 1.0) - 0.08 * x - 0.313261687


class SwooshR(nn.Module):
    """Module form of :func:`swoosh_r`, for use inside ``nn.Sequential``."""

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_r(x)


def scaled_linear(in_dim: int, out_dim: int, scale: float, bias: bool = True) -> nn.Linear:
    """An ``nn.Linear`` whose default initial weights (and bias) are multiplied by ``scale``."""
    linear = nn.Linear(in_dim, out_dim, bias=bias)
    with torch.no_grad():
        linear.weight.mul_(scale)
        if bias:
            nn.init.uniform_(linear.bias, -0.1 * scale, 0.1 * scale)
    return linear


class BiasNorm(nn.Module):
    """x * exp(log_scale) / rms(x - bias): a LayerNorm replacement whose bias only enters the scale."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.empty(num_channels).normal_(mean=0.0, std=1e-4))

    def forward(self, x: Tensor) -> Tensor:
        scales = (x - self.bias).pow(2).mean(dim=-1, keepdim=True).pow(-0.5)
        return x * (scales * self.log_scale.exp())


class BypassModule(nn.Module):
    """Learned per-channel interpolation between a block's input and its output."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))

    def forward(self, src_orig: Tensor, src: Tensor) -> Tensor:
        return src_orig + (src - src_orig) * self.bypass_scale


class SimpleDownsample(nn.Module):
    """Downsample time by ``downsample`` with a learned softmax-weighted average of each group.

    A sequence is right-padded by repeating its last frame to a multiple of the factor. With
    ``lengths``, every item is treated so: frames past an item's end are replaced by its last
    valid frame before grouping, so the item's last (partial) group averages its own frames
    only and the ``ceil(length / downsample)`` valid outputs equal its one-item result.
    """

    def __init__(self, downsample: int) -> None:
        super().__init__()
        self.downsample = downsample
        self.bias = nn.Parameter(torch.zeros(downsample))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, T, C) and optional valid lengths (B,) -> (B, ceil(T / downsample), C)."""
        batch, frames, channels = x.shape
        ds = self.downsample
        if lengths is not None and bool((lengths < frames).any()):
            x = repeat_last_valid_frame(x, lengths)
        groups = (frames + ds - 1) // ds
        pad = groups * ds - frames
        if pad:
            x = torch.cat((x, x[:, -1:].expand(batch, pad, channels)), dim=1)
        weights = self.bias.softmax(dim=0).to(x.dtype)
        return (x.reshape(batch, groups, ds, channels) * weights.unsqueeze(-1)).sum(dim=2)


def padding_mask(lengths: Tensor, frames: int) -> Tensor:
    """(B,) valid lengths -> (B, frames) bool mask, True at padded frames (index >= length)."""
    return torch.arange(frames, device=lengths.device)[None, :] >= lengths[:, None]


def downsampled_lengths(lengths: Tensor, factor: int) -> Tensor:
    """Valid lengths after grouping ``factor`` frames (a partial last group counts): ceil(L / factor)."""
    return torch.div(lengths + factor - 1, factor, rounding_mode="floor")


def repeat_last_valid_frame(x: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, C): frames at index >= lengths[b] replaced by frame lengths[b] - 1 of item b."""
    index = torch.minimum(torch.arange(x.shape[1], device=x.device)[None, :], (lengths - 1)[:, None])
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def simple_upsample(x: Tensor, upsample: int) -> Tensor:
    """Repeat every frame ``upsample`` times along time."""
    return x.repeat_interleave(upsample, dim=1)


def compact_rel_pos_encoding(frames: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Relative positional encodings for offsets -(frames-1)..(frames-1), shape (2*frames-1, dim).

    Offsets are compressed logarithmically, mapped through atan to a bounded interval and
    Fourier-encoded; the last channel is a constant 1 that acts as a bias.
    """
    offsets = torch.arange(-(frames - 1), frames, device=device).to(torch.float32).unsqueeze(1)
    freqs = 1 + torch.arange(dim // 2, device=device)
    compression = dim**0.5
    compressed = compression * offsets.sign() * ((offsets.abs() + compression).log() - math.log(compression))
    angles = (compressed / (dim / (2.0 * math.pi))).atan()
    pe = torch.zeros(offsets.shape[0], dim, device=device)
    pe[:, 0::2] = (angles * freqs).cos()
    pe[:, 1::2] = (angles * freqs).sin()
    pe[:, -1] = 1.0
    return pe.to(dtype)


def relative_to_absolute(scores: Tensor) -> Tensor:
    """(..., T, 2T-1) scores by relative offset -> (..., T, T), entry [i, j] taken at offset j - i."""
    scores = scores.contiguous()
    frames = scores.shape[-2]
    strides = scores.stride()
    return scores.as_strided(
        (*scores.shape[:-1], frames),
        (*strides[:-2], strides[-2] - strides[-1], strides[-1]),
        storage_offset=scores.storage_offset() + strides[-1] * (frames - 1),
    )


class RelPositionAttentionWeights(nn.Module):
    """Multi-head attention weights (batch, heads, T, T) with compact relative positions.

    The weights are materialised once per layer because three consumers reuse them
    (the non-linear attention and both self-attention value paths).
    """

    def __init__(self, embed_dim: int, pos_dim: int, num_heads: int, query_head_dim: int, pos_head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        in_dim = (2 * query_head_dim + pos_head_dim) * num_heads
        self.in_proj = scaled_linear(embed_dim, in_dim, query_head_dim**-0.25)
        self.linear_pos = scaled_linear(pos_dim, num_heads * pos_head_dim, 0.05, bias=False)

    def forward(self, x: Tensor, pos_emb: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        batch, frames, _ = x.shape
        heads, qd, pd = self.num_heads, self.query_head_dim, self.pos_head_dim
        proj = self.in_proj(x)
        q = proj[..., : heads * qd].reshape(batch, frames, heads, qd).transpose(1, 2)
        k = proj[..., heads * qd : 2 * heads * qd].reshape(batch, frames, heads, qd).permute(0, 2, 3, 1)
        p = proj[..., 2 * heads * qd :].reshape(batch, frames, heads, pd).transpose(1, 2)
        scores = torch.matmul(q, k)
        pos = self.linear_pos(pos_emb).reshape(2 * frames - 1, heads, pd).permute(1, 2, 0)
        scores = scores + relative_to_absolute(torch.matmul(p, pos))
        if key_padding_mask is not None:
            # -inf (the published model uses -1000) gives padded keys a weight of exactly 0
            # whatever the scale of the scores, so padding never reaches a valid query.
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Values weighted by precomputed attention weights, then an output projection."""

    def __init__(self, embed_dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, num_heads * value_head_dim)
        self.out_proj = scaled_linear(num_heads * value_head_dim, embed_dim, 0.05)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        batch, frames, _ = x.shape
        heads = attn_weights.shape[1]
        values = self.in_proj(x).reshape(batch, frames, heads, -1).transpose(1, 2)
        out = torch.matmul(attn_weights, values).transpose(1, 2).reshape(batch, frames, -1)
        return self.out_proj(out)


class FeedforwardModule(nn.Module):
    """Linear -> SwooshL -> dropout -> Linear."""

    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, feedforward_dim)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = scaled_linear(feedforward_dim, embed_dim, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(self.dropout(swoosh_l(self.in_proj(x))))


class NonlinAttention(nn.Module):
    """Gated values (tanh gate) mixed over time by the first head's attention weights, times a second gate."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(channels, 3 * hidden_channels)
        self.out_proj = scaled_linear(hidden_channels, channels, 0.05)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        gate, values, out_gate = self.in_proj(x).chunk(3, dim=-1)
        values = values * torch.tanh(gate)
        values = torch.matmul(attn_weights[:, 0], values)
        return self.out_proj(values * out_gate)


class ConvolutionModule(nn.Module):
    """GLU-style sigmoid gate, masked depthwise convolution over time, SwooshR, projection."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(channels, 2 * channels)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, groups=channels, padding=kernel_size // 2
        )
        self.out_proj = scaled_linear(channels, channels, 0.05)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        values, gate = self.in_proj(x).chunk(2, dim=-1)
        x = values * torch.sigmoid(gate)
        if key_padding_mask is not None:
            x = x.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        x = self.depthwise_conv(x.transpose(1, 2)).transpose(1, 2)
        return self.out_proj(swoosh_r(x))
