"""On-disk layout of a clsp index folder, its metadata encoding and its provenance checks.

An index is a folder holding ``index.json`` (provenance, settings, and the name of the
current data folder) and data folders ``data-*`` each holding ``index.faiss`` (the FAISS
structure), ``meta.parquet`` (one row per vector: ``id`` and every other input field) and,
for compressed indexes, ``vectors.npy`` (the exact vectors used to re-rank).

Publishing a new version writes a fresh data folder, then replaces ``index.json`` in one
``os.replace``: a reader that resolved ``index.json`` sees one whole version, old or new,
never a mix. Older data folders are removed afterwards (a reader that loses its folder in
between resolves ``index.json`` again). Format 1 indexes keep their files in the top folder
and are read as they are; writing to one publishes format 2.

Metadata (format 2): every field but ``id`` is stored as one JSON text per row (null when
the record has no such field), so each value comes back with the JSON type it went in with
(int, float, bool, null, string, list, object), whatever other records hold; each column is
named by its field (:func:`column_name` escapes the names Parquet would not give back as they are).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clsp.errors import ConfigError, IndexFileError, InputError, MissingIndexError, OutputError, ProvenanceError
from clsp.index.lock import INFO_FILE  # the file that marks a published index (the lock knows it too)
from clsp.records import utf8_encodable

INDEX_FILE = "index.faiss"
META_FILE = "meta.parquet"
VECTORS_FILE = "vectors.npy"
FORMAT_VERSION = 2
DATA_PREFIX = "data-"


def is_data_folder_name(name: str) -> bool:
    """Whether ``name`` is one clsp gives a data folder: ``data-`` and 12 hex digits (a user's
    ``data-2024`` is not one, and is never replaced or removed)."""
    rest = name[len(DATA_PREFIX):]
    return name.startswith(DATA_PREFIX) and len(rest) == 12 and all(c in "0123456789abcdef" for c in rest)
METRICS = ("cosine", "ip", "l2")


@dataclass
class IndexInfo:
    """Provenance and settings of an index, stored as ``index.json``."""

    dim: int
    factory: str = "Flat"
    metric: str = "cosine"
    normalized: bool = True
    count: int = 0
    model: str | None = None
    checksum: str | None = None
    config: str | None = None  # the model config's digest (clsp.models.base.config_digest); None in older indexes
    sample_rate: int | None = None
    modality: str | None = None  # what was embedded: "audio" (speech) or "text" (captions); None: not said
    # the format the speaker encoders' CPU LSTMs ran in (clsp.models.lstm_precision), as clsp embed
    # records it; None: not said (a text index, another device, an older index)
    cpu_lstm: str | None = None
    knobs: dict = field(default_factory=dict)
    stored_vectors: bool = False
    json_columns: list = field(default_factory=list)
    format_version: int = FORMAT_VERSION
    data: str = ""
    # ids holding a file name's non-UTF-8 bytes: their stored text (``stored_id``) -> the id as
    # ASCII JSON, so that hits and ``VectorIndex.ids`` give back the id the records had
    escaped_ids: dict = field(default_factory=dict)
    # every record added had an integer id: hits give the ids back as integers
    integer_ids: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "dim" not in known:
            raise KeyError("dim")
        if not isinstance(known.get("data", ""), str) or "/" in known.get("data", "") or known.get("data") == "..":
            raise ValueError(f"data folder {known.get('data')!r} is not a folder name")
        return cls(**known)

    def data_dir(self, path: Path) -> Path:
        """The folder holding this version's files (the index folder itself for format 1)."""
        return Path(path) / self.data if self.data else Path(path)

    def provenance(self) -> dict:
        """The fields that must agree between an index and vectors added to or queried on it
        (``cpu_lstm``: only warned about, ``same_provenance``)."""
        return {"model": self.model, "checksum": self.checksum, "config": self.config, "dim": self.dim,
                "cpu_lstm": self.cpu_lstm}


_lstm_pairs_warned: set = set()


def _warn_lstm_formats(reference: dict, theirs: dict, where: str, against: str) -> None:
    """A warning (once per pair of formats in a process) when vectors of one model were made
    with its speaker encoders' CPU LSTMs in two formats (``cpu_lstm``, ``CLSP_CPU_LSTM``): used
    together, not refused, as a clip embedded both ways sits at cosine 0.998-1.000 to itself."""
    ours, other = reference.get("cpu_lstm"), theirs.get("cpu_lstm")
    if not ours or not other or ours == other or (ours, other) in _lstm_pairs_warned:
        return
    if reference.get("model") != theirs.get("model") or reference.get("checksum") != theirs.get("checksum"):
        return  # another model: refused by same_provenance
    _lstm_pairs_warned.add((ours, other))
    import logging

    logging.getLogger("clsp.index").warning(
        "%s: made with the speaker encoders' CPU LSTMs in %s, the vectors it meets (%s) in %s (CLSP_CPU_LSTM): "
        "the same model, vectors about 1e-3 apart (a clip embedded both ways scores 0.998-1.000 against itself); "
        "used together. Embed with CLSP_CPU_LSTM=%s to match", where, other, against, ours, ours)


def same_provenance(reference: dict | None, theirs: dict | None, where: str,
                    against: str = "the first record came from", fix: str | None = None) -> None:
    """Refuse (``ProvenanceError``) embeddings whose model, checksum, config digest or declared
    dim differ from ``reference``'s, and warn when only their ``cpu_lstm`` format does
    (``_warn_lstm_formats``); fields missing on either side are not compared. The one provenance check
    of records against records, a model, or an index. ``fix`` (what the user can change, e.g.
    which option) ends the message."""
    if not reference or not theirs:
        return
    _warn_lstm_formats(reference, theirs, where, against)
    for key in ("model", "checksum", "config", "dim"):
        if reference.get(key) is not None and theirs.get(key) is not None and reference[key] != theirs[key]:
            def detail(prov: dict) -> str:
                if key == "config":
                    return f" (its config.json {prov[key]}: the same weights with other settings)"
                return "" if key == "model" else f" ({key} {prov[key]})"

            raise ProvenanceError(
                f"{where}: made by model {theirs.get('model')!r}{detail(theirs)}, but {against} "
                f"model {reference.get('model')!r}{detail(reference)}" + (f"; {fix}" if fix else "")
            )


def check_provenance(info: IndexInfo, provenance: dict | None, dim: int, what: str, fix: str | None = None) -> None:
    """Refuse ``what`` (vectors to add or query) whose model or dimension differs from the
    index; ``fix`` ends the message."""
    if dim != info.dim:
        model = (provenance or {}).get("model")
        raise ProvenanceError(
            f"{what}: dimension {dim} (model {model or 'unknown'}), but the index holds "
            f"dimension {info.dim} (model {info.model or 'unknown'})" + (f"; {fix}" if fix else "")
        )
    same_provenance(info.provenance(), provenance, what, "the index was built with", fix)


def model_option(model: str | None) -> str:
    """What to give ``--model`` for the model named ``model`` in a record or index: the name
    itself when it loads by name (a built-in name, or a hub id ``owner/name``), otherwise the
    model's directory, which a trained or converted model is known by (``MODEL`` when unknown)."""
    from clsp.models.checkpoint import BUILTIN_NAMES

    if not model:
        return "MODEL"
    if model in BUILTIN_NAMES or (model.count("/") == 1 and not model.startswith((".", "/", "~"))):
        return model
    return f"DIR (the directory of model {model!r}, e.g. OUT/checkpoints/step-N/model)"


def use_model_fix(model: str | None, role: str) -> str:
    """The fix for embeddings refused next to another model's: run the command again with
    ``--model`` naming the model ``model`` (``role``: "that made them"...)."""
    return (f"run it again with --model set to the model {role}" + (f", {model!r}" if model else "")
            + " (a built-in name or hub id as written; for a model you trained or converted, its model "
              "directory, e.g. OUT/checkpoints/step-N/model)")


def read_info(path: Path) -> IndexInfo:
    """Read ``index.json``; a missing folder is a :class:`MissingIndexError` (a usage error),
    an unreadable file an :class:`IndexFileError`."""
    if not path.exists():
        raise MissingIndexError(f"index {path}: no such directory")
    from clsp.runfiles import note_folder

    note_folder(path)
    if not path.is_dir():
        raise IndexFileError(f"index {path}: not a directory (an index is a folder with {INFO_FILE})")
    info_path = path / INFO_FILE
    try:
        info = IndexInfo.from_dict(json.loads(info_path.read_text()))
    except FileNotFoundError:
        raise IndexFileError(f"index {path}: {INFO_FILE} is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFileError(f"index {path}: {INFO_FILE} is corrupt ({exc})") from None
    if info.metric not in METRICS:
        raise IndexFileError(f"index {path}: unknown metric {info.metric!r} in {INFO_FILE}")
    return info


def check_files(path: Path, info: IndexInfo) -> Path:
    """The data folder of ``info``, after checking that its FAISS and metadata files exist, and
    its exact vectors where ``index.json`` says it stored them (``IndexFileError`` naming the
    missing file: a compressed index without them would re-rank with its approximate codes)."""
    data = info.data_dir(path)
    stored = (VECTORS_FILE,) if info.stored_vectors and info.count else ()  # declared in index.json
    for name in (INDEX_FILE, META_FILE) + stored:
        if not (data / name).is_file():
            where = f"{info.data}/{name}" if info.data else name
            raise IndexFileError(f"index {path}: {where} is missing")
    return data


# ------------------------------------------------------------------------------- metadata
_ENCODE_UTF8 = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
_ENCODE_ASCII = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode


def _ENCODE(value) -> str:  # noqa: N802 - stands where the encoder's bound method stood
    """JSON text of a value; escaped to ASCII where it holds a file name's non-UTF-8 bytes
    (surrogate escapes), which read back to the same string."""
    text = _ENCODE_UTF8(value)
    return text if utf8_encodable(text) else _ENCODE_ASCII(value)


def stored_id(rid) -> str:
    """An id as the metadata table keeps it (ids are compared as this text): ``str(rid)``, with a
    file name's non-UTF-8 bytes (surrogate escapes) written as ``\\udcXX``."""
    text = str(rid)
    return text if utf8_encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def escaped_ids(rows: list[dict]) -> dict[str, str]:
    """``IndexInfo.escaped_ids`` entries for metadata rows whose id ``stored_id`` escapes:
    stored text -> the id as ASCII JSON."""
    out = {}
    for row in rows:
        text = str(row.get("id"))
        if not utf8_encodable(text):
            out[stored_id(text)] = _ENCODE_ASCII(text)
    return out


def original_id(text: str, info: IndexInfo) -> str:
    """The id a stored id text stands for, as text (``stored_id`` undone where it escaped
    bytes): what ids are compared as."""
    escaped = info.escaped_ids.get(text) if info.escaped_ids else None
    return text if escaped is None else json.loads(escaped)


def hit_id(text: str, info: IndexInfo) -> str | int:
    """The id a hit gives: ``original_id``, as an integer in an index whose records all had
    integer ids (``IndexInfo.integer_ids``), so that hits join their records by id."""
    rid = original_id(text, info)
    if info.integer_ids:
        try:
            return int(rid)
        except ValueError:
            return rid
    return rid


def all_integer_ids(rows: list[dict]) -> bool:
    """Whether every row's ``id`` is a JSON integer (not a boolean)."""
    return all(isinstance(r.get("id"), int) and not isinstance(r.get("id"), bool) for r in rows)


def _encode_column(rows: list[dict], key: str) -> list[str | None]:
    """JSON texts of field ``key`` per row (None where a row lacks it), errors naming the record."""
    try:
        return [_ENCODE(row[key]) if key in row else None for row in rows]
    except (ValueError, TypeError):
        for row in rows:  # find and name the culprit
            try:
                _ENCODE(row.get(key))
            except ValueError:
                raise InputError(f"record {str(row.get('id'))!r}: field {key!r} holds NaN or infinite values") from None
            except TypeError as exc:
                raise InputError(f"record {str(row.get('id'))!r}: field {key!r} is not JSON data ({exc})") from None
        raise


_NAME_ESCAPE = "\x00"  # starts the column of a field whose own name Parquet readers would change


def column_name(key: str) -> str:
    """The ``meta.parquet`` column of field ``key``: its name, or for a name that would not come
    back as it is (empty, which readers call ``column_1``; not UTF-8; starting with NUL) NUL and
    the name as ASCII JSON text, undone by :func:`field_name`."""
    if key and utf8_encodable(key) and not key.startswith(_NAME_ESCAPE):
        return key
    return _NAME_ESCAPE + _ENCODE_ASCII(key)


def field_name(column: str) -> str:
    """The field name a ``meta.parquet`` column stands for (:func:`column_name` undone)."""
    if column.startswith(_NAME_ESCAPE):
        try:
            name = json.loads(column[1:])
        except ValueError:
            return column
        return name if isinstance(name, str) else column
    return column


def metadata_frame(rows: list[dict]):
    """A polars DataFrame of metadata dicts: ``id`` (string) plus one JSON-text column per field
    (named by :func:`column_name`, so that every name comes back as it was).

    A record without a field holds null in its column; a field whose value is JSON ``null``
    holds the text ``"null"``. Every row needs an ``id``; values must be JSON data with
    finite numbers (else :class:`InputError` naming the record and field).
    """
    import polars as pl

    ids, keys = [], {}
    for n, row in enumerate(rows):
        rid = row.get("id")
        if rid is None or rid == "":
            raise InputError(f"metadata row {n}: missing 'id'")
        ids.append(stored_id(rid))
        keys.update(dict.fromkeys(row))
    keys.pop("id", None)
    series = [pl.Series("id", ids, dtype=pl.String)]
    series += [pl.Series(column_name(str(key)), _encode_column(rows, key), dtype=pl.String) for key in keys]
    return pl.DataFrame(series)


def frame_rows(frame, info: IndexInfo) -> list[dict]:
    """Metadata dicts from (a slice of) the stored frame, each value with its JSON type.

    Format 1 frames (native polars columns, ``info.json_columns`` as JSON) drop nulls.
    """
    rows = frame.to_dicts()
    if info.format_version < 2:
        for row in rows:
            for key in info.json_columns:
                if row.get(key) is not None:
                    row[key] = json.loads(row[key])
            for key in [k for k, v in row.items() if v is None]:
                del row[key]
        return rows
    decoded = {key: _decode_column(frame.get_column(key).to_list()) for key in frame.columns if key != "id"}
    names = {key: field_name(key) for key in decoded}
    return [{("id" if k == "id" else names[k]): (hit_id(v, info) if k == "id" else decoded[k][n])
             for k, v in row.items() if v is not None} for n, row in enumerate(rows)]


def _decode_column(texts: list[str | None]) -> list:
    """Values of a JSON-text column (None stays None), parsed as one JSON array."""
    values = iter(json.loads("[" + ",".join(t for t in texts if t is not None) + "]"))
    return [None if t is None else next(values) for t in texts]


def upgrade_frame(frame, info: IndexInfo):
    """The metadata frame in the current encoding (format 1 frames are re-encoded)."""
    if info.format_version >= 2:
        return frame
    return metadata_frame(frame_rows(frame, info))


# ------------------------------------------------------------------------------- publishing
def check_replaceable(target: Path) -> None:
    """Refuse to write an index over a file, or over a folder that is not a clsp index."""
    from clsp.index.lock import LOCK_FILE

    if target.exists() and not target.is_dir():
        raise OutputError(f"index {target}: exists and is not a folder; refusing to replace it")
    if target.is_dir() and (target / INFO_FILE).exists() and not _clsp_info(target / INFO_FILE):
        ours = [p.name for p in target.iterdir() if is_data_folder_name(p.name) and p.is_dir()]
        hint = ("" if not ours else
                f"; it holds clsp's data folders ({ours[0]}), so it is likely a clsp index whose {INFO_FILE} was "
                f"damaged: remove the folder (rm -r {target}) to build it again")
        raise OutputError(f"index {target}: exists and is not a clsp index (its {INFO_FILE} is not one clsp "
                          f"wrote); refusing to replace it{hint}")
    if target.is_dir() and not (target / INFO_FILE).exists():
        ours = (LOCK_FILE, f".{INFO_FILE}.")  # what a first build that stopped half-way leaves, with data folders
        if any(not (p.name.startswith(ours) or (is_data_folder_name(p.name) and p.is_dir())) for p in target.iterdir()):
            raise OutputError(f"index {target}: exists and is not a clsp index; refusing to replace it")


def check_inputs_outside(target: str | Path, inputs: list, what: str = "this build") -> None:
    """``ConfigError`` (a usage error, before any work) naming an input file that lies inside
    the index folder ``target``: publishing a version removes the older ``data-*`` folders
    (and any format 1 files) there, and an input among them would be deleted with them.
    ``inputs`` are paths (None and ``-`` skipped); stdin redirected from a file inside the
    folder is refused too when ``-`` is among them."""
    import stat

    folder = Path(target)
    if not folder.is_dir():
        return
    root = os.path.realpath(folder)
    why = (f"it lies inside the index folder {folder} that {what} writes, and publishing the new version "
           "removes the old data there (this file with it); move or copy it out of the index folder first")
    for path in inputs:
        if path is None or str(path) == "-":
            continue
        if os.path.realpath(path).startswith(root + os.sep):
            raise ConfigError(f"{path}: {why}")
    if "-" not in [str(p) for p in inputs if p is not None]:
        return
    try:
        st = os.fstat(0)
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(st.st_mode):
        return
    for base, _dirs, files in os.walk(root):
        for name in files:
            try:
                other = os.stat(os.path.join(base, name))
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                shown = os.path.join(str(folder), os.path.relpath(os.path.join(base, name), root))
                raise ConfigError(f"stdin ({shown}): {why}")


def _clsp_info(info_path: Path) -> bool:
    """Whether ``info_path`` holds an index description clsp wrote (``IndexInfo``)."""
    try:
        value = json.loads(info_path.read_text())
        info = IndexInfo.from_dict(value)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return "count" in value and info.metric in METRICS  # every format's index.json has dim and count


def _write_data_file(write, path: Path, target: Path) -> None:
    """``write(path)``; faiss's and polars' own errors (a full disk included) become an
    ``OutputError`` naming the index, the file and the reason."""
    try:
        write(path)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno, exc.errno) if exc.errno else None
        reason = f"{exc.strerror} ({code})" if exc.strerror else str(exc)
        raise OutputError(f"index {target}: cannot write {path.name} ({reason})") from None
    except Exception as exc:  # noqa: BLE001 - faiss raises RuntimeError, polars its own types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        try:
            if shutil.disk_usage(path.parent).free < (1 << 20):
                reason = f"No space left on device; {reason}"
        except OSError:
            pass
        raise OutputError(f"index {target}: cannot write {path.name} ({reason})") from None


def publish_version(target: Path, writers: dict, info: IndexInfo) -> None:
    """Write a new data folder in ``target``, point ``index.json`` at it, drop older data.

    ``writers`` maps file names to callables taking the destination path. The caller holds
    the index's write lock (:func:`clsp.index.lock.index_writer`). ``info.data`` is set.
    """
    target = Path(target)
    name = f"{DATA_PREFIX}{uuid.uuid4().hex[:12]}"
    data = target / name
    try:
        data.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"index {target}: cannot create directory ({exc.strerror or exc})") from None
    try:
        for fname, write in writers.items():
            _write_data_file(write, data / fname, target)
        info.data = name
        tmp = target / f".{INFO_FILE}.{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(info.to_dict(), indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target / INFO_FILE)
    except OSError as exc:
        shutil.rmtree(data, ignore_errors=True)
        raise OutputError(f"index {target}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        raise
    _drop_old(target, name)


def _drop_old(target: Path, keep: str) -> None:
    """Remove data folders other than ``keep`` and format 1 files left in the top folder."""
    for entry in target.iterdir():
        if is_data_folder_name(entry.name) and entry.name != keep and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name in (INDEX_FILE, META_FILE, VECTORS_FILE) or (
            entry.name.startswith(f".{INFO_FILE}.") and entry.name.endswith(".tmp")
        ):
            try:
                entry.unlink()
            except OSError:
                pass
