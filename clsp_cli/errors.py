"""Exit codes and the mapping from exceptions to them, shared by every subcommand.

0: all records done; 1: runtime error (or ``--on-error fail`` hit a bad record);
2: usage error; 3: finished, some records failed; 75: interrupted, resumable (training).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import typer

from clsp.errors import ClspError, ConfigError, ModelNotFoundError
from clsp_cli.console import error
from clsp_cli.output_files import release_unpublished

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_PARTIAL, EXIT_TEMPFAIL = 0, 1, 2, 3, 75


class FailFast(Exception):
    """Raised by ``--on-error fail`` at the first failed record."""


def _quiet_broken_pipe() -> None:
    """The reader closed the pipe (``| head``): end quietly without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    os._exit(EXIT_OK)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command body: map exceptions to messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            code = fn(*args, **kwargs)
        except BrokenPipeError:
            _quiet_broken_pipe()
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
        finally:
            release_unpublished()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        raise typer.Exit(code or EXIT_OK)

    return wrapper
