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
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run into the same --output, skipping records already written.")] = False,
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
    from itertools import islice

    from clsp.errors import ConfigError
    from clsp.models import load_model
    from clsp.records import public_fields
    from clsp_cli.inputs import input_items
    from clsp_cli.console import Throughput, log, set_quiet
    from clsp_cli.options import parse_shard
    from clsp_cli.output import MatrixSink, RecordSink

    set_quiet(quiet)
    if resume and output == "-":
        raise ConfigError("--resume needs --output FILE (stdout cannot be resumed)")
    all_items = input_items(input, modality.value, audio_root)
    part = parse_shard(shard)
    if part is not None:
        output, npy = part.fill(output), part.fill(npy)
        log(f"shard {part.name} from {part.source}")
    elif "{shard}" in output or "{shard}" in (npy or ""):
        raise ConfigError("'{shard}' in --output/--npy needs --shard I/N or --shard auto")
    net = load_model(model, with_text=modality.value == "text")
    prov = net.provenance()
    sink = RecordSink(output, resume=resume, on_error=on_error.value)
    done_items = _completed_items(sink) if resume else 0
    matrix = None
    if npy is not None:
        rows = sum(1 for r in sink.done if "row" in r)
        matrix = MatrixSink(npy, prov["dim"], resume_rows=rows if resume else None)
    items = (it for it in all_items if part is None or part.owns(it.index))
    items = islice(items, done_items, None)
    if done_items:
        log(f"resuming after {done_items} records already in {output}")

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

        return shard_provenance(prov, part, item.index, None if matrix is None else str(matrix.final.resolve()))

    def write_error(item, err):
        sink.write_error(item.id, err, None if part is None else {"provenance": _provenance(item)})

    with Throughput("embed", "clips" if modality.value == "audio" else "captions") as progress:
        if modality.value == "text":
            from clsp.embed import TextEmbedder

            for item, emb, err in TextEmbedder(net, batch_size, device, dtype).run(items):
                if err is not None:
                    write_error(item, err)
                else:
                    emit(item, emb)
                progress.update(failed=int(err is not None))
        else:
            from clsp.embed import AudioEmbedder, EmbedConfig

            cfg = EmbedConfig(batch_size=batch_size, max_batch_seconds=max_batch_seconds, max_seconds=max_seconds,
                              long_audio=long_audio.value, workers=workers, device=device, dtype=dtype,
                              max_inflight_seconds=max_inflight_seconds)
            for n, res in enumerate(AudioEmbedder(net, cfg).run(items)):
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
                    sink.flush()
                    if matrix is not None:
                        matrix.flush()
    if matrix is not None:
        matrix.commit()
    sink.commit()
    return sink.exit_code


def _completed_items(sink) -> int:
    """Input records fully written by an earlier run (a torn window group is dropped)."""
    done, n_records, i = 0, 0, 0
    recs = sink.done
    while i < len(recs):
        total = recs[i].get("windows") if "source_id" in recs[i] else None
        step = int(total) if isinstance(total, int) and total > 0 else 1
        if i + step > len(recs):
            break
        i += step
        done += 1
        n_records = i
    sink.keep_first(n_records)
    return done
