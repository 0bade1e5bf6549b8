"""The ``clsp`` Typer app: one subcommand per module of ``clsp_cli.commands``.

The command modules live in the top-level ``commands/`` folder of the source tree
(``clsp_cli/commands`` links to it) and are installed as ``clsp_cli.commands``. They import
only typer and the standard library at top level, so that ``clsp --help`` answers without
loading torch or transformers. Help is click's plain text (``rich_markup_mode=None``):
typer's rich help would load rich, its markdown parser and pygments, which took most of the
time of ``clsp --help``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="clsp",
    help="Contrastive language-speech pretraining: embed, search, classify and compare speech by speaking style.\n\n"
    "Records are JSON Lines on stdin/stdout ('-'); logs and progress go to stderr. "
    "Exit codes: 0 done, 1 runtime error, 2 usage error, 3 finished with some records failed, "
    "75 training interrupted and resumable (run again with --resume); a command stopped by a signal exits "
    "128 + its number (130 Ctrl-C, 143 SIGTERM; clsp embed -o FILE then continues with --resume).\n\n"
    "Files given with -o/--report/--npy/--plot/--html appear atomically (FILE.partial, then renamed), one writer "
    "at a time (FILE.lock); devices, FIFOs and /dev/stdout are written through; symlinks are followed.",
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        from clsp import __version__

        typer.echo(f"clsp {__version__}")
        raise typer.Exit()


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch's operators (and OpenMP/MKL in libraries loaded
    later); ``None`` leaves their defaults (one per core, or ``OMP_NUM_THREADS``)."""
    if threads is None:
        return
    import os
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # already loaded: tell it directly
        sys.modules["torch"].set_num_threads(threads)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    threads: int = typer.Option(None, "--threads", min=1, envvar="CLSP_THREADS",
                                help="CPU threads for the models (default: one per core). On a machine busy with "
                                     "other jobs, fewer threads can be much faster."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, logs or summary tables on stderr, for "
                                                             "any command (as the command's own -q)."),
) -> None:
    """Contrastive language-speech pretraining: embed, search, classify and compare speech by speaking style."""
    from clsp_cli.console import set_quiet_all

    set_quiet_all(quiet)
    set_threads(threads)


# name -> (module, attribute); every one must be importable.
COMMANDS = {
    "embed": ("clsp_cli.commands.embed", "main"),
    "merge": ("clsp_cli.commands.merge", "main"),
    "caption": ("clsp_cli.commands.caption", "main"),
    "train": ("clsp_cli.commands.train", "main"),
    "search": ("clsp_cli.commands.search", "main"),
    "classify": ("clsp_cli.commands.classify", "main"),
    "similarity": ("clsp_cli.commands.similarity", "main"),
    "convert": ("clsp_cli.commands.convert", "main"),
    "plot": ("clsp_cli.commands.plot", "main"),
}


class MissingCommandError(ImportError):
    """A subcommand listed in :data:`COMMANDS` whose module or entry point is not installed."""


def register(target: typer.Typer, commands: dict[str, tuple[str, str]]) -> None:
    """Add each ``name -> (module, attribute)`` of ``commands`` to ``target`` as a subcommand.

    The attribute is a ``typer.Typer`` (added as a group) or a function (added as a command).
    Raises ``MissingCommandError`` naming the command and the module when a module or its
    attribute is missing; an import error raised inside a present module propagates as is.
    """
    for name, (module, attr) in commands.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module or module.startswith(f"{exc.name}."):
                raise MissingCommandError(
                    f"clsp: command {name!r} needs module {module!r}, which this installation lacks; "
                    f"reinstall clsp-speech") from exc
            raise
        obj = getattr(mod, attr, None)
        if obj is None:
            raise MissingCommandError(f"clsp: command {name!r}: module {module!r} has no {attr!r}")
        if isinstance(obj, typer.Typer):
            obj.rich_markup_mode = None  # plain help for its subcommands too
            target.add_typer(obj, name=name)
        else:
            target.command(name=name, help=obj.__doc__, no_args_is_help=False)(obj)


register(app, COMMANDS)


def open_closed_standard_streams() -> None:
    """Give a closed stdin, stdout or stderr (a cron job, a daemon, ``clsp ... <&- >&- 2>&-``)
    the null device, as the system would: a run that reads and writes only files then needs
    none of them (Python leaves ``sys.stdin`` etc. None, and the file clsp opens next would take
    the free descriptor, where a decoder subprocess writing to its stdout would land)."""
    import os
    import sys

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))


def main() -> None:
    from clsp_cli.errors import RUN_STATE

    open_closed_standard_streams()
    RUN_STATE["process"] = True  # the clsp process itself (not a caller's, in-process)
    app()


if __name__ == "__main__":
    main()
