"""Retrieval metrics with CLSP's definitions: R@k and mAP@10 from the first relevant rank.

For each query, ``rank`` is the 0-based position of its best-ranked relevant candidate.
R@k = mean(rank < k); mAP@10 = mean(1 / (rank + 1) if rank < 10 else 0) (the reciprocal
rank within the top ten, as in CLSP's evaluation). Ties count against the query: a relevant
item ranks below every non-relevant candidate with an equal score, so a constant scorer
earns no credit. Scores within ``TIE_TOLERANCE`` times the query's largest absolute score
are equal: the same caption embedded in two batches gets vectors up to about 1e-7 apart, and
which side of a tie it landed on must not depend on that rounding (relative to the scores'
own size, so that inner products or distances of small vectors are not all ties). All values are fractions in [0, 1]; a metric over no queries is None,
and so is one that no ranking could miss (R@k where a query has fewer than k non-relevant candidates).
Similarities or embeddings holding NaN/inf are refused (``InputError`` naming the query or
row): a NaN compares false with everything and would otherwise rank first.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from clsp.errors import InputError
from clsp.metrics.bootstrap import bootstrap_ci

DEFAULT_KS = (1, 5, 10)
MAP_CUTOFF = 10
NO_RELEVANT = np.iinfo(np.int64).max
TIE_TOLERANCE = 1e-6


def _tie_slack(scores) -> float:
    """How far apart two of a query's ``scores`` may be and still tie: ``TIE_TOLERANCE`` times
    their largest absolute finite value."""
    finite = np.abs(np.asarray(scores, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return TIE_TOLERANCE * float(finite.max()) if finite.size else 0.0


def _matrix(x) -> np.ndarray:
    """A float64 numpy matrix from numpy arrays or (CPU or GPU) torch tensors."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def check_finite(matrix: np.ndarray, what: str, row_name: str = "row") -> np.ndarray:
    """Refuse (``InputError``) a matrix with NaN/inf, naming the first bad row and column."""
    bad = ~np.isfinite(matrix)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{what}: {row_name} {r} holds a non-finite value ({matrix[r, c]}) at column {c}")
    return matrix


def first_relevant_ranks(sim, relevant: Sequence[Iterable[int]], nonfinite: str = "error") -> np.ndarray:
    """0-based rank of the best relevant candidate for each query row of ``sim`` (Q, C).

    ``relevant[q]`` holds candidate column indices; queries with no relevant candidate get
    :data:`NO_RELEVANT` (a miss at every cutoff). A NaN/inf similarity raises ``InputError``
    (``nonfinite="error"``), or with ``nonfinite="miss"`` (validation of a model being
    trained) ranks below every number, so a query whose similarities to every relevant
    candidate are NaN is a miss, never a hit.
    """
    sim = _matrix(sim)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a (queries, candidates) matrix, got shape {sim.shape}")
    if nonfinite == "error":
        check_finite(sim, "similarity matrix", "query")
    if len(relevant) != sim.shape[0]:
        raise ValueError(f"{len(relevant)} relevance sets for {sim.shape[0]} queries")
    ranks = np.full(sim.shape[0], NO_RELEVANT, dtype=np.int64)
    for q, rel in enumerate(relevant):
        cols = np.fromiter(set(rel), dtype=np.int64)
        if cols.size == 0:
            continue
        if cols.min() < 0 or cols.max() >= sim.shape[1]:
            raise ValueError(f"query {q}: relevant index out of range 0..{sim.shape[1] - 1}")
        row = np.where(np.isnan(sim[q]), -np.inf, sim[q])  # a NaN similarity never ranks above anything
        best = row[cols].max()
        if np.isneginf(best):
            continue  # no finite similarity to a relevant candidate: a miss
        mask = np.ones(row.shape[0], dtype=bool)
        mask[cols] = False
        ranks[q] = int(np.count_nonzero(row[mask] >= best - _tie_slack(row)))
    return ranks


def ranks_from_hits(hit_ids: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]],
                    scores: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """Ranks of the first relevant id in each ranked hit list (a miss when absent). With the
    hits' ``scores`` (similarities or distances, in the lists' order), ties count against the
    query as in ``first_relevant_ranks``: non-relevant hits listed after it whose score is
    within ``TIE_TOLERANCE`` of its score rank above it too."""
    ranks = np.full(len(hit_ids), NO_RELEVANT, dtype=np.int64)
    for q, (hits, rel) in enumerate(zip(hit_ids, relevant)):
        rel = set(rel)
        for pos, hid in enumerate(hits):
            if hid in rel:
                ranks[q] = pos
                if scores is not None:
                    row, at = scores[q], scores[q][pos]
                    slack = _tie_slack(row)
                    ranks[q] += sum(1 for j in range(pos + 1, len(hits))
                                    if hits[j] not in rel and abs(row[j] - at) <= slack)
                break
    return ranks


def per_query_scores(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-query 0/1 hits for each R@k and reciprocal rank for mAP@10."""
    ranks = np.asarray(ranks, dtype=np.int64)
    scores = {f"R@{k}": (ranks < k).astype(np.float64) for k in ks}
    within = ranks < MAP_CUTOFF
    rr = np.zeros(len(ranks), dtype=np.float64)
    rr[within] = 1.0 / (ranks[within] + 1)
    scores[f"mAP@{MAP_CUTOFF}"] = rr
    return scores


def metrics_from_ranks(
    ranks,
    ks: Sequence[int] = DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    prefix: str = "",
    max_ranks=None,
) -> dict[str, float]:
    """R@k and mAP@10 (fractions) with bootstrap 95% intervals (``..._lo``/``..._hi``).

    ``n_boot=0`` skips the intervals (cheap enough for training-time validation). With no
    queries every metric (and interval bound) is None, so the result stays valid JSON.
    ``max_ranks`` (per query: how many non-relevant candidates it has, so the worst rank its
    first relevant one can take) makes a metric that no ranking could miss None: R@k when a
    query has fewer than k non-relevant candidates (a pool of 4 gives R@5 = R@10 = 1 for any
    scores), mAP@10 when no query has any.
    """
    out: dict[str, float | None] = {}
    worst = np.asarray(max_ranks if max_ranks is not None else [], dtype=np.int64)
    for name, values in per_query_scores(ranks, ks).items():
        key = f"{prefix}{name}"
        out[key] = float(values.mean()) if len(values) else None
        if worst.size and (worst.max() == 0 if name.startswith("mAP") else worst.min() < int(name[2:])):
            out[key] = None  # every ranking scores it the same: it measures nothing
            if n_boot > 0:
                out[f"{key}_lo"] = out[f"{key}_hi"] = None
            continue
        if n_boot > 0:
            lo, hi = (bootstrap_ci(np.mean, [values], n_boot=n_boot, seed=seed, estimate=out[key]) if len(values)
                      else (None, None))
            # one query, or an interval that misses the estimate (too few resamples), has no
            # interval: (nan, nan) from bootstrap_ci, written as null
            out[f"{key}_lo"], out[f"{key}_hi"] = (None if v is None or v != v else float(v) for v in (lo, hi))
    out[f"{prefix}count"] = int(len(np.asarray(ranks)))  # a number of queries: an integer in JSON
    return out


def retrieval_metrics(
    sim,
    relevant: Sequence[Iterable[int]],
    ks: Sequence[int] = DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    prefix: str = "",
    nonfinite: str = "error",
) -> dict[str, float]:
    """Metrics for a (queries, candidates) similarity matrix and per-query relevant columns; a
    metric no ranking of these candidates could miss is None (``metrics_from_ranks``)."""
    ranks = first_relevant_ranks(sim, relevant, nonfinite)
    candidates = np.shape(sim)[1]
    return metrics_from_ranks(ranks, ks, n_boot, seed, prefix, [candidates - len(set(rel)) for rel in relevant])


def speech_text_retrieval(
    audio_emb,
    text_emb,
    text_to_audio: Sequence[int] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    prefix: str = "",
    nonfinite: str = "error",
    caption_keys: Sequence | None = None,
    key_clips: Mapping[Any, Iterable[int]] | None = None,
) -> dict[str, float]:
    """Both directions over a speech-text pool: keys ``s2t_R@1`` ... ``t2s_mAP@10``.

    ``text_to_audio[j]`` is the clip described by caption ``j`` (default: caption ``j``
    describes clip ``j``). A clip with several captions counts any of them as relevant for
    speech-to-text (clips without captions are not queried); each caption has its own clip
    as the one relevant item for text-to-speech, among all clips. Similarity is the dot product (cosine for unit-norm embeddings).
    ``caption_keys[j]`` (e.g. caption ``j``'s text; default: every caption its own) makes
    captions with equal keys one caption described by all their clips: speech-to-text ranks the
    distinct captions (each key once), that caption relevant to every clip that has it; for
    text-to-speech every such clip is relevant to each of its copies. Templated captions repeat ("A happy man." for many clips), and as
    distinct captions an identical text of another clip, tied with the clip's own, would rank
    above it (ties count against the query), so even a perfect model would score R@1 = 0.
    ``key_clips`` (key -> clip rows; default: the clips the given captions name) widens
    relevance in both directions: metrics over a subset of a pool's captions (a group) pass the
    whole pool's, so that for text-to-speech a clip of another subset whose caption has the same
    text is not counted as a miss, and for speech-to-text a caption of the subset whose text the
    clip has in another subset is relevant to it (only clips captioned in the subset are queried).
    NaN/inf embeddings raise ``InputError`` unless ``nonfinite="miss"`` (see ``first_relevant_ranks``).
    """
    audio, text = _matrix(audio_emb), _matrix(text_emb)
    if audio.ndim != 2 or text.ndim != 2 or audio.shape[1] != text.shape[1]:
        raise ValueError(f"embedding shapes {audio.shape} and {text.shape} do not match")
    if nonfinite == "error":
        check_finite(audio, "speech embeddings")
        check_finite(text, "caption embeddings")
    owner = np.arange(len(text)) if text_to_audio is None else np.asarray(text_to_audio, dtype=np.int64)
    if len(owner) != len(text):
        raise ValueError(f"{len(owner)} caption owners for {len(text)} captions")
    if len(owner) and (owner.min() < 0 or owner.max() >= len(audio)):
        raise ValueError(f"caption owner out of range 0..{len(audio) - 1}")
    if caption_keys is not None and len(caption_keys) != len(text):
        raise ValueError(f"{len(caption_keys)} caption keys for {len(text)} captions")
    sim = audio @ text.T
    keys = list(range(len(text))) if caption_keys is None else list(caption_keys)
    column: dict = {}  # key -> its column among the distinct captions
    clips_of: dict = {}  # key -> the clips that have a caption of that key
    for a, key in zip(owner.tolist(), keys):
        column.setdefault(key, len(column))
        clips_of.setdefault(key, set()).add(a)
    if len(column) < len(keys):  # speech to text ranks the distinct captions: the best of each key's copies
        cols = np.asarray([column[k] for k in keys])
        s2t_sim = np.full((len(audio), len(column)), -np.inf)
        for c in range(len(column)):
            s2t_sim[:, c] = sim[:, cols == c].max(axis=1)  # NaN where a copy's score is (a miss, or refused)
    else:
        s2t_sim = sim
    captions_of: list[set[int]] = [set() for _ in range(len(audio))]
    for a, key in zip(owner.tolist(), keys):
        captions_of[a].add(column[key])
    captioned = [i for i, caps in enumerate(captions_of) if caps]  # clips without a caption ask nothing
    for key, clips in (key_clips or {}).items():  # a text the clip has elsewhere in the pool describes it here too
        if key in column:
            for a in clips:
                if captions_of[a]:
                    captions_of[a].add(column[key])
    s2t = retrieval_metrics(s2t_sim[captioned], [sorted(captions_of[i]) for i in captioned], ks, n_boot, seed,
                            f"{prefix}s2t_", nonfinite)
    if key_clips is not None:
        clips_of = {key: clips_of[key] | set(key_clips.get(key, ())) for key in clips_of}
    t2s = retrieval_metrics(sim.T, [sorted(clips_of[key]) for key in keys], ks, n_boot, seed, f"{prefix}t2s_",
                            nonfinite)
    return {**s2t, **t2s}


def recall_curve(ranks, kmax: int = 10) -> dict[int, float]:
    """``{k: R@k}`` for k = 1..kmax from first-relevant ranks (:func:`metrics_from_ranks`)."""
    m = metrics_from_ranks(ranks, ks=range(1, kmax + 1), n_boot=0)
    return {k: m[f"R@{k}"] for k in range(1, kmax + 1)}


def pool_recall_curves(metrics: dict[str, float]) -> dict[str, dict[int, float]]:
    """Both directions of :func:`speech_text_retrieval` metrics (``s2t_R@k``, ``t2s_R@k``) as curves."""
    out: dict[str, dict[int, float]] = {}
    for prefix, name in (("s2t_", "speech to text"), ("t2s_", "text to speech")):
        ks = sorted(int(k[len(prefix) + 2:]) for k in metrics if k.startswith(prefix + "R@"))
        out[name] = {k: metrics[f"{prefix}R@{k}"] for k in ks if metrics[f"{prefix}R@{k}"] is not None}
    return out
