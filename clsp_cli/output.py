"""Record output: JSON Lines to stdout or to a file published atomically, resumable.

A file output is written to ``FILE.partial`` and renamed to ``FILE`` when the command
finishes, so a reader never sees a truncated file under the final name. With ``resume``
the complete lines already in ``FILE.partial`` are kept (a torn last line is dropped) and
the command skips that many input records. Matrices go to ``--npy`` the same way.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from clsp.errors import OutputError
from clsp.records import dumps, error_record
from clsp_cli.errors import FailFast


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _recover_lines(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of a partial file; truncates the file after the last one."""
    records: list[dict[str, Any]] = []
    good_bytes = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            good_bytes += len(raw)
    with open(path, "r+b") as fh:
        fh.truncate(good_bytes)
    return records


def _io_error(path: Path | str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


class RecordSink:
    """Writes output records in order; counts failures; handles ``--on-error``."""

    def __init__(self, output: str = "-", resume: bool = False, on_error: str = "skip"):
        self.output, self.on_error = output, on_error
        self.written = self.failed = 0
        self.done: list[dict[str, Any]] = []
        self.final: Path | None = None
        if output == "-":
            self.fh: io.TextIOBase = sys.stdout
            return
        self.final = Path(output)
        part = _partial(self.final)
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            if resume and part.exists():
                self.done = _recover_lines(part)
            elif resume and self.final.exists():
                self.done = _recover_lines(self.final)
                os.replace(self.final, part)
            else:
                part.write_bytes(b"")
            self.fh = open(part, "a", encoding="utf-8")
        except OSError as exc:
            raise _io_error(part, exc) from None

    def keep_first(self, n: int) -> None:
        """Keep only the first ``n`` recovered records (drop a torn group at the end)."""
        if self.final is None or n >= len(self.done):
            return
        self.fh.close()
        part = _partial(self.final)
        with open(part, "rb") as fh:
            lines = fh.readlines()[:n]
        with open(part, "wb") as fh:
            fh.writelines(lines)
        self.done = self.done[:n]
        self.fh = open(part, "a", encoding="utf-8")

    @property
    def resumed(self) -> int:
        """Number of records already written by an earlier, interrupted run."""
        return len(self.done)

    def write(self, record: dict[str, Any]) -> None:
        try:
            self.fh.write(dumps(record) + "\n")
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _io_error(self.output, exc) from None
        self.written += 1

    def write_error(self, rec_id: Any, exc: BaseException, extra: dict[str, Any] | None = None) -> None:
        """Write an error record; with ``--on-error fail`` stop the command."""
        rec = error_record(rec_id, exc)
        if extra:
            rec = {**extra, **rec}
        self.write(rec)
        self.failed += 1
        if self.on_error == "fail":
            self.flush()
            raise FailFast(f"record {rec_id!r} failed: {rec['error']['message']}")

    def write_summary(self, summary: dict[str, Any], report: str | None = None) -> None:
        """An evaluation summary: to ``report`` (a JSON file) or as a final ``__summary__`` record."""
        if report:
            out = RecordSink(report)
            out.write(summary)
            out.commit()
        else:
            self.write({"id": "__summary__", "summary": summary})

    def flush(self) -> None:
        try:
            self.fh.flush()
            if self.final is not None:
                os.fsync(self.fh.fileno())
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _io_error(self.output, exc) from None

    def commit(self) -> None:
        """Publish the output file under its final name (no-op for stdout)."""
        self.flush()
        if self.final is not None:
            self.fh.close()
            try:
                os.replace(_partial(self.final), self.final)
            except OSError as exc:
                raise _io_error(self.final, exc) from None

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0


class MatrixSink:
    """Rows of a float32 matrix appended to ``FILE.npy.partial``, published as ``.npy``."""

    def __init__(self, path: str, dim: int, resume_rows: int | None = None):
        self.final = Path(path)
        self.raw = _partial(self.final)
        self.dim = dim
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            if resume_rows is not None and self.raw.exists():
                with open(self.raw, "r+b") as fh:
                    fh.truncate(resume_rows * dim * 4)
                self.rows = resume_rows
            else:
                self.raw.write_bytes(b"")
                self.rows = 0
            self.fh = open(self.raw, "ab")
        except OSError as exc:
            raise _io_error(self.raw, exc) from None

    def append(self, row: np.ndarray) -> int:
        """Append one row; returns its index."""
        try:
            self.fh.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        except OSError as exc:
            raise _io_error(self.raw, exc) from None
        self.rows += 1
        return self.rows - 1

    def flush(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def commit(self) -> None:
        self.flush()
        self.fh.close()
        tmp = self.final.with_name(self.final.name + ".tmp.npy")
        try:
            data = np.memmap(self.raw, dtype="<f4", mode="r", shape=(self.rows, self.dim)) if self.rows else np.zeros((0, self.dim), "<f4")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4", shape=(self.rows, self.dim))
            out[:] = data
            out.flush()
            del out, data
            os.replace(tmp, self.final)
            os.remove(self.raw)
        except OSError as exc:
            raise _io_error(self.final, exc) from None
