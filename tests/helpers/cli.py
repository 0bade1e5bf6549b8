"""Two ways to run ``clsp`` with the same result shape (``returncode``, ``stdout``, ``stderr``):

- ``invoke``: in-process through Typer's ``CliRunner`` (fast; for the command contract);
- ``run_clsp``: the real executable in a child process (for pipes, signals, kills, locks).

An exception that escapes a command in-process is appended to ``stderr`` as the traceback a
real process would print, so "no traceback" assertions hold the same meaning in both.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

CLSP = shutil.which("clsp", path=str(Path(sys.executable).parent)) or shutil.which("clsp") or str(Path(sys.executable).parent / "clsp")


@dataclass
class Completed:
    """What a finished command gave back, like ``subprocess.CompletedProcess``."""

    args: list[str]
    returncode: int
    stdout: bytes | str
    stderr: bytes | str


def invoke(*args, stdin: bytes | str | None = None, cwd: Path | str | None = None, env: dict | None = None,
           text: bool = False) -> Completed:
    """Run ``clsp ARGS`` in this process; ``cwd`` is entered for the call and left afterwards."""
    from typer.testing import CliRunner

    from clsp_cli.app import app

    argv = [str(a) for a in args]
    with contextlib.chdir(cwd or os.getcwd()):
        res = CliRunner().invoke(app, argv, input=stdin, env=env)
    err = res.stderr_bytes or b""
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        err += "".join(traceback.format_exception(*res.exc_info)).encode()
    out = res.stdout_bytes
    if text:
        return Completed(argv, res.exit_code, out.decode(), err.decode(errors="replace"))
    return Completed(argv, res.exit_code, out, err)


def run_clsp(*args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``clsp`` executable; stdout and stderr captured separately."""
    return subprocess.run([CLSP, *args], input=stdin, capture_output=True, cwd=cwd, timeout=timeout)


def jsonl(data: bytes | str) -> list[dict]:
    """The JSON records of a JSON Lines output (blank lines skipped)."""
    if isinstance(data, bytes):
        data = data.decode()
    return [json.loads(line) for line in data.splitlines() if line.strip()]
