"""On-disk layout of a clsp index directory and its provenance checks.

An index is a directory holding ``index.faiss`` (the FAISS structure), ``meta.parquet``
(one row per vector: ``id`` and every other input field), ``index.json`` (provenance and
settings) and, for compressed indexes, ``vectors.npy`` (the exact vectors used to re-rank).
Directories are written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clsp.errors import IndexFileError, InputError, OutputError, ProvenanceError

INDEX_FILE = "index.faiss"
META_FILE = "meta.parquet"
INFO_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
FORMAT_VERSION = 1
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
    sample_rate: int | None = None
    knobs: dict = field(default_factory=dict)
    stored_vectors: bool = False
    json_columns: list = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "dim" not in known:
            raise KeyError("dim")
        return cls(**known)

    def provenance(self) -> dict:
        """The fields that must agree between an index and vectors added to or queried on it."""
        return {"model": self.model, "checksum": self.checksum, "dim": self.dim}


def check_provenance(info: IndexInfo, provenance: dict | None, dim: int, what: str) -> None:
    """Refuse ``what`` (vectors to add or query) whose model or dimension differs from the index."""
    prov = provenance or {}
    theirs_model, theirs_sum = prov.get("model"), prov.get("checksum")
    if dim != info.dim:
        raise ProvenanceError(
            f"{what}: dimension {dim} (model {theirs_model or 'unknown'}), but the index holds "
            f"dimension {info.dim} (model {info.model or 'unknown'})"
        )
    if "dim" in prov and prov["dim"] is not None and int(prov["dim"]) != info.dim:
        raise ProvenanceError(f"{what}: declared dimension {prov['dim']}, but the index holds {info.dim}")
    if theirs_model and info.model and theirs_model != info.model:
        raise ProvenanceError(
            f"{what}: made by model {theirs_model!r}, but the index was built with model {info.model!r}"
        )
    if theirs_sum and info.checksum and theirs_sum != info.checksum:
        raise ProvenanceError(
            f"{what}: made by model {theirs_model or info.model!r} with checksum {theirs_sum}, but the "
            f"index was built with checksum {info.checksum}"
        )


def read_info(path: Path) -> IndexInfo:
    """Read ``index.json``; a missing or unreadable file is an :class:`IndexFileError`."""
    if not path.exists():
        raise IndexFileError(f"index {path}: no such directory")
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
    for name in (INDEX_FILE, META_FILE):
        if not (path / name).is_file():
            raise IndexFileError(f"index {path}: {name} is missing")
    return info


def metadata_frame(rows: list[dict], json_columns: list | None = None):
    """Build a polars DataFrame from metadata dicts; columns of mixed types are stored as JSON.

    Returns ``(frame, json_columns)``. Every row needs a string ``id``.
    """
    import polars as pl

    columns: dict[str, list] = {"id": []}
    for n, row in enumerate(rows):
        rid = row.get("id")
        if rid is None or rid == "":
            raise InputError(f"metadata row {n}: missing 'id'")
        for key in row:
            columns.setdefault(key, [None] * n)
        for key, values in columns.items():
            values.append(str(rid) if key == "id" else row.get(key))
    json_cols = set(json_columns or [])
    series = []
    for key, values in columns.items():
        if key not in json_cols:
            try:
                series.append(pl.Series(key, values, strict=True))
                continue
            except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
                json_cols.add(key)
        series.append(pl.Series(key, [_json_or_none(v) for v in values], dtype=pl.String))
    return pl.DataFrame(series), sorted(json_cols)


def _json_or_none(value):
    return None if value is None else json.dumps(value, ensure_ascii=False)


def frame_rows(frame, json_columns: list) -> list[dict]:
    """Metadata dicts from (a slice of) the stored frame, decoding JSON columns, dropping nulls."""
    rows = frame.to_dicts()
    for row in rows:
        for key in json_columns:
            if row.get(key) is not None:
                row[key] = json.loads(row[key])
        for key in [k for k, v in row.items() if v is None]:
            del row[key]
    return rows


def write_directory(target: Path, writers: dict) -> None:
    """Write files into a fresh temporary sibling of ``target`` and swap it into place.

    ``writers`` maps file names to callables taking the destination path. A symlink is
    followed: the folder it points to is replaced, the link stays.
    """
    target = Path(os.path.realpath(target))
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    except OSError as exc:
        raise OutputError(f"index {target}: cannot create directory ({exc.strerror or exc})") from None
    try:
        for name, write in writers.items():
            write(tmp / name)
        if target.exists():
            if not (target / INFO_FILE).exists() and any(target.iterdir()):
                raise OutputError(f"index {target}: exists and is not a clsp index; refusing to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, old / "index")
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except OSError as exc:
        raise OutputError(f"index {target}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
