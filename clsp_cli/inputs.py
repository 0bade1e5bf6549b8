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


class MissingMatrix:
    """Counts records that hold 'row' (a row of the matrix ``clsp embed --npy`` wrote) while no
    matrix was given, so that a forgotten ``--npy`` is one warning, not one line per record."""

    def __init__(self, source: object):
        self.source, self.ids = source, []

    def check(self, item: Item, matrix: object) -> bool:
        """True (and counted) when ``item`` failed only for want of the matrix."""
        rec = item.record or {}
        if matrix is None and "row" in rec and "embedding" not in rec:
            self.ids.append(item.id)
            return True
        return False

    def warn(self) -> None:
        from clsp_cli.console import warn

        if self.ids:
            warn(f"{len(self.ids)} records of {self.source} (first {self.ids[0]!r}) hold 'row', a row of the matrix "
                 "'clsp embed --npy' wrote beside them: give that matrix with --npy")
