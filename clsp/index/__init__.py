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

Modules: :mod:`~clsp.index.folder` (build, load, add, write), :mod:`~clsp.index.vectors`
(the in-memory index and its hits), :mod:`~clsp.index.store` (files and provenance),
:mod:`~clsp.index.factory` (which FAISS structure), :mod:`~clsp.index.lock` (the writer lock),
:mod:`~clsp.index.records` (embedding records in) and :mod:`~clsp.index.query` (queries out).

An index has one writer at a time (:func:`clsp.index.lock.index_writer`); readers load the
version published last, whole.
"""

from __future__ import annotations

from clsp.index.factory import choose_factory, parse_memory
from clsp.index.folder import add_to_index, build_index, index_exists, load_index, write_index, writing
from clsp.index.lock import IndexBusyError, index_writer
from clsp.index.query import QueryEncoder, SearchSettings, search_items
from clsp.index.records import EmbeddingReader, load_matrix, record_metadata
from clsp.index.store import IndexInfo, read_info
from clsp.index.vectors import HIT_FIELDS, VectorIndex, make_hit

__all__ = [
    "VectorIndex", "build_index", "load_index", "add_to_index", "write_index", "index_exists", "writing",
    "choose_factory", "parse_memory", "HIT_FIELDS", "make_hit", "IndexInfo", "read_info", "IndexBusyError",
    "index_writer", "EmbeddingReader", "load_matrix", "record_metadata", "QueryEncoder", "SearchSettings",
    "search_items",
]
