"""From input records to caption records: load audio, caption, filter, select, attach provenance.

Output records keep the input fields and add ``global_captions`` and ``finegrained_captions``
(the fields ``clsp train`` reads), ``inferred``, ``provenance``, ``rejected`` (captions dropped by a
rule, with the reason) and, for the acoustic backend, ``measurements``; the input's own fields
of those names are kept under ``metadata`` (:func:`input_fields`).
"""

from __future__ import annotations

from typing import Any

from clsp.caption.backend import METADATA_FIELDS, AcousticCaptioner
from clsp.caption.filters import filter_captions, rank_by_similarity
from clsp.errors import AudioError, ClspError, InputError
from clsp.results import under_metadata

# Acoustic measurements hold per-frame arrays for the whole clip (about 5 MB per audio second).
MAX_CAPTION_SECONDS = 300.0
OUTPUT_FIELDS = ("global_captions", "finegrained_captions")
TRANSCRIPT_FIELDS = ("text", "transcript", "sentence_text")
MODEL_DESCRIBES = ("gender", "age", "accent", "emotion", "pitch", "rate", "loudness", "timbre")


class CaptionRejectedError(ClspError):
    """Every candidate caption of a clip broke an FCaps rule."""


def _transcript(record: dict) -> str | None:
    for key in TRANSCRIPT_FIELDS:
        if isinstance(record.get(key), str):
            return record[key]
    return None


def _metadata(record: dict) -> dict:
    return {k: record[k] for k in METADATA_FIELDS if record.get(k) not in (None, "")}


def _public(record: dict) -> dict:
    """The record without the reader's private ``_``-prefixed fields (e.g. the resolved path)."""
    return {k: v for k, v in record.items() if not str(k).startswith("_")}


# every field a caption record writes itself; "error" marks error records
CAPTION_FIELDS = (*OUTPUT_FIELDS, "global_similarity", "finegrained_similarity", "rejected", "attributes",
                  "measurements", "inferred", "unused_metadata", "provenance", "error")


def caption_provenance(value: Any) -> bool:
    """True for the provenance of a caption record clsp wrote (a dict naming its ``backend``)."""
    return isinstance(value, dict) and isinstance(value.get("backend"), str) and "dim" not in value


# the fields clsp writes into a captioned cut's supervision custom (``clsp.cuts.captioned_cut``)
CUT_CAPTION_FIELDS = ("global_captions", "finegrained_captions", "caption_provenance")


def input_fields(record: dict) -> dict:
    """The input record's public fields as a caption record keeps them: its own fields named like
    :data:`CAPTION_FIELDS` (captions of a corpus, a note in ``provenance``, an ``error`` note) under
    ``metadata`` (``results.under_metadata``). A record an earlier ``clsp caption`` wrote (its
    ``provenance`` a caption backend's, or, read from a cut ``clsp caption --as-cuts`` wrote,
    its ``caption_provenance``) is captioned again: those fields are replaced, not kept."""
    fields = _public(record)
    if caption_provenance(fields.get("provenance")) or caption_provenance(fields.get("caption_provenance")):
        fields = {k: v for k, v in fields.items() if k not in (*CAPTION_FIELDS, *CUT_CAPTION_FIELDS)}
    fields, kept = under_metadata(fields, CAPTION_FIELDS)
    if kept:
        fields["metadata"] = kept
    return fields


def cut_custom_fields(custom: dict) -> dict:
    """A cut supervision's ``custom`` as its captioned cut keeps it, as :func:`input_fields`
    keeps a flat record's fields: its own fields named like :data:`CUT_CAPTION_FIELDS` (a
    corpus's ``global_captions``) under ``metadata``, not overwritten by the new captions; the
    captions of a cut an earlier ``clsp caption --as-cuts`` wrote (its ``caption_provenance`` a
    caption backend's) are replaced, not kept."""
    if caption_provenance(custom.get("caption_provenance")):
        custom = {k: v for k, v in custom.items() if k not in CUT_CAPTION_FIELDS}
    custom, kept = under_metadata(custom, CUT_CAPTION_FIELDS)
    if kept:
        custom["metadata"] = kept
    return custom


def clip_path(record: dict) -> str:
    """The record's audio file: the reader's resolved ``_path`` if set, else ``audio``; InputError if none."""
    path = record.get("audio")
    if not isinstance(path, str) or not path:
        raise InputError(f"record {record.get('id')!r} has no 'audio' path")
    resolved = record.get("_path")  # set by the record reader: relative to the manifest's folder
    return resolved if isinstance(resolved, str) and resolved else path


def load_clip(record: dict):
    """The record's audio (16 kHz mono tensor), honouring its segment and channel
    (``clsp.record_audio``) or its Lhotse cut."""
    from clsp.audio import record_span
    from clsp.cuts import cut_seconds
    from clsp.record_audio import load_record_audio

    path = clip_path(record)
    if record.get("_cut") is None:
        _check_length(path, *record_span({**record, "_path": path}))
    elif cut_seconds(record["_cut"]) > MAX_CAPTION_SECONDS:
        raise AudioError(f"cut {record.get('id')!r}: too long to caption (at most {MAX_CAPTION_SECONDS:.0f} s)")
    return load_record_audio({**record, "_path": path})


def _check_length(path: str, start, end) -> None:
    """Refuse clips too long to measure in memory (the measurements grow with the length)."""
    from clsp.audio import audio_duration

    try:
        lo = float(start) if start is not None else 0.0
        hi = min(float(end), audio_duration(path)) if end is not None else audio_duration(path)
    except (TypeError, ValueError):
        return  # load_audio names the bad field
    if hi - lo > MAX_CAPTION_SECONDS:
        raise AudioError(f"{path}: {hi - lo:.0f} s is too long to caption (at most {MAX_CAPTION_SECONDS:.0f} s); "
                         "give 'start'/'end' or split the file")


def select_captions(
    record: dict, candidates: dict[str, list[str]], wave=None, ranker=None, keep: dict | None = None,
) -> dict[str, Any]:
    """Filter candidates by the rules, optionally rank them by CLSP similarity, keep the best.

    ``keep`` maps a kind ('global'/'finegrained') to how many captions to keep (all if absent).
    """
    transcript = _transcript(record)
    out: dict[str, Any] = {"rejected": []}
    for kind, field in (("global", "global_captions"), ("finegrained", "finegrained_captions")):
        if kind not in candidates:
            continue
        kept, rejected = filter_captions(candidates[kind], kind, transcript)
        out["rejected"] += [r.to_dict() for r in rejected]
        n = (keep or {}).get(kind) or len(kept)
        if ranker is not None and wave is not None and len(kept) > 1:
            ranked = rank_by_similarity(ranker, wave, kept)
            kept = [c for c, _ in ranked]
            out[f"{kind}_similarity"] = [round(s, 6) for _, s in ranked][:n]
        out[field] = kept[:n]
    if not any(out.get(f) for f in OUTPUT_FIELDS):
        reasons = "; ".join(sorted({r["reason"] for r in out["rejected"]})) or "no caption was produced"
        raise CaptionRejectedError(f"record {record.get('id')!r}: every candidate caption broke a rule ({reasons})")
    return out


def measure_record(record: dict, captioner: AcousticCaptioner, speaker: bool = True):
    """The acoustic measurements of a record's clip (bounded by the file's own bandwidth);
    ``speaker=False``: without the speaker log-odds (``measure_records`` adds them batched)."""
    return _measure_clip(record, captioner, speaker)[0]


def _measure_clip(record: dict, captioner: AcousticCaptioner, speaker: bool):
    from clsp.record_audio import record_sample_rate

    wave = load_clip(record)
    try:
        m = captioner.measure(wave, source_rate=record_sample_rate({**record, "_path": clip_path(record)}),
                              speaker=speaker)
    except AudioError as exc:
        if clip_path(record) in str(exc):
            raise
        raise AudioError(f"{clip_path(record)}: {exc}") from None  # the measurement's reason, with the file
    return m, wave


def measure_records(records: list[dict], captioner: AcousticCaptioner) -> list:
    """``measure_record`` of each record, in order: its measurements or the ``ClspError`` that
    stopped it; the speaker log-odds of the measured clips come from one batched pass."""
    out: list = []
    measured = []
    for record in records:
        try:
            m, wave = _measure_clip(record, captioner, speaker=False)
        except ClspError as exc:
            out.append(exc)
            continue
        out.append(m)
        measured.append((m, wave))
    captioner.add_speaker_logits(measured)
    return out


def caption_acoustic(record: dict, captioner: AcousticCaptioner, measurements=None) -> dict:
    """One output record from the acoustic backend (``measurements``: taken earlier, else now)."""
    m = measurements if measurements is not None else measure_record(record, captioner)
    fields = captioner.caption_measurements(m, _metadata(record), rec_id=record.get("id"))
    selected = select_captions(record, {"global": fields["global_captions"],
                                        "finegrained": fields["finegrained_captions"]})
    out = input_fields(record)
    out.update(selected)
    out.update({"attributes": fields["attributes"], "measurements": fields["measurements"],
                "inferred": fields["inferred"], "provenance": captioner.provenance()})
    if "unused_metadata" in fields:
        out["unused_metadata"] = fields["unused_metadata"]
    return out


def caption_model_batch(records: list[dict], captioner, ranker=None, keep: dict | None = None) -> list[dict | ClspError]:
    """Output records (or the error of each failed record) for a batch, model backend."""
    results: list[dict | ClspError] = [None] * len(records)  # type: ignore[list-item]
    waves, live = [], []
    for i, rec in enumerate(records):
        try:
            waves.append(load_clip(rec))
            live.append(i)
        except ClspError as exc:
            results[i] = exc
    if live:
        batch = [records[i] for i in live]
        raw = captioner.caption_batch(waves, [_metadata(r) for r in batch], [r.get("id") for r in batch])
        for i, wave, cands in zip(live, waves, raw):
            rec = records[i]
            try:
                selected = select_captions(rec, cands, wave, ranker, keep)
            except ClspError as exc:
                results[i] = exc
                continue
            given = set(_metadata(rec))
            results[i] = {**input_fields(rec), **selected, "inferred": [k for k in MODEL_DESCRIBES if k not in given],
                          "provenance": captioner.provenance()}
    return results
