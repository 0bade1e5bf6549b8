"""``clsp similarity``: speaking-style similarity of speech-speech or speech-caption pairs."""

from __future__ import annotations

import os

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import (AudioRootOpt, DeviceOpt, ModelOpt, NBootOpt, OnError, OnErrorOpt, Options, OutputOpt,
                              QuietOpt, ReportOpt)


@command
def main(
    a: Annotated[Optional[str], typer.Argument(help="An audio file or a caption; alone: a pairs JSONL file ('-' is stdin).", show_default=False)] = None,
    b: Annotated[Optional[str], typer.Argument(help="An audio file or a caption to compare with A.", show_default=False)] = None,
    model: ModelOpt = "default",
    human_key: Annotated[Optional[str], typer.Option("--human-key", help="Field with a human rating: report Pearson, Spearman and Kendall correlations with 95% CIs.")] = None,
    group_key: Annotated[Optional[str], typer.Option("--group-key", help="With --human-key: also report correlations per value of this field (e.g. category).")] = None,
    below: Annotated[Optional[float], typer.Option("--below", help="Write only pairs scoring below X (a --human-key summary still covers every scored pair).")] = None,
    above: Annotated[Optional[float], typer.Option("--above", help="Write only pairs scoring above X (a --human-key summary still covers every scored pair).")] = None,
    report: ReportOpt = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="With --human-key: write a score-vs-rating scatter (.png or .svg).")] = None,
    output: OutputOpt = "-",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Pairs per batch.")] = 16,
    n_boot: NBootOpt = 1000,
    device: DeviceOpt = "auto",
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Score how alike two clips sound, or how well a caption describes a clip.

    The score is the cosine of the two CLSP embeddings, in [-1, 1] (higher: closer in
    speaking style). Each side is an audio path or free text; pairs files hold
    {"a": ..., "b": ...} records (or a_audio / a_text / b_audio / b_text fields).

    Examples: clsp similarity a.wav b.wav;  clsp similarity a.wav "a whispering young woman";
    clsp similarity pairs.jsonl --human-key rating
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    from clsp.errors import ConfigError
    from clsp_cli.console import Throughput, is_quiet, log, set_quiet
    from clsp_cli.output import RecordSink, write_results

    set_quiet(o.quiet)
    if o.batch_size < 1 or o.n_boot < 0:
        raise ConfigError("--batch-size must be >= 1 and --n-boot >= 0")
    if o.group_key and not o.human_key:
        raise ConfigError("--group-key needs --human-key")
    from clsp_cli.figures import check_outputs, similarity_plot

    check_outputs(o.plot, None, o.human_key, "--human-key", o.report)
    import math

    if any(v is not None and not math.isfinite(v) for v in (o.below, o.above)):
        raise ConfigError("--below and --above must be finite numbers")
    pairs, base = _pairs(o)

    from pathlib import Path

    from clsp.models import load_model
    from clsp.similarity import AUDIO_EXTENSIONS, audio_only, compare, file_with_extension, keep_score, looks_like_audio
    from clsp.similarity_eval import RatingTally

    net = load_model(o.model, with_text=not (isinstance(pairs, list) and audio_only(pairs, base)))
    if o.b is not None:  # two sides on the command line: an audio path that names no file is a usage error
        from clsp.records import home_path
        from clsp.sniff import url_problem

        bad = []
        for side in (o.a, o.b):
            path = home_path(side)
            if not side.strip():
                bad.append(f"{side!r}: empty: give an audio file or a caption")
            elif not os.path.lexists(path) and (url := url_problem(side)) is not None:
                bad.append(f"{side}: {url}")
            elif os.path.isdir(path):  # os.path: a name too long for the filesystem is no file, not a crash
                bad.append(f"{side}: a folder, not an audio file")
            elif os.path.exists(path) and not os.path.isfile(path):  # a device, FIFO or socket: never read
                from clsp.sniff import node_problem

                bad.append(f"{side}: {node_problem(path) or 'not a regular file'}")
            elif not os.path.exists(path) and (side.lower().endswith(AUDIO_EXTENSIONS) or looks_like_audio(side)):
                bad.append(f"{str(side)[:200]}: no such file")
            elif not os.path.exists(path) and (named := file_with_extension(side, Path.cwd())) is not None:
                bad.append(f"{side}: no such file, but {named} exists (give the file name; a one-word caption "
                           "that is also a file name is scored from a pairs file with {\"text\": ...})")
        if bad:
            raise ConfigError("; ".join(bad))
    tally = RatingTally(o.human_key, o.group_key) if o.human_key is not None else None
    sink = RecordSink(o.output, on_error=o.on_error)
    kept = scored = 0
    results = compare(net, pairs, batch_size=o.batch_size, device=o.device, base_dir=base)
    if tally is not None:  # held back until a pair is rated (and grouped): a mistyped key writes no record
        from clsp.similarity_eval import numeric_rating
        from clsp_cli.output import held_until

        def noted(results):  # a pair that failed still shows which keys the pairs have
            for res in results:
                if not res.ok:
                    tally.note_failed(res.fields)
                yield res

        def none_rated(held):
            first = RatingTally(o.human_key, o.group_key, failed_keyed=tally.failed_keyed)
            for res in held:
                if res.ok:
                    first.add(res.value)
            first.check_key()

        def rated(res):
            return (res.ok and numeric_rating(res.value.field(o.human_key)) is not None
                    and (o.group_key is None or res.value.field(o.group_key) is not None))

        results = held_until(noted(results), rated, none_rated)
    with Throughput("similarity", "pairs") as progress:
        for res in write_results(sink, results, progress, keep=lambda p: keep_score(p.score, o.below, o.above)):
            scored += 1
            if tally is not None:
                tally.add(res.value)
            if keep_score(res.value.score, o.below, o.above):
                kept += 1
                if o.b is not None:
                    log(f"{res.value.pair} similarity {res.value.score:.4f} "
                        "(cosine in [-1, 1]; higher = closer in speaking style)")
    if o.below is not None or o.above is not None:
        log(f"similarity: kept {kept} pairs, dropped {scored - kept} outside the score range")
    if tally is not None:
        tally.check_key()
    if tally is not None and progress.count:  # an empty input writes nothing, not a summary of nothing
        summary = tally.summary(net.provenance(), o.n_boot)
        summary["failed"] = progress.failed  # pairs that failed (error records): neither rated nor unrated
        if tally.unrated:
            log(f"similarity: {tally.unrated} scored pairs have no numeric '{o.human_key}' and are not in the correlations")
        if not is_quiet():  # this command's -q, or clsp -q
            from clsp_cli.tables import correlation_table

            correlation_table(summary)
        sink.write_summary(summary, o.report)
    sink.commit()  # the records first: a figure that fails loses none of them
    if tally is not None and progress.count:
        similarity_plot(o.plot, tally.ratings, summary)
    return sink.exit_code


def _pairs(o: Options):
    """(pairs, base folder): the two sides given, or the items of a pairs JSONL file."""
    from pathlib import Path

    from clsp.errors import ConfigError
    from clsp.similarity import AUDIO_EXTENSIONS

    if o.b is not None:
        return [{"id": "pair", "a": o.a, "b": o.b}], Path.cwd()
    from clsp.records import base_dir_of
    from clsp_cli.inputs import input_items

    source = o.a or "-"
    if source.lower().endswith(AUDIO_EXTENSIONS):
        raise ConfigError(f"{source} is audio: give two sides (clsp similarity A B) or a pairs JSONL file")
    if source != "-":
        from clsp.inputs import refuse_audio_file

        refuse_audio_file(source, "pairs")
    items = input_items([source], "pairs", o.audio_root)
    if o.audio_root is not None:  # a side that is a Lhotse cut reads its relative sources there, as embed does
        from clsp.similarity import cut_sides_rooted

        items = cut_sides_rooted(items, base_dir_of(source, o.audio_root))
    return items, base_dir_of(source, o.audio_root)
