"""``clsp search``: build FAISS indexes of embeddings, query them, evaluate retrieval."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import DeviceOpt, NBootOpt, OnError, OnErrorOpt, OutputOpt, QuietOpt

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
RerankOpt = Annotated[Optional[int], typer.Option("--rerank", help="Fetch k*N candidates and re-score them exactly (0: off; default: on for compressed indexes).")]


@main.command("build")
@command
def build(
    input: Annotated[str, typer.Argument(help="'clsp embed' JSONL (with 'embedding', or 'row' + --npy), or a .npy matrix; '-' is stdin.")] = "-",
    index: Annotated[str, typer.Option("--output", "-o", help="Index directory to write (replaced atomically).")] = "clsp.idx",
    npy: NpyOpt = None,
    ids: Annotated[Optional[str], typer.Option("--ids", help="With a .npy INPUT: JSONL of metadata records in row order.")] = None,
    factory: Annotated[Optional[str], typer.Option("--factory", help="FAISS index_factory string: Flat, IVF4096,Flat, IVF4096,PQ64, HNSW32... (default: by size and --max-memory).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="cosine (normalized inner product), ip or l2.")] = "cosine",
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Memory budget for the index, e.g. 4G; picks compressed codes when full vectors do not fit.")] = None,
    add: Annotated[bool, typer.Option("--add", help="Append to the index at --output instead of replacing it.")] = False,
    lock_timeout: Annotated[float, typer.Option("--lock-timeout", help="Seconds to wait while another process writes the same index (then exit 1).")] = 600.0,
    threads: ThreadsOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Build (or --add to) an index from embeddings; prints one summary record.

    One writer at a time: a run that finds another writing the index waits for it
    (--lock-timeout), so parallel --add runs all land in the index.
    """
    return _build(input, index, npy, ids, factory, metric, max_memory, add, lock_timeout, threads, on_error.value,
                  quiet)


@main.command("query")
@command
def query(
    index: IndexArg,
    input: Annotated[Optional[str], typer.Argument(help="Queries: JSONL with 'embedding' (or 'row' + --npy), 'text' or 'audio' fields, or a .npy matrix; '-' is stdin. Default: stdin unless --text/--audio are given.", show_default=False)] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A caption to search with (repeatable).")] = None,
    audio: Annotated[Optional[list[str]], typer.Option("--audio", "-a", help="An audio file to search with (repeatable).")] = None,
    k: KOpt = 10,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Keep hits scoring at least this (cosine/ip) or at most this (l2).")] = None,
    nprobe: NprobeOpt = None,
    ef: EfOpt = None,
    rerank: RerankOpt = None,
    npy: NpyOpt = None,
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
    from clsp.index.query import SearchSettings

    settings = SearchSettings(k, threshold, nprobe, ef, rerank, threads)
    return _query(index, input, text or [], audio or [], settings, npy, model, batch_size, device, output,
                     on_error.value, quiet, html, html_embed)


@main.command("eval")
@command
def evaluate(
    index: Annotated[Optional[str], typer.Argument(help="Index directory; queries come from --queries.", show_default=False)] = None,
    queries: Annotated[Optional[str], typer.Option("--queries", help="Query JSONL (vectors, text or audio) with the relevant ids in --relevant-key.")] = None,
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
    model: ModelOpt = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "auto",
    output: OutputOpt = "-",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also write the R@k curves per direction or group (.png or .svg).")] = None,
    quiet: QuietOpt = False,
):
    """Retrieval metrics (R@1/5/10, mAP@10 with 95% CIs): queries against an index, or a speech-caption pool."""
    from clsp.index.query import SearchSettings

    settings = SearchSettings(10, None, nprobe, ef, rerank, threads)
    return _eval(index, queries, relevant_key, speech, captions, match_key, group_key, n_boot, settings,
                 (npy, speech_npy, captions_npy), model, device, output, quiet, plot)


def _build(input, index_dir, npy, ids, factory, metric, max_memory, add, lock_timeout, threads, on_error,
           quiet) -> int:
    import numpy as np

    from clsp.errors import ConfigError, InputError
    from clsp.index import index_exists, write_index
    from clsp.index.factory import parse_memory
    from clsp.index.records import EmbeddingReader, load_matrix
    from clsp_cli.console import set_quiet, warn
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if lock_timeout < 0:
        raise ConfigError("--lock-timeout must be >= 0")
    if input.endswith(".npy") and ids:
        input, npy = ids, input
    reader = EmbeddingReader(load_matrix(npy) if npy else None, nonzero=metric == "cosine")
    vectors, metas, failed = _read_embeddings(reader, input, on_error)
    mat = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    if not vectors and not (add and index_exists(index_dir)):
        raise InputError(f"{input}: no embeddings to index")
    built = write_index(index_dir, mat, metas, add=add, provenance=reader.provenance, lock_timeout=lock_timeout,
                        on_wait=warn, factory=factory, metric=metric, max_memory=parse_memory(max_memory),
                        threads=threads)
    sink = RecordSink("-")
    info = built.info if built is not None else None
    sink.write({"index": str(index_dir), "added": len(vectors), "failed": failed,
                **({"count": info.count, "dim": info.dim, "factory": info.factory, "metric": info.metric,
                    "model": info.model} if info else {})})
    sink.commit()
    return 3 if failed else 0


def _read_embeddings(reader, source, on_error="skip", rows=None):
    """(vectors, metadata dicts, failed) of an embeddings file; bad records are skipped with a
    warning (or stop the run with --on-error fail). Records that hold 'row' while no matrix was
    given are counted into one warning, not one line each. ``rows`` (a dict), when given, gets
    the matrix row of every record read from the matrix, keyed by row, valued by id."""
    from clsp.index.records import record_metadata
    from clsp_cli.console import Throughput, warn
    from clsp_cli.errors import FailFast
    from clsp_cli.inputs import MissingMatrix

    vectors, metas, failed, no_matrix = [], [], 0, MissingMatrix(source)
    with Throughput("read embeddings", "records") as progress:
        for item, vec in reader.read(source):
            if vec is None:
                failed += 1
                if not no_matrix.check(item, reader.matrix):
                    warn(f"skipped {item.id}: {item.error}")
                if on_error == "fail":
                    raise FailFast(f"record {item.id!r} failed: {item.error}")
                progress.update(failed=1)
                continue
            vectors.append(vec)
            metas.append(record_metadata(item.record))
            if rows is not None and "embedding" not in item.record:
                rows.setdefault(item.record.get("row", item.index), item.id)
            progress.update()
    no_matrix.warn()
    return vectors, metas, failed


def _query_items(input, texts, audios, npy):
    """Query items from --text/--audio options and/or an input file, with the matrix and base folder."""
    from clsp.index.records import load_matrix
    from clsp.records import Item, base_dir_of, iter_items

    given = [Item(index=n, id=t, record={"id": t, "text": t}) for n, t in enumerate(texts)]
    given += [Item(index=len(given) + n, id=a, record={"id": a, "audio": a}) for n, a in enumerate(audios)]
    if input is None and given:
        return given, None, None
    source = input or "-"
    if source.endswith(".npy"):
        mat = load_matrix(source)
        rows = (Item(index=n, id=f"row-{n}", record={"id": f"row-{n}", "row": n}) for n in range(len(mat)))
        return _chain(given, rows), mat, None
    matrix = load_matrix(npy) if npy else None
    return _chain(given, iter_items(source, modality="embeddings")), matrix, base_dir_of(source)


def _chain(first, rest):
    yield from first
    yield from rest


def _query(index_dir, input, texts, audios, settings, npy, model, batch_size, device, output, on_error, quiet,
           html=None, html_embed=False) -> int:
    import math

    from clsp.errors import ClspError, ConfigError
    from clsp.index import load_index
    from clsp.index.query import QueryEncoder, search_items
    from clsp_cli.console import Throughput, set_quiet
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if settings.k < 1 or batch_size < 1:
        raise ConfigError("--k and --batch-size must be at least 1")
    if settings.threshold is not None and not math.isfinite(settings.threshold):
        raise ConfigError("--threshold must be a finite number")
    from clsp_cli.figures import check_outputs, search_page

    check_outputs(None, html)
    index = load_index(index_dir)
    items, matrix, base = _query_items(input, texts, audios, npy)
    encoder = QueryEncoder(index, model, device)
    sink = RecordSink(output, on_error=on_error)
    page: list = []
    with Throughput("search", "queries") as progress:
        for item, result in search_items(index, items, settings, encoder, matrix, base, batch_size):
            if isinstance(result, ClspError):
                sink.write_error(item.id, result)
                progress.update(failed=1)
            else:
                sink.write({"id": item.id, "hits": [{**h, "score": round(h["score"], 6)} for h in result]})
                progress.update()
                if html:
                    page.append((item.record, result))
    search_page(html, page, base, html_embed)
    sink.commit()
    return sink.exit_code


def _relevant_ids(record: dict, key: str) -> list[str]:
    from clsp.errors import InputError

    value = record.get(key)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"query {record.get('id')!r}: needs the relevant id(s) in field '{key}'")


def _eval(index_dir, queries, relevant_key, speech, captions, match_key, group_key, n_boot, settings, matrices, model,
          device, output, quiet, plot=None) -> int:
    """``matrices``: (--npy, --speech-npy, --captions-npy)."""
    from clsp.errors import ConfigError
    from clsp_cli.console import set_quiet
    from clsp_cli.output import RecordSink

    set_quiet(quiet)
    if n_boot < 0:
        raise ConfigError("--n-boot must be >= 0")
    from clsp_cli.figures import check_outputs, recall_plot

    check_outputs(plot, None)
    curves: dict = {}
    if speech or captions:
        if not (speech and captions) or index_dir or queries:
            raise ConfigError("pool mode needs both --speech and --captions (and no index)")
        summary, failed = _eval_pool(speech, captions, match_key, group_key, n_boot, matrices, curves if plot else None)
    else:
        if not index_dir:
            raise ConfigError("give an INDEX with --queries, or --speech and --captions")
        if matrices[1] or matrices[2]:
            raise ConfigError("--speech-npy and --captions-npy are for pool mode (--speech/--captions); use --npy")
        summary, failed = _eval_index(index_dir, queries or "-", relevant_key, group_key, n_boot, settings,
                                      matrices[0], model, device, curves)
    if not quiet:
        _render(summary)
    recall_plot(plot, curves, f"{summary['task']}: R@k ({summary.get('queries', summary.get('captions'))} queries)")
    sink = RecordSink(output)
    sink.write(summary)
    sink.commit()
    return 3 if failed else 0


def _eval_index(index_dir, queries, relevant_key, group_key, n_boot, settings, npy, model, device, curves=None):
    from clsp.errors import ClspError
    from clsp.index import load_index
    from clsp.index.query import QueryEncoder, search_items
    from clsp.metrics.retrieval import metrics_from_ranks, ranks_from_hits
    from clsp_cli.console import warn

    index = load_index(index_dir)
    items, matrix, base = _query_items(queries, [], [], npy)
    groups: dict[str, list] = {}
    failed = 0
    for item, result in search_items(index, items, settings, QueryEncoder(index, model, device), matrix, base):
        try:
            if isinstance(result, ClspError):
                raise result
            relevant = _relevant_ids(item.record, relevant_key)
        except ClspError as exc:
            failed += 1
            warn(f"skipped query {item.id}: {exc}")
            continue
        rank = ranks_from_hits([[h["id"] for h in result]], [relevant])[0]
        keys = ["all"] + ([str(item.record.get(group_key))] if group_key else [])
        for key in keys:
            groups.setdefault(key, []).append(rank)
    overall = groups.pop("all", [])
    summary = {"task": "retrieval", "index": str(index_dir), "queries": len(overall), "failed": failed,
               "model": index.info.model, "metrics": metrics_from_ranks(overall, n_boot=n_boot)}
    if group_key:
        summary["group_key"] = group_key
        summary["groups"] = {g: metrics_from_ranks(r, n_boot=n_boot) for g, r in sorted(groups.items())}
    if curves is not None:
        from clsp_cli.figures import recall_curve

        curves.update({name: recall_curve(r, settings.k) for name, r in [("queries to index", overall), *sorted(groups.items())]})
    return summary, failed


def _eval_pool(speech, captions, match_key, group_key, n_boot, matrices, curves=None):
    """Both directions over a speech-caption pool; ``matrices``: (--npy, --speech-npy, --captions-npy)."""
    import numpy as np

    from clsp.errors import InputError
    from clsp.index.records import EmbeddingReader, load_matrix
    from clsp.metrics.retrieval import speech_text_retrieval
    from clsp_cli.console import warn

    shared, speech_npy, captions_npy = matrices
    shared_matrix = load_matrix(shared) if shared and not (speech_npy and captions_npy) else None
    reader = EmbeddingReader(load_matrix(speech_npy) if speech_npy else shared_matrix)
    speech_rows: dict = {}
    avecs, arecs, afail = _read_embeddings(reader, speech, rows=speech_rows)
    # the same reader, so that captions must come from the speech side's model
    reader.matrix = load_matrix(captions_npy) if captions_npy else shared_matrix
    caption_rows: dict = {}
    tvecs, trecs, tfail = _read_embeddings(reader, captions, rows=caption_rows)
    if not speech_npy and not captions_npy:
        _refuse_shared_rows(speech_rows, caption_rows, shared)
    if not avecs or not tvecs:
        raise InputError("pool mode needs at least one speech and one caption embedding")
    audio, text = _unit_rows(np.stack(avecs)), _unit_rows(np.stack(tvecs))
    row_of = {str(r["id"]): n for n, r in enumerate(arecs)}
    owner, keep = [], []
    for n, rec in enumerate(trecs):
        target = str(rec.get(match_key, rec["id"]))
        if target not in row_of:
            tfail += 1
            warn(f"skipped caption {rec['id']}: no speech record with id {target!r} (field '{match_key}')")
            continue
        owner.append(row_of[target])
        keep.append(n)
    owner_arr, text = np.asarray(owner, dtype=np.int64), text[keep]
    trecs = [trecs[n] for n in keep]
    summary = {"task": "speech-text retrieval", "speech": len(audio), "captions": len(trecs),
               "failed": afail + tfail, "model": (reader.provenance or {}).get("model"),
               "metrics": speech_text_retrieval(audio, text, owner_arr, n_boot=n_boot)}
    if curves is not None:
        from clsp_cli.figures import pool_recall_curves

        ks = range(1, min(20, len(audio), len(text)) + 1)
        curves.update(pool_recall_curves(speech_text_retrieval(audio, text, owner_arr, ks=ks, n_boot=0)))
    if group_key:
        labels = np.asarray([str(r.get(group_key)) for r in trecs])
        summary["group_key"] = group_key
        summary["groups"] = {g: speech_text_retrieval(audio, text[labels == g], owner_arr[labels == g], n_boot=n_boot)
                             for g in sorted(set(labels.tolist()))}
    return summary, afail + tfail


def _refuse_shared_rows(speech_rows: dict, caption_rows: dict, npy) -> None:
    """A caption read from the row of a clip is that clip's speech vector (a perfect, false score):
    rows of one --npy used by both sides mean each side's rows point into its own matrix."""
    from clsp.errors import ConfigError

    both = sorted(set(speech_rows) & set(caption_rows))
    if both:
        row = both[0]
        raise ConfigError(f"--speech and --captions point at the same rows of --npy {npy} ({len(both)} rows; row "
                          f"{row}: speech {speech_rows[row]!r}, caption {caption_rows[row]!r}): give each side the "
                          "matrix it was written with, --speech-npy SPEECH.npy --captions-npy CAPTIONS.npy")


def _unit_rows(mat):
    """Rows scaled to unit norm: cosine, as in the index (the reader refused zero rows)."""
    import numpy as np

    return mat / np.linalg.norm(mat, axis=1, keepdims=True)


def _render(summary: dict) -> None:
    """The metrics as a table on stderr: one row per metric, one column per group."""
    from rich.table import Table

    from clsp_cli.console import console

    columns = [("all", summary["metrics"])] + list(summary.get("groups", {}).items())
    names = [k for k in summary["metrics"] if not k.endswith(("_lo", "_hi", "count"))]
    table = Table(title=f"{summary['task']} (95% bootstrap CI)", title_justify="left")
    table.add_column("metric")
    for name, _ in columns:
        table.add_column(str(name))
    for metric in names:
        cells = []
        for _, m in columns:
            value = m.get(metric)
            ci = f" [{m[metric + '_lo']:.3f}, {m[metric + '_hi']:.3f}]" if m.get(metric + "_lo") is not None else ""
            cells.append("n/a" if value is None else f"{value:.3f}{ci}")
        table.add_row(metric, *cells)
    console.print(table)
