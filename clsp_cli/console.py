"""stderr console, logging and progress: nothing here ever writes to stdout.

Progress: a rich spinner line on a terminal; when stderr is a file or pipe (a SLURM log)
a plain line every ``CLSP_PROGRESS_SECONDS`` seconds (default 30; 0 turns the periodic
lines off), then a final summary line. Library logs (the ``clsp`` logger, e.g. bootstrap
progress) go to the same console at INFO, or WARNING with ``--quiet``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from typing import TYPE_CHECKING

from clsp.progress import progress_seconds

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None
_quiet = False


LOG_WIDTH = 160  # columns for tables when stderr is a file or pipe (a batch job's log) and COLUMNS is unset


def get_console() -> Console:
    """The stderr rich console, made on first use (rich loads then, not for ``clsp --help``).

    On a terminal it takes the terminal's width; written to a log file or pipe, tables get
    ``LOG_WIDTH`` columns (``COLUMNS`` overrides), so they are not cut at rich's 80."""
    global _console
    if _console is None:
        import os

        from rich.console import Console

        width = None
        if not sys.stderr.isatty() and not os.environ.get("COLUMNS"):
            width = LOG_WIDTH
        _console = Console(stderr=True, highlight=False, soft_wrap=True, width=width)
    return _console


def __getattr__(name: str):
    if name == "console":  # ``from clsp_cli.console import console``
        return get_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_quiet_all = False  # ``clsp -q COMMAND``: quiet whatever the command's own option says


def set_quiet_all(quiet: bool) -> None:
    """``clsp --quiet COMMAND`` (before the command): every command of this run is quiet."""
    global _quiet_all, _quiet
    _quiet_all = _quiet = quiet  # each command's set_quiet routes the logs (rich loads only then)


def is_quiet() -> bool:
    """Whether this run is quiet (its command's ``--quiet``, or ``clsp --quiet``)."""
    return _quiet


def set_quiet(quiet: bool) -> None:
    """Turn logs and progress off (``--quiet``, or ``clsp --quiet`` before the command) or on;
    routes the library's logs accordingly."""
    global _quiet
    _quiet = quiet or _quiet_all
    route_library_logs(logging.WARNING if _quiet else logging.INFO)


def route_library_logs(level: int) -> None:
    """Library logs (the ``clsp`` logger) to the stderr console at ``level``."""
    from rich.logging import RichHandler

    logger = logging.getLogger("clsp")
    logger.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=get_console(), show_path=False, show_time=False))


def log(message: str) -> None:
    """An informational line on stderr (suppressed by ``--quiet``)."""
    if not _quiet:
        get_console().print(message, markup=False)


def warn(message: str) -> None:
    get_console().print(f"warning: {message}", style="yellow", markup=False)


def error(message: str) -> None:
    get_console().print(f"error: {message}", style="bold red", markup=False)


def singular(noun: str) -> str:
    """'clips' -> 'clip', 'queries' -> 'query': the unit for a count of one."""
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    return noun[:-1] if noun.endswith("s") else noun


class Throughput:
    """Live progress on stderr: a rich bar on a terminal; otherwise a plain line every
    ``progress_seconds()`` seconds and a summary line at the end.

    Counts records, failures and seconds of audio so it can show clips/s and audio-s/s.
    """

    def __init__(self, label: str, unit: str = "clips", work_unit: str | None = None, work_done: str = "embedded"):
        self.label, self.unit = label, unit
        self.work_unit = work_unit or unit  # what ``worked`` counts (e.g. windows inside a batch)
        self.work_done = work_done  # what was done to them ("measured" before any record is written)
        self.count = self.failed = self.worked = 0
        self.audio_seconds = 0.0
        self.start = time.perf_counter()
        self._progress = None
        self._task = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> "Throughput":
        if not _quiet and sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=get_console(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.label)
        elif not _quiet and progress_seconds() > 0:
            # A thread, so that a line appears on time even while one large batch runs.
            self._ticker = threading.Thread(target=self._tick, args=(progress_seconds(),), daemon=True)
            self._ticker.start()
        return self

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            worked = f"; {self.worked} {self.work_unit} {self.work_done}" if self.worked else ""
            log(f"{self.label}: {self.summary()}{worked} after {time.perf_counter() - self.start:.0f} s")

    def work(self, n: int) -> None:
        """Count ``n`` units done inside a batch, before their records are written."""
        self.worked += n

    def update(self, n: int = 1, audio_seconds: float = 0.0, failed: int = 0) -> None:
        self.count += n
        self.failed += failed
        self.audio_seconds += audio_seconds
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.label}: {self.summary()}")

    def summary(self) -> str:
        dt = max(time.perf_counter() - self.start, 1e-9)
        text = f"{self.count} {singular(self.unit) if self.count == 1 else self.unit} ({self.failed} failed), " \
               f"{self.count / dt:.1f} {self.unit}/s"
        if self.audio_seconds:
            text += f", {self.audio_seconds / dt:.1f} audio-s/s"
        return text

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._progress is not None:
            self._progress.stop()
        log(f"{self.label}: {self.summary()} in {time.perf_counter() - self.start:.1f} s")
        if exc[0] is None:
            from clsp_cli.output import note_input_count

            note_input_count(self.count)  # no records: nothing is published (clsp_cli.output.publish)
        if self.count == 0 and exc[0] is None:  # an empty list or manifest: say so even with --quiet
            warn(f"{self.label}: the input held no {self.unit} (nothing to do)")
