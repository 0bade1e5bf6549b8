"""Zipformer2 encoder layer and the stacks built from it (full-rate and downsampled).

Stacks take the valid length of every batch item and keep padded frames out of valid ones:
attention gives padded keys zero weight, convolution modules zero padded frames first,
downsampling groups never mix an item's frames with padding, and everything else
(feed-forwards, norms, bypasses, upsampling) works frame by frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clsp.models.zipformer_blocks import (
    BiasNorm,
    BypassModule,
    ConvolutionModule,
    FeedforwardModule,
    NonlinAttention,
    RelPositionAttentionWeights,
    SelfAttention,
    SimpleDownsample,
    compact_rel_pos_encoding,
    downsampled_lengths,
    padding_mask,
    simple_upsample,
)


class Zipformer2EncoderLayer(nn.Module):
    """One Zipformer2 layer: three feed-forwards, non-linear attention, two attention value
    paths sharing one set of weights, two convolution modules, BiasNorm and two bypasses."""

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        value_head_dim: int,
        feedforward_dim: int,
        cnn_module_kernel: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.bypass = BypassModule(embed_dim)
        self.bypass_mid = BypassModule(embed_dim)
        self.self_attn_weights = RelPositionAttentionWeights(
            embed_dim, pos_dim, num_heads, query_head_dim, pos_head_dim
        )
        self.self_attn1 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedforwardModule(embed_dim, (feedforward_dim * 3) // 4, dropout)
        self.feed_forward2 = FeedforwardModule(embed_dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedforwardModule(embed_dim, (feedforward_dim * 5) // 4, dropout)
        self.nonlin_attention = NonlinAttention(embed_dim, 3 * embed_dim // 4)
        self.conv_module1 = ConvolutionModule(embed_dim, cnn_module_kernel)
        self.conv_module2 = ConvolutionModule(embed_dim, cnn_module_kernel)
        # Present (unused) in the published checkpoints; kept so they load one to one.
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.norm = BiasNorm(embed_dim)

    def forward(self, src: Tensor, pos_emb: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        src_orig = src
        attn_weights = self.self_attn_weights(src, pos_emb, key_padding_mask)
        src = src + self.feed_forward1(src)
        src = src + self.nonlin_attention(src, attn_weights)
        src = src + self.self_attn1(src, attn_weights)
        src = src + self.conv_module1(src, key_padding_mask)
        src = src + self.feed_forward2(src)
        src = self.bypass_mid(src_orig, src)
        src = src + self.self_attn2(src, attn_weights)
        src = src + self.conv_module2(src, key_padding_mask)
        src = src + self.feed_forward3(src)
        src = self.norm(src)
        return self.bypass(src_orig, src)


class Zipformer2Encoder(nn.Module):
    """A stack of layers sharing one relative positional encoding."""

    def __init__(self, layers: list[Zipformer2EncoderLayer], pos_dim: int) -> None:
        super().__init__()
        self.pos_dim = pos_dim
        self.layers = nn.ModuleList(layers)

    def forward(self, src: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, D) and valid lengths (B,) (None: no padding) -> (B, T, D)."""
        frames = src.shape[1]
        pos_emb = compact_rel_pos_encoding(frames, self.pos_dim, src.device, src.dtype)
        key_padding_mask = None
        if lengths is not None and bool((lengths < frames).any()):
            key_padding_mask = padding_mask(lengths, frames)
        for layer in self.layers:
            src = layer(src, pos_emb, key_padding_mask)
        return src


class DownsampledZipformer2Encoder(nn.Module):
    """Runs a stack at 1/``downsample`` of the frame rate, upsamples back by repetition and
    mixes the result with the input through a learned bypass."""

    def __init__(self, encoder: Zipformer2Encoder, dim: int, downsample: int) -> None:
        super().__init__()
        self.downsample_factor = downsample
        self.downsample = SimpleDownsample(downsample)
        self.encoder = encoder
        self.out_combiner = BypassModule(dim)

    def forward(self, src: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, D) and valid lengths (B,) (None: no padding) -> (B, T, D)."""
        ds = self.downsample_factor
        out = self.encoder(self.downsample(src, lengths), None if lengths is None else downsampled_lengths(lengths, ds))
        out = simple_upsample(out, self.downsample_factor)[:, : src.shape[1]]
        return self.out_combiner(src, out)
