"""The in-memory index: a FAISS structure, its metadata table and its provenance.

Search, add and save live here; building, loading and the folder-level write sequence are
in :mod:`clsp.index.folder`. Hits are ``{"id", "score", **fields}`` (see :func:`make_hit`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from clsp.errors import ConfigError, IndexFileError, InputError
from clsp.index.factory import apply_search_knobs, is_lossy, resolve_threads
from clsp.index.lock import DEFAULT_TIMEOUT, index_writer
from clsp.index.store import (
    FORMAT_VERSION,
    all_integer_ids,
    INDEX_FILE,
    META_FILE,
    VECTORS_FILE,
    IndexInfo,
    check_provenance,
    check_replaceable,
    escaped_ids,
    frame_rows,
    metadata_frame,
    model_option,
    original_id,
    publish_version,
    upgrade_frame,
)

HIT_FIELDS = ("score", "metadata")
ADD_CHUNK = 65_536
DEFAULT_RERANK = 4


def check_vectors(arr: np.ndarray, metric: str, what: str = "vectors") -> None:
    """Reject matrices that are not (n, d), hold NaN/inf, or (for cosine) zero rows."""
    if arr.ndim != 2:
        raise InputError(f"{what}: expected a (count, dim) matrix, got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise InputError(f"{what}: row {int(np.argmax(bad))} holds NaN or infinite values")
    if metric == "cosine":
        zero = ~arr.any(axis=1)
        if zero.any():
            raise InputError(f"{what}: row {int(np.argmax(zero))} is a zero vector")
    elif len(arr):
        huge = ~norm_fits(arr)
        if huge.any():
            raise InputError(f"{what}: row {int(np.argmax(huge))} {NORM_TOO_LARGE.format(metric=metric)}")


NORM_TOO_LARGE = ("is too large: its squared norm is beyond float32 (above 3.4e38), so its {metric} scores would be "
                  "infinite; scale the vectors down, or index them with --metric cosine")


def norm_fits(arr: np.ndarray) -> np.ndarray:
    """Per row of ``arr`` (n, d) (or one vector): whether its squared L2 norm is a finite float32
    (``ip`` and ``l2`` scores of larger rows overflow to infinity)."""
    x = np.asarray(arr, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.einsum("...d,...d->...", x, x) <= float(np.finfo(np.float32).max)


def unit_rows(mat, *, inplace: bool = False) -> np.ndarray:
    """Rows scaled to unit L2 norm, for any finite non-zero row: each row is first divided by
    its largest absolute value (so its sum of squares lies in [1, dim]: no overflow to an
    infinite norm for rows of 1e20, no underflow to a zero norm for rows of 1e-30), then by
    its norm. Keeps a float dtype (float32 stays float32), else gives float64; ``inplace``
    scales a writable float array itself. Rows must be finite and not all zero (the callers
    refuse others by name); such a row comes out NaN."""
    arr = np.asarray(mat)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    elif not inplace:
        arr = arr.copy()
    if arr.size == 0:
        return arr
    with np.errstate(divide="ignore", invalid="ignore"):
        arr /= np.abs(arr).max(axis=-1, keepdims=True)
        arr /= np.linalg.norm(arr, axis=-1, keepdims=True)
    return arr


def prepare_vectors(vectors, metric: str, what: str = "vectors") -> np.ndarray:
    """A checked C-contiguous float32 (n, d) copy, unit-normalized for cosine (by
    :func:`unit_rows`: rows of any finite size keep their direction)."""
    arr = np.asarray(vectors, dtype=np.float32)
    arr = arr[None, :] if arr.ndim == 1 else arr
    check_vectors(arr, metric, what)
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    if metric == "cosine" and len(arr):
        unit_rows(arr, inplace=True)
    return arr


def _check_ids(new_ids: list[str], existing: set[str] | None = None, stored: list[str] | None = None) -> None:
    """``InputError`` naming the first id given twice: by its places among the records added
    (counted from 1, error records left out) or as one the index already holds. ``stored``:
    ``new_ids`` as the table keeps them (``stored_id``; default ``new_ids``), compared with the
    ``existing`` ones, which are stored texts too."""
    first: dict[str, int] = {}
    for n, (rid, key) in enumerate(zip(new_ids, stored if stored is not None else new_ids), start=1):
        if existing and key in existing:
            where = f"record {n} added, and already in the index"
        elif key in first:
            where = f"records {first[key]} and {n} added"
        else:
            first[key] = n
            continue
        made_up = re.fullmatch(r"(row|line)-[0-9]+", str(rid))
        hint = ("" if made_up is None else
                f": an id of the form {made_up[1]}-N is the one clsp gives a record that has none (the rows of a "
                ".npy input are row-0, row-1 ... in every run, the lines of a file line-1, line-2 ...), so two "
                "inputs without ids collide; give ids with --ids (a JSONL of records in row order) or an 'id' field")
        raise InputError(f"id {rid!r} appears more than once in the index ({where}; ids are compared as "
                         "text: 7 and \"7\" are one id); give each record its own id" + hint)


class VectorIndex:
    """A FAISS index, its metadata table and its provenance, loaded in memory (or mapped)."""

    def __init__(self, index, info: IndexInfo, meta, vectors=None, path: Path | None = None):
        self.index = index
        self.info = info
        self.meta = meta
        self.vectors = vectors
        self.path = path

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def ids(self) -> list[str]:
        """The records' ids, in index order, as the records had them (as text)."""
        return [original_id(text, self.info) for text in self.meta.get_column("id").to_list()]

    # ---------------------------------------------------------------- adding
    def add(self, vectors, metadata: list[dict], provenance: dict | None = None) -> None:
        """Append vectors and their metadata rows; refuses another model's embeddings, and
        embeddings of unknown origin (no provenance: a bare .npy matrix) next to a model's."""
        arr = np.asarray(vectors, dtype=np.float32)
        arr = arr[None, :] if arr.ndim == 1 else arr
        if arr.ndim != 2 or len(arr) != len(metadata):
            raise InputError(f"{len(metadata)} metadata rows for a matrix of shape {arr.shape}")
        theirs = (provenance or {}).get("model")
        if self.info.model and len(arr) and not theirs:
            from clsp.errors import ProvenanceError

            raise ProvenanceError(
                f"embeddings to add: no provenance says which model made them (records without 'provenance', or a bare "
                f".npy matrix), but the index "
                f"holds embeddings of model {self.info.model!r}; add records written by clsp embed (they carry "
                f"'provenance'), e.g. clsp embed ... --model {model_option(self.info.model)} --npy x.npy -o x.jsonl, then "
                "clsp search build x.jsonl --npy x.npy --add, or build a separate index")
        if not self.info.model and len(arr) and theirs and len(self):
            from clsp.errors import ProvenanceError

            raise ProvenanceError(f"embeddings to add: made by model {theirs!r}, but the index holds embeddings of "
                                  "unknown origin (built from records without provenance); they cannot be checked "
                                  "to be that model's: build a separate index for them (another -o, without --add)")
        made_as = (provenance or {}).get("modality")
        if self.info.modality and len(arr) and made_as in ("audio", "text") and made_as != self.info.modality:
            from clsp.errors import ProvenanceError

            raise ProvenanceError(f"embeddings to add: embedded from {made_as}, but the index holds {self.info.modality} "
                                  "embeddings: an index holds one modality; build a separate index for them "
                                  "(another -o, without --add)")
        if not self.info.modality and len(arr) and made_as in ("audio", "text"):
            if len(self):
                from clsp.errors import ProvenanceError

                raise ProvenanceError(f"embeddings to add: embedded from {made_as}, but the index does not say what "
                                      f"its {len(self)} embeddings were embedded from (built without a modality, e.g. "
                                      "by build_index without modality=); they cannot be checked to be "
                                      f"{made_as} embeddings: build a separate index for them (another -o, without "
                                      "--add), or rebuild this one with its modality")
            self.info.modality = made_as  # an empty index takes the modality of its first embeddings
        check_provenance(self.info, provenance, arr.shape[1], "embeddings to add",
                         "build a separate index for them (another -o, without --add), or embed them with "
                         f"the index's model (clsp embed --model {model_option(self.info.model)})")
        check_vectors(arr, self.info.metric, "embeddings to add")
        import polars as pl

        new_meta = metadata_frame(metadata)
        _check_ids([str(row.get("id")) for row in metadata], set(self.meta.get_column("id").to_list()),
                   new_meta.get_column("id").to_list())
        self.info.escaped_ids = {**self.info.escaped_ids, **escaped_ids(metadata)}
        if metadata:
            ints = all_integer_ids(metadata)
            self.info.integer_ids = ints if len(self) == 0 else self.info.integer_ids and ints
        self.meta = pl.concat([upgrade_frame(self.meta, self.info), new_meta], how="diagonal")
        self.info.format_version, self.info.json_columns = FORMAT_VERSION, []
        stored = []
        for start in range(0, len(arr), ADD_CHUNK):
            chunk = prepare_vectors(arr[start : start + ADD_CHUNK], self.info.metric, "embeddings")
            self.index.add(chunk)
            if self.info.stored_vectors:
                stored.append(chunk)
        if self.info.stored_vectors:
            old = [np.asarray(self.vectors)] if self.vectors is not None else []
            self.vectors = np.concatenate(old + stored) if old or stored else None
        self.info.count = len(self)
        if self.info.count != self.meta.height:
            raise IndexFileError(f"index holds {self.info.count} vectors but {self.meta.height} metadata rows")

    # ---------------------------------------------------------------- search
    def search_arrays(
        self,
        queries,
        k: int = 10,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        rerank: int | None = None,
        provenance: dict | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ``(scores, rows)`` per query, best first: ``(queries, min(k, count))`` arrays.

        Rows are -1 (scores NaN) where an approximate index found fewer candidates; a found
        row whose score is NaN/inf raises ``InputError`` naming the query and the indexed id.

        Scores are cosine / inner-product similarities (higher is better) or squared L2
        distances (lower is better) for ``metric="l2"``. ``rerank`` fetches ``k * rerank``
        candidates and re-scores them with the exact vectors (default: on for compressed
        indexes that stored their vectors).
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        check_provenance(self.info, provenance, q.shape[-1] if q.ndim == 2 else -1, "query vectors")
        q = prepare_vectors(q, self.info.metric, "query vectors")
        k_eff = min(k, len(self))
        scores = np.full((len(q), k_eff), np.nan, dtype=np.float32)
        rows = np.full((len(q), k_eff), -1, dtype=np.int64)
        if k_eff == 0 or len(q) == 0:
            return scores, rows
        import faiss

        faiss.omp_set_num_threads(resolve_threads(threads))
        knobs = {**self.info.knobs, **{k_: v for k_, v in (("nprobe", nprobe), ("ef", ef)) if v}}
        apply_search_knobs(self.index, knobs.get("nprobe"), knobs.get("ef"))
        factor = self._rerank_factor(rerank)
        fetch = min(len(self), k_eff * factor) if factor > 1 else k_eff
        dist, cand = self.index.search(q, fetch)
        if factor > 1:
            dist, cand = self._rerank(q, cand)
        scores[:, :k_eff] = dist[:, :k_eff]
        rows[:, :k_eff] = cand[:, :k_eff]
        scores[rows < 0] = np.nan
        self._check_scores(scores, rows)
        return scores, rows

    def _check_scores(self, scores: np.ndarray, rows: np.ndarray) -> None:
        """Refuse a NaN/inf score of a found row (it would rank anywhere), naming query and id."""
        bad = (rows >= 0) & ~np.isfinite(scores)
        if bad.any():
            q, j = (int(i) for i in np.argwhere(bad)[0])
            rid = original_id(self.meta.get_column("id")[int(rows[q, j])], self.info)
            raise InputError(f"query {q}: its score against indexed id {rid!r} is {scores[q, j]} (not finite)")

    def search(
        self, queries, k: int = 10, *, threshold: float | None = None, **kwargs
    ) -> list[list[dict]]:
        """Top-k hits per query as ``{"id", "score", **fields}`` dicts, best first.

        ``score`` is the similarity (distance for L2); the record's own fields named like
        :data:`HIT_FIELDS` are under ``"metadata"``. A cosine score is clipped to [-1, 1]
        (float32 rounding puts a vector's score against itself at 1.0000001 or 0.99999994).
        ``threshold`` keeps hits scoring at least that similarity (at most that distance for
        L2), compared at the 6 decimals scores are written with, so that a hit written with
        score 1.0 passes ``threshold=1.0``. Asking for more hits than the index holds gives
        every vector.
        """
        scores, rows = self.search_arrays(queries, k, **kwargs)
        if self.info.metric == "cosine":
            scores = np.clip(scores, -1.0, 1.0)
        keep = rows >= 0
        if threshold is not None:
            written = np.round(scores.astype(np.float64), 6)
            with np.errstate(invalid="ignore"):
                keep &= (written <= threshold) if self.info.metric == "l2" else (written >= threshold)
        flat = rows[keep]
        meta = frame_rows(self.meta[flat.tolist()], self.info) if flat.size else []
        out, pos = [], 0
        for qi in range(len(rows)):
            hits = []
            for score in scores[qi][keep[qi]]:
                hits.append(make_hit(float(score), meta[pos]))
                pos += 1
            out.append(hits)
        return out

    def _rerank_factor(self, rerank: int | None) -> int:
        if rerank is None:
            return DEFAULT_RERANK if self.info.stored_vectors and is_lossy(self.info.factory) else 1
        if rerank < 0:
            raise ConfigError(f"rerank must be 0 (off) or a candidate multiplier, got {rerank}")
        return max(rerank, 1)

    def _rerank(self, q: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Re-score candidates exactly and sort them again."""
        valid = cand >= 0
        flat = np.where(valid, cand, 0).ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        exact = self._exact_rows(uniq)[inverse].reshape(*cand.shape, -1)
        if self.info.metric == "l2":
            score = ((exact - q[:, None, :]) ** 2).sum(-1)
            order_key = np.where(valid, score, np.inf)
        else:
            score = np.einsum("qkd,qd->qk", exact, q)
            order_key = np.where(valid, -score, np.inf)
        order = np.argsort(order_key, axis=1, kind="stable")
        score = np.take_along_axis(score, order, 1).astype(np.float32)
        cand = np.take_along_axis(np.where(valid, cand, -1), order, 1)
        return score, cand

    def _exact_rows(self, rows: np.ndarray) -> np.ndarray:
        if self.vectors is not None:
            return np.asarray(self.vectors[rows], dtype=np.float32)
        import faiss

        try:
            faiss.extract_index_ivf(self.index).make_direct_map()
        except RuntimeError:
            pass
        try:
            return self.index.reconstruct_batch(rows.astype(np.int64))
        except RuntimeError as exc:
            raise ConfigError(
                f"index {self.info.factory!r} can neither reconstruct vectors nor holds stored "
                f"vectors, so it cannot re-rank ({str(exc).splitlines()[0]})"
            ) from None

    # ---------------------------------------------------------------- saving
    def save(self, path: str | Path, *, lock_timeout: float = DEFAULT_TIMEOUT, on_wait=None) -> Path:
        """Publish this index as the new version of the index folder ``path``.

        Holds the folder's write lock (waiting up to ``lock_timeout`` seconds, see
        :func:`clsp.index.lock.index_writer`); readers see the old or the new version whole.
        Raises ``OutputError`` for a target that exists and is not a clsp index.
        """
        import faiss

        path = Path(path)
        check_replaceable(path)
        self.info.count = len(self)
        self.meta = upgrade_frame(self.meta, self.info)
        self.info.format_version, self.info.json_columns = FORMAT_VERSION, []
        writers = {
            INDEX_FILE: lambda p: write_faiss(self.index, p),
            META_FILE: lambda p: self.meta.write_parquet(p),
        }
        if self.info.stored_vectors and self.vectors is not None:
            writers[VECTORS_FILE] = lambda p: np.save(p, np.asarray(self.vectors, dtype=np.float32))
        with index_writer(path, lock_timeout, on_wait):
            publish_version(path, writers, self.info)
        self.path = path
        return self.path


def write_faiss(index, path: Path) -> None:
    """``faiss.write_index`` through a Python file, so that a failed write (a full disk, a
    quota, a file-size limit) is the ``OSError`` with the system's reason, not faiss's text."""
    import faiss

    failed: list[OSError] = []
    with open(path, "wb") as fh:
        def write(chunk: bytes) -> int:
            try:
                fh.write(chunk)
            except OSError as exc:
                failed.append(exc)
                raise
            return len(chunk)

        try:
            faiss.write_index(index, faiss.PyCallbackIOWriter(write))
        except RuntimeError:
            if failed:
                raise failed[0] from None
            raise


def make_hit(score: float, fields: dict) -> dict:
    """One hit: ``id``, ``score`` and the record's fields, those named in HIT_FIELDS nested."""
    hit = {"id": fields["id"], "score": score}
    nested = {}
    for key, value in fields.items():
        if key in HIT_FIELDS:
            nested[key] = value
        elif key != "id":
            hit[key] = value
    if nested:
        hit["metadata"] = nested
    return hit
