"""Input arguments of record-reading commands: planned up front, read with stderr notices."""

from __future__ import annotations

from typing import Iterator, Sequence

from clsp.records import Item
from clsp_cli.console import error


def input_items(args: Sequence[str] | None, modality: str = "audio", audio_root: str | None = None) -> Iterator[Item]:
    """Items of all input arguments (``clsp.inputs``), in order.

    Unusable arguments raise before the first item (``ConfigError``: exit 2). A cut or
    corrupt compressed input is also reported on stderr, since its error record alone is
    easy to miss.
    """
    from clsp.inputs import iter_source_items, plan_sources
    from clsp.streams import TruncatedInputError

    sources = plan_sources(list(args or ["-"]), modality)

    def items() -> Iterator[Item]:
        for item in iter_source_items(sources, modality, audio_root):
            if isinstance(item.error, TruncatedInputError):
                error(str(item.error))
            yield item

    return items()


def skip_notice(on_error: str = "skip", progress=None):
    """An ``on_skip(what, reason)`` callback for the library: a warning on stderr, counted as
    a failure in ``progress`` (a ``Throughput``), or with ``--on-error fail`` a stop (``FailFast``)."""
    from clsp_cli.console import warn
    from clsp_cli.errors import FailFast

    def on_skip(what, reason) -> None:
        warn(f"skipped {what}: {reason}")
        if on_error == "fail":
            raise FailFast(f"record {what!r} failed: {reason}")
        if progress is not None:
            progress.update(failed=1)

    return on_skip
