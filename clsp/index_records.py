"""Embedding records (``clsp embed`` output) to index rows and query vectors.

A record carries its vector inline (``"embedding": [...]``) or as ``"row"`` of a ``.npy``
matrix written beside it; its ``provenance`` says which model made it. Everything else
in the record is metadata kept beside the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from clsp.errors import InputError, ProvenanceError
from clsp.records import Item, iter_items, public_fields

NOT_METADATA = ("embedding", "row", "provenance")


def load_matrix(path: str | Path) -> np.ndarray:
    """A float32 (n, d) matrix from ``.npy`` (memory-mapped), with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # a corrupt header can raise ValueError, SyntaxError, TokenError, EOFError...
        raise InputError(f"{p}: not a readable .npy matrix ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 2:
        raise InputError(f"{p}: expected a (count, dim) matrix, got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise InputError(f"{p}: expected a float matrix, got dtype {arr.dtype}")
    return arr


def record_vector(record: dict[str, Any], matrix: np.ndarray | None = None, position: int | None = None) -> np.ndarray:
    """The embedding of a record: inline ``embedding``, or ``row`` (else its position) in ``matrix``."""
    if "embedding" in record:
        try:
            vec = np.asarray(record["embedding"], dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"record {record.get('id')!r}: 'embedding' is not a list of numbers") from None
        if vec.ndim != 1 or vec.size == 0:
            raise InputError(f"record {record.get('id')!r}: 'embedding' must be a flat non-empty list")
        return vec
    if matrix is None:
        raise InputError(f"record {record.get('id')!r}: no 'embedding' field (or give the .npy matrix)")
    row = record.get("row", position)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(matrix):
        raise InputError(f"record {record.get('id')!r}: row {row!r} is not in the matrix of {len(matrix)} rows")
    return np.asarray(matrix[row], dtype=np.float32)


def record_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """The fields kept beside the index: everything but the vector, its row and provenance."""
    meta = {k: v for k, v in public_fields(record).items() if k not in NOT_METADATA}
    meta["id"] = str(record["id"])
    return meta


def same_provenance(first: dict | None, other: dict | None, where: str) -> None:
    """Refuse a record whose model differs from the first record's."""
    if not first or not other:
        return
    for key in ("model", "checksum", "dim"):
        if first.get(key) is not None and other.get(key) is not None and first[key] != other[key]:
            raise ProvenanceError(
                f"{where}: embeddings of model {other.get('model')!r} ({key} {other[key]}) mixed with "
                f"model {first.get('model')!r} ({key} {first[key]})"
            )


def iter_embedding_items(source: str, matrix: np.ndarray | None = None) -> Iterator[tuple[Item, np.ndarray | None]]:
    """``(item, vector)`` per input line; ``vector`` is None when the item carries an error.

    ``source`` is a JSONL file (or ``-``); with ``matrix`` the records point at its rows.
    A ``.npy`` source without records yields one item per row, with ids ``row-N``.
    """
    if str(source).endswith(".npy"):
        mat = load_matrix(source)
        for n in range(len(mat)):
            yield Item(index=n, id=f"row-{n}", record={"id": f"row-{n}"}), np.asarray(mat[n], dtype=np.float32)
        return
    for item in iter_items(source, modality="embeddings"):
        if not item.ok:
            yield item, None
            continue
        rec = item.record
        if "error" in rec and "embedding" not in rec and "row" not in rec:
            err = rec["error"] if isinstance(rec["error"], dict) else {}
            item.error = InputError(f"record {item.id!r} is an upstream error: {err.get('message', rec['error'])}")
            yield item, None
            continue
        try:
            yield item, record_vector(rec, matrix, item.index)
        except InputError as exc:
            item.error = exc
            yield item, None


def collect_embeddings(source: str, matrix: np.ndarray | None = None):
    """All usable embeddings of ``source``: ``(vectors (N, D) float32, records, provenance, skipped)``.

    ``skipped`` lists the items left out, each with its ``error`` (unreadable, no vector, a
    dimension unlike the first record's). Mixed models raise ``ProvenanceError``.
    """
    vecs: list[np.ndarray] = []
    recs: list[dict[str, Any]] = []
    skipped: list[Item] = []
    prov = None
    for item, vec in iter_embedding_items(source, matrix):
        if vec is not None and vecs and vec.shape != vecs[0].shape:
            vec, item.error = None, InputError(f"record {item.id!r}: dimension {vec.shape[0]}, earlier records {vecs[0].shape[0]}")
        if vec is None:
            skipped.append(item)
            continue
        rec_prov = item.record.get("provenance") if isinstance(item.record.get("provenance"), dict) else None
        same_provenance(prov, rec_prov, f"{source}: record {item.id!r}")
        prov = prov or rec_prov
        vecs.append(vec)
        recs.append(item.record)
    mat = np.stack(vecs) if vecs else np.zeros((0, 0), np.float32)
    return mat, recs, prov, skipped
