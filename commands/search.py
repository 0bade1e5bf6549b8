"""``clsp search``: build FAISS indexes of embeddings, query them, evaluate retrieval."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import (DeviceOpt, NBootOpt, OnError, OnErrorOpt, OptionOrderCommand, Options, OutputOpt, QuietOpt,
                              option_order)

main = typer.Typer(
    name="search",
    help="Index speech or caption embeddings and find the nearest ones by text, audio or vector.\n\n"
    "Example: clsp embed clips.jsonl | clsp search build - -o clips.idx; "
    "clsp search query clips.idx --text 'a calm, low male voice' -k 5",
    no_args_is_help=True,
)

IndexArg = Annotated[str, typer.Argument(help="Index directory (made by 'clsp search build').")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="Search threads (default: SLURM_CPUS_PER_TASK, else all CPUs).")]
NpyOpt = Annotated[Optional[str], typer.Option("--npy", help="Matrix the records' 'row' fields point into (from 'clsp embed --npy').")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model that embeds --text/--audio queries (default: the index's model).")]
KOpt = Annotated[int, typer.Option("--k", "-k", help="Hits per query (fewer when the index is smaller).")]
NprobeOpt = Annotated[Optional[int], typer.Option("--nprobe", help="IVF lists visited per query (more: slower, better recall).")]
EfOpt = Annotated[Optional[int], typer.Option("--ef", help="HNSW search breadth (more: slower, better recall).")]
QueryFieldOpt = Annotated[str, typer.Option("--query-field", help="What a query record is searched with: auto (its "
                                             "embedding, else its text or audio; a record with both text and audio "
                                             "is an error asking), embedding, text or audio. "
                                             "--text and --audio queries are searched as given.")]
RerankOpt = Annotated[Optional[int], typer.Option("--rerank", help="Fetch k*N candidates and re-score them exactly (0: off; default: on for compressed indexes).")]


@main.command("build")
@command(records=False)
def build(
    input: Annotated[str, typer.Argument(help="'clsp embed' JSONL (with 'embedding', or 'row' + --npy), or a .npy matrix; '-' is stdin.")] = "-",
    index: Annotated[str, typer.Option("--output", "-o", help="Index directory to write (replaced atomically).")] = "clsp.idx",
    npy: NpyOpt = None,
    ids: Annotated[Optional[str], typer.Option("--ids", help="With a .npy INPUT: JSONL of metadata records in row order.")] = None,
    factory: Annotated[Optional[str], typer.Option("--factory", help="FAISS index_factory string: Flat, IVF4096,Flat, IVF4096,PQ64, HNSW32... (default: by size and --max-memory).")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="cosine (normalized inner product), ip or l2 (default: cosine; with --add, the index's).")] = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Memory budget for the index, e.g. 4G; picks compressed codes when full vectors do not fit.")] = None,
    add: Annotated[bool, typer.Option("--add", help="Append to the index at --output instead of replacing it.")] = False,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", help="With --add: seconds to wait while another process writes the same index (then exit 1); "
                                                         "a build without --add stops at once.")] = 600.0,
    threads: ThreadsOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Build (or --add to) an index from embeddings; prints one summary record.

    One writer at a time: an --add run that finds another writing the index waits for it
    (--lock-timeout), so parallel --add runs all land in the index; a build without --add
    replaces the index and stops at once (exit 1, naming the PID) while another run writes it.
    An input inside the index folder is refused (publishing removes the old data there).
    """
    return _build(Options.of(locals()))


@main.command("query", cls=OptionOrderCommand)
@command
def query(
    ctx: typer.Context,
    index: IndexArg,
    input: Annotated[Optional[str], typer.Argument(help="Queries: JSONL with 'embedding' (or 'row' + --npy), 'text' or 'audio' fields, or a .npy matrix; '-' is stdin. Default: stdin unless --text/--audio are given.", show_default=False)] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A caption to search with (repeatable; --text and --audio queries are answered in command-line order).")] = None,
    audio: Annotated[Optional[list[str]], typer.Option("--audio", "-a", help="An audio file to search with (repeatable).")] = None,
    k: KOpt = 10,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Keep hits scoring at least this (cosine/ip) or at most this (l2), as written (6 decimals).")] = None,
    nprobe: NprobeOpt = None,
    ef: EfOpt = None,
    rerank: RerankOpt = None,
    npy: NpyOpt = None,
    query_field: QueryFieldOpt = "auto",
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Queries per batch.")] = 256,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    output: OutputOpt = "-",
    html: Annotated[Optional[str], typer.Option("--html", help="Also write a listening page: each query and an audio player per hit.")] = None,
    html_embed: Annotated[bool, typer.Option("--html-embed", help="Embed the audio in the --html page (base64) so it can be shared alone.")] = False,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Top-k hits per query: one {"id", "hits": [{"id", "score", ...record fields}]} record each (record fields
    named score or metadata are under "metadata")."""
    return _query(Options.of(locals()))


@main.command("eval")
@command
def evaluate(
    index: Annotated[Optional[str], typer.Argument(help="Index directory; queries come from --queries.", show_default=False)] = None,
    queries: Annotated[Optional[str], typer.Option("--queries", help="Query JSONL (vectors, text or audio) with the relevant ids in --relevant-key; default: stdin (-).")] = None,
    relevant_key: Annotated[str, typer.Option("--relevant-key", help="Query field holding the relevant id (or a list of them).")] = "relevant",
    speech: Annotated[Optional[str], typer.Option("--speech", help="Pool mode: speech embeddings JSONL (both directions, no index).")] = None,
    captions: Annotated[Optional[str], typer.Option("--captions", help="Pool mode: caption embeddings JSONL; each names its clip in --match-key.")] = None,
    match_key: Annotated[str, typer.Option("--match-key", help="Pool mode: caption field with the id of the clip it describes.")] = "audio_id",
    group_key: Annotated[Optional[str], typer.Option("--group-key", help="Also report metrics per value of this field (e.g. caption_type: global / fine).")] = None,
    n_boot: NBootOpt = 1000,
    nprobe: NprobeOpt = None,
    ef: EfOpt = None,
    rerank: RerankOpt = None,
    npy: NpyOpt = None,
    speech_npy: Annotated[Optional[str], typer.Option("--speech-npy", help="Pool mode: the matrix the --speech rows point into (default: --npy).")] = None,
    captions_npy: Annotated[Optional[str], typer.Option("--captions-npy", help="Pool mode: the matrix the --captions rows point into (default: --npy).")] = None,
    query_field: QueryFieldOpt = "auto",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model that embeds text or audio queries (index mode; default: the index's model).")] = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    output: OutputOpt = "-",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also write the R@k curves per direction or group (.png or .svg).")] = None,
    quiet: QuietOpt = False,
):
    """Retrieval metrics (R@1/5/10, mAP@10 with 95% CIs): queries against an index, or a speech-caption pool."""
    return _eval(Options.of(locals()))


def _build(o: Options) -> int:
    from clsp.errors import ConfigError
    from clsp.index.factory import parse_memory
    from clsp.index.records import index_embeddings
    from clsp_cli.console import Throughput, set_quiet, warn
    from clsp_cli.inputs import MissingMatrix, skip_notice
    from clsp_cli.output import RecordSink

    set_quiet(o.quiet)
    if o.lock_timeout < 0:
        raise ConfigError("--lock-timeout must be >= 0")
    from clsp.index.records import is_npy_name

    if o.ids is not None and not is_npy_name(o.input):
        raise ConfigError(f"--ids {o.ids}: names the records of a .npy INPUT's rows, but INPUT {o.input} is not a .npy "
                          "matrix (records that carry 'row' take their matrix with --npy MATRIX instead)")
    source, npy = (o.ids, o.input) if o.ids else (o.input, o.npy)
    _check_index_output(o.index, [source, npy, o.ids])
    _added_index_settings(o)
    with MissingMatrix(source) as no_matrix, Throughput("read embeddings", "records") as progress:
        summary = index_embeddings(o.index, source, npy=npy, add=o.add, metric=o.metric, ids=bool(o.ids),
                                   on_skip=skip_notice(o.on_error, progress, no_matrix), on_read=progress.update,
                                   factory=o.factory, max_memory=parse_memory(o.max_memory), threads=o.threads,
                                   lock_timeout=o.lock_timeout, on_wait=warn)
    sink = RecordSink("-")
    sink.write(summary)
    sink.commit()
    return 3 if summary["failed"] else 0


def _added_index_settings(o) -> None:
    """With ``--add`` to an existing index, before reading the input: refuse a ``--metric`` or
    ``--factory`` that differs from the index's, or a ``--max-memory`` (an index keeps the ones it
    was built with). The write checks again under the lock, against the index as it is then (a
    parallel --add may build the index in between)."""
    from pathlib import Path

    from clsp.index.folder import check_add_settings, index_exists
    from clsp.index.store import read_info

    if o.add and index_exists(o.index):
        check_add_settings(o.index, read_info(Path(o.index)), o.metric, o.factory, o.max_memory)


def _warn_unmeasured(metrics: dict) -> None:
    """One warning naming the metrics left null because the pool is too small to miss them."""
    from clsp_cli.console import warn

    nulls = [k for k, v in metrics.items() if v is None and not k.endswith(("_lo", "_hi"))
             and metrics.get(k[: k.index("_") + 1] + "count" if k.startswith(("s2t_", "t2s_")) else "count")]
    if nulls:
        warn(f"{', '.join(nulls)}: null, because some query has fewer than k candidates besides its relevant ones "
             "(so any ranking scores 1); evaluate on a larger pool to measure them")


def _check_index_output(index: str, inputs: list[str | None]) -> None:
    """A usage error (exit 2, before any work) when ``-o`` names something other than an index
    folder to write: an existing file (an input above all), a folder that is not a clsp index,
    or a place inside a training run (``training_run_part``)."""
    import os
    from pathlib import Path

    from clsp.errors import ConfigError, OutputError
    from clsp.index.store import check_replaceable
    from clsp_cli.output_files import training_run_part

    part = training_run_part(index)
    if part is not None:
        raise ConfigError(f"-o {index}: {part}; writing an index there could break --resume of that run; "
                          "give the index a path outside it")
    try:
        check_replaceable(Path(index))
    except OutputError as exc:
        same = any(i not in (None, "-") and os.path.exists(i) and os.path.samefile(i, index) for i in inputs)
        raise ConfigError(f"{exc}{' (it is an input of this command)' if same else ''}; -o names the index "
                          "folder to write, e.g. -o clips.idx") from None


def _query(o: Options) -> int:
    import math

    from clsp.errors import ConfigError
    from clsp.index.query import SearchSettings, search
    from clsp_cli.console import Throughput, set_quiet
    from clsp_cli.figures import check_outputs, search_page
    from clsp_cli.output import RecordSink, write_results

    set_quiet(o.quiet)
    if o.k < 1 or o.batch_size < 1:
        raise ConfigError("--k and --batch-size must be at least 1")
    if o.threshold is not None and not math.isfinite(o.threshold):
        raise ConfigError("--threshold must be a finite number")
    check_outputs(None, o.html)
    import os

    for audio in o.audio or []:  # an argument that names no file is a usage error, as everywhere
        if os.path.isdir(audio):  # os.path: a name too long for the filesystem is no file, not a crash
            raise ConfigError(f"--audio {audio}: is a folder; give an audio file (repeat --audio for several), "
                              "or embed the folder with clsp embed and query with the records")
        if not os.path.isfile(audio):
            from clsp.sniff import node_problem

            raise ConfigError(f"--audio {str(audio)[:200]}: {node_problem(audio) or 'no such file'}")
    settings = SearchSettings(o.k, o.threshold, o.nprobe, o.ef, o.rerank, o.threads, _query_field(o.query_field))
    run = search(o.index, o.input, texts=o.text or [], audios=o.audio or [], settings=settings, npy=o.npy,
                 model=o.model, device=o.device, batch_size=o.batch_size, order=option_order(o.ctx, ("text", "audio")))
    sink = RecordSink(o.output, on_error=o.on_error)
    page: list = []
    with Throughput("search", "queries") as progress:
        for res in write_results(sink, run, progress):
            if o.html:
                page.append((res.item.record, [h.to_dict() | {"score": h.score} for h in res.value.hits]))
    sink.commit()  # the hits first: a page that fails loses none of them
    if progress.count:  # no query: no page either, as no records (an earlier page stays as it was)
        search_page(o.html, page, run.base, o.html_embed)
    return sink.exit_code


def _query_field(value: str) -> str:
    from clsp.errors import ConfigError
    from clsp.index.query import QUERY_FIELDS

    if value not in QUERY_FIELDS:
        raise ConfigError(f"--query-field {value!r}: expected one of {', '.join(QUERY_FIELDS)}")
    return value


def _eval(o: Options) -> int:
    from clsp.errors import ConfigError
    from clsp.index.query import SearchSettings
    from clsp.retrieval_eval import evaluate_index, evaluate_pool
    from clsp_cli.console import Throughput, is_quiet, set_quiet
    from clsp_cli.figures import check_outputs, recall_plot
    from clsp_cli.inputs import MissingMatrix, skip_notice
    from clsp_cli.output import RecordSink

    set_quiet(o.quiet)
    if o.n_boot < 0:
        raise ConfigError("--n-boot must be >= 0")
    check_outputs(o.plot, None)
    if o.speech or o.captions:
        if not (o.speech and o.captions) or o.index or o.queries:
            raise ConfigError("pool mode needs both --speech and --captions (and no index)")
        if o.query_field != "auto":
            raise ConfigError("--query-field is for queries against an index (--queries), not pool mode")
        if o.speech == "-" and o.captions == "-":
            raise ConfigError("--speech and --captions cannot both read stdin: stdin holds one stream; "
                              "give one of them as a file")
        with (MissingMatrix(o.speech) as no_speech, MissingMatrix(o.captions) as no_captions,
              Throughput("read embeddings", "records") as progress):
            ev = evaluate_pool(o.speech, o.captions, o.match_key, o.group_key, o.n_boot, o.npy, bool(o.plot),
                               skip_notice(progress=progress, no_matrix=no_speech), progress.update, o.speech_npy,
                               o.captions_npy, skip_notice(progress=progress, no_matrix=no_captions))
    else:
        if not o.index:
            raise ConfigError("give an INDEX with --queries, or --speech and --captions")
        if o.speech_npy or o.captions_npy:
            raise ConfigError("--speech-npy and --captions-npy are for pool mode (--speech/--captions); use --npy")
        with MissingMatrix(o.queries or "-") as no_matrix:
            ev = evaluate_index(o.index, o.queries or "-", o.relevant_key, o.group_key, o.n_boot,
                                SearchSettings(10, None, o.nprobe, o.ef, o.rerank, o.threads, _query_field(o.query_field)),
                                o.npy, o.model, o.device, skip_notice(no_matrix=no_matrix))
    if ev.empty:  # as every command treats an input with no records: nothing written
        from clsp_cli.console import warn

        warn(f"{o.queries or '-' if o.index else o.speech + ' and ' + o.captions}: no records; nothing evaluated, "
             "nothing written")
        return 0
    if not is_quiet():  # this command's -q, or clsp -q
        from clsp_cli.tables import retrieval_table

        retrieval_table(ev.summary)
    _warn_unmeasured(ev.summary["metrics"])
    sink = RecordSink(o.output)
    sink.write(ev.summary)
    sink.commit()  # the summary first: a figure that fails does not lose it
    asked = (f"{ev.summary['queries']} queries" if "queries" in ev.summary
             else f"{ev.summary['speech']} speech and {ev.summary['captions']} caption queries")
    recall_plot(o.plot, ev.curves, f"{ev.summary['task']}: R@k ({asked})")
    return 3 if ev.failed else 0
