"""One writer at a time per index folder: an advisory ``flock`` on ``INDEX/.lock``.

Writers (``build``, ``add``) hold an exclusive lock for the whole load-add-publish, so two
parallel ``--add`` runs are serialised instead of one silently dropping the other's rows;
``clsp search build`` without ``--add`` takes it from its start without waiting (timeout 0),
so a second build onto one index stops at once instead of replacing the first's records. The lock file holds the PID of its holder, so a writer that has
to wait can say whom it waits for. Readers never lock: they see the version that
``index.json`` pointed at when they opened the index (see :mod:`clsp.index.store`).

The lock is advisory and per open file (``fcntl.flock``): it is released when the holder
exits, even on ``kill -9``, and it is reentrant within one process through a registry of
held folders.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from clsp.errors import IndexFileError

LOCK_FILE = ".lock"
INFO_FILE = "index.json"  # written when an index is published in the folder (clsp.index.store)
DEFAULT_TIMEOUT = 600.0
POLL_SECONDS = 0.1

_held: dict[str, int] = {}


class IndexBusyError(IndexFileError):
    """Another process is writing the index and did not finish within the wait limit;
    ``pid`` is its process id as its lock file says (or "unknown")."""

    def __init__(self, message: str, pid: str = "unknown"):
        super().__init__(message)
        self.pid = pid


HOLDER_READ_SECONDS = 1.0  # how long a waiter reads the lock file for a live holder's PID


def _holder(fd: int) -> str:
    """The PID in the lock file of ``fd``'s holder, or "unknown". A new holder writes its PID
    just after taking the lock, and until then the file is empty or still holds an earlier
    holder's PID (a process that has exited), so the file is read again for up to
    ``HOLDER_READ_SECONDS`` until it names a running process; then the last PID read is given
    as it is (a holder on another host of a shared file system is no process here)."""
    deadline = time.monotonic() + HOLDER_READ_SECONDS
    while True:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return "unknown"
        pid = text if text.isascii() and text.isdigit() else "unknown"
        if (pid != "unknown" and _running(int(pid))) or time.monotonic() >= deadline:
            return pid
        time.sleep(POLL_SECONDS / 4)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts: its signal is refused)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _still_ours(fd: int, lock: Path) -> bool:
    """Whether the locked file is still the one at ``lock`` (a writer whose first build
    failed removes the folder it made, lock file included, after a waiter opened it)."""
    try:
        return os.fstat(fd).st_ino == os.stat(lock).st_ino
    except OSError:
        return False


def _open_locked(folder: Path, timeout: float, on_wait: Callable[[str], None] | None) -> int:
    """An open descriptor of ``folder/.lock``, exclusively locked (waits up to ``timeout``)."""
    deadline = time.monotonic() + max(timeout, 0)
    told = False
    while True:
        try:
            Path(os.path.realpath(folder)).mkdir(parents=True, exist_ok=True)  # a dangling link: its target
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            from clsp.sniff import node_problem

            loop = node_problem(folder)  # a symbolic link loop says so, not "File exists"
            why = loop if loop and "loop" in loop else exc.strerror or exc
            raise IndexFileError(f"index {folder}: cannot create its lock file ({why})") from None
        try:
            if not _try_lock(fd):
                if on_wait is not None and timeout > 0 and not told:
                    told = True
                    on_wait(f"index {folder} is in use by PID {_holder(fd)}; waiting up to {timeout:g} s for it")
                while not _try_lock(fd):
                    if time.monotonic() >= deadline:
                        pid = _holder(fd)
                        raise IndexBusyError(f"index {folder} is in use by PID {pid} (another writer); "
                                             + (f"gave up after {timeout:g} s" if timeout > 0 else
                                                "wait for it to finish or write elsewhere"), pid)
                    time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        if _still_ours(fd, folder / LOCK_FILE):
            return fd
        os.close(fd)  # the folder was removed (and maybe made again) while we waited: lock the one there now


@contextmanager
def index_writer(
    path: str | Path, timeout: float = DEFAULT_TIMEOUT, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the write lock of the index folder ``path`` (created if missing).

    Waits up to ``timeout`` seconds (0: do not wait) for another writer, calling ``on_wait``
    once with a message naming its PID. Raises :class:`IndexBusyError` ("index X is in use by
    PID N") when the wait runs out, and ``IndexFileError`` when the folder cannot be made.
    A folder this call made (and the missing folders above it) is removed again when what ran
    under the lock failed before an index was published in it (no folder holding only ``.lock``
    is left behind).
    """
    folder = Path(path)
    key = os.path.realpath(folder)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    real = Path(key)  # a symlink (dangling too) names the folder it points to
    made = not real.exists()
    from clsp.outfile import missing_folders

    # the missing folders above it, deepest first: removed with it
    parents = missing_folders(real.parent) if made else []
    fd = _open_locked(folder, timeout, on_wait)
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk or quota: said in one line, and the folder made goes again
            if made:
                _remove_made(real, parents)
            raise IndexFileError(f"index {folder}: cannot write its lock file ({exc.strerror or exc})") from None
        _held[key] = 1
        try:
            yield
        except BaseException:
            if made and not (folder / INFO_FILE).exists():
                _remove_made(real, parents)
            raise
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _remove_made(folder: Path, parents: list[Path] = ()) -> None:
    """Remove the lock file and the folder a failed first build made, then the missing folders
    above it that were made for it (``parents``, deepest first); each only when nothing else is
    in it: data a half-written build left is swept by the next build."""
    try:
        os.unlink(folder / LOCK_FILE)
        folder.rmdir()
        for parent in parents:
            parent.rmdir()
    except OSError:
        pass
