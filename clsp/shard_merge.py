"""Merging the outputs of a sharded ``clsp embed`` run into one output in input order.

Each shard output is a JSONL file whose records carry, in their provenance, the shard
name, the input position and (for ``--npy`` runs) the matrix their ``row`` points into
(see ``clsp.shards``). Input record ``i`` lives in shard ``i % N``, so the merge reads all
shards side by side, one input record at a time, and streams: memory does not grow with
the number of records. It refuses, naming the files and records concerned:

- a set of files that is not exactly the N shards of one run (a shard missing, given
  twice, or from a run with another shard count): ``ConfigError``;
- shards made by different models or settings (any provenance key other than the shard
  keys differs, or the embedding ``settings`` sharded runs record, ``--long-audio``,
  ``--max-seconds`` and the resolved ``--dtype``): ``ProvenanceError``;
- an input record missing or present twice, a record without shard provenance, a matrix
  row that is not there or not the one the record was written with (``row_sha256``), shards
  read from different inputs (their ``input_prev`` / ``input_chain`` digests do not join):
  ``InputError``.

``check_shards`` makes every one of these checks without writing, for a merge to a stream.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from clsp.errors import ConfigError, InputError, ProvenanceError
from clsp.index.records import NUMBER_TYPES, check_row, load_matrix, refuse_non_numbers
from clsp.records import is_blank
from clsp.shards import Shard, model_provenance, parse_shard_name


class ShardReader:
    """Reads one shard output file one input record (a group of window records) at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"{self.path}: is a folder, not a shard output file (give the JSONL files clsp embed "
                              "--shard wrote)")
        from clsp.inputs import refuse_audio_file
        from clsp.streams import is_stream_node, open_binary_input, raw_lines

        if not self.path.is_file() and not is_stream_node(self.path):  # a pipe (<(...), a FIFO) is read once, whole
            raise ConfigError(f"{self.path}: no such shard output file")

        refuse_audio_file(self.path, "shards")
        from clsp.records import refuse_yaml_manifest

        refuse_yaml_manifest(str(self.path))

        self.fh = open_binary_input(self.path)
        self.lines = raw_lines(self.fh, str(self.path))  # gzip / zstd and a BOM, as every reader
        self.lineno = 0
        self.matrix: np.ndarray | None = None
        self._next = self._read()
        prov = self._prov(self._next) if self._next is not None else None
        named = parse_shard_name(self.path.name)
        if prov is not None:
            named = parse_shard_name(str(prov.get("shard", "")))
        if named is None:
            raise InputError(f"{self.path}: no shard provenance in its records and no NNNN-of-NNNN in its name "
                             "(was it written by clsp embed --shard?)")
        self.shard = Shard(named.index, named.count, str(self.path))
        self.provenance = model_provenance(prov) if prov is not None else None
        self.settings = prov.get("settings") if prov is not None else None  # None: not recorded (older clsp)
        self.last = -1
        self._seen = bytearray()  # a bit per input index read: a repeat told from a record out of order
        self.end: tuple[int, str] | None = None  # (input_total, input_final) from the shard's last record

    def _read(self) -> dict[str, Any] | None:
        for raw in self.lines:
            self.lineno += 1
            if is_blank(raw):
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path} line {self.lineno}: invalid JSON ({exc.msg})") from None
            except ValueError as exc:  # not UTF-8
                raise InputError(f"{self.path} line {self.lineno}: not UTF-8 text ({str(exc)[:80]})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{self.path} line {self.lineno}: expected a JSON object")
            return rec
        return None

    def _prov(self, rec: dict[str, Any]) -> dict[str, Any]:
        prov = rec.get("provenance")
        if not isinstance(prov, dict) or not isinstance(prov.get("input_index"), int) or "shard" not in prov:
            raise InputError(f"{self.path} line {self.lineno}: record {rec.get('id')!r} has no shard provenance "
                             "(shard and input_index; was it written by clsp embed --shard?)")
        return prov

    def peek_index(self) -> int | None:
        """Input index of the next record, or None at the end of the file."""
        return None if self._next is None else self._prov(self._next)["input_index"]

    def next_group(self) -> list[dict[str, Any]] | None:
        """The records of the next input record (one, or one per window), checked."""
        first = self._next
        if first is None:
            return None
        index, line = self.peek_index(), self.lineno
        group = [first]
        # a window record, written or an error (a silent window), carries its clip's window count
        total = first.get("windows") if "source_id" in first else 1
        total = total if isinstance(total, int) and total > 0 else 1
        self._next = self._read()
        while len(group) < total:
            if self._next is None or self.peek_index() != index:
                raise InputError(f"{self.path}: input record {index} ({first.get('id')!r}) has {len(group)} of its "
                                 f"{total} window records")
            group.append(self._next)
            self._next = self._read()
        self._check(index, first, line)
        self.last = index
        for rec in group:
            prov = rec.get("provenance") or {}
            if isinstance(prov.get("input_total"), int):
                self.end = (prov["input_total"], str(prov.get("input_final", "")))
        return group

    def _check(self, index: int, rec: dict[str, Any], line: int) -> None:
        where = f"{self.path} line {line}"
        if index <= self.last:
            raise InputError(f"{where}: input record {index} ({rec.get('id')!r}) appears twice in shard "
                             f"{self.shard.name}" if self.was_read(index) else
                             f"{where}: input record {index} comes after {self.last} (records out of order)")
        if not self.shard.owns(index):
            raise InputError(f"{where}: input record {index} does not belong to shard {self.shard.name}")
        byte = index >> 3
        if byte >= len(self._seen):
            self._seen.extend(bytes(max(byte + 1 - len(self._seen), len(self._seen))))
        self._seen[byte] |= 1 << (index & 7)

    def was_read(self, index: int) -> bool:
        """Whether this shard's record of input ``index`` has been read already."""
        byte = index >> 3
        return byte < len(self._seen) and bool(self._seen[byte] & (1 << (index & 7)))

    def vector(self, rec: dict[str, Any]) -> np.ndarray:
        """The embedding of a record: inline, or its row of the shard's matrix."""
        if "embedding" in rec:
            return self._inline(rec)
        if self.matrix is None:
            self.matrix = self._open_matrix(rec)
        return self._row(self.matrix, rec)

    def _inline(self, rec: dict[str, Any]) -> np.ndarray:
        """An inline ``embedding`` as float32, exactly as written: a flat list of JSON numbers
        (booleans and strings refused, as every vector reader does), finite in float32, as wide as
        the shard's provenance ``dim``. ``InputError`` naming the shard file and record otherwise."""
        where = f"{self.path}: record {rec.get('id')!r}"
        values = rec["embedding"]
        if not isinstance(values, list):
            raise InputError(f"{where}: 'embedding' is not a list of numbers")
        if not NUMBER_TYPES.issuperset(map(type, values)):
            try:
                refuse_non_numbers(rec, values)
            except InputError as exc:
                raise InputError(f"{self.path}: {exc}") from None
        try:
            with np.errstate(over="ignore"):
                vec = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{where}: 'embedding' is not a flat list of numbers") from None
        if vec.ndim != 1:
            raise InputError(f"{where}: 'embedding' is not a flat list of numbers")
        if not np.isfinite(vec).all():
            raise InputError(f"{where}: 'embedding' holds NaN, infinite or values beyond float32, which clsp embed "
                             "never writes (the shard was edited or damaged)")
        dim = (rec.get("provenance") or {}).get("dim")
        if isinstance(dim, int) and not isinstance(dim, bool) and vec.size != dim:
            raise InputError(f"{where}: 'embedding' has {vec.size} values, its provenance says the model "
                             f"writes {dim}")
        return vec

    def _row(self, matrix: np.ndarray, rec: dict[str, Any]) -> np.ndarray:
        row = rec.get("row")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(matrix):
            raise InputError(f"{self.path}: record {rec.get('id')!r}: row {row!r} is not in its matrix of "
                             f"{len(matrix)} rows")
        vec = np.asarray(matrix[row], dtype=np.float32)
        check_row(rec, vec, matrix, f"{self.path}: record {rec.get('id')!r}")
        return vec

    def _open_matrix(self, rec: dict[str, Any]) -> np.ndarray:
        """The matrix the shard's rows point into: the one its provenance names, or the file of
        that name beside the shard output (outputs moved together); when both exist, the one
        holding this record's row as it was written (``row_sha256``)."""
        named = (rec.get("provenance") or {}).get("matrix")
        if not isinstance(named, str):
            raise InputError(f"{self.path}: record {rec.get('id')!r} has a 'row' but its provenance names no matrix")
        beside = self.path.parent / Path(named).name
        candidates = [p for p in dict.fromkeys([beside, Path(named)]) if p.exists()]
        if not candidates and self.path.name.endswith(".partial"):
            raise ConfigError(f"{self.path}: the .partial output of a stopped run, whose matrix {named} is written only "
                              "when the run ends: finish the shard with clsp embed --resume (the same command) and "
                              "merge the finished output")
        if not candidates:
            raise ConfigError(f"{self.path}: its matrix {named} is gone (and no {beside.name} beside it)")
        error = None
        for path in candidates:
            matrix = load_matrix(path)
            try:
                self._row(matrix, rec)
                return matrix
            except InputError as exc:
                error = exc
        raise error

    def close(self) -> None:
        self.fh.close()


def _differences(ref: dict[str, Any], theirs: dict[str, Any]) -> str:
    """``key: ref value vs their value`` for each key whose values differ, sorted by key."""
    keys = sorted(k for k in set(ref) | set(theirs) if ref.get(k) != theirs.get(k))
    return "; ".join(f"{k}: {ref.get(k)!r} vs {theirs.get(k)!r}" for k in keys)


def _raise_open_files_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 64:
        want = n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class ShardSet:
    """The shard outputs of one run: exactly one file per shard, all from one model."""

    def __init__(self, paths: list[str | Path]):
        if not paths:
            raise ConfigError("no shard outputs given")
        _raise_open_files_limit(len(paths))
        self.readers: list[ShardReader] = []
        try:
            for p in paths:
                self.readers.append(ShardReader(p))
            self._check_models()  # first: shards of two runs of other models are named so, not as one given twice
            self._check_set()
        except BaseException:
            self.close()
            raise
        self.readers.sort(key=lambda r: r.shard.index)
        self.count = self.readers[0].shard.count

    def _check_set(self) -> None:
        counts = {r.shard.count for r in self.readers}
        if len(counts) > 1:
            detail = ", ".join(f"{r.path} ({r.shard.name})" for r in self.readers[:8])
            raise ConfigError(f"shard outputs of runs with different shard counts {sorted(counts)}: {detail}")
        count = counts.pop()
        seen: dict[int, ShardReader] = {}
        for r in self.readers:
            if r.shard.index in seen:
                raise ConfigError(f"shard {r.shard.name} given twice: {seen[r.shard.index].path} and {r.path}")
            seen[r.shard.index] = r
        missing = [Shard(i, count).name for i in range(count) if i not in seen]
        if missing:
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            stopped = self._stopped_outputs(missing)
            hint = (f"; beside the others lie {', '.join(stopped[:5])}{' ...' if len(stopped) > 5 else ''}: the "
                    "output of a run that stopped; run that shard again with --resume, then merge") if stopped else ""
            raise ConfigError(f"missing shard output(s) {', '.join(missing[:20])}{more} of {count}{hint}")

    def _stopped_outputs(self, missing: list[str]) -> list[str]:
        """The ``.partial`` files, in the folders of the given shard outputs, of the ``missing`` shards."""
        folders = sorted({r.path.parent for r in self.readers if r.path.name != "-"})
        found = []
        for folder in folders:
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            found += [str(folder / n) for n in names if n.endswith(".partial") and any(m in n for m in missing)]
        return found

    def _check_models(self) -> None:
        ref = next((r for r in self.readers if r.provenance is not None), None)
        for r in self.readers:
            if r.provenance is not None and r.provenance != ref.provenance:
                detail = _differences(ref.provenance, r.provenance)
                raise ProvenanceError(f"shards {ref.shard.name} ({ref.path}) and {r.shard.name} ({r.path}) were made "
                                      f"by different models or settings ({detail})")
        known = [r for r in self.readers if r.settings is not None]
        for r in known[1:]:
            if r.settings != known[0].settings:
                detail = _differences(known[0].settings, r.settings)
                raise ProvenanceError(f"shards {known[0].shard.name} ({known[0].path}) and {r.shard.name} ({r.path}) "
                                      f"were embedded with different settings ({detail}); embed every shard with "
                                      "the same options")
        self.provenance = None if ref is None else ref.provenance

    def records(self) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
        """``(record, vector)`` for every output record in input order; ``vector`` None for errors.

        Records come back as a single run writes them: the shard keys are removed from
        the provenance (error records lose theirs), ``row`` is left for the caller to set.
        """
        index, chain, after = 0, "", None
        while True:
            reader = self.readers[index % self.count]
            nxt = reader.peek_index()
            if nxt is None:
                break
            if nxt > index:
                raise InputError(f"input record {index} is missing from shard {reader.shard.name} ({reader.path}), "
                                 f"whose next record is input record {nxt} (clsp embed writes a shard's records "
                                 "in input order: were lines of it lost, or reordered?)")
            group = reader.next_group()
            prov = group[0].get("provenance") or {}
            if isinstance(prov.get("input_prev"), str) and chain is not None and prov["input_prev"] != chain:
                raise InputError(f"input record {index} ({group[0].get('id')!r}) in shard {reader.shard.name} "
                                 f"({reader.path}) was read from another input than input record {index - 1} in "
                                 f"shard {after}: the shards were made from different input files (or the input "
                                 "changed between their runs); embed every shard from the same input")
            chain = prov.get("input_chain") if isinstance(prov.get("input_chain"), str) else None
            after = f"{reader.shard.name} ({reader.path})"
            for rec in group:
                self._check_record(reader, rec)
                yield self._public(rec), (None if "error" in rec and "embedding" not in rec and "row" not in rec
                                          else reader.vector(rec))
            index += 1
        for r in self.readers:
            left = r.peek_index()
            if left is not None and r.was_read(left):
                raise InputError(f"{r.path}: input record {left} appears twice in shard {r.shard.name} (again after "
                                 f"input record {r.last})")
            if left is not None and left < index:
                raise InputError(f"{r.path}: input record {left} comes after {r.last} in shard {r.shard.name} "
                                 "(records out of order)")
            if left is not None:
                owner = self.readers[index % self.count]
                raise InputError(f"input record {index} is missing from shard {owner.shard.name} ({owner.path}), "
                                 f"but shard {r.shard.name} ({r.path}) goes on with input record {left}")
        self._check_end(index, chain)

    def _check_end(self, count: int, chain: str | None) -> None:
        """The merged records end where the shards' inputs ended (the ``input_total`` /
        ``input_final`` mark on each shard's last record). A shard with records but no mark was
        cut short (a stopped run's ``.partial`` output, lines lost): refused, also when every
        shard is so."""
        marked = [r for r in self.readers if r.end is not None]
        if not marked:
            cut = [r for r in self.readers if r.last >= 0]
            if cut:
                names = ", ".join(f"{r.shard.name} ({r.path})" for r in cut[:4]) + (" ..." if len(cut) > 4 else "")
                raise InputError(f"no shard carries the end-of-input mark that a shard's last record has ({names}): "
                                 "their last records were cut off (the .partial output of a stopped run?), so "
                                 "records at the end of the input would be lost; finish each shard with clsp embed "
                                 "--resume (the same command) and merge the finished outputs")
            return
        for r in self.readers:
            if r.end is None and r.last >= 0:
                raise InputError(f"shard {r.shard.name} ({r.path}) lacks the end-of-input mark its last record "
                                 "should carry (the other shards have theirs): its last records were cut off; "
                                 "embed that shard again")
        totals = sorted({r.end[0] for r in marked})
        if len(totals) > 1:
            detail = ", ".join(f"{r.shard.name}: {r.end[0]}" for r in marked[:8])
            raise InputError(f"the shards read inputs of different lengths ({detail} records): embed every shard "
                             "from the same input")
        total = totals[0]
        if count < total:
            owner = self.readers[count % self.count]
            raise InputError(f"input records {count}..{total - 1} are missing: the input held {total} records, and "
                             f"shard {owner.shard.name} ({owner.path}) ends before input record {count}")
        if count > total or (chain is not None and chain != marked[0].end[1]):
            raise InputError(f"the merged records do not end where the shards' input ended ({total} records): "
                             "the shards were made from different inputs; embed every shard from the same input")

    def _check_record(self, reader: ShardReader, rec: dict[str, Any]) -> None:
        prov = model_provenance(rec.get("provenance") or {})
        if "error" not in rec and self.provenance is not None and prov != self.provenance:
            raise ProvenanceError(f"{reader.path}: record {rec.get('id')!r} was made by another model or settings "
                                  f"than the rest ({prov} vs {self.provenance})")

    @staticmethod
    def _public(rec: dict[str, Any]) -> dict[str, Any]:
        out = dict(rec)
        if "error" in out and "embedding" not in out and "row" not in out:
            out.pop("provenance", None)
        elif isinstance(out.get("provenance"), dict):
            out["provenance"] = model_provenance(out["provenance"])
        return out

    def close(self) -> None:
        for r in self.readers:
            r.close()


def check_shards(paths: list[str | Path]) -> None:
    """Read the shard outputs ``paths`` through once as a merge does, keeping nothing: raises
    what ``ShardSet`` and ``ShardSet.records`` raise (the digest chain, the end marks, models,
    settings and matrix rows included), so that a merge written to a stream (stdout, a pipe),
    where a record written cannot be taken back, is refused before its first record. A pipe
    given as a shard is read once and kept (``clsp.streams``), so the merge reads it again."""
    shard_set = ShardSet(paths)
    try:
        for _ in shard_set.records():
            pass
    finally:
        shard_set.close()
