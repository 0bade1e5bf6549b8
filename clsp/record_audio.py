"""The audio of an input record, whatever its kind: a segment of a file, or a Lhotse cut.

Every reader of record audio (embedding, training, captioning) goes through these
functions, so a record's segment and channel, and a cut's channel, sources and mixes, are
honoured the same way everywhere.

A plain record's segment: ``start`` (seconds, default 0) to ``end`` (default: the file's end);
without ``end``, a ``duration`` field ends it at ``start + duration`` (as in Lhotse
manifests). ``channel``: an index (0 = first) or a list of indices (averaged); without it
all channels are averaged.
"""

from __future__ import annotations

from typing import Any

import torch

from clsp.audio import SAMPLE_RATE, audio_sample_rate, load_audio, record_span, segment_plan  # noqa: F401
from clsp.cuts import cut_sample_rate, cut_samples, load_cut_audio


def record_segment(record: dict[str, Any], sample_rate: int = SAMPLE_RATE) -> tuple[float, int]:
    """``(offset, samples)`` of a record's audio without decoding it: where it starts (seconds
    in its file, 0 for a cut) and its length at ``sample_rate``. Raises ``AudioError``."""
    if record.get("_cut") is not None:
        return 0.0, cut_samples(record["_cut"], sample_rate)
    return segment_plan(record["_path"], *record_span(record), sample_rate, record.get("channel"))


def load_record_audio(record: dict[str, Any], start: float | None = None, end: float | None = None,
                      sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Mono float32 audio ``(samples,)`` of a record at ``sample_rate``.

    Without ``start``/``end``: the record's own segment (``record_span``, or the whole cut).
    With them: a window, in seconds of the file (offsets from ``record_segment`` added) or
    within the cut. A file's channels are averaged unless the record's ``channel`` field
    picks one (an index, 0 = first) or several (a list of indices, averaged), as a cut's
    ``channel`` does. Raises ``AudioError`` naming the file or cut.
    """
    if record.get("_cut") is not None:
        return load_cut_audio(record["_cut"], start, end, sample_rate)
    if start is None and end is None:
        start, end = record_span(record)
    return load_audio(record["_path"], start, end, sample_rate, record.get("channel"))


def record_sample_rate(record: dict[str, Any]) -> int:
    """The sampling rate of the record's source (its file's, or its cut's recording's)."""
    if record.get("_cut") is not None:
        return cut_sample_rate(record["_cut"])
    return audio_sample_rate(record["_path"])
