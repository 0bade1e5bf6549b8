"""The ``clsp`` Typer app: one subcommand per module in ``commands/``.

Command modules import only typer and the standard library at top level, so that
``clsp --help`` answers without loading torch or transformers.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="clsp",
    help="Contrastive language-speech pretraining: embed, search, classify and compare speech by speaking style.\n\n"
    "Records are JSON Lines on stdin/stdout ('-'); logs and progress go to stderr. "
    "Exit codes: 0 done, 1 runtime error, 2 usage error, 3 finished with some records failed, "
    "75 interrupted and resumable (run again with --resume).\n\n"
    "Files given with -o/--report/--npy appear atomically (FILE.partial, then renamed), one writer "
    "at a time (FILE.lock); devices, FIFOs and /dev/stdout are written through; symlinks are followed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        from clsp import __version__

        typer.echo(f"clsp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Contrastive language-speech pretraining: embed, search, classify and compare speech by speaking style."""


class MissingCommandError(ImportError):
    """A subcommand listed in ``COMMANDS`` whose module cannot be found: a broken install."""


# name -> (module, attribute); every one must be importable.
COMMANDS = {
    "embed": ("commands.embed", "main"),
    "merge": ("commands.merge", "main"),
    "caption": ("commands.caption", "main"),
    "train": ("commands.train", "main"),
    "search": ("commands.search", "main"),
    "classify": ("commands.classify", "main"),
    "similarity": ("commands.similarity", "main"),
    "convert": ("commands.convert", "main"),
    "plot": ("commands.plot", "main"),
}


def _register(commands: dict[str, tuple[str, str]] = COMMANDS, target: typer.Typer = app) -> None:
    """Add each listed subcommand to ``target``; ``MissingCommandError`` names a missing module."""
    for name, (module, attr) in commands.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise MissingCommandError(f"'clsp {name}' is listed but its module {module} is missing; "
                                      "reinstall clsp (pip install .)") from None
        obj = getattr(mod, attr, None)
        if obj is None:
            raise MissingCommandError(f"'clsp {name}': module {module} has no '{attr}'")
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=name)
        else:
            target.command(name=name, help=obj.__doc__, no_args_is_help=False)(obj)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
