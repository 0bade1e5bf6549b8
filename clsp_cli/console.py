"""stderr console, logging and progress: nothing here ever writes to stdout."""

from __future__ import annotations

import sys
import time

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def log(message: str) -> None:
    """An informational line on stderr (suppressed by ``--quiet``)."""
    if not _quiet:
        console.print(message, markup=False)


def warn(message: str) -> None:
    console.print(f"warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    console.print(f"error: {message}", style="bold red", markup=False)


class Throughput:
    """Live progress on stderr (a rich bar on a terminal, a summary line otherwise).

    Counts records, failures and seconds of audio so it can show clips/s and audio-s/s.
    """

    def __init__(self, label: str, unit: str = "clips"):
        self.label, self.unit = label, unit
        self.count = self.failed = 0
        self.audio_seconds = 0.0
        self.start = time.perf_counter()
        self._progress = None
        self._task = None

    def __enter__(self) -> "Throughput":
        if not _quiet and sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.label)
        return self

    def update(self, n: int = 1, audio_seconds: float = 0.0, failed: int = 0) -> None:
        self.count += n
        self.failed += failed
        self.audio_seconds += audio_seconds
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.label}: {self.summary()}")

    def summary(self) -> str:
        dt = max(time.perf_counter() - self.start, 1e-9)
        text = f"{self.count} {self.unit} ({self.failed} failed), {self.count / dt:.1f} {self.unit}/s"
        if self.audio_seconds:
            text += f", {self.audio_seconds / dt:.1f} audio-s/s"
        return text

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
        log(f"{self.label}: {self.summary()} in {time.perf_counter() - self.start:.1f} s")
