"""Index folders: build, load, extend and write them (one writer at a time, readers see whole versions).

The structure is chosen in :mod:`clsp.index.factory`, kept in memory by
:class:`clsp.index.vectors.VectorIndex` and laid out on disk by :mod:`clsp.index.store`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from clsp.errors import ConfigError, IndexFileError, InputError
from clsp.index.factory import choose_factory, default_knobs, is_lossy, resolve_threads, train_size, training_sample
from clsp.index.lock import DEFAULT_TIMEOUT, index_writer
from clsp.index.store import (
    INDEX_FILE,
    INFO_FILE,
    META_FILE,
    METRICS,
    VECTORS_FILE,
    IndexInfo,
    check_files,
    check_provenance,
    check_replaceable,
    read_info,
)
from clsp.index.vectors import VectorIndex, prepare_vectors

__all__ = ["build_index", "load_index", "add_to_index", "write_index", "index_exists", "writing", "check_add_settings"]

LOAD_ATTEMPTS = 5


def _faiss_metric(metric: str):
    import faiss

    if metric not in METRICS:
        raise ConfigError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


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
    modality: str | None = None,
) -> VectorIndex:
    """Build an index of ``vectors`` (n, d) with one metadata dict (with an ``id``) per row.

    ``factory`` is a FAISS ``index_factory`` string; without one the structure is chosen from
    the corpus size and ``max_memory`` (bytes). IVF/PQ structures are trained on a seeded
    random sample. ``store_vectors`` keeps exact vectors for re-ranking (default: only for
    compressed indexes). ``provenance`` is the embedding model's (model, checksum, dim...).
    ``modality`` (``"audio"`` or ``"text"``; default: the provenance's ``modality``) is what the
    vectors were embedded from: embeddings of the other modality are then refused by ``add``,
    and so are any of a stated modality next to vectors of none. ``ConfigError`` for another
    value."""
    import faiss

    if modality not in (None, "audio", "text"):
        raise ConfigError(f"build_index: modality must be 'audio', 'text' or None, got {modality!r}")
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
        config=prov.get("config") if isinstance(prov.get("config"), str) else None,
        sample_rate=prov.get("sample_rate"),
        modality=modality or (prov.get("modality") if prov.get("modality") in ("audio", "text") else None),
        cpu_lstm=prov.get("cpu_lstm") if isinstance(prov.get("cpu_lstm"), str) else None,
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
    if index.metric_type != _faiss_metric(info.metric):
        import faiss

        kind = {faiss.METRIC_L2: "l2", faiss.METRIC_INNER_PRODUCT: "inner-product (cosine or ip)"}
        raise IndexFileError(f"index {path}: {INDEX_FILE} compares vectors by "
                             f"{kind.get(index.metric_type, f'metric type {index.metric_type}')}, "
                             f"{INFO_FILE} says metric {info.metric!r}")
    if index.ntotal != meta.height or "id" not in meta.columns:
        raise IndexFileError(
            f"index {path}: {index.ntotal} vectors but {meta.height} metadata rows in {META_FILE}"
        )
    if info.count != index.ntotal:  # an index.json edited or copied from another version of the index
        raise IndexFileError(f"index {path}: {INFO_FILE} says count {info.count}, but {INDEX_FILE} holds "
                             f"{index.ntotal} vectors")
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

    ``build_options`` go to :func:`build_index` (factory, metric, max_memory, threads...; a
    metric of None is cosine). The decision to add or build is taken under the write lock, so
    parallel adds to a missing index build it once and add to it after; an add to an index
    refuses (``ConfigError``, see :func:`check_add_settings`) a factory or metric other than the
    index's as it is then, and a max_memory, and an add to a folder whose ``index.json`` is
    missing while it holds an index's data refuses to replace that data (``ConfigError``).
    Raises ``InputError`` when there is nothing to build from, ``IndexBusyError`` when another
    writer keeps the lock too long.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    lock = {"lock_timeout": lock_timeout, "on_wait": on_wait}
    with writing(path, **lock):
        if add and index_exists(path):
            check_add_settings(path, read_info(Path(path)), build_options.get("metric"), build_options.get("factory"),
                               build_options.get("max_memory"))
            if not len(metadata):
                return None
            return add_to_index(path, arr, metadata, provenance, build_options.get("threads"), **lock)
        if add:
            _refuse_unpublished_data(Path(path))
        if not len(metadata):
            raise InputError("no embeddings to index")
        if build_options.get("metric") is None:
            build_options.pop("metric", None)
        built = build_index(arr, metadata, provenance=provenance, **build_options)
        built.save(path, **lock)
        return built


def check_add_settings(path: str | Path, info: IndexInfo, metric: str | None = None, factory: str | None = None,
                       max_memory: int | str | None = None) -> None:
    """Refuse (``ConfigError``) settings given for an add to the index ``info`` at ``path`` that it
    was not built with: a ``metric`` or ``factory`` other than its own (None: the index's), or a
    ``max_memory`` (it picks a new index's factory). An index keeps the settings it was built with."""
    if max_memory is not None:
        raise ConfigError(f"--max-memory {max_memory}: it chooses the factory of a new index; --add appends to "
                          f"{path} with the factory it was built with ({info.factory})")
    for flag, given, have in (("--metric", metric, info.metric), ("--factory", factory, info.factory)):
        if given is not None and given != have:
            raise ConfigError(f"{flag} {given}: index {path} was built with {flag} {have}, and --add appends to it "
                              f"as it is; leave {flag} out, or build a new index with it")


def _refuse_unpublished_data(path: Path) -> None:
    """``ConfigError`` for an add to the folder ``path`` that has no ``index.json`` but holds an
    index's data (a ``data-*`` folder with files): building a new index there would delete it."""
    from clsp.index.store import is_data_folder_name

    if not path.is_dir():
        return
    for entry in sorted(path.iterdir()):
        if is_data_folder_name(entry.name) and entry.is_dir() and any(entry.iterdir()):
            raise ConfigError(f"index {path}: {INFO_FILE} is missing, but the folder holds an index's data "
                              f"({entry.name}/); --add appends to an index and will not replace that data with a "
                              f"new index: restore {INFO_FILE}, or -o another folder (a build without --add "
                              "replaces the folder)")
