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
    from clsp.inputs import check_audio_root, iter_source_items, plan_sources
    from clsp.streams import TruncatedInputError

    sources = plan_sources(list(args or ["-"]), modality)
    check_audio_root(audio_root)  # here, not at the first item: before a model is loaded

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

    def __enter__(self) -> "MissingMatrix":
        return self

    def __exit__(self, *exc) -> None:
        self.warn()  # also when reading stopped with an error (e.g. nothing left to index)

    def check(self, item: Item, matrix: object) -> bool:
        """True (and counted) when ``item`` failed only for want of the matrix."""
        rec = item.record or {}
        if matrix is None and "row" in rec and "embedding" not in rec:
            self.ids.append(item.id)
            return True
        return False

    def note(self, what: object, reason: object) -> bool:
        """True (and counted) when a skipped record failed only for want of the matrix."""
        from clsp.index.records import MatrixNotGivenError

        if isinstance(reason, MatrixNotGivenError):
            self.ids.append(what)
            return True
        return False

    def watch(self, results, matrix: object):
        """Pass ``results`` (``clsp.results.Result`` s) through, checking each failed one."""
        for res in results:
            if res.error is not None:
                self.check(res.item, matrix)
            yield res

    def warn(self) -> None:
        from clsp_cli.console import warn

        if self.ids:
            warn(f"{len(self.ids)} records of {self.source} (first {self.ids[0]!r}) hold 'row', a row of the matrix "
                 "'clsp embed --npy' wrote beside them: give that matrix with --npy")


SKIPS_LISTED = 10  # skipped records warned about one by one, per run


def skip_notice(on_error: str = "skip", progress=None, no_matrix: MissingMatrix | None = None):
    """An ``on_skip(what, reason)`` callback for the library: a warning on stderr, counted as
    a failure in ``progress`` (a ``Throughput``), or with ``--on-error fail`` a stop (``FailFast``).
    With ``no_matrix``, records that failed for want of ``--npy`` are counted there instead of
    warned one by one (``no_matrix.warn()`` says it once). The first ``SKIPS_LISTED`` skipped
    records are warned about one by one, then one line says the rest are only counted (a wrong
    ``--npy`` fails every record the same way: thousands of lines would bury the first).
    Its ``counted`` attribute is the same callback for a record ``progress`` already counted as
    read, skipped afterwards: counted as failed, not read twice."""
    from clsp_cli.console import warn
    from clsp_cli.errors import FailFast

    listed = [0]

    def on_skip(what, reason, counted: bool = False) -> None:
        if no_matrix is None or not no_matrix.note(what, reason):
            listed[0] += 1
            if listed[0] <= SKIPS_LISTED:
                warn(f"skipped {what}: {reason}")
            elif listed[0] == SKIPS_LISTED + 1:
                warn(f"skipped {what} too, and perhaps more: records skipped after the first {SKIPS_LISTED} are "
                     "not listed, only counted in the summary")
        if on_error == "fail":
            raise FailFast(f"record {what!r} failed: {reason}")
        if progress is not None:
            progress.update(0 if counted else 1, failed=1)

    # for a record already counted as read, skipped later (a caption that matches no clip)
    on_skip.counted = lambda what, reason: on_skip(what, reason, counted=True)
    return on_skip
