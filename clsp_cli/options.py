"""Option types shared by subcommands, so every command spells them the same way."""

from __future__ import annotations

from enum import Enum
from types import SimpleNamespace
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand


class OnError(str, Enum):
    skip = "skip"
    fail = "fail"


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Built-in name ('default', 'tiny-random'), checkpoint directory, authors' .pt file, or hub id.")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="Output JSONL file; '-' is stdout. A regular file appears atomically (one writer at a time); a symlink is followed; a device or FIFO is written through.")]
OnErrorOpt = Annotated[OnError, typer.Option("--on-error", help="skip: write an error record and go on; fail: stop at the first bad record.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16.")]
NBootOpt = Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the 95% confidence intervals (0: none).")]
ReportOpt = Annotated[Optional[str], typer.Option("--report", help="Write the evaluation summary to this JSON file instead of a final summary record.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, logs or summary tables on stderr (warnings and errors still show).")]


def parse_shard(shard: str | None):
    """``--shard`` value -> ``clsp.shards.Shard`` (``"I/N"`` or ``"auto"``), or None without one."""
    from clsp.shards import resolve_shard

    return resolve_shard(shard)


InputsArg = Annotated[Optional[list[str]], typer.Argument(
    help="Inputs: JSONL records, bare path lists, Lhotse cuts (gzip/zstd/xz/bzip2 allowed), audio files, folders "
         "(searched recursively) or globs; '-' (the default) is stdin.", show_default=False)]
AudioRootOpt = Annotated[Optional[str], typer.Option(
    "--audio-root", help="Resolve relative audio paths in manifests, Lhotse cut sources included, against "
                         "DIR (default: the manifest's folder; the working directory for stdin and for cuts).")]


class Options(SimpleNamespace):
    """A command's parsed options, built once from its parameters: ``Options.of(locals())``.

    Enum choices become their values (``OnError.skip`` -> ``"skip"``), so the command body
    reads plain strings and the option list is written only in the Typer signature.
    """

    @classmethod
    def of(cls, params: dict) -> "Options":
        return cls(**{k: v.value if isinstance(v, Enum) else v for k, v in params.items()})


class OptionOrderCommand(TyperCommand):
    """A command that also keeps the order in which its options stood on the command line
    (one name per occurrence) in ``ctx.meta[OPTION_ORDER]``: repeatable options of two kinds
    (``--text`` / ``--audio``) are answered in the order given. Read with :func:`option_order`
    from the command's ``typer.Context``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        ctx.meta[OPTION_ORDER] = []
        if args:
            try:
                _, _, order = self.make_parser(ctx).parse_args(args=list(args))
                ctx.meta[OPTION_ORDER] = [p.name for p in order]
            except Exception:  # noqa: BLE001 - the parse below says what is wrong
                pass
        return super().parse_args(ctx, args)


OPTION_ORDER = "clsp.option_order"


def option_order(ctx: typer.Context | None, names: tuple[str, ...]) -> list[str] | None:
    """The occurrences of the options ``names`` on ``ctx``'s command line, in order (None
    without a context, or for a command that is no :class:`OptionOrderCommand`)."""
    order = ctx.meta.get(OPTION_ORDER) if ctx is not None else None
    return None if order is None else [n for n in order if n in names]
