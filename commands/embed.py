"""``clsp embed``: audio clips or captions -> unit-norm embeddings (JSONL or .npy)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Iterator, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import (AudioRootOpt, DeviceOpt, DtypeOpt, InputsArg, ModelOpt, OnError, OnErrorOpt, Options,
                              OutputOpt, QuietOpt)


class Modality(str, Enum):
    audio = "audio"
    text = "text"


class FbankOn(str, Enum):
    auto = "auto"
    workers = "workers"
    device = "device"


class LongAudio(str, Enum):
    truncate = "truncate"
    chunk_mean = "chunk-mean"
    windows = "windows"


@command(outputs=("output", "npy"), resumable=True)
def main(
    input: InputsArg = None,
    modality: Annotated[Modality, typer.Option("--modality", help="What the input holds.")] = Modality.audio,
    model: ModelOpt = "default",
    output: OutputOpt = "-",
    npy: Annotated[Optional[str], typer.Option("--npy", help="Write embeddings to this .npy matrix; JSONL records then carry its 'row'.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Most clips (or captions) per batch.")] = 64,
    max_batch_seconds: Annotated[float, typer.Option("--max-batch-seconds", help="Most padded audio seconds per batch.")] = 240.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Longest window the model sees; longer clips follow --long-audio.")] = 30.0,
    long_audio: Annotated[LongAudio, typer.Option("--long-audio", help="truncate: first window; chunk-mean: mean of equal windows; windows: one record per window.")] = LongAudio.chunk_mean,
    workers: Annotated[int, typer.Option("--workers", help="Decoding/fbank worker threads.")] = 2,
    max_inflight_seconds: Annotated[float, typer.Option("--max-inflight-seconds", help="Most seconds of decoded audio held at once (read-ahead included); bounds memory whatever the clip lengths.")] = 3600.0,
    fbank_on: Annotated[FbankOn, typer.Option("--fbank-on", help="Where fbank is computed for fbank models: workers (the decoding threads), device (batched on the model's device), auto (device on a GPU, else workers).")] = FbankOn.auto,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: process only records with index % N == I; auto: I and N from torchrun (RANK/WORLD_SIZE) or SLURM (array task, srun task). '{shard}' in -o/--npy becomes e.g. 0003-of-0008.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run into the same --output, keeping the records already written; exit 2 if they are not this run's (other inputs, shard, model or options).")] = False,
    audio_root: AudioRootOpt = None,
    on_error: OnErrorOpt = OnError.skip,
    quiet: QuietOpt = False,
):
    """Embed audio clips or captions into the joint speech-text space.

    Examples: clsp embed clips.jsonl -o clips.emb.jsonl;  clsp embed a.wav b.flac recordings/
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    from contextlib import suppress

    from clsp.embed import TextEmbedder, embed_items
    from clsp.embed_records import run_record
    from clsp.errors import ClspError
    from clsp.models import load_model
    from clsp_cli.console import Throughput, set_quiet
    from clsp_cli.inputs import input_items
    from clsp_cli.output import MatrixSink, RecordSink

    from clsp.inputs import check_audio_root

    set_quiet(o.quiet)
    audio = o.modality == "audio"
    check_audio_root(o.audio_root)  # a usage error before any work, as the inputs'
    all_items = input_items(o.input, o.modality, o.audio_root)
    if not audio:  # clsp caption output: one text record per caption
        from clsp.records import split_captions

        all_items = split_captions(all_items)
    named = (o.output, o.npy)  # as given, '{shard}' not filled in
    part = _shard(o)
    if part is not None:  # the outputs' real names, '{shard}' filled in, checked as the command checks them
        from clsp.shards import check_shard_outputs
        from clsp_cli.output_files import check_run_files

        check_run_files({**vars(o)}, ("output", "npy"))
        check_shard_outputs(part, *named)
    cfg = _config(o)
    sink = RecordSink(o.output, resume=o.resume, on_error=o.on_error)  # holds the output before the slow load
    net = load_model(o.model, with_text=not audio)
    prov = net.provenance()
    prov.pop("cpu_lstm", None)  # the run's own, below: the device it runs on decides
    chunk = cfg.chunk_size if audio else TextEmbedder.chunk_size_default
    run = run_record(o.modality, prov, None if part is None else part.name, cfg, chunk, o.npy is not None)
    from clsp.models.lstm_precision import cpu_lstm_setting

    lstm = cpu_lstm_setting(net, run["device"]) if audio else None
    if lstm is not None:  # CLSP_CPU_LSTM changes the vectors: a resume or a merge must not mix two formats
        run["cpu_lstm"] = lstm
    sink.set_run(run)
    if part is not None:  # on stdout too the shard's last record gets the end-of-input mark (clsp merge)
        sink.hold_last()
    input_end: dict = {}  # filled when the whole input has been read (sharded runs)
    if part is not None:
        from clsp.shards import chain_inputs

        all_items = chain_inputs(all_items, input_end)
    items = (it for it in all_items if part is None or part.owns(it.index))
    if o.resume:
        items = _resume(o, sink, items, prov["dim"], chunk)
    matrix = None
    if o.npy is not None:
        rows = sum(1 for r in sink.done if "row" in r)
        matrix = MatrixSink(o.npy, prov["dim"], resume_rows=rows if o.resume else None)
    try:
        with Throughput("embed", "clips" if audio else "captions", "windows" if audio else "captions") as progress:
            results = embed_items(net, items, o.modality, cfg, chunk, progress.work)
            made = {**prov, "modality": o.modality}  # what was embedded: a speech vector, or a caption's
            if "cpu_lstm" in run:  # and in which format the speaker encoders' LSTMs ran: an index warns of two
                made["cpu_lstm"] = run["cpu_lstm"]
            # what changes the vectors, which clsp merge compares across shards: the resolved precision
            # (a bfloat16 shard is about 1e-3 from a float32 one), and for audio how long clips are read
            settings = {"long_audio": cfg.long_audio, "max_seconds": cfg.max_seconds} if audio else {}
            settings["dtype"] = run["dtype"]
            if "cpu_lstm" in run:
                settings["cpu_lstm"] = run["cpu_lstm"]
            _write(results, sink, matrix, _provenance(made, part, matrix, settings), _windows(o), progress,
                   sharded=part is not None, flush_every=64 if audio else 0)
        if part is not None and input_end.get("input_total"):  # a shard with no share of an input that has
            from clsp_cli.output import note_input_count  # records is published too: merge needs every shard

            note_input_count(None)
        if input_end:  # the shard's last record marks where the input ended, for clsp merge
            from clsp.shards import end_mark

            sink.amend_last(lambda rec: end_mark(rec, input_end))
    finally:
        with suppress(ClspError, OSError):  # a record kept back for its end mark goes out, even on a failure
            sink.release_held()
        if matrix is not None:  # rows of records already written reach the disk, even on a failure
            with suppress(ClspError):
                matrix.flush()
    sink.commit(matrix)  # the records, then --npy, all or nothing: a failed -o replaces no earlier matrix
    return sink.exit_code


def _windows(o: Options) -> bool:
    """True when each clip gives one record per window (``--long-audio windows``, audio)."""
    return o.modality == "audio" and o.long_audio == "windows"


def _shard(o: Options):
    """The ``--shard`` part (None without one), with '{shard}' in -o/--npy filled in."""
    from clsp.errors import ConfigError
    from clsp_cli.console import log
    from clsp_cli.options import parse_shard

    part = parse_shard(o.shard)
    if part is not None:
        o.output, o.npy = part.fill(o.output), part.fill(o.npy)
        log(f"shard {part.name} from {part.source}")
    elif "{shard}" in o.output or "{shard}" in (o.npy or ""):
        raise ConfigError("'{shard}' in --output/--npy needs --shard I/N or --shard auto")
    return part


def _config(o: Options):
    from clsp.embed import EmbedConfig

    cfg = EmbedConfig(batch_size=o.batch_size, max_batch_seconds=o.max_batch_seconds, max_seconds=o.max_seconds,
                      long_audio=o.long_audio, workers=o.workers, device=o.device, dtype=o.dtype,
                      max_inflight_seconds=o.max_inflight_seconds, fbank_on=o.fbank_on)
    cfg.validate()
    return cfg


def _provenance(prov: dict, part, matrix, settings: dict):
    """The provenance of an item's records: the model's, plus the shard's with --shard (with
    the ``settings`` that change what is embedded, which ``clsp merge`` compares)."""
    if part is None:
        return lambda item: prov
    from clsp.shards import shard_provenance

    return lambda item: shard_provenance(prov, part, item.index, None if matrix is None else str(matrix.target.path),
                                         getattr(item, "input_chain", None), settings)


def _write(results, sink, matrix, provenance, windows: bool, progress, sharded: bool = False,
           flush_every: int = 0) -> None:
    """One record per result (one per window with ``windows``), or its error record (with the
    shard's provenance when ``sharded``; with ``windows`` a digitally silent window is one error
    record ``ID@K`` with its window fields, as the window read back alone is a silent clip);
    files flushed every ``flush_every`` results."""
    from clsp.embed_records import WINDOW_FIELDS, input_fields, output_rows
    from clsp.index.records import row_checksum
    from clsp.records import json_vector
    from clsp_cli.output import write_results

    error_fields = (lambda res: {"provenance": provenance(res.item)}) if sharded else None

    def records(res) -> Iterator[dict]:  # lazily: a silent window's error record is written in its place
        given = input_fields(res.item.record, windows)  # the record's own fields named as embed's under metadata
        for emb, extra in output_rows(res, windows):
            problem = getattr(res, "window_errors", {}).get(extra.get("window"))
            if problem is not None:
                where = {"id": extra["id"], **{k: extra[k] for k in WINDOW_FIELDS}}  # a resume counts its windows
                sink.write_error(extra["id"], problem, {**where, **(error_fields(res) if error_fields else {})})
                continue
            rec = {**given, **extra}
            if "start" in extra:
                rec.pop("duration", None)  # the window's span is start/end; the record's duration is not its
            rec.update({"row": matrix.append(emb), "row_sha256": row_checksum(emb)} if matrix is not None
                       else {"embedding": json_vector(emb)})
            yield {**rec, "provenance": provenance(res.item)}

    def flushing(results):
        for n, res in enumerate(results):
            yield res  # written before the generator resumes
            if flush_every and n % flush_every == flush_every - 1:
                if matrix is not None:
                    matrix.flush()
                sink.flush()

    for _ in write_results(sink, flushing(results), progress, records=records, error_fields=error_fields):
        pass


def _resume(o: Options, sink, items, dim: int, chunk: int):
    """The items still to embed after the records kept from an interrupted run (checked)."""
    from clsp.embed_records import item_ends, verify_kept
    from clsp_cli.console import log, warn
    from clsp_cli.output import first_changed_row, partial_rows

    kept = sink.done
    if o.npy is not None:  # rows are flushed before their records, but a crash may still cut them
        have = partial_rows(o.npy, dim)
        kept = kept[:next((i for i, r in enumerate(kept) if r.get("row", -1) >= have), len(kept))]
        changed = first_changed_row(o.npy, dim, kept)
        if changed is not None:  # the partial matrix was altered after the stop: embed again from there
            warn(f"resume: row {kept[changed]['row']} of {o.npy}.partial is not the vector record "
                f"{kept[changed].get('id')!r} was written with (row_sha256 differs): embedding again from there")
            kept = kept[:changed]
    ends = item_ends(kept, _windows(o))
    items, again = verify_kept(o.output, kept, items, len(ends), chunk, _windows(o))
    sink.check_run()
    keep_items = len(ends) - again  # the chunk cut by the interruption is embedded again as a whole
    sink.start(ends[keep_items - 1] if keep_items else 0)
    if keep_items:
        log(f"resuming after {keep_items} records already in {o.output}")
    return items
