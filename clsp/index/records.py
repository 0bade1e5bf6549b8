"""Embedding records (``clsp embed`` output) to vectors: the one reader every command uses.

A record carries its vector inline (``"embedding": [...]``) or as ``"row"`` of a ``.npy``
matrix written beside it (``clsp embed --npy``); its ``provenance`` says which model made
it. Everything else in the record is metadata kept beside the index.
:class:`EmbeddingReader` resolves the vector, refuses non-finite or zero vectors naming the
record and field, and checks that every record comes from one model (the first record's,
or the one given) with :func:`same_provenance`. ``clsp search build``, ``search eval`` (pool
mode), ``search query`` and ``clsp classify`` read embedding records through it;
:func:`read_vectors` collects a whole file, :func:`index_embeddings` builds an index from one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from clsp.errors import ConfigError, InputError, ProvenanceError
from clsp.index.store import model_option, same_provenance, use_model_fix
from clsp.records import Item, iter_items, upstream_error
from clsp.results import VECTOR_FIELDS, embedding_provenance
from clsp.sniff import node_problem

NOT_METADATA = VECTOR_FIELDS


def holds_vector(record: dict[str, Any], matrix_given: bool) -> bool:
    """Whether a record carries a stored embedding to read rather than audio or text to embed:
    an inline ``embedding``, or a ``row`` of the ``--npy`` matrix (when one is given, or when
    the record's ``provenance`` is an embedding's, as ``clsp embed --npy`` writes it: a
    forgotten ``--npy``). Any other ``row`` and ``provenance`` (a spreadsheet row, a note) are
    the record's own fields: a record with ``audio`` is then a clip, as ``clsp embed`` reads it."""
    if "embedding" in record:
        return True
    return "row" in record and (matrix_given or embedding_provenance(record.get("provenance")))


def record_modality(record: dict, provenance: dict | None = None) -> str | None:
    """What an embedding record was embedded from: ``"audio"`` or ``"text"`` as its provenance
    (``provenance``, default the record's own) says, else as ``clsp embed`` writes records (only
    an ``audio`` or only a ``text`` field), else None."""
    theirs = record.get("provenance") if provenance is None else provenance
    made_as = theirs.get("modality") if isinstance(theirs, dict) else None
    if made_as in ("audio", "text"):
        return made_as
    has_text, has_audio = isinstance(record.get("text"), str), isinstance(record.get("audio"), str)
    return "text" if has_text and not has_audio else "audio" if has_audio and not has_text else None
ROW_CHECK = "row_sha256"  # written beside "row": the first 16 hex digits of the row's float32 bytes' SHA-256


def row_checksum(row: np.ndarray) -> str:
    """``row_sha256`` of a matrix row: the first 16 hex digits of the SHA-256 of its values as
    little-endian float32 (as ``clsp embed --npy`` writes them), so that a reader can tell the
    matrix a record was written with from a stale, reordered or foreign one."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(row, dtype="<f4").tobytes()).hexdigest()[:16]


def check_row(record: dict[str, Any], vec: np.ndarray, matrix: np.ndarray, where: str, row: int | None = None) -> None:
    """``InputError`` when ``record`` carries ``row_sha256`` and its row of ``matrix`` (``vec``,
    as float32) is not the vector it was written with. A matrix converted after writing to
    float64 or big-endian float32 holds the same values and is checked the same way; one
    converted to a narrower type (float16) cannot be checked, and is refused with the fix."""
    want = record.get(ROW_CHECK)
    if not isinstance(want, str) or row_checksum(vec) == want:
        return
    prov = record.get("provenance")
    dim = prov.get("dim") if isinstance(prov, dict) else None
    if isinstance(dim, int) and not isinstance(dim, bool) and matrix.ndim == 2 and dim != matrix.shape[1]:
        raise InputError(f"{where}: the --npy matrix holds {matrix.shape[1]}-d rows and this record's model gives "
                         f"{dim}-d vectors: it is the matrix of other records (another model); give the .npy "
                         "written together with these records")
    if matrix.dtype.itemsize < 4:
        raise InputError(f"{where}: the --npy matrix is {matrix.dtype} and the record's row_sha256 was written "
                         f"for the float32 row: give the float32 matrix clsp wrote (or drop row_sha256 from the "
                         "records to use this one unchecked)")
    raise InputError(f"{where}: row {record.get('row', row)!r} of the --npy matrix is not the vector this record "
                     "was written with (row_sha256 differs): the matrix was overwritten by another run, "
                     "reordered, or belongs to other records; give the .npy written together with these records")
OnSkip = Callable[[str, Any], None]  # (what was skipped, why)


def is_npy_name(path: str | Path | None) -> bool:
    """Whether an input is named as a NumPy matrix: ``*.npy`` (``E.NPY`` too)."""
    return path is not None and str(path).lower().endswith(".npy")


def load_matrix(path: str | Path) -> np.ndarray:
    """The ``(n, d)`` float matrix of a ``.npy`` file, memory-mapped read-only, its dtype kept
    as written (float16, float32, float64 ...; ``record_vector`` gives its rows as float32).

    Raises ``ConfigError`` when ``path`` is not a regular file (naming why: no such file, a
    folder, a device or pipe, which cannot be memory-mapped) or is another kind of file (no
    ``.npy`` magic bytes: audio, text such as records...) or a ``.npy`` that is not 2-D or not
    of a float dtype (another kind of matrix), ``InputError`` naming it for a ``.npy`` file that
    cannot be read (cut short, damaged)."""
    from clsp.runfiles import note_read
    from clsp.sniff import not_npy_kind

    p = Path(path)
    if not p.is_file():
        problem = node_problem(p) or "a folder, not a .npy file"
        raise ConfigError(f"{p}: {problem}")
    kind = not_npy_kind(p)
    if kind is not None:
        raise ConfigError(f"{p}: not a NumPy .npy matrix ({kind}); give the matrix that clsp embed --npy wrote")
    note_read(p)  # an output of this run may not replace it
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # a corrupt header can raise ValueError, SyntaxError, TokenError, EOFError...
        raise InputError(f"{p}: not a readable .npy matrix ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 2:
        raise ConfigError(f"{p}: expected a (count, dim) matrix, got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise ConfigError(f"{p}: expected a float matrix, got dtype {arr.dtype}")
    return arr


class MatrixNotGivenError(InputError):
    """A record holds ``row`` (a row of the matrix ``clsp embed --npy`` wrote) but no matrix
    was given; reported as an ``InputError``, so that callers can sum these up in one notice."""

    @property
    def type(self) -> str:
        return "InputError"


def record_vector(record: dict[str, Any], matrix: np.ndarray | None = None, position: int | None = None,
                  metric: str | None = None) -> np.ndarray:
    """The embedding of a record as float32: inline ``embedding`` (a list of JSON numbers:
    booleans and strings are refused naming the record), or ``row`` (else its position) in
    ``matrix``. A finite vector with values beyond float32 (a row of 1e39s) comes back scaled
    to unit length in float64 first, its direction kept (``metric`` ``ip`` or ``l2``, where its
    size matters, refuses it as too large); NaN and infinite values stay, for
    :func:`check_usable` to refuse."""
    if "embedding" in record:
        values = record["embedding"]
        if isinstance(values, list) and not NUMBER_TYPES.issuperset(map(type, values)):
            refuse_non_numbers(record, values)  # one pass over the types; the slow check only when it fails
        elif isinstance(values, np.ndarray) and values.dtype.kind not in "fiu":  # given in Python: bools, text
            raise InputError(f"record {record.get('id')!r}: 'embedding' is not a list of numbers "
                             f"(an array of {values.dtype})")
        try:
            with np.errstate(over="ignore"):  # values beyond float32 become inf: scaled below, or refused
                vec = np.asarray(values, dtype=np.float32)
        except OverflowError:  # an integer beyond float64 (JSON has no limit on digits)
            raise InputError(f"record {record.get('id')!r}: 'embedding' holds a number too large for a float") from None
        except (TypeError, ValueError):
            raise InputError(f"record {record.get('id')!r}: 'embedding' is not a list of numbers") from None
        if vec.ndim != 1 or vec.size == 0:
            raise InputError(f"record {record.get('id')!r}: 'embedding' must be a flat non-empty list")
        vec = _fit_float32(vec, values, record, position, metric)
        if "row" in record and isinstance(record.get(ROW_CHECK), str) and row_checksum(vec) != record[ROW_CHECK]:
            raise InputError(f"record {record.get('id')!r}: its 'embedding' is not the vector its row_sha256 names "
                             "(the record was edited after it was written, or joined from two records): keep one "
                             "of 'embedding' and 'row'")
        return vec
    if matrix is None:
        if "row" in record:
            raise MatrixNotGivenError(f"record {record.get('id')!r}: 'row' {record['row']!r} points into a matrix; "
                                      "give it with --npy (npy= in Python)")
        raise InputError(f"record {record.get('id')!r}: no 'embedding' field (or give the .npy matrix)")
    row = record.get("row", position)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(matrix):
        raise InputError(f"record {record.get('id')!r}: row {row!r} is outside the --npy matrix ({len(matrix)} rows)")
    with np.errstate(over="ignore"):  # a float64 row beyond float32: scaled below
        vec = np.asarray(matrix[row], dtype=np.float32)
    vec = _fit_float32(vec, matrix[row], record, position, metric)
    check_row(record, vec, matrix, f"record {record.get('id')!r}", row)
    return vec


NUMBER_TYPES = frozenset((float, int))  # what JSON numbers parse to (bool, a subclass of int, is not one)


def refuse_non_numbers(record: dict[str, Any], values: list) -> None:
    """``InputError`` naming the record, the first value that is no number and where it is:
    a boolean, a string (``"1_0"``, ``"\u0661"``: numpy would read these as numbers), null, an
    object. Numbers of other types (numpy's, from a caller in Python) pass; a nested list is
    left to the flat-list check."""
    import json

    for n, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)):
            kind = "a boolean"
        elif isinstance(value, (int, float, np.integer, np.floating, list, tuple)):
            continue
        elif isinstance(value, str):
            kind = "a string"
        elif value is None:
            kind = "null"
        else:
            kind = f"a {type(value).__name__}"
        try:
            shown = json.dumps(value, ensure_ascii=True)
        except (TypeError, ValueError):
            shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InputError(f"record {record.get('id')!r}: 'embedding' must be a list of JSON numbers, but value "
                         f"{n + 1} is {kind} ({shown}); booleans and strings are not embedding values")


def _fit_float32(vec: np.ndarray, values: Any, record: dict[str, Any], position: int | None,
                 metric: str | None) -> np.ndarray:
    """``vec`` (``values`` cast to float32) itself, or, when the cast overflowed a finite vector
    (values beyond 3.4e38), ``values`` scaled to unit length in float64 and then cast: cosine
    uses a vector by its direction. For ``metric`` ``ip`` or ``l2`` such a vector is refused
    (its scores would be infinite), as :func:`check_usable` refuses one whose norm overflows."""
    if np.isfinite(vec).all():
        return vec
    try:
        wide = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return vec
    if not np.isfinite(wide).all():
        return vec  # NaN or infinite as given: check_usable names it
    from clsp.index.vectors import NORM_TOO_LARGE, unit_rows

    if metric in ("ip", "l2"):
        raise InputError(f"record {record.get('id')!r}: {vector_source(record, position)} "
                         f"{NORM_TOO_LARGE.format(metric=metric)}")
    return unit_rows(wide).astype(np.float32)


def record_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """The fields kept beside the index: everything but the vector, its row in the --npy
    matrix, provenance and what reading the record added. A ``row`` beside an inline
    ``embedding`` points nowhere: it is the record's own field, and kept."""
    drop = NOT_METADATA if "embedding" not in record else tuple(k for k in NOT_METADATA if k not in ("row", ROW_CHECK))
    drop += _read_fields(record)
    meta = {k: v for k, v in record.items() if k not in drop}
    rid = record["id"]
    meta["id"] = rid if isinstance(rid, int) and not isinstance(rid, bool) else str(rid)  # an integer stays one
    return meta


def _read_fields(record: dict[str, Any]) -> tuple[str, ...]:
    """The private fields reading a record added (``clsp.records``): ``_path`` beside a clip's
    ``audio``, ``_cut`` and ``_cut_json`` of a Lhotse cut. A record's other fields, ``_``-prefixed
    ones included (``__index_level_0__`` of a pandas export), are its own and kept."""
    cut = ("_cut", "_cut_json") if "_cut" in record and "_cut_json" in record else ()
    return cut + (("_path",) if "_path" in record and (cut or "audio" in record) else ())


def vector_source(record: dict[str, Any], position: int | None = None) -> str:
    """Where a record's vector comes from, for messages: its field, or its matrix row (its
    ``row``, else ``position``: the row a record without ``row`` takes, its place in the file)."""
    return "'embedding'" if "embedding" in record else f"row {record.get('row', position)!r} of the --npy matrix"


def check_row_positions(placed: str | None, count: int, rows: int, named_row: bool, where: str = "",
                        noun: str = "records", one: str = "record", holds: str = "'row'") -> None:
    """``InputError`` when ``count`` records were read, the first of those placed in an
    ``rows``-row matrix by their position being ``placed`` (None: none was), and they are not
    one per row, or are mixed with records naming their row (``named_row``): a lost or extra
    line would shift every later vector onto another record."""
    if placed is None or (count == rows and not named_row):
        return
    why = (f"{count} {noun} for the {rows} rows of the --npy matrix" if count != rows
           else f"{noun} that name their 'row' are mixed with {noun}")
    raise InputError(f"{where}{why}; {noun} without {holds} (as {placed!r}) take the row at their position, so "
                     f"there must be one such {one} per row: give the records written with the matrix")


def check_usable(vec: np.ndarray, record: dict[str, Any], where: str, nonzero: bool = True,
                 position: int | None = None, metric: str | None = None) -> np.ndarray:
    """Refuse (``InputError`` naming ``where`` and the field, or the matrix row: the record's
    ``row``, else ``position``) a vector holding NaN/inf or, with ``nonzero``, all zeros; for
    an index of ``metric`` ``ip`` or ``l2``, one whose squared norm is beyond float32 (its
    scores would be infinite; cosine scales every finite row safely)."""
    if not np.isfinite(vec).all():
        raise InputError(f"{where}: {vector_source(record, position)} holds NaN or infinite values")
    if nonzero and not vec.any():
        raise InputError(f"{where}: {vector_source(record, position)} is all zeros")
    if metric in ("ip", "l2"):
        from clsp.index.vectors import NORM_TOO_LARGE, norm_fits

        if not norm_fits(vec):
            raise InputError(f"{where}: {vector_source(record, position)} {NORM_TOO_LARGE.format(metric=metric)}")
    return vec


class EmbeddingReader:
    """Vectors of embedding records, checked one by one.

    ``matrix`` is the ``--npy`` matrix the records' ``row`` fields point into. ``provenance``
    is the model the vectors must come from (e.g. the classifier's); without it the first
    record's provenance is the reference. ``nonzero`` refuses all-zero vectors (they have
    no direction for cosine); ``metric`` "ip" or "l2" refuses vectors whose squared norm is
    beyond float32 (their scores would be infinite). ``modality`` ("audio"/"text") is the kind of embedding every
    record must be; ``one_modality`` makes the first record's kind the rule; ``holds`` and
    ``fix`` word the refusal of another kind. ``positional``: the records are metadata of the
    matrix rows in order (``--ids``), so a record carrying its own ``embedding``, or a ``row``
    other than its position (``clsp embed --npy`` writes each record's own), is refused. After reading, ``provenance`` holds the reference and ``dim`` the vectors' dimension.
    """

    def __init__(self, matrix: np.ndarray | None = None, provenance: dict | None = None, nonzero: bool = True,
                 modality: str | None = None, one_modality: bool = False, holds: str | None = None,
                 fix: str | None = None, metric: str | None = None, positional: bool = False):
        self.matrix, self.nonzero, self.metric, self.positional = matrix, nonzero, metric, positional
        self.holds = holds  # how messages name what this reader reads ("--speech takes")
        self.fix = fix  # what to change when a record of the other modality comes
        self.provenance = dict(provenance) if provenance else None
        self.dim = int(provenance["dim"]) if provenance and provenance.get("dim") else None
        self.expected = self.dim is not None
        self.modality, self.one_modality = modality, one_modality or modality is not None
        self.unknown: str | None = None  # the first record read without provenance (its id)
        self.warned = False
        self.read_count = 0  # records read (usable or not)
        self.by_position: str | None = None  # the first record given the matrix row at its position (no 'row')
        self.named_row = False  # whether a record named its 'row'

    def vector(self, item: Item) -> np.ndarray:
        """The checked float32 (D,) vector of an item; raises ``InputError`` naming the record
        and field (missing, malformed, wrong dimension, NaN/inf, zero) or ``ProvenanceError``
        (another model, or a dimension other than the given model's); with ``positional``, an
        ``InputError`` for a record carrying its own ``embedding`` or ``row``."""
        self.read_count = max(self.read_count, item.index + 1)
        if not item.ok:
            raise item.error
        rec = item.record
        own_row = rec.get("row")
        at_own_row = isinstance(own_row, int) and not isinstance(own_row, bool) and own_row == item.index
        if self.positional and ("embedding" in rec or ("row" in rec and not at_own_row)):
            # a 'row' naming the record's own position (clsp embed --npy's records of this matrix) is that row
            what = "'embedding'" if "embedding" in rec else f"'row' {own_row!r} (it is record {item.index})"
            raise InputError(f"record {item.id!r}: carries its own {what}, but --ids records are the metadata of the "
                             f"matrix rows in order (record N is row N); give records that carry 'embedding' or "
                             f"another 'row' as INPUT instead (clsp search build RECORDS.jsonl --npy MATRIX.npy), "
                             f"or drop the field")
        if self.matrix is not None and "embedding" not in rec and "row" not in rec and "error" not in rec:
            self.by_position = self.by_position or str(item.id)
        self.named_row = self.named_row or "row" in rec
        if "error" in rec and "embedding" not in rec and "row" not in rec:
            raise upstream_error(rec, f"record {item.id!r}")
        if "provenance" in rec and not isinstance(rec["provenance"], dict):
            raise InputError(f"record {item.id!r}: 'provenance' must be an object (as clsp embed writes it), "
                             f"not {type(rec['provenance']).__name__}")
        theirs = rec.get("provenance") if isinstance(rec.get("provenance"), dict) else None
        same_provenance(self.provenance, theirs, f"record {item.id!r}", *self._against(theirs))
        made_as = self._check_modality(item, theirs)
        vec = record_vector(rec, self.matrix, item.index, self.metric)
        made = (theirs or {}).get("dim")
        if isinstance(made, int) and not isinstance(made, bool) and vec.shape[0] != made:
            fix = ("the --npy matrix is not the one written with these records (transposed, or another model's)"
                   if "embedding" not in rec else "the record was altered after it was written")
            raise InputError(f"record {item.id!r}: {vector_source(rec, item.index)} has {vec.shape[0]} values, but its provenance "
                             f"says model {(theirs or {}).get('model')!r} made {made}-dimensional embeddings: {fix}")
        if self.dim is not None and vec.shape[0] != self.dim:
            error = ProvenanceError if self.expected else InputError  # the wrong model, or a stray record
            model = (self.provenance or {}).get("model")
            raise error(f"record {item.id!r}: {vector_source(rec, item.index)} has dimension {vec.shape[0]}, but "
                        + (f"model {model!r} (--model) makes dimension {self.dim}; {self._against(theirs)[1]}"
                           if self.expected else f"earlier records have dimension {self.dim}"))
        check_usable(vec, rec, f"record {item.id!r}", self.nonzero, item.index, self.metric)
        self._check_known(item, theirs)  # a usable vector, but of unknown origin among a model's?
        self.provenance = self.provenance or theirs
        self.dim = self.dim or int(vec.shape[0])
        if not (theirs or {}).get("model"):
            self.unknown = self.unknown or item.id
        if self.one_modality and made_as is not None:
            self.modality = self.modality or made_as
        return vec

    def check_positions(self, source: str = "the records") -> None:
        """After the last record: ``InputError`` when records without ``row`` took the matrix
        row at their position and the record count is not the matrix's row count (a record
        lost or added shifts every vector after it onto another record's id, silently)."""
        if self.matrix is not None:
            check_row_positions(self.by_position, self.read_count, len(self.matrix), self.named_row, f"{source}: ")

    def _check_known(self, item: Item, theirs: dict | None) -> None:
        """Refuse (``ProvenanceError``) a vector of unknown origin (no provenance naming a model)
        among records of a known model, and a known model's record after one of unknown
        origin: one file, one model. Against the command's own model (``--model``) such a
        vector is taken as that model's, with one warning on the ``clsp.index`` logger."""
        named = (theirs or {}).get("model")
        known = (self.provenance or {}).get("model")
        if not named and known and self.expected:  # a matrix of one's own: taken as --model's, said once
            if not self.warned:
                self.warned = True
                logging.getLogger("clsp.index").warning(
                    f"record {item.id!r} (and any like it) has no 'provenance' saying which model made its "
                    f"embedding: taken to come from model {known!r}, as --model gives; embeddings written by clsp embed "
                    "carry it and are checked")
        elif not named and known:
            raise ProvenanceError(f"record {item.id!r}: no 'provenance' says which model made its embedding, but "
                                  f"earlier records came from model {known!r}; it cannot be checked to be that "
                                  f"model's: give records of one model (embed them all with clsp embed --model {model_option(known)})")
        if named and self.unknown is not None and not self.expected:
            raise ProvenanceError(f"record {item.id!r} came from model {named!r}, but record {self.unknown!r} before "
                                  "it has no 'provenance' saying which model made it: give records of one model "
                                  f"(clsp embed --model {model_option(named)} for them all)")

    def _check_modality(self, item: Item, theirs: dict | None) -> str | None:
        """What the record was embedded from (``provenance.modality``: "audio" or "text"; when
        not said, a record with only an ``audio`` or only a ``text`` field, as clsp embed writes
        them; else None); with ``one_modality``, ``ProvenanceError`` when it is not this
        reader's (speech where captions belong, or a mix in one index)."""
        made_as = record_modality(item.record or {}, theirs)
        if made_as is None:
            return None
        if self.one_modality and self.modality is not None and made_as != self.modality:
            what = {"audio": "speech (embedded from audio)", "text": "a caption (embedded from text)"}
            raise ProvenanceError(f"record {item.id!r} is {what[made_as]}, but {self.holds or 'earlier records are'} "
                                  f"{self.modality} embeddings" + (f"; {self.fix}" if self.fix else ""))
        return made_as

    def _against(self, theirs: dict | None) -> tuple[str, str]:
        """What a record's provenance is compared with, and what to change when it differs."""
        if self.expected:  # the command's own model, chosen with --model
            return "--model gives", use_model_fix((theirs or {}).get("model"), "that made them")
        model = model_option((self.provenance or {}).get("model"))
        return "the first record came from", f"give records of one model (clsp embed --model {model} for the others)"

    def read(self, source: str) -> Iterator[tuple[Item, np.ndarray | None]]:
        """``(item, vector)`` per input line; ``vector`` is None and ``item.error`` set when the
        record is unusable. A provenance mismatch is raised (mixing models stops the run).

        ``source`` is a JSONL file (or ``-``); a ``.npy`` source without records yields one
        item per row, with ids ``row-N``.
        """
        if is_npy_name(source):
            self.matrix = load_matrix(source)
            items: Iterator[Item] = (Item(index=n, id=f"row-{n}", record={"id": f"row-{n}", "row": n})
                                     for n in range(len(self.matrix)))
        else:
            if str(source) != "-":
                from clsp.inputs import refuse_audio_file

                refuse_audio_file(source, "embeddings")
            items = iter_items(source, modality="embeddings")
        for item in items:
            try:
                yield item, self.vector(item)
            except InputError as exc:
                item.error = exc
                yield item, None
        self.check_positions(str(source))


def read_vectors(reader: EmbeddingReader, source: str, on_skip: OnSkip | None = None,
                 on_read: Callable[[], None] | None = None,
                 rows: dict | None = None) -> tuple[list[np.ndarray], list[dict], int]:
    """``(vectors, metadata records, failed)`` of an embeddings file (``clsp embed`` JSONL or
    ``.npy``), read with ``reader``. Unusable records are skipped, reported with
    ``on_skip(record id, error)`` (which may raise to stop; a record holding ``row`` while no
    matrix was given fails with :class:`MatrixNotGivenError`); ``on_read()`` follows each good
    one. ``rows`` (a dict), when given, gets the matrix row of every record read from the
    matrix, keyed by row, valued by id."""
    vectors, metas, failed = [], [], 0
    for item, vec in reader.read(source):
        if vec is None:
            failed += 1
            if on_skip is not None:
                on_skip(item.id, item.error)
            continue
        vectors.append(vec)
        metas.append(record_metadata(item.record))
        if rows is not None and "embedding" not in item.record:
            rows.setdefault(item.record.get("row", item.index), item.id)
        if on_read is not None:
            on_read()
    return vectors, metas, failed


def index_embeddings(index_dir: str | Path, source: str, *, npy: str | None = None, add: bool = False,
                     metric: str | None = None, on_skip: OnSkip | None = None, on_read: Callable[[], None] | None = None,
                     ids: bool = False, **write_options: Any) -> dict[str, Any]:
    """Build (or with ``add`` append to) the index folder ``index_dir`` from an embeddings file
    (``clsp embed`` JSONL, with ``row`` fields into ``npy``; or a ``.npy`` matrix).

    ``metric`` is the new index's (default cosine); with ``add`` onto an index, None means the
    index's, and one that differs from the index's, as the index is when the write lock is held,
    is a ``ConfigError`` (so are a ``factory`` that differs and a ``max_memory``). ``ids``:
    ``source`` holds the metadata records of the ``npy`` rows in order (``--ids``); a record of
    it carrying its own ``embedding`` or ``row`` is skipped as an error (``on_skip``).

    ``write_options`` go to :func:`clsp.index.write_index` (factory, max_memory, threads,
    lock_timeout, on_wait). Returns the summary record ``{"index", "added", "failed",
    "count", "dim", "factory", "metric", "model"}`` (the last five when the index was
    written). Raises ``InputError`` when there is nothing to index, ``ConfigError`` for an
    input file inside the index folder (publishing removes the old data there).

    Without ``add`` the build replaces the whole index, so it takes the index's write lock
    from its start without waiting: a second build while another writer (a build or an add)
    holds it raises ``IndexBusyError`` naming that writer's PID at once, never replacing the
    other's records after it. An ``add`` reads first and waits for the lock (``lock_timeout``)
    only to load, add and publish, so parallel adds all land.
    """
    from contextlib import ExitStack

    from clsp.index.folder import writing
    from clsp.index.lock import IndexBusyError
    from clsp.index.store import check_inputs_outside

    check_inputs_outside(index_dir, [source, npy])
    with ExitStack() as held:
        if not add:
            try:
                held.enter_context(writing(index_dir, lock_timeout=0))
            except IndexBusyError as exc:
                raise IndexBusyError(f"index {index_dir} is in use by PID {exc.pid} (another build or --add writing "
                                     "it); a build without --add replaces the whole index, so it does not wait to "
                                     "replace what that run writes: wait for it to finish, write elsewhere, or use "
                                     "--add", exc.pid) from None
        return _index_embeddings(index_dir, source, npy, add, metric, on_skip, on_read, write_options, ids)


def _index_embeddings(index_dir, source, npy, add, metric, on_skip, on_read, write_options, ids) -> dict[str, Any]:
    from clsp.index.folder import index_exists, write_index
    from clsp.index.store import read_info

    # the records are checked for the metric they will be indexed with (the write checks it again under the lock)
    reading = metric or (read_info(Path(index_dir)).metric if add and index_exists(index_dir) else "cosine")
    reader = EmbeddingReader(load_matrix(npy) if npy else None, nonzero=reading == "cosine", metric=reading,
                             one_modality=True, positional=ids,
                             fix="an index holds one modality: build one index of the clips and another of the captions")
    vectors, metas, failed = read_vectors(reader, source, on_skip, on_read)
    if not vectors and not (add and index_exists(index_dir)):
        raise InputError(f"{source}: no embeddings to index")
    provenance = dict(reader.provenance or {})
    if reader.modality:  # said by the records, or read off their fields
        provenance["modality"] = reader.modality
    built = write_index(index_dir, np.stack(vectors) if vectors else np.zeros((0, 0), np.float32), metas, add=add,
                        provenance=provenance or None, metric=metric, **write_options)
    out = {"index": str(index_dir), "added": len(vectors), "failed": failed}
    if built is not None:
        info = built.info
        out.update(count=info.count, dim=info.dim, factory=info.factory, metric=info.metric, model=info.model)
    return out
