"""Helpers for checking that a speech tower's outputs do not depend on the batch.

A tower is padding-invariant when every item's valid output frames in a padded batch equal
the frames it gives when run alone. The padded frames are filled with loud noise so that any
leak shows up far above float rounding.
"""

from __future__ import annotations

import torch

TOL = 1e-5


def padded_batch(items: list[torch.Tensor], pad_scale: float = 10.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Items (T_i, ...) -> (B, max T_i, ...) with noise of std ``pad_scale`` in the padding, and lengths (B,)."""
    lens = torch.tensor([x.shape[0] for x in items])
    gen = torch.Generator().manual_seed(seed)
    batch = torch.randn(len(items), int(lens.max()), *items[0].shape[1:], generator=gen) * pad_scale
    for i, x in enumerate(items):
        batch[i, : x.shape[0]] = x
    return batch, lens


def max_batch_vs_alone_diff(tower, items: list[torch.Tensor], pad_scale: float = 10.0) -> float:
    """Largest |batched - alone| over every item's valid output frames (max abs)."""
    batch, lens = padded_batch(items, pad_scale)
    with torch.no_grad():
        out, out_lens = tower(batch, lens)
        worst = 0.0
        for i, x in enumerate(items):
            alone, alone_lens = tower(x.unsqueeze(0), lens[i : i + 1])
            n = int(alone_lens[0])
            assert int(out_lens[i]) == n, f"item {i}: batched length {int(out_lens[i])} != alone {n}"
            worst = max(worst, (out[i, :n] - alone[0, :n]).abs().max().item())
    return worst
