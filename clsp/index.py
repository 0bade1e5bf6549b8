"""FAISS indexes of CLSP embeddings with metadata and provenance.

    index = build_index(vectors, [{"id": "clip1", "path": "a.wav"}, ...], provenance=model.provenance())
    index.save("speech.idx")
    hits = load_index("speech.idx").search(text_vectors, k=10)   # [[{"id", "score", ...}, ...], ...]

Cosine similarity (normalized vectors, inner product) by default. Row ``i`` of the FAISS
structure is row ``i`` of the metadata table; ids are strings chosen by the user.

A hit is ``{"id", "score", **fields}``: ``score`` is always clsp's similarity (or L2
distance) and every other field of the indexed record follows under its own name, with its
JSON type. Record fields whose names a hit uses for itself (:data:`HIT_FIELDS`: ``score``,
``metadata``) are kept under ``hit["metadata"]`` instead, e.g. a MOS stored as ``score``
comes back as ``hit["metadata"]["score"]``.

An index has one writer at a time (:func:`clsp.index_lock.index_writer`); readers load the
version published last, whole.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from clsp.errors import ConfigError, IndexFileError, InputError
from clsp.index_factory import (
    apply_search_knobs,
    choose_factory,
    default_knobs,
    is_lossy,
    resolve_threads,
    train_size,
    training_sample,
)
from clsp.index_lock import DEFAULT_TIMEOUT, index_writer
from clsp.index_store import (
    FORMAT_VERSION,
    INDEX_FILE,
    INFO_FILE,
    META_FILE,
    METRICS,
    VECTORS_FILE,
    IndexInfo,
    check_files,
    check_provenance,
    check_replaceable,
    frame_rows,
    metadata_frame,
    publish_version,
    read_info,
    upgrade_frame,
)

__all__ = ["VectorIndex", "build_index", "load_index", "add_to_index", "choose_factory", "HIT_FIELDS"]

HIT_FIELDS = ("score", "metadata")
LOAD_ATTEMPTS = 5

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


def prepare_vectors(vectors, metric: str, what: str = "vectors") -> np.ndarray:
    """A checked C-contiguous float32 (n, d) copy, unit-normalized for cosine."""
    arr = np.asarray(vectors, dtype=np.float32)
    arr = arr[None, :] if arr.ndim == 1 else arr
    check_vectors(arr, metric, what)
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    if metric == "cosine" and len(arr):
        arr /= np.linalg.norm(arr, axis=1, keepdims=True)
    return arr


def _faiss_metric(metric: str):
    import faiss

    if metric not in METRICS:
        raise ConfigError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def _check_ids(new_ids: list[str], existing: set[str] | None = None) -> None:
    seen = set(existing or ())
    for rid in new_ids:
        if rid in seen:
            raise InputError(f"id {rid!r} appears more than once in the index")
        seen.add(rid)


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
        return self.meta.get_column("id").to_list()

    # ---------------------------------------------------------------- adding
    def add(self, vectors, metadata: list[dict], provenance: dict | None = None) -> None:
        """Append vectors and their metadata rows; refuses another model's embeddings."""
        arr = np.asarray(vectors, dtype=np.float32)
        arr = arr[None, :] if arr.ndim == 1 else arr
        if arr.ndim != 2 or len(arr) != len(metadata):
            raise InputError(f"{len(metadata)} metadata rows for a matrix of shape {arr.shape}")
        check_provenance(self.info, provenance, arr.shape[1], "embeddings to add")
        check_vectors(arr, self.info.metric, "embeddings to add")
        import polars as pl

        new_meta = metadata_frame(metadata)
        _check_ids(new_meta.get_column("id").to_list(), set(self.ids))
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
            rid = self.meta.get_column("id")[int(rows[q, j])]
            raise InputError(f"query {q}: its score against indexed id {rid!r} is {scores[q, j]} (not finite)")

    def search(
        self, queries, k: int = 10, *, threshold: float | None = None, **kwargs
    ) -> list[list[dict]]:
        """Top-k hits per query as ``{"id", "score", **fields}`` dicts, best first.

        ``score`` is the similarity (distance for L2); the record's own fields named like
        :data:`HIT_FIELDS` are under ``"metadata"``. ``threshold`` keeps hits scoring at
        least that similarity (at most that distance for L2). Asking for more hits than the
        index holds gives every vector.
        """
        scores, rows = self.search_arrays(queries, k, **kwargs)
        keep = rows >= 0
        if threshold is not None:
            with np.errstate(invalid="ignore"):
                keep &= (scores <= threshold) if self.info.metric == "l2" else (scores >= threshold)
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
        :func:`clsp.index_lock.index_writer`); readers see the old or the new version whole.
        Raises ``OutputError`` for a target that exists and is not a clsp index.
        """
        import faiss

        path = Path(path)
        check_replaceable(path)
        self.info.count = len(self)
        self.meta = upgrade_frame(self.meta, self.info)
        self.info.format_version, self.info.json_columns = FORMAT_VERSION, []
        writers = {
            INDEX_FILE: lambda p: faiss.write_index(self.index, str(p)),
            META_FILE: lambda p: self.meta.write_parquet(p),
        }
        if self.info.stored_vectors and self.vectors is not None:
            writers[VECTORS_FILE] = lambda p: np.save(p, np.asarray(self.vectors, dtype=np.float32))
        with index_writer(path, lock_timeout, on_wait):
            publish_version(path, writers, self.info)
        self.path = path
        return self.path


def index_exists(path: str | Path) -> bool:
    """True when ``path`` is an index folder (it has ``index.json``)."""
    return (Path(path) / INFO_FILE).is_file()


@contextmanager
def writing(path: str | Path, lock_timeout: float = DEFAULT_TIMEOUT, on_wait=None) -> Iterator[None]:
    """Hold the write lock of the index folder ``path`` for a read-modify-publish sequence.

    Refuses (``OutputError``) a path that exists and is not a clsp index; raises
    ``IndexBusyError`` when another writer keeps the lock past ``lock_timeout`` seconds.
    """
    check_replaceable(Path(path))
    with index_writer(path, lock_timeout, on_wait):
        yield


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


def build_index(
    vectors,
    metadata: list[dict],
    *,
    factory: str | None = None,
    metric: str = "cosine",
    provenance: dict | None = None,
    max_memory: int | None = None,
    store_vectors: bool | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> VectorIndex:
    """Build an index of ``vectors`` (n, d) with one metadata dict (with an ``id``) per row.

    ``factory`` is a FAISS ``index_factory`` string; without one the structure is chosen from
    the corpus size and ``max_memory`` (bytes). IVF/PQ structures are trained on a seeded
    random sample. ``store_vectors`` keeps exact vectors for re-ranking (default: only for
    compressed indexes). ``provenance`` is the embedding model's (model, checksum, dim...).
    """
    import faiss

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"embeddings: expected a (count, dim) matrix, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise InputError("embeddings: dimension 0")
    if len(arr) != len(metadata):
        raise InputError(f"{len(metadata)} metadata rows for {len(arr)} embeddings")
    faiss.omp_set_num_threads(resolve_threads(threads))
    count, dim = arr.shape
    prov = dict(provenance or {})
    factory = factory or choose_factory(count, dim, max_memory)
    info = IndexInfo(
        dim=dim,
        factory=factory,
        metric=metric,
        normalized=metric == "cosine" or bool(prov.get("normalized", False)),
        model=prov.get("model"),
        checksum=prov.get("checksum"),
        sample_rate=prov.get("sample_rate"),
        knobs=default_knobs(factory),
        stored_vectors=is_lossy(factory) if store_vectors is None else bool(store_vectors),
    )
    check_provenance(info, prov, dim, "embeddings")
    try:
        index = faiss.index_factory(dim, factory, _faiss_metric(metric))
    except RuntimeError as exc:
        raise ConfigError(f"factory {factory!r}: {str(exc).strip().splitlines()[-1]}") from None
    if not index.is_trained:
        size = train_size(factory, count)
        if count == 0:
            raise InputError(f"factory {factory!r} needs training vectors but none were given")
        sample = prepare_vectors(training_sample(arr, size, seed), metric, "training vectors")
        _train(index, sample, seed)
    import polars as pl

    empty = pl.DataFrame({"id": pl.Series([], dtype=pl.String)})
    built = VectorIndex(index, info, empty)
    built.add(arr, metadata, prov)
    return built


def _train(index, sample: np.ndarray, seed: int) -> None:
    """Train with a fixed seed and a modest k-means iteration count."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = seed
        ivf.cp.niter = 10
    except RuntimeError:
        pass
    try:
        index.train(sample)
    except RuntimeError as exc:
        raise ConfigError(f"training failed: {str(exc).strip().splitlines()[-1]}") from None


def load_index(path: str | Path, *, mmap: bool = True) -> VectorIndex:
    """Load the current version of an index folder; with ``mmap`` the FAISS data and stored
    vectors are mapped.

    ``index.json`` is resolved once per attempt; when a writer replaced the version being
    read (its files vanished), the new one is loaded instead. Raises ``IndexFileError``
    for a missing, corrupt or inconsistent index.
    """
    path = Path(path)
    for attempt in range(LOAD_ATTEMPTS):
        info = read_info(path)
        try:
            return _load_version(path, info, mmap)
        except IndexFileError:
            if attempt + 1 == LOAD_ATTEMPTS or not _replaced(path, info):
                raise
    raise AssertionError("unreachable")


def _replaced(path: Path, info: IndexInfo) -> bool:
    """True when ``index.json`` now points at another version than ``info``."""
    try:
        return read_info(path).data != info.data
    except IndexFileError:
        return False


def _load_version(path: Path, info: IndexInfo, mmap: bool) -> VectorIndex:
    import faiss
    import polars as pl

    data = check_files(path, info)
    index = None
    flags = [faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY, faiss.IO_FLAG_MMAP] if mmap else []
    for flag in flags + [0]:
        try:
            index = faiss.read_index(str(data / INDEX_FILE), flag)
            break
        except RuntimeError as exc:
            error = exc
    if index is None:
        raise IndexFileError(f"index {path}: {INDEX_FILE} is corrupt ({str(error).strip().splitlines()[-1]})")
    try:
        meta = pl.read_parquet(data / META_FILE)
    except Exception as exc:  # polars raises several unrelated types for bad files
        raise IndexFileError(f"index {path}: {META_FILE} is corrupt ({exc})") from None
    vectors = None
    if info.stored_vectors and (data / VECTORS_FILE).exists():
        try:
            vectors = np.load(data / VECTORS_FILE, mmap_mode="r" if mmap else None)
        except (ValueError, OSError) as exc:
            raise IndexFileError(f"index {path}: {VECTORS_FILE} is corrupt ({exc})") from None
    _check_consistent(path, info, index, meta, vectors)
    return VectorIndex(index, info, meta, vectors, path)


def _check_consistent(path: Path, info: IndexInfo, index, meta, vectors) -> None:
    if index.d != info.dim:
        raise IndexFileError(f"index {path}: {INDEX_FILE} has dimension {index.d}, {INFO_FILE} says {info.dim}")
    if index.ntotal != meta.height or "id" not in meta.columns:
        raise IndexFileError(
            f"index {path}: {index.ntotal} vectors but {meta.height} metadata rows in {META_FILE}"
        )
    if vectors is not None and vectors.shape != (index.ntotal, info.dim):
        raise IndexFileError(f"index {path}: {VECTORS_FILE} has shape {vectors.shape}")


def add_to_index(
    path: str | Path,
    vectors,
    metadata: list[dict],
    provenance: dict | None = None,
    threads: int | None = None,
    *,
    lock_timeout: float = DEFAULT_TIMEOUT,
    on_wait=None,
) -> VectorIndex:
    """Append embeddings to the index at ``path`` and publish the result as its new version.

    The load-add-publish runs under the index's write lock, so parallel adds are applied
    one after the other and none is lost; raises ``IndexBusyError`` when another writer
    holds the lock longer than ``lock_timeout`` seconds.
    """
    import faiss

    faiss.omp_set_num_threads(resolve_threads(threads))
    with index_writer(path, lock_timeout, on_wait):
        index = load_index(path, mmap=False)
        index.add(vectors, metadata, provenance)
        index.save(path)
    return index


def write_index(
    path: str | Path,
    vectors,
    metadata: list[dict],
    *,
    add: bool = False,
    provenance: dict | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
    on_wait=None,
    **build_options,
) -> VectorIndex | None:
    """Build the index folder ``path`` from ``vectors`` (replacing it), or with ``add`` append
    to it (building it when missing); returns the index written (None: nothing to add).

    ``build_options`` go to :func:`build_index` (factory, metric, max_memory, threads...).
    The decision to add or build is taken under the write lock, so parallel adds to a
    missing index build it once and add to it after. Raises ``InputError`` when there is
    nothing to build from, ``IndexBusyError`` when another writer keeps the lock too long.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    lock = {"lock_timeout": lock_timeout, "on_wait": on_wait}
    with writing(path, **lock):
        if add and index_exists(path):
            if not len(metadata):
                return None
            return add_to_index(path, arr, metadata, provenance, build_options.get("threads"), **lock)
        if not len(metadata):
            raise InputError("no embeddings to index")
        built = build_index(arr, metadata, provenance=provenance, **build_options)
        built.save(path, **lock)
        return built
