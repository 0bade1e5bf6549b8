"""Zipformer2 speech encoder (the SPEAR-XLarge tower of CLSP), written for exact inference.

``ZipformerSpeechEncoder`` = ``encoder_embed`` (Conv2dSubsampling, 100 Hz fbank -> 50 Hz)
+ ``encoder`` (Zipformer2: stacks at 50/25/12.5/6.25/12.5/25/50 Hz, then a 2x output
downsampling to 25 Hz). Sub-module names equal the published checkpoint keys.

Inference (``eval()``) computes what the published model computes. Training-time
machinery of the original recipe that is an identity at inference is left out: activation
balancers and whiteners (they only alter gradients), scheduled dropout/skip rates, random
layer and module skipping, feature masking of the upper channels, positional-encoding
dropout and skipping, attention-score penalties and the parameter limits on bypass and
norm scales. In training mode this module applies plain dropout (``dropout``) after the
feed-forward activations and on the front-end output instead.

Padding never influences valid frames: every time-mixing step (front-end ConvNeXt,
attention, convolution modules, downsampling and the output downsampling) is masked with the
items' valid lengths, so an item's valid outputs equal its one-item result (the published
model's output for that clip alone) whatever else is in the batch. The published model
itself lets padding leak into the last valid frames, so its batched outputs for the shorter
items of a batch differ slightly from ours and from its own one-clip outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from clsp.errors import ConfigError, InputError
from clsp.models.registry import register_speech_encoder
from clsp.models.subsampling import Conv2dSubsampling
from clsp.models.zipformer_blocks import SimpleDownsample, downsampled_lengths
from clsp.models.zipformer_layers import (
    DownsampledZipformer2Encoder,
    Zipformer2Encoder,
    Zipformer2EncoderLayer,
)

PER_STACK_FIELDS = (
    "num_encoder_layers",
    "encoder_dim",
    "num_heads",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
    "feedforward_dim",
    "cnn_module_kernel",
)


@dataclass
class ZipformerConfig:
    """Sizes of the Zipformer2 speech encoder; the defaults are the released CLSP model.

    Per-stack fields take one value per entry of ``downsampling_factor`` (a single value is
    repeated for every stack).
    """

    num_features: int = 128
    embed_channels: tuple[int, ...] = (8, 32, 128)
    downsampling_factor: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)
    num_encoder_layers: tuple[int, ...] = (1, 2, 3, 4, 1, 1, 1)
    encoder_dim: tuple[int, ...] = (1280,)
    num_heads: tuple[int, ...] = (8,)
    query_head_dim: tuple[int, ...] = (32,)
    value_head_dim: tuple[int, ...] = (12,)
    pos_head_dim: tuple[int, ...] = (4,)
    feedforward_dim: tuple[int, ...] = (3840,)
    cnn_module_kernel: tuple[int, ...] = (31, 31, 15, 15, 15, 31, 31)
    pos_dim: int = 48
    output_downsampling_factor: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.embed_channels = _int_tuple("embed_channels", self.embed_channels)
        self.downsampling_factor = _int_tuple("downsampling_factor", self.downsampling_factor)
        stacks = len(self.downsampling_factor)
        for name in PER_STACK_FIELDS:
            values = _int_tuple(name, getattr(self, name))
            if len(values) == 1:
                values = values * stacks
            if len(values) != stacks:
                raise ConfigError(
                    f"zipformer config: {name} has {len(values)} values but there are {stacks} stacks"
                )
            setattr(self, name, values)
        self._validate()

    def _validate(self) -> None:
        if len(self.embed_channels) != 3:
            raise ConfigError("zipformer config: embed_channels needs exactly 3 values")
        if self.num_features < 7:
            raise ConfigError(f"zipformer config: num_features={self.num_features} must be at least 7")
        if self.output_downsampling_factor not in (1, 2):
            raise ConfigError("zipformer config: output_downsampling_factor must be 1 or 2")
        if self.pos_dim % 2:
            raise ConfigError(f"zipformer config: pos_dim={self.pos_dim} must be even")
        for i, kernel in enumerate(self.cnn_module_kernel):
            if kernel % 2 == 0:
                raise ConfigError(f"zipformer config: stack {i}: cnn_module_kernel={kernel} must be odd")

    @property
    def output_dim(self) -> int:
        return max(self.encoder_dim)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ZipformerConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"zipformer config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    values = (value,) if isinstance(value, int) else tuple(value)
    if not values or not all(isinstance(v, int) and v > 0 for v in values):
        raise ConfigError(f"zipformer config: {name} must be positive integers, got {value!r}")
    return values


def channels_to(x: Tensor, dim: int) -> Tensor:
    """Truncate or zero-pad the channel axis to ``dim``."""
    if dim <= x.shape[-1]:
        return x[..., :dim]
    return torch.cat((x, x.new_zeros(*x.shape[:-1], dim - x.shape[-1])), dim=-1)


class Zipformer2(nn.Module):
    """The Zipformer2 encoder proper: (B, T, encoder_dim[0]) 50 Hz embeddings -> (B, T', D)."""

    def __init__(self, config: ZipformerConfig) -> None:
        super().__init__()
        self.downsampling_factor = config.downsampling_factor
        self.encoder_dim = config.encoder_dim
        self.encoders = nn.ModuleList(self._stack(config, i) for i in range(len(config.downsampling_factor)))
        self.downsample_output = SimpleDownsample(2) if config.output_downsampling_factor == 2 else None

    @staticmethod
    def _stack(c: ZipformerConfig, i: int) -> nn.Module:
        layers = [
            Zipformer2EncoderLayer(
                c.encoder_dim[i], c.pos_dim, c.num_heads[i], c.query_head_dim[i], c.pos_head_dim[i],
                c.value_head_dim[i], c.feedforward_dim[i], c.cnn_module_kernel[i], c.dropout,
            )
            for _ in range(c.num_encoder_layers[i])
        ]
        stack = Zipformer2Encoder(layers, c.pos_dim)
        ds = c.downsampling_factor[i]
        return stack if ds == 1 else DownsampledZipformer2Encoder(stack, c.encoder_dim[i], ds)

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, encoder_dim[0]) and valid lengths (B,) -> (B, T', output_dim) and lengths.

        T' = ceil(T / 2) with the output downsampling, else T; frames past an item's length
        are padding and never reach its valid frames.
        """
        outputs = []
        for module, dim in zip(self.encoders, self.encoder_dim):
            x = module(channels_to(x, dim), x_lens)
            outputs.append(x)
        x = self._full_dim_output(outputs)
        if self.downsample_output is None:
            return x, x_lens
        return self.downsample_output(x, x_lens), downsampled_lengths(x_lens, 2)

    def _full_dim_output(self, outputs: list[Tensor]) -> Tensor:
        """Each output channel is taken from the most recent stack that has it."""
        pieces, cur = [outputs[-1]], self.encoder_dim[-1]
        for out, dim in zip(reversed(outputs[:-1]), reversed(self.encoder_dim[:-1])):
            if dim > cur:
                pieces.append(out[..., cur:dim])
                cur = dim
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]


MIN_FRAMES = 9  # fewest fbank frames giving one output frame: (9 - 7) // 2 = 1


@register_speech_encoder("zipformer")
class ZipformerSpeechEncoder(nn.Module):
    """fbank (B, T, num_features) at 100 Hz and lengths -> (B, T', output_dim) at 25 Hz and lengths.

    Built from a ``ZipformerConfig`` or from its fields as keyword arguments (registry specs);
    with neither, it has the size of the released CLSP model.
    """

    input_kind = "fbank"

    def __init__(self, config: ZipformerConfig | None = None, **fields: Any) -> None:
        super().__init__()
        if config is not None and fields:
            raise ConfigError("zipformer: give either a config or its fields, not both")
        if config is None:
            config = ZipformerConfig.from_dict(fields)
        self.config = config
        self.output_dim = config.output_dim
        self.encoder_embed = Conv2dSubsampling(
            config.num_features, config.encoder_dim[0], config.embed_channels, config.dropout
        )
        self.encoder = Zipformer2(config)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        self._check_input(feats, feat_lens)
        feats = feats[:, : int(feat_lens.max())]
        x, x_lens = self.encoder_embed(feats, feat_lens)
        return self.encoder(x, x_lens)

    def _check_input(self, feats: Tensor, feat_lens: Tensor) -> None:
        if feats.ndim != 3 or feats.shape[-1] != self.config.num_features:
            raise InputError(
                f"zipformer: expected fbank of shape (batch, frames, {self.config.num_features}), "
                f"got {tuple(feats.shape)}"
            )
        if feat_lens.ndim != 1 or feat_lens.shape[0] != feats.shape[0]:
            raise InputError(f"zipformer: feat_lens must have shape ({feats.shape[0]},)")
        short = (feat_lens < MIN_FRAMES).nonzero().flatten().tolist()
        if short:
            raise InputError(
                f"zipformer: batch item(s) {short} have fewer than {MIN_FRAMES} fbank frames "
                "(about 0.1 s of audio); the encoder needs at least that much"
            )
        if int(feat_lens.max()) > feats.shape[1]:
            raise InputError(f"zipformer: a length exceeds the {feats.shape[1]} frames given")
