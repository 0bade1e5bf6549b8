"""SIGTERM / SIGUSR1 during training: recorded, so that the loop can checkpoint and stop."""

from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    """Records SIGTERM / SIGUSR1 instead of dying, while installed."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
