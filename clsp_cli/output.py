"""Record output: JSON Lines to stdout or to a file, one writer at a time, resumable.

A regular file (or a new path) is written to ``FILE.partial`` and renamed to ``FILE`` when
the command finishes, so a reader never sees a truncated file under the final name; a
symlink is followed and published at its target; devices, FIFOs and ``/dev/std*`` are
written through (see ``clsp_cli.output_files``). A writer holds ``FILE.lock`` until it
publishes. With ``resume`` the complete lines already in ``FILE.partial`` are read, and
nothing is changed until the command has checked them (``check_run``) and calls
``start(keep)``. Matrices go to ``--npy`` by the same rules.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from clsp.errors import ConfigError, OutputError
from clsp.records import dumps, error_record
from clsp.results import Result
from clsp_cli.errors import FailFast
from clsp_cli.output_files import OutputLock, OutputTarget, open_through, resolve_target


def _recover_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Complete JSON lines of a partial file and the byte offset after each (file untouched)."""
    records: list[dict[str, Any]] = []
    ends: list[int] = []
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
            ends.append(good_bytes)
    return records, ends


def _io_error(path: Path | str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def _defined_numbers(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _defined_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_defined_numbers(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def check_same_run(shown: str, previous: dict[str, Any] | None, run: dict[str, Any]) -> None:
    """Raise ``ConfigError`` (exit 2) unless ``previous`` run settings equal ``run``'s.

    The message names each setting that differs, e.g. ``long_audio: 'truncate' there,
    'chunk-mean' now``.
    """
    if previous is None:
        raise ConfigError(f"cannot resume {shown}: its partial output has no run record ({shown}.lock), "
                          "so nothing proves it matches this run; remove the .partial file to start over")
    run = _jsonable(run)
    diff = [f"{k}: {previous.get(k)!r} there, {run.get(k)!r} now"
            for k in sorted(set(previous) | set(run)) if previous.get(k) != run.get(k)]
    if diff:
        raise ConfigError(f"cannot resume {shown}: its partial output was written by a different run ("
                          + "; ".join(diff) + "); remove the .partial file to start over")


COMPRESSED_SUFFIXES = {".gz": "gzip", ".tgz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".lzma": "lzma", ".zst": "zstd",
                       ".zstd": "zstd", ".lz4": "lz4", ".zip": "zip"}  # names that promise compression, and a tool
# that compresses a pipe into each


def compressed_suffix(name: str) -> str | None:
    """The suffix of ``name`` that promises compression (``.gz``, ``.zip``, ..., any case), or None: clsp
    writes plain outputs, which must not sit under such a name."""
    base = os.path.basename(name)
    suffix = base[base.rfind("."):].lower() if "." in base else ""
    return suffix if suffix in COMPRESSED_SUFFIXES else None


def refuse_compressed_records_name(output: str) -> None:
    """``ConfigError`` for an ``-o`` named as compressed (``x.jsonl.gz``): records are written as
    plain JSON Lines, which must not sit under such a name; the message gives the pipe to use."""
    suffix = compressed_suffix(output)
    if suffix is not None:
        plain = output[: -len(suffix)] or "NAME"
        raise ConfigError(f"{output}: clsp writes its records as plain JSON Lines, not compressed; write -o {plain} "
                          f"and compress that, or pipe: clsp ... | {COMPRESSED_SUFFIXES[suffix]} > {output}")


class GuardedLock(OutputLock):
    """The one-writer lock of ``FILE`` (``FILE.lock``) that also holds the lock under the name of
    the file the writer fills, ``FILE.partial`` (``FILE.partial.lock``), for as long as it holds
    ``FILE.lock``: another run given ``FILE.partial`` as an output (``-o``, ``--npy``,
    ``--report``, ``--errors``, of any command) locks that name and stops at once, naming the
    PID, instead of replacing this run's output; and a run onto ``FILE`` stops while another
    writes ``FILE.partial``. Raises ``OutputError`` (in use) or ``ConfigError`` as
    ``OutputLock`` does, holding neither lock then."""

    def __init__(self, target: OutputTarget):
        super().__init__(target)
        from clsp_cli import output_files

        try:
            self.guard: OutputLock | None = OutputLock(OutputTarget(target.shown + ".partial", target.partial, False))
        except BaseException:
            self.release(remove=self.previous_run is None and not os.path.lexists(target.partial))
            raise
        output_files._held.remove(self.guard)  # released with this lock, however the run ends

    def release(self, remove: bool = True) -> None:
        super().release(remove)
        guard, self.guard = getattr(self, "guard", None), None
        if guard is not None:  # its file goes, unless it holds the record of a run that wrote FILE.partial
            guard.release(remove=guard.previous_run is None)


class RecordSink:
    """Writes output records in order; counts failures; handles ``--on-error``.

    ``run`` (JSON-able settings that change the values written) is stored in the lock file
    so that a later ``--resume`` can prove the partial output is its own. With ``resume``
    the caller checks ``done`` and then calls ``start(keep)``; otherwise writing starts at once.
    """

    def __init__(self, output: str = "-", resume: bool = False, on_error: str = "skip",
                 run: dict[str, Any] | None = None):
        self.output, self.on_error = output, on_error
        self.written = self.failed = 0
        self.failed_before = 0  # error records kept from an interrupted run
        self.done: list[dict[str, Any]] = []
        self._ends: list[int] = []
        self.target: OutputTarget | None = None
        self.lock: OutputLock | None = None
        self.run = run
        self.fh: io.TextIOBase | None = None
        self._held: str | None = None  # the last record's line, kept back while ``hold_last`` is on
        self._holding = False
        self.errors_to: RecordSink | None = None  # where error records go instead (caption --errors)
        self.reports: list[RecordSink] = []  # --report files, published with the records (``commit``)
        if output == "-":
            if resume:
                raise ConfigError("--resume needs --output FILE (stdout cannot be resumed)")
            self.fh = sys.stdout
            return
        refuse_compressed_records_name(output)
        self.target = resolve_target(output)
        if self.target.through:
            if resume:
                raise ConfigError(f"--resume needs a regular file; {output} is not one")
            self.fh = open_through(self.target)
            return
        self._open_locked(resume)

    def _open_locked(self, resume: bool) -> None:
        target = self.target
        from clsp_cli.output_files import _make_folder

        _make_folder(target.path.parent, target.shown)  # removed again at the command's end if left empty
        self.lock = GuardedLock(target)
        self.lock.pending = self._flush_buffer
        try:
            if resume and target.partial.exists():
                self.done, self._ends = _recover_lines(target.partial)
            # A published output keeps no run record, so nothing of it is trusted: it is
            # computed again and replaced at the end.
            if not resume:
                self.start(0)
        except OSError as exc:
            self.lock.release(remove=False)
            raise _io_error(target.partial, exc) from None

    def _flush_buffer(self) -> None:
        """Write out what the file object still buffers (a run that stops keeps it for --resume)."""
        if self.fh is not None and not self.fh.closed and self.fh is not sys.stdout:
            self.fh.flush()

    def set_run(self, run: dict[str, Any]) -> None:
        """The settings of this run, once known (e.g. after the model is loaded)."""
        self.run = run
        if self.lock is not None and self.fh is not None:
            self.lock.record(_jsonable(run))

    @property
    def previous_run(self) -> dict[str, Any] | None:
        return self.lock.previous_run if self.lock is not None else None

    def check_run(self) -> None:
        """With records to keep, raise ``ConfigError`` unless they come from a run like this one."""
        if self.done:
            check_same_run(self.output, self.previous_run, self.run or {})

    def start(self, keep: int) -> None:
        """Keep the first ``keep`` recovered records (cut what follows) and open for appending."""
        part = self.target.partial
        try:
            if keep == 0:
                part.write_bytes(b"")
            else:
                with open(part, "r+b") as fh:
                    fh.truncate(self._ends[keep - 1])
            self.done = self.done[:keep]
            self.failed_before = sum(1 for r in self.done if "error" in r)
            self.lock.record(_jsonable(self.run) if self.run is not None else None)
            self.fh = open(part, "a", encoding="utf-8")
        except OSError as exc:
            raise _io_error(part, exc) from None

    def discard(self) -> None:
        """Drop the unpublished output of a command that cannot resume: its ``.partial`` file
        and lock go (an earlier published file stays as it was)."""
        _discard(self.fh if self.lock is not None else None, self.target.partial if self.target else None, self.lock)

    def amend_last(self, update: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
        """Rewrite the last record written to the output file as ``update(record)`` (before
        ``commit``): in place in the output file, or the record ``hold_last`` kept back from a
        stream. False, and nothing changed, for a stream written without ``hold_last`` or an
        empty output."""
        if self._holding:
            if self._held is None:
                return False
            self._held = dumps(update(json.loads(self._held))) + "\n"
            return True
        if self.lock is None or self.fh is None or self.target is None:
            return False
        self.flush()
        part = self.target.partial
        try:
            with open(part, "r+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return False
                block = min(size, 1 << 20)
                while True:  # back far enough to hold the whole last line
                    fh.seek(size - block)
                    tail = fh.read(block)
                    cut = tail.rstrip(b"\n").rfind(b"\n")
                    if cut >= 0 or block == size:
                        break
                    block = min(size, 2 * block)
                start = cut + 1 + size - block
                fh.seek(start)
                record = json.loads(fh.read().decode("utf-8", "surrogateescape"))
                fh.seek(start)
                fh.truncate()
                fh.write((dumps(update(record)) + "\n").encode("utf-8", "surrogateescape"))
        except (OSError, ValueError) as exc:
            raise _io_error(part, exc if isinstance(exc, OSError) else OSError(str(exc))) from None
        return True

    @property
    def resumed(self) -> int:
        """Number of records already written by an earlier, interrupted run."""
        return len(self.done)

    def write(self, record: dict[str, Any]) -> None:
        line = dumps(record) + "\n"
        if self._holding:
            line, self._held = self._held, line
        if line is not None:
            self._emit(line)
        self.written += 1

    def _emit(self, line: str) -> None:
        try:
            self.fh.write(line)
        except BrokenPipeError:
            raise self._pipe_closed() from None
        except OSError as exc:
            raise _io_error(self.output, exc) from None

    def hold_last(self) -> None:
        """Keep each record back until the next one (or ``release_held``) where the output is a
        stream (stdout, a FIFO: nothing written there can be rewritten), so that ``amend_last``
        can still change the last one; a file output is rewritten in place instead."""
        self._holding = self.lock is None

    def release_held(self) -> None:
        """Write out the record ``hold_last`` kept back (publication does it first)."""
        line, self._held = self._held, None
        if line is not None:
            self._emit(line)

    def _pipe_closed(self) -> BrokenPipeError:
        """The reader of the records' pipe is gone (stdout's, ``| head``, or that of a FIFO named
        by ``-o``): a ``BrokenPipeError`` naming the output, as the command wrapper reports it."""
        exc = BrokenPipeError()
        exc.output = "stdout" if self.fh is sys.stdout or self.output == "-" else self.output
        return exc

    def write_error(self, rec_id: Any, exc: BaseException, extra: dict[str, Any] | None = None) -> None:
        """Write an error record; with ``--on-error fail`` stop the command."""
        rec = error_record(rec_id, exc)
        if extra:
            rec = {**extra, **rec}
        (self.errors_to or self).write(rec)
        self.failed += 1
        if self.on_error == "fail":
            self.flush()
            raise FailFast(f"record {rec_id!r} failed: {rec['error']['message']}")

    def write_summary(self, summary: dict[str, Any], report: str | None = None) -> None:
        """An evaluation summary: to ``report`` (a JSON file, published by ``commit`` with the
        records, never before them) or as a final ``__summary__`` record. A value left undefined
        (NaN or infinite: a statistic of too few items) is written as null, so a finished run
        never fails at its summary."""
        summary = _defined_numbers(summary)
        if report:
            out = RecordSink(report)
            out.write(summary)
            self.reports.append(out)
        else:
            from clsp.records import SUMMARY_ID

            self.write({"id": SUMMARY_ID, "summary": summary})

    def flush(self) -> None:
        try:
            self.fh.flush()
            if self.lock is not None:
                os.fsync(self.fh.fileno())
        except BrokenPipeError:
            raise self._pipe_closed() from None
        except OSError as exc:
            raise _io_error(self.output, exc) from None

    def commit(self, *more: "MatrixSink | None") -> None:
        """Publish the records and the files written with them (``--errors``, ``--report``,
        ``more``: an ``--npy`` matrix), all or nothing, the records first (``publish``)."""
        publish(self, self.errors_to, *self.reports, *more)

    def prepare(self) -> None:
        """Publication, first step: everything written reaches the disk (a full disk or a
        file-size limit shows here) and the output is checked against the run's inputs.
        Nothing is replaced yet."""
        self.release_held()
        self.flush()
        if self.target is None:
            return
        self.fh.close()
        if self.lock is None:
            return
        from clsp.runfiles import check_publish

        try:
            check_publish(self.target.path, self.output, str(self.target.partial))
        except ConfigError:
            self.lock.release()  # nothing will resume into it: no lock file left beside the input
            raise

    def publish(self) -> None:
        """Publication, second step (after ``prepare``): rename the output into place."""
        if self.lock is None or self.lock.fd < 0:
            return
        try:
            os.replace(self.target.partial, self.target.path)
        except OSError as exc:
            raise _io_error(self.output, exc) from None
        self.lock.release()

    @property
    def exit_code(self) -> int:
        """3 when any record of the whole output (kept ones included) is an error record, else 0."""
        return 3 if self.failed or self.failed_before else 0


def partial_rows(path: str, dim: int) -> int:
    """Complete rows of ``dim`` float32 in the partial file of the ``--npy`` output ``path``."""
    target = resolve_target(path)
    if target.through or not target.partial.exists():
        return 0
    return target.partial.stat().st_size // (4 * dim)


def first_changed_row(path: str, dim: int, kept: list[dict[str, Any]]) -> int | None:
    """The position in ``kept`` of the first record whose ``row`` in the partial file of the
    ``--npy`` output ``path`` is not the vector it was written with (its ``row_sha256``), or
    None when every kept row checks: a partial matrix changed after the run stopped."""
    from clsp.index.records import ROW_CHECK, row_checksum

    target = resolve_target(path)
    rows = partial_rows(path, dim)
    if not rows:
        return None
    matrix = np.memmap(target.partial, dtype="<f4", mode="r", shape=(rows, dim))
    for n, rec in enumerate(kept):
        row, want = rec.get("row"), rec.get(ROW_CHECK)
        if isinstance(row, int) and isinstance(want, str) and 0 <= row < rows and row_checksum(matrix[row]) != want:
            return n
    return None


class MatrixSink:
    """Rows of a float32 matrix appended to ``FILE.partial`` (raw ``<f4``), published as ``.npy``.

    A non-regular target (``/dev/null``, a FIFO) gets the rows from an anonymous temporary
    file at the end, since the ``.npy`` header needs the row count. Raises ``OutputError``
    when the file cannot be written or is in use, ``ConfigError`` when ``resume_rows`` rows
    are not all in the partial file.
    """

    def __init__(self, path: str, dim: int, resume_rows: int | None = None):
        self.target = resolve_target(path)
        self.dim = dim
        self.lock: OutputLock | None = None
        if self.target.through:
            if resume_rows:
                raise ConfigError(f"--resume needs a regular --npy file; {path} is not one")
            self.fh = tempfile.TemporaryFile()
            self.rows = 0
            return
        self.raw = self.target.partial
        from clsp_cli.output_files import _make_folder

        _make_folder(self.target.path.parent, self.target.shown)  # removed again at the command's end if left empty
        try:
            self.lock = GuardedLock(self.target)
            self.lock.pending = self._flush_buffer
            have = self.raw.stat().st_size if resume_rows and self.raw.exists() else 0
            if resume_rows and have < resume_rows * dim * 4:
                self.lock.release(remove=False)
                raise ConfigError(f"cannot resume {path}: {self.raw} holds {have // (4 * dim)} rows, "
                                  f"the records kept refer to {resume_rows}; remove the .partial files to start over")
            with open(self.raw, "r+b" if resume_rows else "wb") as fh:
                fh.truncate((resume_rows or 0) * dim * 4)
            self.rows = resume_rows or 0
            self.fh = open(self.raw, "ab")
        except OSError as exc:
            raise _io_error(self.raw, exc) from None

    def _flush_buffer(self) -> None:
        """Write out what the file object still buffers (a run that stops keeps it for --resume)."""
        fh = getattr(self, "fh", None)
        if fh is not None and not fh.closed:
            fh.flush()

    def append(self, row: np.ndarray) -> int:
        """Append one row; returns its index."""
        try:
            self.fh.write(np.ascontiguousarray(row, dtype="<f4").tobytes())
        except OSError as exc:
            raise _io_error(self.target.shown, exc) from None
        self.rows += 1
        return self.rows - 1

    def flush(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as exc:
            raise _io_error(self.target.shown, exc) from None

    def commit(self) -> None:
        publish(self)

    def prepare(self) -> None:
        """Publication, first step: the rows reach the disk and the ``.npy`` file is written
        beside its final name (``FILE.tmp.npy``); nothing is replaced yet."""
        self.flush()
        if self.lock is None:
            return
        self.fh.close()
        final = self.target.path
        from clsp.runfiles import check_publish

        try:
            check_publish(final, self.target.shown, str(self.raw))
        except ConfigError:
            self.lock.release()  # nothing will resume into it: no lock file left beside the input
            raise
        tmp = self._tmp
        try:
            data = np.memmap(self.raw, dtype="<f4", mode="r", shape=(self.rows, self.dim)) if self.rows else np.zeros((0, self.dim), "<f4")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f4", shape=(self.rows, self.dim))
            out[:] = data
            out.flush()
            del out, data
        except OSError as exc:
            self.unprepare()
            raise _io_error(self.target.shown, exc) from None

    @property
    def _tmp(self) -> Path:
        return self.target.path.with_name(self.target.path.name + ".tmp.npy")

    def unprepare(self) -> None:
        """Remove what ``prepare`` wrote (publication stopped before this output)."""
        if self.lock is not None:
            self._tmp.unlink(missing_ok=True)

    def publish(self) -> None:
        """Publication, second step: the prepared file replaces the output (a written-through
        one gets the matrix now)."""
        if self.lock is None:
            self._commit_through()
            return
        if self.lock.fd < 0:
            return
        try:
            os.replace(self._tmp, self.target.path)
            os.remove(self.raw)
        except OSError as exc:
            raise _io_error(self.target.shown, exc) from None
        self.lock.release()

    def discard(self) -> None:
        """As ``RecordSink.discard``: the ``.partial`` rows and the lock go."""
        _discard(self.fh, self.raw if self.lock is not None else None, self.lock)

    def _commit_through(self) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)}
        self.fh.seek(0)
        try:
            with open_through(self.target, binary=True) as out:
                np.lib.format.write_array_header_1_0(out, header)
                while block := self.fh.read(1 << 20):
                    out.write(block)
        except OSError as exc:
            raise _io_error(self.target.shown, exc) from None
        finally:
            self.fh.close()


_EMPTY_INPUT = {"run": False}  # whether this command's input held no records (``note_input_count``)


def note_input_count(count: int | None) -> None:
    """What a run's progress counted on its input (``clsp_cli.console.Throughput``); None at a
    command's start. An input of no records publishes nothing (``publish``)."""
    _EMPTY_INPUT["run"] = count == 0


def _holds_nothing(out: "RecordSink | MatrixSink") -> bool:
    if isinstance(out, MatrixSink):
        return out.rows == 0
    return out.written == 0 and not out.failed and not out.failed_before and not getattr(out, "done", None)


def publish(*outputs: "RecordSink | MatrixSink | None") -> None:
    """Publish the outputs of a run all or nothing, in the order given (the records first):
    every one is written out and checked (``prepare``: where a full disk, a quota or a
    file-size limit shows) before any replaces its file, so a run that cannot publish its
    records replaces none of its other outputs (``--errors``, ``--report``, ``--npy``) either;
    their unpublished ``.partial`` files go as for any failed run. ``None`` entries are skipped.

    A run whose input held no records (an empty list, or an upstream command that failed
    before writing any) publishes nothing: each output file is left as it was (an earlier
    run's file is not replaced by an empty one), none is made, and a warning names them."""
    ready = [out for out in outputs if out is not None]
    if _EMPTY_INPUT["run"] and ready and all(_holds_nothing(out) for out in ready):
        files = [str(out.target.shown) for out in ready if out.target is not None and not out.target.through]
        for out in ready:
            out.discard()
        if files:
            from clsp_cli.console import warn

            warn(f"no records: {', '.join(files)} not written (a file already there stays as it was)")
        return
    prepared = []
    try:
        for out in ready:
            out.prepare()
            prepared.append(out)
    except BaseException:
        for out in prepared:
            getattr(out, "unprepare", lambda: None)()
        raise
    # a matrix written through (a FIFO, a device) is written now, so it goes first: a reader that closes
    # early then leaves every file output unpublished, rather than records pointing into a broken matrix
    through = [out for out in ready if isinstance(out, MatrixSink) and out.lock is None]
    with _sigterm_held():  # a stop signal lands before or after the outputs are all in place, never between
        for out in through + [out for out in ready if out not in through]:
            out.publish()
        from clsp_cli.errors import RUN_STATE

        RUN_STATE["published"] = True  # SIGTERM from now on finds a complete run: it is left to end


@contextlib.contextmanager
def _sigterm_held():
    """SIGTERM blocked (delivered when the block ends) in the main thread; elsewhere nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _discard(fh, partial: Path | None, lock: OutputLock | None) -> None:
    """Close ``fh``, remove ``partial`` and release ``lock`` (its file removed), ignoring errors."""
    from contextlib import suppress

    if fh is not None:
        with suppress(OSError):
            fh.close()
    if partial is not None:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
    if lock is not None:
        with suppress(OSError):
            lock.release()


def held_until(results: Iterable[Result], seen: Callable[[Result], bool],
               at_end: Callable[[list[Result]], None]) -> Iterator[Result]:
    """The results, held back until ``seen`` says one of them carries what an evaluation needs
    (a gold label, a rating), then streamed; when none did, ``at_end(held)`` runs first (it
    raises the usage error of a mistyped key, so that no record has gone out, to stdout either)."""
    held: list[Result] | None = []
    for res in results:
        if held is None:
            yield res
            continue
        held.append(res)
        if seen(res):
            yield from held
            held = None
    if held:
        at_end(held)
        yield from held


def write_results(sink: RecordSink, results: Iterable[Result], progress: Any = None,
                  keep: Callable[[Any], bool] | None = None,
                  records: Callable[[Result], list[dict[str, Any]]] | None = None,
                  error_fields: Callable[[Result], dict[str, Any] | None] | None = None) -> Iterator[Result]:
    """Write each result's record, or its error record (``--on-error`` applies), in order.

    Counts each in ``progress`` (a ``clsp_cli.console.Throughput``: failures, audio seconds)
    and yields the results that succeeded, for the caller's tallies. With ``keep``, a
    success whose value it rejects (e.g. a score outside ``--below``/``--above``) is yielded
    but not written. ``records`` gives the records of a success (default: its ``to_dict()``;
    e.g. one per window), ``error_fields`` extra fields of an error record (e.g. provenance).
    """
    for res in results:
        if res.error is not None:
            if progress is not None:  # counted first: --on-error fail stops inside write_error
                progress.update(failed=1)
            sink.write_error(res.given_id, res.error, error_fields(res) if error_fields is not None else None)
            continue
        if keep is None or keep(res.value):
            for rec in records(res) if records is not None else [res.to_dict()]:
                sink.write(rec)
        if progress is not None:
            progress.update(audio_seconds=res.seconds)
        yield res
