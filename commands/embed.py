"""``clsp embed``: audio clips or captions -> unit-norm embeddings (JSONL or .npy)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import AudioRootOpt, DeviceOpt, DtypeOpt, InputsArg, ModelOpt, OnError, OnErrorOpt, OutputOpt, QuietOpt


class Modality(str, Enum):
    audio = "audio"
    text = "text"


class LongAudio(str, Enum):
    truncate = "truncate"
    chunk_mean = "chunk-mean"
    windows = "windows"


@command
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
    return _run(**locals())


def _run(input, modality, model, output, npy, batch_size, max_batch_seconds, max_seconds, long_audio,
         workers, max_inflight_seconds, device, dtype, shard, resume, audio_root, on_error, quiet) -> int:
    from contextlib import suppress

    from clsp.embed import AudioEmbedder, EmbedConfig, TextEmbedder
    from clsp.errors import ClspError, ConfigError
    from clsp.models import load_model
    from clsp.records import public_fields
    from clsp_cli.inputs import input_items
    from clsp_cli.console import Throughput, log, set_quiet
    from clsp_cli.options import parse_shard
    from clsp_cli.output import MatrixSink, RecordSink, partial_rows

    set_quiet(quiet)
    audio = modality.value == "audio"
    all_items = input_items(input, modality.value, audio_root)
    part = parse_shard(shard)
    if part is not None:
        output, npy = part.fill(output), part.fill(npy)
        log(f"shard {part.name} from {part.source}")
    elif "{shard}" in output or "{shard}" in (npy or ""):
        raise ConfigError("'{shard}' in --output/--npy needs --shard I/N or --shard auto")
    cfg = EmbedConfig(batch_size=batch_size, max_batch_seconds=max_batch_seconds, max_seconds=max_seconds,
                      long_audio=long_audio.value, workers=workers, device=device, dtype=dtype,
                      max_inflight_seconds=max_inflight_seconds)
    cfg.validate()
    sink = RecordSink(output, resume=resume, on_error=on_error.value)  # holds the output before the slow load
    net = load_model(model, with_text=not audio)
    prov = net.provenance()
    chunk = cfg.chunk_size if audio else TextEmbedder.chunk_size_default
    sink.set_run(_run_record(modality.value, prov, None if part is None else part.name, cfg, chunk, npy is not None))
    items = (it for it in all_items if part is None or part.owns(it.index))
    if resume:
        kept = sink.done
        if npy is not None:  # rows are flushed before their records, but a crash may still cut them
            have = partial_rows(npy, prov["dim"])
            kept = kept[:next((i for i, r in enumerate(kept) if r.get("row", -1) >= have), len(kept))]
        ends = _item_ends(kept)
        items, again = _verify_kept(output, kept, items, len(ends), chunk)
        sink.check_run()
        keep_items = len(ends) - again  # the chunk cut by the interruption is embedded again as a whole
        sink.start(ends[keep_items - 1] if keep_items else 0)
        if keep_items:
            log(f"resuming after {keep_items} records already in {output}")
    matrix = None
    if npy is not None:
        rows = sum(1 for r in sink.done if "row" in r)
        matrix = MatrixSink(npy, prov["dim"], resume_rows=rows if resume else None)

    def emit(item, embedding, extra=None):
        rec = public_fields(item.record)
        if extra:
            rec.update(extra)
        if matrix is not None:
            rec["row"] = matrix.append(embedding)
        else:
            rec["embedding"] = [float(f"{v:.9g}") for v in embedding.tolist()]
        rec["provenance"] = _provenance(item)
        sink.write(rec)

    def _provenance(item):
        if part is None:
            return prov
        from clsp.shards import shard_provenance

        return shard_provenance(prov, part, item.index, None if matrix is None else str(matrix.target.path))

    def write_error(item, err):
        sink.write_error(item.id, err, None if part is None else {"provenance": _provenance(item)})

    try:
        with Throughput("embed", "clips" if audio else "captions", "windows" if audio else "captions") as progress:
            if not audio:
                embedder = TextEmbedder(net, batch_size, device, dtype, chunk)
                embedder.on_batch = progress.work
                for item, emb, err in embedder.run(items):
                    if err is not None:
                        write_error(item, err)
                    else:
                        emit(item, emb)
                    progress.update(failed=int(err is not None))
            else:
                embedder = AudioEmbedder(net, cfg)
                embedder.on_batch = progress.work
                for n, res in enumerate(embedder.run(items)):
                    if res.error is not None:
                        write_error(res.item, res.error)
                    elif long_audio.value == "windows":
                        for k, ((start, end), emb) in enumerate(zip(res.windows, res.embeddings)):
                            emit(res.item, emb, {"id": f"{res.item.id}@{k}", "source_id": res.item.id,
                                                 "window": k, "windows": len(res.windows),
                                                 "window_start": round(start, 3), "window_end": round(end, 3)})
                    else:
                        emit(res.item, res.embeddings[0])
                    progress.update(audio_seconds=res.seconds, failed=int(res.error is not None))
                    if n % 64 == 63:
                        if matrix is not None:
                            matrix.flush()
                        sink.flush()
    finally:
        if matrix is not None:  # rows of records already written reach the disk, even on a failure
            with suppress(ClspError):
                matrix.flush()
    if matrix is not None:
        matrix.commit()
    sink.commit()
    return sink.exit_code


def _run_record(modality, prov, shard, cfg, chunk, to_npy) -> dict:
    """The settings that change the records written; a resume must match them all."""
    from clsp import __version__
    from clsp.embed import resolve_device, resolve_dtype

    dev = resolve_device(cfg.device)
    run = {"command": "embed", "clsp": __version__, "modality": modality, "model": prov, "shard": shard,
           "device": dev.type, "dtype": str(resolve_dtype(cfg.dtype, dev)).removeprefix("torch."),
           "batch_size": cfg.batch_size, "chunk_size": chunk, "npy": to_npy}
    if modality == "audio":
        run.update(long_audio=cfg.long_audio, max_seconds=cfg.max_seconds, max_batch_seconds=cfg.max_batch_seconds,
                   max_inflight_seconds=cfg.max_inflight_seconds)
    return run


def _item_ends(recs: list[dict]) -> list[int]:
    """For each input record fully written by an earlier run, the output records up to its end.

    A ``windows`` group cut short at the end does not count.
    """
    ends, i = [], 0
    while i < len(recs):
        total = recs[i].get("windows") if "source_id" in recs[i] else None
        step = int(total) if isinstance(total, int) and total > 0 else 1
        if i + step > len(recs):
            break
        i += step
        ends.append(i)
    return ends


def _verify_kept(output: str, kept: list[dict], items, done_items: int, chunk: int):
    """Check that ``kept`` records are the start of what this run writes for ``items``.

    Returns the items to embed, from the start of the chunk that holds the resume point (so
    that batches are those of an uninterrupted run), and how many of them were written already.
    Raises ``ConfigError`` (exit 2) naming the first record that differs.
    """
    from collections import deque
    from itertools import chain

    from clsp.errors import ConfigError

    items = iter(items)
    seen, pos = deque(maxlen=chunk), 0
    for n in range(done_items):
        item = next(items, None)
        if item is None:
            raise ConfigError(f"cannot resume {output}: its partial output holds {done_items} input records, "
                              f"this input has only {n}; remove the .partial file to start over")
        rec = kept[pos]
        step = rec.get("windows", 1) if "source_id" in rec else 1
        problem = _record_mismatch(item, rec)
        if problem:
            raise ConfigError(f"cannot resume {output}: output record {pos + 1} is for {problem}, "
                              f"input record {n + 1} of this run is {item.id!r}; remove the .partial file to start over")
        pos += step
        seen.append(item)
    again = done_items % chunk
    return chain(list(seen)[len(seen) - again:] if again else [], items), again


def _record_mismatch(item, rec: dict) -> str | None:
    """What ``rec`` (a kept output record) is, if it is not this run's record for ``item``.

    Ids and input fields must be equal; a valid record cannot stand for an input that is now
    invalid, nor an error record for a caption that is now valid. Audio files are not read
    again: a resume assumes they did not change.
    """
    from clsp.records import public_fields

    rec_id = rec.get("source_id", rec.get("id"))
    if str(rec_id) != item.id:
        return repr(rec_id)
    if not item.ok:
        return None if "error" in rec else f"{rec_id!r} with a result, where this input fails ({item.error})"
    if "error" in rec:
        text = item.record.get("text")
        return f"{rec_id!r} with an error, where this caption is valid" if isinstance(text, str) and text.strip() else None
    other = sorted(k for k, v in public_fields(item.record).items() if k != "id" and rec.get(k) != v)
    return f"{rec_id!r} with other {', '.join(other)}" if other else None
