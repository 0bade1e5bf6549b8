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


def _build_onto_link(tmp_path, link: str, target: str):
    """``clsp search build`` of one embedding record with ``-o`` a symlink ``link`` -> ``target``."""
    import json

    from tests.helpers.cli import invoke

    rec = {"id": "a", "embedding": [1.0, 0.0, 0.0], "provenance": {"model": "m", "checksum": "c", "dim": 3,
                                                                   "normalized": True, "modality": "audio"}}
    (tmp_path / "e.jsonl").write_text(json.dumps(rec) + "\n")
    (tmp_path / link).symlink_to(target)
    return invoke("search", "build", "e.jsonl", "-o", link, cwd=tmp_path)


def test_a_build_through_a_dangling_link_makes_the_folder_it_points_to(tmp_path):
    """As every output gets the file a dangling link points to: -o link.idx -> newidx builds newidx."""
    from tests.helpers.cli import jsonl

    res = _build_onto_link(tmp_path, "link.idx", "newidx")
    assert res.returncode == 0 and jsonl(res.stdout)[0]["count"] == 1, res.stderr
    assert (tmp_path / "link.idx").is_symlink() and (tmp_path / "newidx" / "index.json").is_file()


def test_a_build_onto_a_symlink_loop_says_so(tmp_path):
    res = _build_onto_link(tmp_path, "loop.idx", "loop.idx")
    assert res.returncode == 1 and b"a symbolic link loop" in res.stderr and b"Traceback" not in res.stderr, res.stderr
