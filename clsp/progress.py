"""How often long jobs report progress in logs (stdlib only, so every layer may use it)."""

from __future__ import annotations

import os

PROGRESS_ENV = "CLSP_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 30.0


def progress_seconds() -> float:
    """Seconds between plain progress log lines, from ``CLSP_PROGRESS_SECONDS``.

    Default 30; 0 (or inf) turns periodic lines off; a value that is not a number (nan too)
    gives the default.
    """
    import math

    try:
        value = float(os.environ.get(PROGRESS_ENV, DEFAULT_PROGRESS_SECONDS))
    except ValueError:
        return DEFAULT_PROGRESS_SECONDS
    if math.isnan(value):
        return DEFAULT_PROGRESS_SECONDS
    return 0.0 if math.isinf(value) else max(0.0, value)
