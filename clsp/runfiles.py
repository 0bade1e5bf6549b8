"""The files a command run has read, so that none of its outputs is published over one.

A command-line run calls ``begin()``; from then on the readers note what they open: audio
files (``clsp.audio``), manifests and lists (``clsp.streams.open_binary_input``), the
sources of Lhotse cuts (``clsp.cuts``) and index folders (``clsp.index``). An output is
checked with ``check_publish(path, shown)`` just before it replaces ``path``: a file the run
read (or one inside a folder it read) raises ``ConfigError`` (exit 2) and the output stays
in its ``.partial`` file. Outside a command run (library use) nothing is noted or checked.
"""

from __future__ import annotations

import os
import stat
import threading

_lock = threading.Lock()
_active = False
_files: dict[tuple[int, int], str] = {}
_folders: dict[str, str] = {}


def begin() -> None:
    """Start noting reads for a new run (forgetting an earlier run's)."""
    global _active
    with _lock:
        _files.clear()
        _folders.clear()
        _active = True


def end() -> None:
    global _active
    with _lock:
        _active = False
        _files.clear()
        _folders.clear()


def note_read(path) -> None:
    """Note that the run reads the regular file ``path`` (no-op outside a run)."""
    if not _active:
        return
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode):
        with _lock:
            _files.setdefault((st.st_dev, st.st_ino), str(path))


def note_folder(path) -> None:
    """Note that the run reads every file inside the folder ``path`` (an index)."""
    if _active:
        with _lock:
            _folders.setdefault(os.path.realpath(path), str(path))


def read_as(path) -> str | None:
    """How the run read ``path`` (its name as read, or the folder it lies in), or None."""
    if not _active:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    with _lock:
        hit = _files.get((st.st_dev, st.st_ino))
        if hit is not None:
            return hit
        real = os.path.realpath(path)
        return next((shown for folder, shown in _folders.items() if real.startswith(folder + os.sep)), None)


def check_publish(path, shown: str, kept: str | None = None) -> None:
    """``ConfigError`` when publishing an output at ``path`` would replace a file the run read;
    ``kept`` names where the unpublished output stays."""
    source = read_as(path)
    if source is None:
        return
    from clsp.errors import ConfigError

    where = "" if source in (str(path), shown) else f" (as {source})"
    stays = f" and stays in {kept}" if kept else ""
    raise ConfigError(f"{shown}: this run read that file{where}; the output was not published over it{stays}; "
                      "give the output another path")
