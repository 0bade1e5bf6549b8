"""Retrieval evaluation (``clsp search eval``): queries against an index, or a speech-caption pool.

Metrics are CLSP's R@1/5/10 and mAP@10 with 95% bootstrap CIs (``clsp.metrics.retrieval``).
Records that cannot be used (unreadable, no relevant id, a caption naming no speech record)
are left out and reported through ``on_skip(what, reason)``; their count is ``failed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from clsp.errors import ClspError, ConfigError, InputError
from clsp.index.records import EmbeddingReader, OnSkip, load_matrix, read_vectors
from clsp.records import public_fields
from clsp.results import group_names


@dataclass
class Evaluation:
    """A retrieval summary (JSON-able), the number of records left out, and R@k curves
    (name -> {k: R@k}) when asked for. ``empty``: the input held no records at all (no query;
    in pool mode neither side held one), so nothing was evaluated."""

    summary: dict[str, Any]
    failed: int = 0
    curves: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        s = self.summary
        return not self.failed and not s.get("queries") and not s.get("speech") and not s.get("captions")


def relevant_ids(record: dict, key: str) -> list[str]:
    """The relevant id(s) of a query record (a string or int, or a non-empty list of them);
    ``InputError`` naming the query otherwise."""
    value = record.get(key)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"query {record.get('id')!r}: needs the relevant id(s) in field '{key}'")


def _hits_rank(hit_ids: list[str], relevant: list[str], scores: list[float], metric: str) -> int:
    """The rank of the first relevant hit (``NO_RELEVANT`` when none is listed), ties counting
    against the query: non-relevant hits listed after it with a tied score rank above it too.
    Two cosine scores tie within ``TIE_TOLERANCE`` times the query's largest absolute score (as
    in ``clsp.metrics.retrieval``; cosines lie in [-1, 1]); two ``ip`` or ``l2`` scores, whose
    size is the vectors', within ``TIE_TOLERANCE`` times the larger of the two, so that a far
    hit cannot make near ones ties."""
    from clsp.metrics.retrieval import NO_RELEVANT, TIE_TOLERANCE

    rel = set(relevant)
    pos = next((n for n, hid in enumerate(hit_ids) if hid in rel), None)
    if pos is None:
        return NO_RELEVANT
    at = scores[pos]
    top = max((abs(s) for s in scores if np.isfinite(s)), default=0.0)

    def tied(other: float) -> bool:
        scale = top if metric == "cosine" else max(abs(other), abs(at))
        return abs(other - at) <= TIE_TOLERANCE * scale

    return pos + sum(1 for j in range(pos + 1, len(hit_ids)) if hit_ids[j] not in rel and tied(scores[j]))


def evaluate_index(index_dir: str, queries: str = "-", relevant_key: str = "relevant", group_key: str | None = None,
                   n_boot: int = 1000, settings: Any = None, npy: str | None = None, model: str | None = None,
                   device: str = "auto", on_skip: OnSkip | None = None) -> Evaluation:
    """Search the index at ``index_dir`` with each query of ``queries`` (vectors, captions or
    audio, see ``clsp.index.query``) and score the rank of its first relevant hit.

    ``settings`` is a ``clsp.index.query.SearchSettings`` (k=10 by default). A query none of
    whose relevant ids is in the index cannot be scored: it is skipped and counted as failed
    (``on_skip`` is told), as a caption naming no speech record is in pool mode. Raises
    ``ConfigError``/``InputError`` for an unreadable index or query file, and ``ConfigError``
    when no query has ``relevant_key`` (a mistyped key).
    """
    from clsp.index import load_index
    from clsp.index.query import QueryEncoder, SearchSettings, query_items, search_items
    from clsp.metrics.retrieval import metrics_from_ranks, recall_curve

    from clsp.inputs import refuse_audio_file

    settings = settings or SearchSettings()
    if queries != "-":
        refuse_audio_file(queries, "queries")
    index = load_index(index_dir)
    items, matrix, base = query_items(queries, npy=npy)
    groups: dict[str, list] = {}
    worsts: dict[str, list] = {}  # per group, each query's count of non-relevant candidates
    failed, grouped = 0, False
    fields: set[str] = set()  # of the scored queries, named when none has group_key
    scored: list[tuple[Any, int, int]] = []  # per scored query: its group value, rank and non-relevant count
    known = set(index.ids)
    # the queries skipped for lacking relevant_key, reported once some query has it: when none
    # has, the key is mistyped (a usage error), not every query bad
    keyless: list[tuple[str, ClspError]] | None = []
    for item, result in search_items(index, items, settings, QueryEncoder(index, model, device), matrix, base):
        try:
            if isinstance(result, ClspError):
                raise result
            if keyless is not None and relevant_key in item.record:
                for where, exc in keyless:
                    if on_skip is not None:
                        on_skip(where, exc)
                keyless = None
            if keyless is not None and relevant_key not in item.record:
                failed += 1
                keyless.append((f"query {item.id}", InputError(f"query {item.id!r}: needs the relevant id(s) in "
                                                               f"field '{relevant_key}'")))
                continue
            relevant = relevant_ids(item.record, relevant_key)
            if not known.intersection(str(r) for r in relevant):
                raise InputError(f"query {item.id!r}: none of its relevant ids ({', '.join(map(repr, relevant[:5]))}"
                                 f"{', ...' if len(relevant) > 5 else ''}) is in the index")
        except ClspError as exc:
            failed += 1
            if on_skip is not None:
                on_skip(f"query {item.id}", exc)
            continue
        rank = _hits_rank([str(h["id"]) for h in result], relevant, [h["score"] for h in result], index.info.metric)
        worst = index.info.count - len(known.intersection(str(r) for r in relevant))  # non-relevant candidates
        grouped = grouped or (group_key is not None and item.record.get(group_key) is not None)
        if group_key is not None and not grouped and len(fields) < 200:
            fields.update(public_fields(item.record))
        scored.append((item.record.get(group_key) if group_key else None, rank, worst))
    if keyless:
        raise ConfigError(f"--relevant-key {relevant_key!r}: no query record has this field, so no query can be "
                          "scored; name the field that holds each query's relevant id(s)")
    names = group_names([value for value, _, _ in scored]) if group_key else []
    for n, (_, rank, worst) in enumerate(scored):
        for key in ["all"] + ([names[n]] if group_key else []):
            groups.setdefault(key, []).append(rank)
            worsts.setdefault(key, []).append(worst)
    overall = groups.pop("all", [])
    if group_key and overall and not grouped:
        raise _no_group_field(group_key, "query", fields)

    def metrics(key: str, ranks: list) -> dict:
        return metrics_from_ranks(ranks, n_boot=n_boot, max_ranks=worsts.get(key, []))

    summary = {"task": "retrieval", "index": str(index_dir), "queries": len(overall), "failed": failed,
               "model": index.info.model, "metrics": metrics("all", overall)}
    if group_key:
        summary["group_key"] = group_key
        summary["groups"] = {g: metrics(g, r) for g, r in sorted(groups.items())}
    curves = {name: recall_curve(r, settings.k) for name, r in [("queries to index", overall), *sorted(groups.items())]}
    return Evaluation(summary, failed, curves)


def _unit_rows(mat: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm: cosine, as in the index (the reader refused zero rows; rows of
    any finite size keep their direction, see :func:`clsp.index.vectors.unit_rows`)."""
    from clsp.index.vectors import unit_rows

    return unit_rows(mat)


def _caption_owners(speech: list[dict], captions: list[dict], match_key: str,
                    on_skip: OnSkip | None, left_out: dict[str, str] | None = None) -> tuple[list[int], list[int]]:
    """For each caption that names a speech record in ``match_key`` (else its own id): the
    speech row it describes, and the caption's row; the others are skipped (the reason names a
    speech record that was itself left out, ``left_out``: id -> why, as such). ``ConfigError``
    when no caption has ``match_key`` nor an id naming a speech record (a mistyped key)."""
    row_of: dict[str, int] = {}
    for n, r in enumerate(speech):
        if str(r["id"]) in row_of:
            raise InputError(f"speech record id {str(r['id'])!r} appears more than once in the pool (records "
                             f"{row_of[str(r['id'])] + 1} and {n + 1}): each clip is one retrieval target; "
                             "remove the repeated records")
        row_of[str(r["id"])] = n
    if captions and not any(match_key in rec or str(rec["id"]) in row_of for rec in captions):
        raise ConfigError(f"--match-key {match_key!r}: no caption record has this field, and no caption's own id "
                          "names a speech record, so no caption can be matched to its clip (clsp embed --modality "
                          "text writes 'audio_id')")
    owner, keep = [], []
    for n, rec in enumerate(captions):
        value = rec.get(match_key, rec["id"])
        if isinstance(value, bool) or not isinstance(value, (str, int)):  # null, true, a list: names no clip
            if on_skip is not None:
                on_skip(f"caption {rec['id']}", f"field '{match_key}' is {json.dumps(value)[:40]}, not the id of a "
                                                "speech record (a string or an integer)")
            continue
        target = str(value)
        if target not in row_of:
            if on_skip is not None and target in (left_out or {}):
                on_skip(f"caption {rec['id']}", f"its speech record {target!r} was left out ({left_out[target]})")
            elif on_skip is not None:
                why = (f"no speech record with id {target!r} (field '{match_key}')" if match_key in rec else
                       f"no field '{match_key}' (--match-key), and its own id {target!r} names no speech record")
                on_skip(f"caption {rec['id']}", why)
            continue
        owner.append(row_of[target])
        keep.append(n)
    return owner, keep


def caption_keys(captions: list[dict]) -> list:
    """What makes two caption records one caption in pool mode: their ``text`` (the same
    string), or for a record without one its position (a caption of its own)."""
    return [("text", r["text"]) if isinstance(r.get("text"), str) else ("record", n) for n, r in enumerate(captions)]


def shared_captions(keys: list, owner: list[int]) -> int:
    """How many captions have the text of a caption of another clip (``caption_keys``)."""
    clips: dict = {}
    for key, a in zip(keys, owner):
        clips.setdefault(key, set()).add(a)
    return sum(1 for key in keys if len(clips[key]) > 1)


def _refuse_shared_rows(speech_rows: dict, caption_rows: dict, npy: str | None) -> None:
    """A caption read from the row of a clip is that clip's speech vector (a perfect, false score):
    rows of one --npy used by both sides mean each side's rows point into its own matrix.
    Raises ``ConfigError`` naming the first such row."""
    from clsp.errors import ConfigError

    both = sorted(set(speech_rows) & set(caption_rows))
    if both:
        row = both[0]
        raise ConfigError(f"--speech and --captions point at the same rows of --npy {npy} ({len(both)} rows; row "
                          f"{row}: speech {speech_rows[row]!r}, caption {caption_rows[row]!r}): give each side the "
                          "matrix it was written with, --speech-npy SPEECH.npy --captions-npy CAPTIONS.npy")


_SIDES_FIX = ("give --speech the clips' embeddings (clsp embed) and --captions the captions' "
              "(clsp embed --modality text)")


def evaluate_pool(speech: str, captions: str, match_key: str = "audio_id", group_key: str | None = None,
                  n_boot: int = 1000, npy: str | None = None, curves: bool = False, on_skip: OnSkip | None = None,
                  on_read: Callable[[], None] | None = None, speech_npy: str | None = None,
                  captions_npy: str | None = None, on_caption_skip: OnSkip | None = None) -> Evaluation:
    """Speech-to-text and text-to-speech retrieval within a pool of speech and caption
    embeddings (both from one model), each caption relevant to the clip named in
    ``match_key`` (``clsp.metrics.retrieval.speech_text_retrieval``); captions with the same
    ``text`` are one caption of all their clips (``caption_keys``; the summary's
    ``shared_captions`` counts those that another clip's caption repeats).

    ``speech_npy`` / ``captions_npy`` are the matrices each side's ``row`` fields point into
    (default: ``npy`` for both). Skipped captions go to ``on_caption_skip`` (default:
    ``on_skip``; its ``counted`` attribute, when it has one, takes the captions read, and so
    passed to ``on_read``, that then match no clip), skipped speech records to ``on_skip``. Raises ``InputError`` when either side has no usable
    embedding or a speech id appears twice, ``ProvenanceError`` when the two come from different models or
    a side holds the other modality's embeddings (``provenance.modality``, as ``clsp embed`` writes it), ``ConfigError``
    when records of both sides claim the same rows of a single ``npy``.
    """
    from clsp.metrics.retrieval import pool_recall_curves, speech_text_retrieval

    shared = load_matrix(npy) if npy and not (speech_npy and captions_npy) else None
    reader = EmbeddingReader(load_matrix(speech_npy) if speech_npy else shared, modality="audio",
                             holds="--speech takes", fix=_SIDES_FIX)
    speech_rows: dict = {}
    left_out: dict[str, str] = {}  # speech records skipped, id -> why: their captions say so

    def speech_skipped(rec_id, why) -> None:
        left_out.setdefault(str(rec_id), str(why))
        if on_skip is not None:
            on_skip(rec_id, why)

    avecs, arecs, afail = read_vectors(reader, speech, speech_skipped, on_read, rows=speech_rows)
    # the same reader, so that captions must come from the speech side's model
    reader.matrix = load_matrix(captions_npy) if captions_npy else shared
    reader.modality, reader.holds = "text", "--captions takes"
    caption_rows: dict = {}
    on_caption_skip = on_caption_skip or on_skip
    tvecs, trecs, tfail = read_vectors(reader, captions, on_caption_skip, on_read, rows=caption_rows)
    if not speech_npy and not captions_npy:
        _refuse_shared_rows(speech_rows, caption_rows, npy)
    if not (avecs or tvecs or afail or tfail):  # two empty inputs: nothing to evaluate, as any empty input
        return Evaluation({"task": "speech-text retrieval", "speech": 0, "captions": 0, "failed": 0, "metrics": {}})
    if not avecs or not tvecs:
        empty = [f"{flag} {name} holds {'no record' if not (vecs or fail) else 'none that could be used'}"
                 for flag, name, vecs, fail in (("--speech", speech, avecs, afail), ("--captions", captions, tvecs, tfail))
                 if not vecs]
        raise InputError(f"pool mode needs at least one speech and one caption embedding: {'; '.join(empty)}")
    audio, text = _unit_rows(np.stack(avecs)), _unit_rows(np.stack(tvecs))
    # a caption matched to no clip was read (and counted so): its skip says it is counted already
    owner, keep = _caption_owners(arecs, trecs, match_key, getattr(on_caption_skip, "counted", on_caption_skip), left_out)
    failed = afail + tfail + len(trecs) - len(keep)
    owner_arr, text = np.asarray(owner, dtype=np.int64), text[keep]
    trecs = [trecs[n] for n in keep]
    keys = caption_keys(trecs)
    summary = {"task": "speech-text retrieval", "speech": len(audio), "captions": len(trecs),
               "shared_captions": shared_captions(keys, owner), "failed": failed,
               "model": (reader.provenance or {}).get("model"),
               "metrics": speech_text_retrieval(audio, text, owner_arr, n_boot=n_boot, caption_keys=keys)}
    out = Evaluation(summary, failed)
    if curves:
        ks = range(1, min(20, max(len(audio), len(set(keys)))) + 1)  # each direction up to its own candidates
        out.curves = pool_recall_curves(speech_text_retrieval(audio, text, owner_arr, ks=ks, n_boot=0,
                                                              caption_keys=keys))
    if group_key:
        if trecs and all(r.get(group_key) is None for r in trecs):
            raise _no_group_field(group_key, "caption", {k for r in trecs[:1000] for k in public_fields(r)})
        labels = np.asarray(group_names([r.get(group_key) for r in trecs]))
        key_clips: dict = {}  # a caption text repeated in another group is relevant to that group's clip too
        for key, a in zip(keys, owner):
            key_clips.setdefault(key, set()).add(a)
        summary["group_key"] = group_key
        summary["groups"] = {g: speech_text_retrieval(audio, text[labels == g], owner_arr[labels == g], n_boot=n_boot,
                                                      caption_keys=[k for k, lab in zip(keys, labels) if lab == g],
                                                      key_clips=key_clips)
                             for g in sorted(set(labels.tolist()))}
    return out


def _no_group_field(group_key: str, what: str, fields: set) -> ConfigError:
    """A ``--group-key`` that no record has: one group named None would pass for a grouping.
    Only the records evaluated count (a skipped one's field groups nothing), so the message
    says so, and names the ``fields`` they have."""
    shown = sorted(f for f in fields if f not in ("embedding", "row", "row_sha256", "provenance"))
    listed = ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")
    return ConfigError(f"--group-key {group_key!r}: no {what} record has this field among those evaluated (metrics "
                       f"per group need it; their fields: {listed or 'none'})")
