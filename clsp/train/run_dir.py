"""A run's output dir before and after a failed start.

A run that fails before training a step (unreadable manifest, no usable batch, a model
that does not fit the device...) must leave no half-made run behind: a folder holding only
``config.json`` would later pass for a run to resume. :class:`RunDirGuard` remembers what
the output dir held when the run started; :meth:`RunDirGuard.undo` puts back the earlier
``config.json`` and removes what the failed start created (the folder itself when it did
not exist before).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clsp.train.config import RUN_CONFIG


class RunDirGuard:
    """What ``out`` held before a run: its entries and the bytes of its run config."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.created = not out.exists()
        self.entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
        config = out / RUN_CONFIG
        self.config = config.read_bytes() if config.is_file() else None

    def undo(self) -> None:
        """Put ``out`` back as it was (best effort: a file that cannot be removed stays)."""
        if self.created:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        if not self.out.is_dir():
            return
        for path in self.out.iterdir():
            if path.name in self.entries:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if self.config is not None:
            try:
                (self.out / RUN_CONFIG).write_bytes(self.config)
            except OSError:
                pass
