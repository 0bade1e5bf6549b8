"""Finiteness checks of a model under training."""

from __future__ import annotations

import torch


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or an infinity (one device sync)."""
    named = list(model.named_parameters())
    if not named:
        return []
    ok = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).cpu()
    return [name for (name, _), good in zip(named, ok.tolist()) if not good]


def name_list(names: list[str], shown: int = 3) -> str:
    """``"a, b, c and 4 more"``: the first ``shown`` names of a list."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
