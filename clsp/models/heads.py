"""Projection and transform heads mapping encoder outputs into the joint space.

Layout matches the released model so its weights load by name:
``projection = Sequential(Linear, ReLU, Linear)`` then
``transform.sequential = Sequential(Linear, ReLU, Dropout, Linear)``.
"""

from __future__ import annotations

from torch import nn


def projection(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear-ReLU-Linear from the encoder width to the joint width."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class Transform(nn.Module):
    """Linear-ReLU-Dropout-Linear inside the joint space (CLAP's MLPLayers)."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.sequential = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x):
        return self.sequential(x)
