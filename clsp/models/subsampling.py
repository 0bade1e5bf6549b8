"""Convolutional front end of the Zipformer2 speech encoder: fbank (B, T, F) -> (B, (T-7)//2, D).

Three 2-D convolutions (the second halves time and frequency, the third halves frequency),
a ConvNeXt block, a linear projection of (channels x remaining frequency bins) and a BiasNorm.

Padding never reaches a valid output frame: the three convolutions have no padding along
time, so each of the (T-7)//2 valid outputs of an item is computed from its own frames only,
and the ConvNeXt's time-padded depthwise convolution sees zeros past an item's last valid
frame, exactly as it does when the item is run alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from clsp.models.zipformer_blocks import BiasNorm, SwooshR, padding_mask, swoosh_l


class ConvNeXt(nn.Module):
    """Residual depthwise 7x7 conv -> 1x1 expand -> SwooshL -> 1x1 project, on (B, C, T, F)."""

    def __init__(self, channels: int, hidden_ratio: int = 3, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = channels * hidden_ratio
        self.depthwise_conv = nn.Conv2d(
            channels, channels, kernel_size, groups=channels, padding=(kernel_size - 1) // 2
        )
        self.pointwise_conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.pointwise_conv2 = nn.Conv2d(hidden, channels, kernel_size=1)
        with torch.no_grad():
            self.pointwise_conv2.weight.mul_(0.01)
            self.pointwise_conv2.bias.mul_(0.01)

    def forward(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """``x`` (B, C, T, F); ``padding`` (B, T) is True at frames past an item's end.

        Padded frames are zeroed before the depthwise convolution (what a lone item's zero
        padding gives), so they never reach valid frames.
        """
        if padding is not None:
            x = x.masked_fill(padding[:, None, :, None], 0.0)
        return x + self.pointwise_conv2(swoosh_l(self.pointwise_conv1(self.depthwise_conv(x))))


class Conv2dSubsampling(nn.Module):
    """Fbank frames (B, T, in_channels) -> (B, (T-7)//2, out_channels) at half the frame rate.

    ``conv`` keeps placeholder identities at the positions where the published model has
    gradient-only modules (gradient scaling, balancers), so its convolution weights keep the
    published names ``conv.0``, ``conv.4`` and ``conv.7``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (8, 32, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=(0, 1)),
            nn.Identity(),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=(1, 2)),
            nn.Identity(),
            SwooshR(),
        )
        self.convnext = ConvNeXt(c3)
        self.out_width = ((in_channels - 1) // 2 - 1) // 2
        self.out = nn.Linear(self.out_width * c3, out_channels)
        self.out_norm = BiasNorm(out_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        """fbank (B, T, in_channels) and lengths (B,) -> (B, (T-7)//2, out_channels), (x_lens-7)//2.

        Frames past an item's output length are padding; the valid ones equal the item's
        one-item result.
        """
        x = self.conv(x.unsqueeze(1))
        out_lens = torch.div(x_lens - 7, 2, rounding_mode="floor")
        x = self.convnext(x, padding_mask(out_lens, x.shape[2]))
        batch, channels, frames, freqs = x.shape
        x = x.transpose(1, 2).reshape(batch, frames, channels * freqs)
        x = self.dropout(self.out_norm(self.out(x)))
        return x, out_lens

