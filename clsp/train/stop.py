"""Stop requests during training: SIGTERM / SIGUSR1 (a scheduler's preemption) and a first
Ctrl-C (SIGINT) are recorded, so that the loop finishes its step, writes a checkpoint and
stops (exit 75, resumable); a second Ctrl-C stops at once (``KeyboardInterrupt``, exit 130,
no checkpoint)."""

from __future__ import annotations

import os
import signal
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopRequest:
    """Records SIGTERM / SIGUSR1 / a first SIGINT instead of dying, while installed; a second
    SIGINT raises ``KeyboardInterrupt``."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        for sig in SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        if signum == signal.SIGINT:
            if self.signal == signal.SIGINT:
                raise KeyboardInterrupt
            # a signal handler writes with os.write only (logging may hold a lock the loop holds)
            os.write(2, b"\ninterrupted (Ctrl-C): finishing this step and writing a checkpoint (resume with "
                        b"--resume latest); Ctrl-C again stops at once, without it\n")
        if self.signal is None or signum == signal.SIGINT:
            self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
