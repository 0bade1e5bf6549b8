"""Exit codes and the mapping from exceptions to them, shared by every subcommand.

0: all records done; 1: runtime error (or ``--on-error fail`` hit a bad record);
2: usage error; 3: finished, some records failed; 75: interrupted, resumable (training).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Any, Callable

import typer

from clsp.errors import ClspError, ConfigError, ModelNotFoundError
from clsp_cli.console import error
from clsp_cli.output_files import (OUTPUT_PARAMS, RESERVED_PARAMS, check_run_files, release_reserved, release_unpublished,
                                   reserve_outputs)

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_PARTIAL, EXIT_TEMPFAIL = 0, 1, 2, 3, 75


class FailFast(Exception):
    """Raised by ``--on-error fail`` at the first failed record."""


class Terminated(BaseException):
    """SIGTERM (``timeout``, ``kill``, SLURM at the end of a job) stopped the command: unwound
    like Ctrl-C, so its outputs are cleaned up as for any stop (exit 143)."""


RUN_STATE = {"published": False, "process": False}  # records published (``publish``); the clsp process itself


def _raise_terminated(signum, frame) -> None:
    if RUN_STATE["published"]:  # the run's records are out: it ends in moments, complete (exit 0 or 3)
        return
    raise Terminated()


def _catch_sigterm():
    """Turn SIGTERM into ``Terminated`` while a command runs (the main thread only; ``clsp train``
    puts its own checkpointing handler in place while it trains). Returns the handler to put
    back, or None."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (an embedding caller's thread)
        return None


def _quiet_broken_pipe(code: int = EXIT_OK) -> None:
    """The reader closed the pipe (``| head``): end without a traceback, with ``code``."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    os._exit(code)


def _stdout_closed(output: str = "stdout") -> None:
    """The reader of stdout (or of the FIFO ``output`` the records go to) closed it before the
    end: quietly exit 0 (``| head`` took what it wanted), unless output files of the run
    (``--npy``, ``--report``, ``--plot``) were left unwritten: then they are removed with their
    locks and the run says so, exit 1."""
    from clsp_cli.output_files import abandon_outputs

    left = abandon_outputs()
    if left:
        where = "stdout was closed" if output == "stdout" else f"{output}: its reader closed that pipe"
        fix = "a file (-o)" if output == "stdout" else "a regular file"
        error(f"{where} before the run ended, so {', '.join(left)} "
              f"{'was' if len(left) == 1 else 'were'} not written; write the records to {fix} "
              "to keep every output")
        _quiet_broken_pipe(EXIT_RUNTIME)
    _quiet_broken_pipe()


WAIT_FOREVER_OK = ("lock_timeout",)  # float options where inf means "no limit"


def check_numbers(params: dict[str, Any]) -> None:
    """``ConfigError`` (exit 2) for a float option given as ``nan`` (or ``inf``, except where
    it means no limit): such a value compares false with every bound and would pass checks."""
    import math

    for name, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            if name in WAIT_FOREVER_OK and value == math.inf:
                continue
            raise ConfigError(f"--{name.replace('_', '-')}: {value} is not a finite number")


# the parameters that name a file or folder: given as an empty string, each would be read as the
# working directory (pathlib), skipped as not given, or fail at the end with the OS's words
PATH_PARAMS = ("input", "inputs", "source", "destination", "index", "run_dir", "output", "output_dir", "npy", "report",
               "plot", "html", "errors", "ids", "queries", "speech", "captions", "speech_npy", "captions_npy",
               "config", "bins", "shards", "audio_root", "audio")


# parameters whose command names an empty value with what it could have been (similarity's
# sides: an audio file or a caption)
OWN_EMPTY_CHECK = ("a", "b")


def _flag_of(fn: Callable[..., Any], name: str) -> str:
    """How the command line writes parameter ``name`` of command ``fn``: its longest option
    name (``--output``), or its metavar (``INPUT``) for an argument."""
    import typing

    try:
        annotation = typing.get_type_hints(fn, include_extras=True)[name]
        meta = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ()
    except Exception:  # noqa: BLE001 (a name the hints cannot resolve: the plain name below)
        meta = ()
    for info in meta:
        # in Annotated form typer.Option("--output", "-o") holds its first name as the default
        names = (getattr(info, "default", None), *(getattr(info, "param_decls", None) or ()))
        decls = [d for d in names if isinstance(d, str) and d.startswith("--")]
        if decls:
            return max(decls, key=len)
        if getattr(info, "metavar", None):
            return str(info.metavar)
    return name.upper()


def check_paths_given(fn: Callable[..., Any], params: dict[str, Any]) -> None:
    """``ConfigError`` (exit 2), before any work, for a text parameter given as an empty (or
    blank) string: ``-o ''``, ``--model "$MODEL"`` with the variable unset. Left as it is, a file
    or folder (``PATH_PARAMS``) would be read as the working directory and any other value
    (a model, a key, ``--resume``) taken as not given, so the run would quietly do something else."""
    for name, value in params.items():
        if name in OWN_EMPTY_CHECK:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if not any(isinstance(v, str) and not v.strip() for v in values):
            continue
        what = "a file or folder name" if name in PATH_PARAMS else "a value"
        raise ConfigError(f"{_flag_of(fn, name)} is empty: give {what} (is the variable that should hold it unset?)")


def command(fn: Callable[..., Any] | None = None, *, outputs: tuple[str, ...] = OUTPUT_PARAMS,
            resumable: bool = False, records: bool = True):
    """Wrap a command body: refuse outputs that would overwrite each other or the run's own
    inputs (``check_run_files``; ``outputs``: the parameters that name output files), lock
    every one of them (``reserve_outputs``: a second run onto one stops at once), then
    map exceptions to messages and exit codes. Used as ``@command`` or ``@command(outputs=...)``.
    A ``resumable`` command (``--resume``) keeps the partial outputs of a run that failed or was
    stopped; any other removes them with their lock files. ``records``: ``--output`` gets JSON
    Lines (a folder or a figure otherwise), so a compressed name for it is refused at once."""
    if fn is None:
        return functools.partial(command, outputs=outputs, resumable=resumable, records=records)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from clsp import runfiles

        runfiles.begin()
        from clsp_cli.output import note_input_count

        note_input_count(None)  # a new run: no input counted yet
        RUN_STATE["published"] = False
        previous = _catch_sigterm()
        try:
            check_numbers(kwargs)
            check_paths_given(fn, kwargs)
            check_run_files(kwargs, outputs, records)
            # every output is locked from the start; a resumable command (embed) locks its own, whose
            # names it fills in first ('{shard}')
            reserve_outputs(kwargs, RESERVED_PARAMS if resumable else tuple(dict.fromkeys((*outputs, *RESERVED_PARAMS))))
            code = fn(*args, **kwargs)
        except BrokenPipeError as exc:
            _stdout_closed(getattr(exc, "output", "stdout"))
        except FailFast as exc:
            error(str(exc))
            raise typer.Exit(EXIT_RUNTIME) from None
        except (ConfigError, ModelNotFoundError) as exc:
            error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except ClspError as exc:
            error(str(exc))
            raise typer.Exit(EXIT_RUNTIME) from None
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except Terminated:
            error("terminated (SIGTERM)")
            raise typer.Exit(143) from None
        except OSError as exc:  # the system refused a read or write clsp did not name (a full disk, a quota,
            # permissions, a read-only mount): one line naming the file, not a traceback
            where = f"{exc.filename}: " if exc.filename else ""
            error(f"{where}{exc.strerror or exc}")
            raise typer.Exit(EXIT_RUNTIME) from None
        finally:
            # a published run keeps ignoring SIGTERM to its exit in the clsp process (the default action
            # would end a complete run with 143); called in-process, the caller's handler comes back
            if previous is not None and not (RUN_STATE["published"] and RUN_STATE["process"]):
                signal.signal(signal.SIGTERM, previous)
            release_unpublished(discard=not resumable)  # only a resumable command's partial output is kept
            release_reserved()
            runfiles.end()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        raise typer.Exit(code or EXIT_OK)

    return wrapper
