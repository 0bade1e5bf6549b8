"""``clsp merge``: the shard outputs of ``clsp embed --shard`` -> one output in input order."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clsp_cli.errors import command
from clsp_cli.options import Options, OutputOpt, QuietOpt


@command(outputs=("output", "npy"))
def main(
    shards: Annotated[list[str], typer.Argument(help="Every shard's JSONL output (e.g. part-*.jsonl); each shard exactly once.", show_default=False)],
    output: OutputOpt = "-",
    npy: Annotated[Optional[str], typer.Option("--npy", help="Write the embeddings to this .npy matrix; records then carry its 'row'.")] = None,
    quiet: QuietOpt = False,
):
    """Merge the outputs of a sharded `clsp embed` run into one, in input order.

    Checks that every shard is there once, that all were made by the same model and
    settings, and that every input record appears exactly once; `--npy` shards are read
    through the matrix named in their provenance. The result is what one process would
    have written. Exit 2: a shard missing, repeated or from another run's count; 1: mixed
    models or a record missing or repeated; 3: merged, some records are error records.

    Example: clsp merge part-*.jsonl --npy all.npy -o all.jsonl
    """
    return _run(Options.of(locals()))


def _run(o: Options) -> int:
    from clsp.errors import InputError
    from clsp.index.records import row_checksum
    from clsp.records import json_vector
    from clsp.shard_merge import ShardSet, check_shards
    from clsp_cli.console import Throughput, log, set_quiet
    from clsp_cli.output import MatrixSink, RecordSink, publish

    set_quiet(o.quiet)
    shard_set = ShardSet(o.shards)
    log(f"merging {shard_set.count} shards")
    dim = (shard_set.provenance or {}).get("dim")
    if o.npy is not None and not dim:
        shard_set.close()
        raise InputError("--npy: the shards hold no embedding records, so the matrix width is unknown")
    sink = RecordSink(o.output)
    matrix = MatrixSink(o.npy, int(dim)) if o.npy is not None and dim else None
    failed = 0
    try:
        if sink.lock is None:  # stdout, a pipe: what is written there stays, so every refusal comes first
            log("checking every shard before writing the first record")
            check_shards(o.shards)
        with Throughput("merge", "records") as progress:
            for rec, vec in shard_set.records():
                if vec is None:
                    failed += 1
                else:
                    value = matrix.append(vec) if matrix is not None else json_vector(vec)
                    rec = _with_vector(rec, "row" if matrix is not None else "embedding", value,
                                       row_checksum(vec) if matrix is not None else None)
                sink.write(rec)
                progress.update(failed=int(vec is None))
    except BrokenPipeError:  # stdout closed early: the command names the outputs left unwritten (exit 1)
        raise
    except BaseException:  # a merge cannot resume: nothing of a refused one stays behind
        sink.discard()
        if matrix is not None:
            matrix.discard()
        raise
    finally:
        shard_set.close()
    publish(sink, matrix)  # the records first, all or nothing: a failed -o replaces no earlier --npy
    return 3 if failed else 0


def _with_vector(rec: dict, key: str, value, check: str | None = None) -> dict:
    """``rec`` with its vector (``embedding`` or ``row``) replaced by ``key: value``, in place of
    the old one; a ``row`` comes with its ``row_sha256`` ``check``."""
    out = {}
    for k, v in rec.items():
        if k in ("embedding", "row"):
            out[key] = value
            if key == "row":
                out["row_sha256"] = check
        elif k != "row_sha256":
            out[k] = v
    return out
