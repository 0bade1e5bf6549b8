"""Choosing, training and tuning FAISS index structures for CLSP embeddings.

Kept apart from :mod:`clsp.index.folder` so the policy (which structure for which corpus, how
many threads, which knobs) can be read and tested without touching files.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from clsp.errors import ConfigError

EXACT_LIMIT = 100_000
"""Below this many vectors an exact (Flat) index is chosen when no factory is given."""

_LOSSY = re.compile(r"PQ|SQ|LSH|RaBitQ|RQ|LSQ", re.IGNORECASE)
_IVF = re.compile(r"IVF(\d+)")


def parse_memory(text: str | int | None) -> int | None:
    """Parse a memory budget such as ``"4G"``, ``"512MiB"`` or ``1000000`` into bytes."""
    if text is None or isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(f"memory budget {text!r}: expected a size such as 512M, 4G or 4GiB")
    unit = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2).lower()]
    return int(float(match.group(1)) * unit)


def nlist_for(count: int) -> int:
    """A power-of-two number of IVF lists near 4 * sqrt(count), at least 16."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(count, 1)))))


def pq_subquantizers(dim: int, budget_per_vector: float) -> int | None:
    """The largest PQ code size (bytes, dividing ``dim``) that fits the per-vector budget."""
    for m in (128, 96, 64, 48, 32, 24, 16, 8, 4):
        if m <= budget_per_vector and dim % m == 0 and m <= dim:
            return m
    return None


def choose_factory(count: int, dim: int, max_memory: int | None = None) -> str:
    """Pick an ``index_factory`` string for ``count`` vectors of ``dim`` floats.

    Exact Flat search below :data:`EXACT_LIMIT` vectors (when it fits the budget); above it
    an inverted file with full vectors (IVF-Flat), or product-quantized codes (IVF-PQ) when
    full vectors would not fit ``max_memory`` bytes.
    """
    flat_bytes = count * dim * 4
    fits = max_memory is None or flat_bytes * 1.1 <= max_memory
    if count < EXACT_LIMIT and fits:
        return "Flat"
    nlist = nlist_for(count)
    if fits:
        return f"IVF{nlist},Flat"
    overhead = nlist * dim * 4 + count * 8  # centroids + stored ids
    per_vector = (max_memory - overhead) / max(count, 1)
    m = pq_subquantizers(dim, per_vector)
    if m is None:
        raise ConfigError(
            f"memory budget {max_memory} bytes is too small for {count} vectors of dim {dim}"
        )
    return f"IVF{nlist},PQ{m}"


def is_lossy(factory: str) -> bool:
    """True when the factory stores compressed codes, so scores are approximate."""
    return bool(_LOSSY.search(factory))


def is_exact(factory: str) -> bool:
    """True for brute-force structures that return exactly the nearest neighbours."""
    return factory.replace(" ", "") in {"Flat", "IDMap,Flat"}


def train_size(factory: str, count: int) -> int:
    """How many vectors to sample for training (IVF k-means and PQ codebooks)."""
    need = 10_000 if is_lossy(factory) else 0
    match = _IVF.search(factory)
    if match:
        need = max(need, 40 * int(match.group(1)))
    return min(count, max(need, 1))


def training_sample(vectors: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """A reproducible random subset of rows, in their original order."""
    if size >= len(vectors):
        return np.ascontiguousarray(vectors)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size, replace=False))
    return np.ascontiguousarray(vectors[rows])


def default_knobs(factory: str) -> dict:
    """Search-time defaults recorded with a new index (``nprobe`` for IVF, ``ef`` for HNSW)."""
    knobs: dict = {}
    match = _IVF.search(factory)
    if match:
        knobs["nprobe"] = max(8, int(match.group(1)) // 256)
    if "HNSW" in factory.upper():
        knobs["ef"] = 128
    return knobs


def resolve_threads(threads: int | None = None) -> int:
    """Thread count: the argument, else the SLURM allocation, else the CPUs of this machine."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        return threads
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def apply_search_knobs(index, nprobe: int | None = None, ef: int | None = None) -> None:
    """Set ``nprobe`` on any IVF level and ``efSearch`` on any HNSW level of ``index``."""
    import faiss

    if nprobe is not None:
        try:
            faiss.extract_index_ivf(index).nprobe = int(nprobe)
        except RuntimeError:
            pass
    if ef is not None:
        for level in _levels(index):
            hnsw = getattr(level, "hnsw", None)
            if hnsw is not None:
                hnsw.efSearch = int(ef)


def _levels(index):
    """The index and the indexes it wraps (pre-transforms, refine, IVF quantizer)."""
    import faiss

    seen = [faiss.downcast_index(index)]
    for attr in ("index", "base_index", "quantizer"):
        inner = getattr(seen[0], attr, None)
        if inner is not None:
            seen.extend(_levels(inner))
    return seen
