"""The records ``clsp embed`` writes: one per item or per window (:func:`output_rows`), the
run record of the settings that change them, and the resume proof that the records an
interrupted run kept are the start of what this run writes (same inputs, options and
model), or a refusal with ``ConfigError``.
"""

from __future__ import annotations

from collections import deque
from itertools import chain
from typing import Any, Iterable, Iterator

import numpy as np

from clsp import __version__
from clsp.embed import AudioResult, EmbedConfig, fbank_on_device, resolve_device, resolve_dtype
from clsp.errors import ConfigError
from clsp.records import Item, public_fields
from clsp.results import VECTOR_FIELDS, Result, embedding_provenance, under_metadata
from clsp.streams import CUT_SOURCE_NAME


WINDOW_SPAN = ("start", "end", "duration")  # a window record's own segment, not its source record's
EMBED_FIELDS = (*VECTOR_FIELDS, "error")  # "error" marks error records
WINDOW_FIELDS = ("source_id", "window", "windows", "window_start", "window_end")


def input_fields(record: dict[str, Any], windows: bool = False) -> dict[str, Any]:
    """The input record's fields as ``clsp embed`` writes them before its own.

    The record's own fields of the names embed writes (:data:`EMBED_FIELDS`, and with
    ``windows`` :data:`WINDOW_FIELDS`) are kept under ``metadata`` (``results.under_metadata``),
    never overwritten nor read as clsp's (a note in ``provenance``, a ``row`` of a spreadsheet,
    an ``error`` note on a clip that embeds). A record an earlier ``clsp embed`` wrote (its
    ``provenance`` is an embedding's) is embedded again: its ``embedding``, ``row``,
    ``row_sha256`` and ``provenance`` are that run's vector, replaced by this run's, not kept."""
    fields = public_fields(record)
    if embedding_provenance(fields.get("provenance")):
        fields = {k: v for k, v in fields.items() if k not in VECTOR_FIELDS}
    fields, kept = under_metadata(fields, EMBED_FIELDS + (WINDOW_FIELDS if windows else ()))
    if kept:
        fields["metadata"] = kept
    return fields


def output_rows(result: Result[np.ndarray], windows: bool = False) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """The records ``clsp embed`` writes for one successful result: ``(embedding (D,), fields)``
    each. With ``windows`` (``--long-audio windows``) one per window, with ``id`` ``ID@K``,
    ``source_id``, ``window``, ``windows``, ``window_start`` and ``window_end`` (seconds from
    the record's segment start), and ``start``/``end`` (seconds in the file: the window's own
    segment, so that a window record read back, captioned or played is that window's audio;
    not for a mix or a command source, which have no file); otherwise one, without extra fields,
    as for a clip no longer than ``--max-seconds`` (one window, the whole clip), which keeps its id."""
    if not windows or not isinstance(result, AudioResult) or len(result.windows) == 1:
        return [(result.value if result.value.ndim == 1 else result.value[0], {})]
    item_id, spans, record = result.item.id, result.windows, result.item.record
    audio = record.get("audio")
    in_file = isinstance(audio, str) and CUT_SOURCE_NAME.match(audio) is None
    # windows count from the record's segment: ``result.offset`` in a plain file, 0 in a cut,
    # whose own start in its recording (its record's ``start``) places them in the file
    offset = float(record.get("start") or 0.0) if record.get("_cut") is not None else result.offset
    rows = []
    for k, ((start, end), emb) in enumerate(zip(spans, result.value)):
        fields = {"id": f"{item_id}@{k}", "source_id": result.item.given_id, "window": k, "windows": len(spans),
                  "window_start": round(start, 3), "window_end": round(end, 3)}
        if in_file:
            fields.update(start=offset + start, end=offset + end)
        rows.append((emb, fields))
    return rows


def run_record(modality: str, prov: dict, shard: str | None, cfg: EmbedConfig, chunk: int, to_npy: bool) -> dict:
    """The settings that change the records written; a resume must match them all."""
    dev = resolve_device(cfg.device)
    run = {"command": "embed", "clsp": __version__, "modality": modality, "model": prov, "shard": shard,
           "device": dev.type, "dtype": str(resolve_dtype(cfg.dtype, dev)).removeprefix("torch."),
           "batch_size": cfg.batch_size, "chunk_size": chunk, "npy": to_npy}
    if modality == "audio":
        run.update(long_audio=cfg.long_audio, max_seconds=cfg.max_seconds, max_batch_seconds=cfg.max_batch_seconds,
                   max_inflight_seconds=cfg.max_inflight_seconds,
                   fbank_on="device" if fbank_on_device(cfg, dev) else "workers")
    return run


def item_ends(recs: list[dict], windows: bool = False) -> list[int]:
    """For each input record fully written by an earlier run, the output records up to its end.

    With ``windows`` (``--long-audio windows``), a ``windows`` group cut short at the end does
    not count; otherwise each record is one input's (a ``source_id`` there is the input's own).
    """
    ends, i = [], 0
    while i < len(recs):
        total = recs[i].get("windows") if windows and "source_id" in recs[i] else None
        step = int(total) if isinstance(total, int) and total > 0 else 1
        if i + step > len(recs):
            break
        i += step
        ends.append(i)
    return ends


def verify_kept(output: str, kept: list[dict], items: Iterable[Item], done_items: int,
                chunk: int, windows: bool = False) -> tuple[Iterator[Item], int]:
    """Check that ``kept`` records are the start of what this run writes for ``items``.

    Returns the items to embed, from the start of the chunk that holds the resume point (so
    that batches are those of an uninterrupted run), and how many of them were written already.
    Raises ``ConfigError`` (exit 2) naming the first record that differs.
    """
    items = iter(items)
    seen, pos = deque(maxlen=chunk), 0
    for n in range(done_items):
        item = next(items, None)
        if item is None:
            raise ConfigError(f"cannot resume {output}: its partial output holds {done_items} input records, "
                              f"this input has only {n}; remove the .partial file to start over")
        rec = kept[pos]
        step = rec.get("windows", 1) if windows and "source_id" in rec else 1
        problem = record_mismatch(item, rec, windows)
        if problem:
            raise ConfigError(f"cannot resume {output}: output record {pos + 1} is for {problem}, "
                              f"input record {n + 1} of this run is {item.id!r}; remove the .partial file to start over")
        pos += step
        seen.append(item)
    again = done_items % chunk
    return chain(list(seen)[len(seen) - again:] if again else [], items), again


def record_mismatch(item: Item, rec: dict[str, Any], windows: bool = False) -> str | None:
    """What ``rec`` (a kept output record) is, if it is not this run's record for ``item``.

    Ids and input fields must be equal; a valid record cannot stand for an input that is now
    invalid, nor an error record for a caption that is now valid. Audio files are not read
    again: a resume assumes they did not change.
    """
    rec_id = rec.get("source_id", rec.get("id")) if windows else rec.get("id")
    if str(rec_id) != item.id:
        return repr(rec_id)
    if not item.ok:
        return None if "error" in rec else f"{rec_id!r} with a result, where this input fails ({item.error})"
    if "error" in rec:
        text = item.record.get("text")
        return f"{rec_id!r} with an error, where this caption is valid" if isinstance(text, str) and text.strip() else None
    span = WINDOW_SPAN if windows and "source_id" in rec else ()  # a window record holds its own segment
    other = sorted(k for k, v in input_fields(item.record, windows).items()
                   if k != "id" and k not in span and rec.get(k) != v)
    return f"{rec_id!r} with other {', '.join(other)}" if other else None
