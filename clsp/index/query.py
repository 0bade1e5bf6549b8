"""Turning query records (vectors, captions or audio clips) into index hits, in order.

Queries are read in batches: captions and clips are embedded with the model (exactly as
``clsp embed`` does), vectors are taken as given, and each batch is searched in one FAISS
call. Every input item gives one result: its hits or the error that stopped it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from itertools import chain
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from clsp.errors import ClspError, ConfigError, InputError
from clsp.index.vectors import VectorIndex
from clsp.index.records import (MatrixNotGivenError, check_row_positions, check_usable, holds_vector, is_npy_name,
                                load_matrix, record_vector)
from clsp.index.store import check_provenance, model_option, use_model_fix
from clsp.records import Item, base_dir_of, batched, iter_items, resolve_path, upstream_error
from clsp.results import Result, SearchHit, SearchHits, SinglePass


@dataclass
class SearchSettings:
    """Search-time options shared by ``query`` and ``eval``."""

    k: int = 10
    threshold: float | None = None
    nprobe: int | None = None
    ef: int | None = None
    rerank: int | None = None
    threads: int | None = None
    query_field: str = "auto"  # what a query record is searched with: auto, embedding, text or audio

    def search_kwargs(self) -> dict[str, Any]:
        return {"nprobe": self.nprobe, "ef": self.ef, "rerank": self.rerank, "threads": self.threads}


class QueryEncoder:
    """Embeds caption and audio queries with a model loaded on first use.

    The model (a name for ``clsp.models.load_model``, or a loaded model) defaults to the one
    recorded in the index; a model whose provenance differs from the index's is refused
    before any query is embedded.
    """

    def __init__(self, index: VectorIndex, model=None, device: str = "auto", batch_size: int = 16):
        self.loaded = None  # a name loads on first use (vector queries need no model, nor torch)
        if model is not None and not isinstance(model, (str, os.PathLike)):
            from clsp.models.checkpoint import as_model

            self.loaded = as_model(model)  # a loaded model as it is; another object: TypeError
        name = getattr(self.loaded, "name", None) or "the model given" if self.loaded is not None else model
        self.index, self.name, self.device, self.batch_size = index, None if model is None else str(name), device, batch_size
        self._encoders = None

    def load(self):
        """The encoders, the model loaded and checked against the index on the first call."""
        if self._encoders is None:
            from clsp.errors import ModelError, ModelNotFoundError
            from clsp.models import load_model
            from clsp.similarity import ModelEncoders

            name = self.name or self.index.info.model
            if not name:
                raise ConfigError("the index does not record its model: pass --model to embed text or audio queries")
            try:
                net = self.loaded if self.loaded is not None else load_model(name)
            except ModelError as exc:
                if self.name:
                    raise
                raise ModelNotFoundError(f"the index was built with model {name!r}, which does not load by that name "
                                         f"({exc}): pass --model with that model's directory") from None
            fix = (use_model_fix(self.index.info.model, "that built the index") if self.name else
                   f"the model named {name!r} is not the one that built the index: pass --model with that model's directory")
            check_provenance(self.index.info, net.provenance(), net.provenance()["dim"], f"queries embedded by {name}", fix)
            self._encoders = ModelEncoders(net, self.batch_size, self.device)
        return self._encoders

    def embed(self, kind: str, values: list) -> list[np.ndarray | ClspError]:
        if not values:
            return []
        enc = self.load()
        return enc.embed_text(values) if kind == "text" else enc.embed_audio(values)


QUERY_FIELDS = ("auto", "embedding", "text", "audio")


def parse_query(record: dict[str, Any], matrix: np.ndarray | None, position: int, base: Path | None,
                field: str = "auto", metric: str | None = None):
    """``("vector", array)``, ``("text", str)`` or ``("audio", Side)`` for one query record.

    ``field`` "auto": a record holding its vector (``embedding``, or a ``row`` of ``matrix``,
    as ``clsp embed`` writes them beside the ``audio`` or ``text`` they came from) is that
    vector; a ``row`` with the embedding provenance and no matrix is an error asking for
    ``--npy``; else its ``text`` or its ``audio``, and a record with both (a clip and its
    caption) is an ``InputError`` asking which (``--query-field``); a record with neither and a
    ``row`` but no matrix is a :class:`~clsp.index.records.MatrixNotGivenError` asking for
    ``--npy``. "embedding", "text" or
    "audio" use that one, an ``InputError`` naming the query when it is missing. ``metric`` is
    the index's: a vector beyond float32 is searched by its direction for cosine and refused
    for ``ip`` and ``l2`` (``clsp.index.records.record_vector``).
    """
    where = f"query {record.get('id')!r}"
    has_text = isinstance(record.get("text"), str) and bool(record["text"].strip())
    has_audio = isinstance(record.get("audio"), str) and bool(record["audio"].strip())
    if field == "auto":
        if holds_vector(record, matrix is not None) or (matrix is not None and "text" not in record
                                                           and "audio" not in record):
            field = "embedding"
        elif has_text and has_audio:
            raise InputError(f"{where}: has both 'text' and 'audio'; say which one to search with: "
                             "--query-field text (the caption) or --query-field audio (the clip)")
        elif has_text or has_audio:
            field = "text" if has_text else "audio"
        elif isinstance(record.get("text"), str) or isinstance(record.get("audio"), str):
            empty = "text" if isinstance(record.get("text"), str) else "audio"
            raise InputError(f"{where}: its '{empty}' is empty; give a caption or an audio file to search with")
        elif "row" in record and "error" not in record:
            raise MatrixNotGivenError(f"{where}: 'row' {record['row']!r} points into a matrix (as clsp embed --npy "
                                      "writes it), but none was given: give it with --npy (npy= in Python)")
        else:
            raise upstream_error(record, where) or InputError(f"{where}: needs an 'embedding', a 'text' or an 'audio' field")
    if field == "embedding":
        vec = record_vector(record, matrix, position, metric)  # the index's metric: a vector beyond float32
        return "vector", check_usable(vec, record, where, nonzero=False, position=position)
    if field == "text" and has_text:
        return "text", record["text"]
    if field == "audio" and has_audio:
        from clsp.similarity import record_audio_side

        return "audio", record_audio_side(record, where, base)
    raise InputError(f"{where}: no non-empty '{field}' field (--query-field {field})")


@dataclass
class GivenQuery(Item):
    """A query given as a caption (``--text``, ``texts=``) or a clip (``--audio``, ``audios=``,
    an audio file as the query source): searched with that, whatever ``--query-field`` says
    of the query records."""


def _is_audio_file(path: str) -> bool:
    """Whether a query source is an audio file (searched with as a clip, as ``--audio``)."""
    import os

    from clsp.inputs import sniff_file
    from clsp.streams import is_stream_node

    return os.path.isfile(path) and not is_stream_node(path) and sniff_file(path) == "audio"


def query_items(source: str | Iterable[Any] | None = None, texts: Sequence[str] = (), audios: Sequence[str] = (),
                npy: str | None = None, order: Sequence[str] | None = None, field: str = "auto"
                ) -> tuple[Iterator[Item], np.ndarray | None, Path | None]:
    """``(items, matrix, base)`` of search queries: one item per ``texts`` / ``audios`` value,
    then the records of ``source`` (JSONL, ``-`` for stdin, or a ``.npy`` matrix whose rows are
    the queries ``row-N``, or a list of query records: dicts or ``Item`` s, their relative audio
    paths against the working directory). The given queries come texts first, then audios, or interleaved as
    ``order`` says: ``"text"`` or ``"audio"`` per given query (as ``--text`` and ``--audio``
    stood on the command line; ``ConfigError`` when its counts are not those of ``texts`` and
    ``audios``). ``matrix`` is what ``row`` fields point into (``npy``), ``base`` the folder
    relative audio paths resolve against. Without ``source`` and with given queries, stdin is
    not read. ``field`` (``SearchSettings.query_field``) ``text``: a plain line of ``source`` is
    a caption (as ``clsp embed --modality text`` reads it), not an audio path."""
    from clsp.records import check_sequence

    check_sequence(texts, "texts", "captions")
    check_sequence(audios, "audios", "audio paths")
    texts = list(texts)  # a generator is read once, here
    source = os.fspath(source) if isinstance(source, os.PathLike) else source
    if source is not None and not isinstance(source, str):
        records = _query_records(source)
    npy = os.fspath(npy) if isinstance(npy, os.PathLike) else npy
    audios = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in audios]
    kinds = list(order) if order is not None else ["text"] * len(texts) + ["audio"] * len(audios)
    if kinds.count("text") != len(texts) or kinds.count("audio") != len(audios) or len(kinds) != len(texts) + len(audios):
        raise ConfigError(f"order: {len(kinds)} kinds for {len(texts)} texts and {len(audios)} audios; give "
                          "'text' or 'audio' once per given query")
    pending = {"text": iter(texts), "audio": iter(audios)}
    given = []
    for n, kind in enumerate(kinds):
        value = next(pending[kind])
        given.append(GivenQuery(index=n, id=value, record={"id": value, kind: value}))
    if source is None and given:
        return iter(given), None, None
    if source is not None and not isinstance(source, str):
        from clsp.records import as_items

        matrix = load_matrix(npy) if npy else None
        start = len(given)
        return chain(given, (replace(item, index=start + item.index) for item in as_items(records))), matrix, Path.cwd()
    if source not in (None, "-") and not is_npy_name(source) and _is_audio_file(source):
        given.append(GivenQuery(index=len(given), id=source, record={"id": source, "audio": source}))  # as --audio
        return iter(given), None, None
    source = source or "-"
    if is_npy_name(source):
        mat = load_matrix(source)
        rows = (Item(index=n, id=f"row-{n}", record={"id": f"row-{n}", "row": n}) for n in range(len(mat)))
        return chain(given, rows), mat, None
    matrix = load_matrix(npy) if npy else None
    if field == "text":  # plain lines are captions, named by their text as --text queries are
        return chain(given, map(_named_by_text, iter_items(source, modality="text"))), matrix, base_dir_of(source)
    return chain(given, iter_items(source, modality="embeddings")), matrix, base_dir_of(source)


def _query_records(source: Any) -> list:
    """The query records of a Python caller (dicts with ``text``, ``audio``, ``embedding`` or
    ``row``, or ``Item`` s) as a list; ``TypeError`` for anything else, pointing at ``texts``
    and ``audios`` for plain strings."""
    try:
        records = list(source)
    except TypeError:
        raise TypeError(f"queries: a query file (path, '-' or a .npy matrix) or a list of query records, "
                        f"got {type(source).__name__}") from None
    for n, rec in enumerate(records):
        if isinstance(rec, (str, os.PathLike)):
            raise TypeError(f"queries[{n}]: a query record (a dict with 'text', 'audio', 'embedding' or 'row'); give "
                            "captions as texts=[...] and audio paths as audios=[...]")
        if not isinstance(rec, (dict, Item)):
            raise TypeError(f"queries[{n}]: a query record (a dict with 'text', 'audio', 'embedding' or 'row'), got "
                            f"{type(rec).__name__}")
    return records


def _named_by_text(item: Item) -> Item:
    """A caption query read from a plain line (or a record of only a ``text``) named by its text,
    as a ``--text`` query is, rather than by its line number."""
    rec = item.record
    if item.ok and set(rec) == {"id", "text"} and re.fullmatch(r"line-\d+", str(rec["id"])):
        return replace(item, id=rec["text"], record={"id": rec["text"], "text": rec["text"]})
    return item


def _vectors_for(batch: list[Item], index: VectorIndex, encoder: QueryEncoder, matrix, base,
                 field: str = "auto", unknown: list | None = None) -> list:
    """One vector or error per item of the batch; ``unknown`` collects the first vector query
    without provenance (warned about once)."""
    unknown = [] if unknown is None else unknown
    out: list[Any] = [None] * len(batch)
    pending: dict[str, list[tuple[int, Any]]] = {"text": [], "audio": []}
    for n, item in enumerate(batch):
        if not item.ok:
            out[n] = item.error
            continue
        try:
            own = "auto" if isinstance(item, GivenQuery) else field  # a given caption or clip is what it is
            kind, value = parse_query(item.record, matrix, item.index, base, own, index.info.metric)
            if kind == "vector":
                prov = item.record.get("provenance")
                if prov is not None and not isinstance(prov, dict):
                    raise InputError(f"query {item.id!r}: 'provenance' must be an object (as clsp embed writes it), "
                                     f"not {type(prov).__name__}")
                if index.info.metric == "cosine" and not np.asarray(value).any():
                    raise InputError(f"query {item.id!r}: its vector is all zeros, which has no direction for "
                                     "cosine search")
                check_provenance(index.info, prov, value.shape[0], f"query {item.id!r}",
                                 f"embed the queries with the index's model: clsp embed --model {model_option(index.info.model)}")
                if index.info.model and not (prov or {}).get("model") and not unknown:
                    unknown.append(item.id)  # said once per run: a matrix of one's own queries is allowed
                    logging.getLogger("clsp.index").warning(
                        f"query {item.id!r} (and any like it) has no 'provenance' saying which model made its vector: "
                        f"taken to come from the index's model, {index.info.model!r}; queries written by clsp embed carry it "
                        "and are checked")
                out[n] = value
            else:
                pending[kind].append((n, value))
        except ClspError as exc:
            out[n] = exc
    for kind, todo in pending.items():
        for (n, _), vec in zip(todo, encoder.embed(kind, [v for _, v in todo])):
            if not isinstance(vec, ClspError) and not np.isfinite(vec).all():
                vec = InputError(f"query {batch[n].id!r}: the model's embedding of its '{kind}' holds NaN or "
                                 "infinite values")
            out[n] = vec
    return out


def search_items(
    index: VectorIndex,
    items: Iterable[Item],
    settings: SearchSettings,
    encoder: QueryEncoder,
    matrix: np.ndarray | None = None,
    base: Path | None = None,
    batch_size: int = 256,
) -> Iterator[tuple[Item, list[dict] | ClspError]]:
    """``(item, hits)`` or ``(item, error)`` for each query item, in input order. With a
    ``matrix``, query records that hold no vector, text or audio take its row at their
    position; after the last query, ``InputError`` when they do and the queries are not one
    per row (a lost line shifts every later query onto another row), or when they are mixed
    with records naming their ``row``."""
    unknown: list = []
    placed: list = []  # the id of the first query given the matrix row at its position
    seen, named_rows = 0, False
    for batch in batched(_noting_positions(items, matrix, placed), max(batch_size, 1)):
        vectors = _vectors_for(batch, index, encoder, matrix, base, settings.query_field, unknown)
        good = [n for n, v in enumerate(vectors) if not isinstance(v, ClspError)]
        results: dict[int, Any] = {n: v for n, v in enumerate(vectors) if isinstance(v, ClspError)}
        if good:
            try:
                mat = np.stack([np.asarray(vectors[n], dtype=np.float32) for n in good])
                hits = index.search(mat, settings.k, threshold=settings.threshold, **settings.search_kwargs())
                results.update(zip(good, hits))
            except InputError:
                for n in good:  # a bad vector in the batch: search one by one to blame it alone
                    try:
                        results[n] = index.search(vectors[n], settings.k, threshold=settings.threshold,
                                                  **settings.search_kwargs())[0]
                    except InputError as exc:
                        results[n] = exc
        for n, item in enumerate(batch):
            seen = max(seen, item.index + 1)
            named_rows = named_rows or (item.ok and isinstance(item.record, dict) and "row" in item.record)
            yield item, results[n]
    if matrix is not None:
        check_row_positions(placed[0] if placed else None, seen, len(matrix), named_rows, noun="queries", one="query",
                            holds="'row', 'embedding', 'text' or 'audio'")


def _noting_positions(items: Iterable[Item], matrix, placed: list) -> Iterator[Item]:
    """The items, the id of the first that will take the matrix row at its position noted in ``placed``."""
    for item in items:
        rec = item.record if item.ok and isinstance(item.record, dict) else None
        if not placed and matrix is not None and rec is not None and not any(
                k in rec for k in ("row", "embedding", "text", "audio", "error")):
            placed.append(item.id)
        yield item


class SearchRun(SinglePass):
    """The queries of one search, iterated (once: a second loop raises ``RuntimeError``) as one
    ``Result[SearchHits]`` each, in input order.

    ``base`` is the folder the queries' relative audio paths resolved against (None for
    given texts/clips and ``.npy`` queries).
    """

    def __init__(self, index: VectorIndex, items: Iterable[Item], settings: SearchSettings, encoder: QueryEncoder,
                 matrix: np.ndarray | None, base: Path | None, batch_size: int):
        self.index, self.items, self.settings, self.encoder = index, items, settings, encoder
        self.matrix, self.base, self.batch_size = matrix, base, batch_size

    def __iter__(self) -> Iterator[Result[SearchHits]]:
        self._start("clsp.search")
        return self._results()

    def _results(self) -> Iterator[Result[SearchHits]]:
        for item, found in search_items(self.index, self.items, self.settings, self.encoder, self.matrix, self.base,
                                        self.batch_size):
            if isinstance(found, ClspError):
                yield Result(item, error=found)
            else:
                rid = (item.record or {}).get("id")  # the query's id as it came (an integer stays one)
                qid = rid if isinstance(rid, int) and not isinstance(rid, bool) else item.id
                yield Result(item, SearchHits(qid, [SearchHit.from_dict(h) for h in found]))


def search(index: str | Path | VectorIndex, queries: str | Iterable[Any] | None = None, *, texts: Sequence[str] = (),
           audios: Sequence[str] = (), k: int = 10, settings: SearchSettings | None = None, npy: str | None = None,
           model=None, device: str = "auto", batch_size: int = 256, order: Sequence[str] | None = None) -> SearchRun:
    """Search an index (a directory from ``clsp search build``, or a loaded ``VectorIndex``)
    with caption ``texts``, audio files ``audios`` and/or the query records of ``queries``
    (see :func:`query_items`, also for ``order``); ``settings`` overrides ``k``.

    Captions and clips are embedded by ``model``, a name or directory for
    ``clsp.models.load_model`` or a loaded model (default: the index's model); its provenance
    must match the index's (``ProvenanceError`` otherwise; ``TypeError`` for another object).
    The index and query file are opened at once, so ``ConfigError``/``InputError`` for them
    raise here; so do the model's errors (``ModelNotFoundError``, ``ProvenanceError``) when a
    ``model`` is given or there are ``texts`` or ``audios`` to embed (otherwise the index's
    model loads at the first query that needs it). Each query's own error is in its ``Result``.
    """
    from clsp.index.folder import load_index

    if not isinstance(index, VectorIndex):
        index = load_index(index)
    items, matrix, base = query_items(queries, texts, audios, npy, order, (settings or SearchSettings(k)).query_field)
    encoder = QueryEncoder(index, model, device)
    if model is not None or texts or audios:
        encoder.load()
    return SearchRun(index, items, settings or SearchSettings(k), encoder, matrix, base, batch_size)
