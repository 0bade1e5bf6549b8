"""Learning-rate schedules as multipliers of each parameter group's base LR.

* ``cosine``: linear warm-up from 0 over ``warmup_steps``, then cosine decay to
  ``min_lr_ratio`` at ``max_steps``.
* ``eden`` (icefall, the paper's recipe): ((s^2+B^2)/B^2)^-1/4 * ((e^2+E^2)/E^2)^-1/4, times a
  linear warm-up from ``eden_warmup_start`` to 1 over ``warmup_steps``; s = step, e = epoch.
* ``constant``: linear warm-up from 0, then 1.

The factor is a pure function of (step, epoch), so resuming needs no scheduler state
beyond the step and epoch the trainer already records.
"""

from __future__ import annotations

import math

from clsp.train.config import OptimConfig


def lr_factor(cfg: OptimConfig, step: int, epoch: int, max_steps: int) -> float:
    """Multiplier for optimizer step ``step`` (0-based) in ``epoch`` (0-based)."""
    warm = cfg.warmup_steps
    if cfg.schedule == "eden":
        b, e = cfg.eden_lr_batches, cfg.eden_lr_epochs
        factor = ((step**2 + b**2) / b**2) ** -0.25 * ((epoch**2 + e**2) / e**2) ** -0.25
        if step < warm:
            factor *= cfg.eden_warmup_start + (1.0 - cfg.eden_warmup_start) * step / warm
        return factor
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, max_steps - warm)
    progress = min(1.0, (step - warm) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rates(optimizer, factor: float) -> None:
    """Scale every group's ``base_lr`` by ``factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
