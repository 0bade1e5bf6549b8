"""Reading input records (JSON Lines, bare lines, Lhotse cuts) one line at a time.

Every non-blank input line becomes exactly one ``Item``: either a record (a dict) or the
error that made the line unusable, so that callers can emit one output per input.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from clsp.errors import ClspError, InputError

MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class Item:
    """One input line: its 0-based position, an id, and either a record or an error."""

    index: int
    id: str
    record: dict[str, Any] | None = None
    error: ClspError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def error_record(rec_id: Any, exc: BaseException) -> dict[str, Any]:
    """The output record for an input that failed: ``{"id", "error": {"type", "message"}}``."""
    etype = exc.type if isinstance(exc, ClspError) else type(exc).__name__
    return {"id": rec_id, "error": {"type": etype, "message": str(exc)}}


def open_binary_input(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` for reading bytes; ``-`` is stdin, ``.gz`` files are decompressed."""
    if str(path) == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a file")
    if p.suffix == ".gz":
        return gzip.open(p, "rb")
    return open(p, "rb")


def base_dir_of(path: str | os.PathLike) -> Path:
    """The folder relative paths in a manifest resolve against (cwd for stdin)."""
    if str(path) == "-":
        return Path.cwd()
    return Path(path).resolve().parent


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` for non-blank lines, 1-based line numbers."""
    for lineno, raw in enumerate(stream, start=1):
        if raw.strip():
            yield lineno, raw


def _decode_line(lineno: int, raw: bytes) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise InputError(f"line {lineno}: longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InputError(f"line {lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


class _NonStandardNumber(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    """NaN and Infinity are not JSON: refuse them on input, as ``dumps`` does on output."""
    raise _NonStandardNumber(name)


def _parse_json(lineno: int, text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except _NonStandardNumber as exc:
        raise InputError(f"line {lineno}: invalid JSON ({exc} is not a JSON number)") from None
    except RecursionError:
        raise InputError(f"line {lineno}: invalid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise InputError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def cut_to_record(cut: dict[str, Any], lineno: int) -> dict[str, Any]:
    """Turn a Lhotse MonoCut dict into a flat ``{"id", "audio", "start", "end", ...}`` record."""
    rec = cut.get("recording")
    if not isinstance(rec, dict):
        raise InputError(f"line {lineno}: Lhotse cut without a recording")
    sources = rec.get("sources") or []
    if not sources or not isinstance(sources[0], dict) or "source" not in sources[0]:
        raise InputError(f"line {lineno}: Lhotse cut {cut.get('id')!r} has no audio source")
    start = float(cut.get("start", 0.0))
    out: dict[str, Any] = {"id": cut.get("id", rec.get("id")), "audio": sources[0]["source"], "start": start}
    if cut.get("duration") is not None:
        out["end"] = start + float(cut["duration"])
    sups = cut.get("supervisions") or []
    if sups and isinstance(sups[0], dict):
        sup = sups[0]
        for key in ("speaker", "gender", "language"):
            if sup.get(key) is not None:
                out[key] = sup[key]
        if sup.get("text"):
            out["transcript"] = sup["text"]
        custom = sup.get("custom") or {}
        if isinstance(custom, dict):
            out.update({k: v for k, v in custom.items() if k not in out})
    custom = cut.get("custom") or {}
    if isinstance(custom, dict):
        out.update({k: v for k, v in custom.items() if k not in out})
    return out


def is_lhotse_cut(obj: dict[str, Any]) -> bool:
    return "recording" in obj and ("duration" in obj or obj.get("type") in {"MonoCut", "Cut"})


def resolve_path(value: Any, base: Path) -> str:
    """Resolve a manifest path against the manifest's folder (absolute paths stay)."""
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def parse_line(lineno: int, raw: bytes, modality: str, base: Path) -> dict[str, Any]:
    """Parse one non-blank input line into a record for ``modality`` ("audio" or "text")."""
    text = _decode_line(lineno, raw)
    if text.startswith(("{", "[")):
        obj = _parse_json(lineno, text)
        if is_lhotse_cut(obj):
            obj = cut_to_record(obj, lineno)
    elif modality == "text":
        obj = {"id": f"line-{lineno}", "text": text}
    else:
        obj = {"id": text, "audio": text}
    if modality == "audio":
        if "audio" not in obj:
            raise InputError(f"line {lineno}: record has no 'audio' field")
        if not isinstance(obj["audio"], str) or not obj["audio"]:
            raise InputError(f"line {lineno}: 'audio' must be a non-empty path string")
        obj.setdefault("id", obj["audio"])
        obj["_path"] = resolve_path(obj["audio"], base)
    elif modality == "text":
        if "text" not in obj:
            raise InputError(f"line {lineno}: record has no 'text' field")
        if not isinstance(obj["text"], str):
            raise InputError(f"line {lineno}: 'text' must be a string")
        obj.setdefault("id", f"line-{lineno}")
    if obj.get("id") is None and isinstance(obj.get("audio"), str) and obj["audio"]:
        obj["id"] = obj["audio"]  # a clip without an id is named by its path, whatever the reader
    if not isinstance(obj.get("id"), (str, int)):
        obj["id"] = json.dumps(obj.get("id"))
    return obj


def _fallback_id(lineno: int, raw: bytes) -> str:
    """Best-effort id for a line that could not be parsed: its 'id' field if readable."""
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"))
        if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)):
            return str(obj["id"])
    except (json.JSONDecodeError, ValueError, RecursionError):
        pass
    return f"line-{lineno}"


def iter_items(path: str | os.PathLike, modality: str = "audio") -> Iterator[Item]:
    """Stream ``Item``s from a JSONL / bare-line / Lhotse manifest (``-`` = stdin)."""
    stream = open_binary_input(path)
    base = base_dir_of(path)
    try:
        for index, (lineno, raw) in enumerate(iter_lines(stream)):
            try:
                rec = parse_line(lineno, raw, modality, base)
                yield Item(index=index, id=str(rec["id"]), record=rec)
            except ClspError as exc:
                yield Item(index=index, id=_fallback_id(lineno, raw), error=exc)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def public_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the private ``_``-prefixed fields added while reading."""
    return {k: v for k, v in record.items() if not str(k).startswith("_")}


def dumps(record: dict[str, Any]) -> str:
    """One JSON line (no trailing newline), UTF-8 kept readable, NaN refused."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a whole (small) JSONL file strictly; errors name the line."""
    out = []
    stream = open_binary_input(path)
    try:
        for lineno, raw in iter_lines(stream):
            out.append(_parse_json(lineno, _decode_line(lineno, raw)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return out
