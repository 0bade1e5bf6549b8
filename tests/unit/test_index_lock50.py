"""The index lock names its holder even when a second writer meets the lock in the instant
between the holder taking it and writing its PID, or while the file still holds the PID of
an earlier holder that has exited."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from clsp.index.lock import LOCK_FILE, IndexBusyError, _open_locked


def _hold(folder, first: str | None):
    """A lock held as a new holder holds it: taken, with ``first`` (or nothing) in the file for
    0.25 s, then this process's PID."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    if first is not None:
        os.pwrite(fd, f"{first}\n".encode(), 0)

    def later():
        time.sleep(0.25)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    thread = threading.Thread(target=later)
    thread.start()
    return fd, thread


def _dead_pid() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return str(proc.pid)


@pytest.mark.parametrize("first", [None, "dead"])
def test_a_refused_writer_names_the_live_holder(tmp_path, first):
    folder = tmp_path / "idx"
    fd, thread = _hold(folder, _dead_pid() if first == "dead" else None)
    try:
        with pytest.raises(IndexBusyError) as err:
            _open_locked(folder, 0, None)
    finally:
        thread.join()
        os.close(fd)
    assert err.value.pid == str(os.getpid()), str(err.value)
    assert f"PID {os.getpid()}" in str(err.value)


def test_a_holder_that_never_writes_its_pid_is_unknown_without_a_long_wait(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        start = time.monotonic()
        with pytest.raises(IndexBusyError) as err:
            _open_locked(folder, 0, None)
        assert time.monotonic() - start < 3
    finally:
        os.close(fd)
    assert err.value.pid == "unknown"


def test_a_pid_that_is_no_process_here_is_still_named(tmp_path):
    """A holder on another host of a shared file system: its PID is no process here."""
    folder = tmp_path / "idx"
    folder.mkdir()
    dead = _dead_pid()
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, f"{dead}\n".encode(), 0)
    try:
        with pytest.raises(IndexBusyError) as err:
            _open_locked(folder, 0, None)
    finally:
        os.close(fd)
    assert err.value.pid == dead
