"""Reading input records (JSON Lines, bare lines, Lhotse cuts) one line at a time.

Every non-blank input line becomes exactly one ``Item``: either a record (a dict) or the
error that made the line unusable (a NUL byte, not UTF-8 text, broken JSON...), so that
callers can emit one output per input. A blank line holds only whitespace, Unicode spaces
(NBSP, U+3000) included, and gives no item.

A line is a JSON record only if it parses as a JSON object; any other line is a bare path
(audio) or caption (text), kept exactly as written except for its line end (``\n`` or
``\r\n``). Compressed inputs and a leading byte-order mark are handled by
``clsp.streams``; a compressed input cut short ends with one error item naming it.

Relative audio paths resolve against the manifest's folder (the working directory for
stdin) or against ``audio_root`` when given, and records carry them absolute, so outputs
open from anywhere.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from clsp.errors import ClspError, ConfigError, InputError
from clsp.sniff import refuse_binary_stream
from clsp.streams import AUDIO_EXTENSIONS, CUT_SOURCE_NAME, absolute_path, expand_path, is_stream_node
from clsp.streams import (  # noqa: F401  (re-exported: the record reader's stream helpers)
    TruncatedInputError,
    input_name,
    open_binary_input,
    raw_lines,
)

MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class Item:
    """One input line: its 0-based position, an id, and either a record or an error."""

    index: int
    id: str
    record: dict[str, Any] | None = None
    error: ClspError | None = None
    number_id: int | None = None  # an unreadable line's integer 'id' (``given_id``)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def given_id(self) -> str | int:
        """The id as the input wrote it, for output records: an integer id stays an integer
        (``id`` is its text), in error records as in the records written for a success."""
        rid = self.record.get("id") if isinstance(self.record, dict) else self.number_id
        if isinstance(rid, int) and not isinstance(rid, bool) and str(rid) == self.id:
            return rid
        return self.id


def error_record(rec_id: Any, exc: BaseException) -> dict[str, Any]:
    """The output record for an input that failed: ``{"id", "error": {"type", "message"}}``."""
    etype = exc.type if isinstance(exc, ClspError) else type(exc).__name__
    return {"id": rec_id, "error": {"type": etype, "message": str(exc)}}


def base_dir_of(path: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> Path:
    """The absolute folder that relative paths in a manifest resolve against.

    ``audio_root`` when given; else the manifest's own folder, or the working directory
    for stdin (``-``) and pipes (``<(cmd)``, a FIFO).
    """
    if audio_root is not None:
        return Path(absolute_path(home_path(audio_root)))
    if str(path) == "-" or is_stream_node(path):  # stdin, or a pipe such as <(cmd): as stdin
        return Path.cwd()
    return Path(absolute_path(path)).parent


def iter_lines(stream: IO[bytes], name: str = "input") -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` for non-blank lines, 1-based line numbers.

    Compressed streams are decompressed and a BOM dropped (``clsp.streams.raw_lines``);
    raises ``TruncatedInputError`` at a cut in compressed data.
    """
    for lineno, raw in enumerate(raw_lines(stream, name), start=1):
        if not is_blank(raw):
            yield lineno, raw


def is_blank(raw: bytes) -> bool:
    """Whether a raw line holds only whitespace, ASCII or Unicode (NBSP, U+3000, ... as
    ``str.strip`` removes them once the line is decoded): a line that gives no record."""
    stripped = raw.strip()
    if not stripped:
        return True
    if 0x20 < stripped[0] < 0x7F:  # printable ASCII first: not blank, without decoding the line
        return False
    return not stripped.decode("utf-8", "replace").strip()


def not_utf8(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8, or None: a byte that was not UTF-8 where it was
    read (Python holds it as a lone surrogate, ``\\udcXX``), or another lone surrogate."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:
            return f"byte 0x{code - 0xDC00:02x} at character {exc.start + 1}"
        return f"lone surrogate U+{code:04X} at character {exc.start + 1}"


def _decode_line(lineno: int, raw: bytes) -> str:
    """The line as text without its line end (``\n`` or ``\r\n``); other spaces are kept."""
    if len(raw) > MAX_LINE_BYTES:
        raise InputError(f"line {lineno}: longer than {MAX_LINE_BYTES} bytes")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise InputError(f"line {lineno}: holds a NUL byte (at byte {nul + 1}); a line of text cannot hold one")
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"line {lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


class _NonStandardNumber(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    """NaN and Infinity are not JSON: refuse them on input, as ``dumps`` does on output."""
    raise _NonStandardNumber(name)


def _finite_float(text: str) -> float:
    """A JSON number too large for a float (``1e400``) would become inf, which no output can
    hold: refused like NaN and Infinity."""
    value = float(text)
    if math.isinf(value):
        raise _NonStandardNumber(f"{text} (beyond the float range)")
    return value


_DIGITS_ONLY = {i: (48 if 48 <= i <= 57 else 32) for i in range(128)}  # str.translate: digits -> '0', ASCII -> ' '
_LONG_RUN = "0" * 300


def _may_hold_a_huge_float(text: str) -> bool:
    """Whether ``text`` may hold a float literal beyond the float range: an exponent of 3 or more
    digits (``1e400``, ``1E+309``) or a run of 300 digits. No false negatives; cheap on the
    usual embedding line (plain string search, no regex over the whole line)."""
    low = text.lower() if "E" in text else text
    at = low.find("e")
    while at >= 0:
        tail = low[at + 1 : at + 6].lstrip("+")
        if len(tail) >= 3 and tail[:3].isdigit():
            return True
        at = low.find("e", at + 1)
    return len(text) >= 300 and _LONG_RUN in text.translate(_DIGITS_ONLY)


def _parse_json(lineno: int, text: str) -> dict[str, Any]:
    try:
        # floats are checked one by one (a slower parse) only where a huge one may be
        huge = {"parse_float": _finite_float} if _may_hold_a_huge_float(text) else {}
        obj = json.loads(text, parse_constant=_refuse_constant, **huge)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except _NonStandardNumber as exc:
        raise InputError(f"line {lineno}: invalid JSON ({exc} is not a JSON number)") from None
    except RecursionError:
        raise InputError(f"line {lineno}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
        raise InputError(f"line {lineno}: invalid JSON ({str(exc)[:120]})") from None
    if isinstance(obj, list):
        raise InputError(f"line {lineno}: a JSON array, not a record; clsp reads JSON Lines, one object per "
                         "line (convert with: jq -c '.[]' FILE > FILE.jsonl)")
    if not isinstance(obj, dict):
        raise InputError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


CAPTION_FIELDS = {"global_captions": "global", "finegrained_captions": "finegrained", "short_captions": "short",
                  "long_captions": "long"}  # caption list field -> caption_type
NOT_CAPTION_FIELDS = ("audio", "start", "end", "duration", "channel", "audio_files", "measurements", "attributes",
                      "inferred", "rejected", "provenance", "transcript")  # the clip's, not one caption's


def _caption_list(obj: dict[str, Any], lineno: int) -> list[tuple[str, int, str]]:
    """``(caption_type, k, text)`` for every caption a record holds in ``CAPTION_FIELDS``
    (lists of strings, or one string); ``InputError`` when one is not text, or none is."""
    out = []
    for key, kind in CAPTION_FIELDS.items():
        value = obj.get(key)
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if value is not None and (texts is None or not all(isinstance(t, str) for t in texts)):
            raise InputError(f"line {lineno}: '{key}' must be a list of caption strings")
        out += [(kind, k, t) for k, t in enumerate(texts or []) if t.strip()]
    if not out:
        raise InputError(f"line {lineno}: no 'text' field, and its caption fields hold no caption")
    return out


def split_captions(items: Iterable[Item]) -> Iterator[Item]:
    """Text items, one per caption: a record holding captions in lists (``clsp caption``
    output, FCaps manifests; parsed with ``modality="text"``) becomes one record per caption,
    ``{"id": "ID-global0", "text", "audio_id": ID, "caption_type": "global", ...}`` with the
    record's other fields (speaker, emotion...), in order; other items pass. Indexes are
    renumbered from 0, so shards and ``--resume`` count caption records."""
    index = 0
    for item in items:
        captions = item.record.get("_captions") if item.ok else None
        if not captions:
            yield Item(index=index, id=item.id, record=item.record, error=item.error)
            index += 1
            continue
        keep = {k: v for k, v in item.record.items()
                if k not in CAPTION_FIELDS and k not in NOT_CAPTION_FIELDS and k != "id" and not k.startswith("_")}
        for kind, k, text in captions:
            cid = f"{item.id}-{kind}{k}"
            yield Item(index=index, id=cid, record={**keep, "id": cid, "text": text, "audio_id": item.id,
                                                     "caption_type": kind})
            index += 1
CUT_TYPES = {"MonoCut", "MultiCut", "MixedCut", "PaddingCut", "DataCut", "Cut"}


def is_cut(obj: dict[str, Any]) -> bool:
    """Whether a JSON object is a Lhotse cut (by its ``type``, or a recording with a duration)."""
    kind = obj.get("type")
    return (isinstance(kind, str) and kind in CUT_TYPES) or ("recording" in obj and "duration" in obj)


def home_path(text: str | os.PathLike) -> Path:
    """``Path(text)`` with a leading ``~`` / ``~user`` expanded, as a shell expands it: only a
    string that starts with ``~`` as written (``./~/a.wav`` names the folder ``~`` here, though
    ``Path`` drops its ``./``); a name a shell would keep as written (``~`` of no such user, a
    NUL byte, no home directory) stays as written."""
    written = os.fspath(text) if isinstance(text, os.PathLike) else text
    if not isinstance(written, str) or not written.startswith("~"):
        return Path(text)
    try:
        return Path(text).expanduser()
    except (RuntimeError, ValueError):
        return Path(text)


def resolve_path(value: Any, base: Path, expand_home: bool = True) -> str:
    """``value`` as an absolute path: relative ones join ``base``; a leading ``~`` expands
    (``home_path``) unless ``expand_home`` is false (a command-line argument, which the shell
    expanded already: a ``~`` left in it is a name); URLs stay.

    ``..`` is resolved as the system does (``absolute_path``: after a symlinked folder, to the
    parent of its target); other symlinks are kept as written.
    """
    text = str(value)
    if "://" in text:
        return text
    p = home_path(text) if expand_home else Path(text)
    return absolute_path(p if p.is_absolute() else base / p)


def _json_or_none(lineno: int, text: str) -> tuple[dict[str, Any] | None, InputError | None]:
    """The line's JSON object, or None and the reason it is not one."""
    if not text.lstrip().startswith(("{", "[")):
        return None, None
    try:
        return _parse_json(lineno, text.strip()), None
    except InputError as exc:
        return None, exc


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except (ValueError, RecursionError):
        return False


def _json_scalar(text: str) -> str | None:
    """What JSON value other than an object or array the whole line is ("a string", "a
    number", "true"...), or None (plain text; NaN and Infinity are not JSON)."""
    def refuse(_name: str) -> None:
        raise ValueError("not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number" if isinstance(value, (int, float)) else None


def _opens_a_record(text: str) -> bool:
    """Whether a line starts as a JSON object does (``{"``, ``{'``, ``{}``, ``{ "``, or ``{``
    alone): a broken record, not a caption such as ``{laughs} a happy young woman``."""
    rest = text.strip()
    if not rest.startswith("{"):
        return False
    rest = rest[1:].lstrip()
    return not rest or rest[0] in "\"'}"


def _bare_line(lineno: int, text: str, modality: str, base: Path, not_json: InputError | None) -> dict[str, Any]:
    """A line that is not a JSON object: a caption (text) or a path kept as written; in a
    pairs file (two sides per record) an ``InputError`` naming the line."""
    if modality == "pairs":
        raise not_json or InputError(f"line {lineno}: not a JSON record; a pairs file holds one JSON "
                                     "object per line, e.g. {\"a\": \"x.wav\", \"b\": \"y.wav\"}")
    if modality == "text":
        if not_json is not None and (_opens_a_record(text) or _is_json(text)):
            raise not_json  # a broken or non-object record, not a caption such as "[laughs] ..." or "{laughs} ..."
        kind = _json_scalar(text)
        if kind is not None:  # "a quoted caption" (jq without -r), 42, true, null: JSON, not a caption line
            raise InputError(f"line {lineno}: JSON that is not an object ({kind}); a caption list holds plain lines: "
                             "write captions without quotes (jq -r) or as records, {\"text\": \"...\"}")
        return {"id": f"line-{lineno}", "text": text.strip()}
    if not_json is not None and not os.path.lexists(resolve_path(text, base)):
        raise InputError(f"{not_json} (and no file of that name)")
    return {"id": text, "audio": text}


def _names_no_file(audio: str, base: Path) -> bool:
    """Whether ``audio`` is a cut source name clsp wrote (``mix:ID``, ``memory:ID``,
    ``padding``...) and no file of that name exists: kept as written, not made a path."""
    return CUT_SOURCE_NAME.match(audio) is not None and not os.path.lexists(resolve_path(audio, base))


def _error_reason(err: Any) -> Any:
    """The message of an error record's ``error`` field (``{"type", "message"}`` or a string)."""
    return err.get("message", err) if isinstance(err, dict) else err


def upstream_error(record: dict[str, Any], where: str) -> InputError | None:
    """``InputError`` "WHERE is an upstream error: REASON" for an error record of an earlier
    command (an ``error`` field), passing its reason on, or ``None`` for any other record."""
    if not isinstance(record, dict) or "error" not in record:
        return None
    return InputError(f"{where} is an upstream error: {_error_reason(record['error'])}")


def _lhotse_hint(obj: dict[str, Any]) -> str:
    """What to do with a Lhotse manifest that is not a CutSet (a Recording or a
    SupervisionSegment per line), or '' for any other record."""
    if isinstance(obj.get("sources"), list) and "sampling_rate" in obj:
        kind = "a Lhotse Recording (a RecordingSet manifest)"
    elif "recording_id" in obj and "start" in obj and "duration" in obj:
        kind = "a Lhotse SupervisionSegment (a SupervisionSet manifest)"
    else:
        return ""
    return (f": it is {kind}; clsp reads cuts: make them with `lhotse cut simple -r recordings.jsonl.gz "
            "-s supervisions.jsonl.gz cuts.jsonl.gz` (CutSet.from_manifests) and give cuts.jsonl.gz")


def parse_line(lineno: int, raw: bytes, modality: str, base: Path, cut_root: Path | None = None) -> dict[str, Any]:
    """Parse one non-blank input line into a record for ``modality``.

    ``modality`` is "audio" or "text" (the field the record must have) or another reader
    name ("any", "pairs", "embeddings") that requires neither. A string ``audio`` field
    is made absolute (``resolve_path`` against ``base``) and also stored as ``_path``.
    A Lhotse cut's relative sources resolve against ``cut_root`` when given (``--audio-root``),
    else against the working directory, as in Lhotse.
    """
    try:
        text, undecodable = _decode_line(lineno, raw), None
    except InputError as exc:  # a bare path may name a file whose name is not UTF-8 (POSIX names are bytes)
        if modality == "text" or len(raw) > MAX_LINE_BYTES or b"\0" in raw:
            raise
        text, undecodable = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape"), exc
    obj, not_json = _json_or_none(lineno, text)
    if undecodable is not None and (obj is not None or not os.path.lexists(resolve_path(text, base))):
        if obj is not None:
            raise undecodable  # JSON is UTF-8
        if not text.lower().endswith(AUDIO_EXTENSIONS):  # text that names nothing, not a file name
            raise InputError(f"{undecodable} (and no file of that name)")
        # a file name in another encoding than UTF-8, of no file: a path like any other (reading
        # it says the file is missing, under the name as given)
    if obj is None:
        obj = _bare_line(lineno, text, modality, base, not_json)
    elif is_cut(obj):
        from clsp.cuts import cut_record, rooted_cut  # Lhotse (and torch) only when cuts are read

        if cut_root is not None:
            obj = rooted_cut(obj, cut_root)
        obj = cut_record(obj, f"line {lineno}")  # else its audio path is Lhotse's to resolve (the working directory)
    if modality == "audio":
        if "audio" not in obj and "error" in obj:  # an error record of an earlier command: its reason goes on
            raise InputError(f"line {lineno}: an upstream error record, no audio: {_error_reason(obj['error'])}")
        if "audio" not in obj:
            raise InputError(f"line {lineno}: record has no 'audio' field{_lhotse_hint(obj)}")
        if not isinstance(obj["audio"], str) or not obj["audio"]:
            raise InputError(f"line {lineno}: 'audio' must be a non-empty path string")
    if isinstance(obj.get("audio"), str) and obj["audio"]:
        if obj.get("id") is None:
            obj["id"] = obj["audio"]  # a clip without an id is named by its path as written
        if "_cut" not in obj and not _names_no_file(obj["audio"], base):
            obj["audio"] = resolve_path(obj["audio"], base)
        obj["_path"] = obj["audio"]
    if modality == "text":
        if "text" not in obj and "error" in obj:  # an error record of an earlier command: its reason goes on
            raise InputError(f"line {lineno}: an upstream error record, no text: {_error_reason(obj['error'])}")
        if "text" not in obj and any(k in obj for k in CAPTION_FIELDS):
            obj["_captions"] = _caption_list(obj, lineno)  # clsp caption output: split by split_captions
        elif "text" not in obj:
            raise InputError(f"line {lineno}: record has no 'text' field (nor captions in "
                             f"{', '.join(CAPTION_FIELDS)})")
        elif not isinstance(obj["text"], str):
            raise InputError(f"line {lineno}: 'text' must be a string")
        obj.setdefault("id", f"line-{lineno}")
    rid = obj.get("id")
    if rid is None:  # no id (or null): named by its line
        obj["id"] = f"line-{lineno}"
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise InputError(f"line {lineno}: 'id' must be a string or an integer, not {json.dumps(rid)[:60]}")
    elif isinstance(rid, str) and not rid.strip():
        raise InputError(f"line {lineno}: 'id' is empty")
    return obj


def _fallback_id(lineno: int, raw: bytes) -> str | int:
    """Best-effort id for a line that could not be parsed: its 'id' field if readable (an
    integer as an integer)."""
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"))
        rid = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid).strip():
            return rid
    except (json.JSONDecodeError, ValueError, RecursionError):
        pass
    return f"line-{lineno}"


SUMMARY_ID = "__summary__"  # the id of the summary record that ends an evaluation's output (clsp_cli.output)


def is_summary_line(raw: bytes) -> bool:
    """Whether ``raw`` is the closing ``{"id": "__summary__", "summary": {...}}`` line that
    ``classify --label-key`` and ``similarity --human-key`` write after their records (and nothing else):
    output fed back in skips it rather than making it an error record."""
    if b'"__summary__"' not in raw or not raw.lstrip().startswith(b"{"):
        return False
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and set(obj) == {"id", "summary"} and obj["id"] == SUMMARY_ID \
        and isinstance(obj["summary"], dict)


# how a YAML manifest begins (Lhotse's: "- channel: 0", keys sorted): a document mark, or a list of
# mappings; no JSON record does, and no path a list would hold
YAML_START = re.compile(rb"^(---(\s|$)|%YAML|- [A-Za-z_]\w*:(\s|$)|id:\s)")


def refuse_yaml_manifest(name: str, first_line: bytes | None = None) -> None:
    """``ConfigError`` for an input named as YAML (``cuts.yaml``, ``cuts.yml.gz``), or whose
    ``first_line`` begins as a YAML manifest does (``---``, ``- channel: 0``: one piped on stdin, or
    under another name): no line reader reads it (each line would become an error record); the
    message gives the Lhotse line that converts a YAML cut manifest to JSON Lines."""
    low = str(name).lower()
    for suffix in (".gz", ".zst", ".xz", ".bz2"):
        low = low.removesuffix(suffix)
    line = (first_line or b"").strip()
    by_content = YAML_START.match(line) is not None
    if low.endswith((".yaml", ".yml")) or by_content:
        piped = str(name) in ("-", "stdin") or is_stream_node(name)
        how = "a YAML manifest" if not by_content else f"a YAML manifest (its first line: {line[:60].decode(errors='replace')!r})"
        source = "cuts.yaml" if piped else name
        save = "save it as cuts.yaml, then for " if piped else "for "
        raise ConfigError(f"{name}: {how}; clsp reads JSON Lines, one record per line ({save}"
                          "Lhotse cuts: python -c \"from lhotse import CutSet; "
                          f"CutSet.from_file('{source}').to_file('cuts.jsonl.gz')\", then give cuts.jsonl.gz)")


SCP_SUFFIXES = (".scp", ".scp.gz", ".scp.bz2", ".scp.xz", ".scp.zst")


def is_scp_name(path: str) -> bool:
    """Whether ``path`` names a Kaldi ``.scp`` list (``wav.scp``; compressed too)."""
    return path.lower().endswith(SCP_SUFFIXES)


def kaldi_scp_line(lineno: int, raw: bytes) -> bytes:
    """One line of a Kaldi ``wav.scp`` (``UTTERANCE_ID PATH``, the path may hold spaces; a
    relative one is read from the working directory, as Kaldi does) as a JSON record line
    ``{"id", "audio"}`` for :func:`parse_line`. ``InputError`` naming the line
    for a line without a path, an extended filename (a command ending in ``|``: clsp runs no
    command from a manifest) and an archive offset (``file.ark:123``), which clsp does not read
    (``lhotse kaldi import`` turns a Kaldi data folder into cuts clsp reads).
    Format: https://kaldi-asr.org/doc/data_prep.html ("wav.scp")."""
    text = _decode_line(lineno, raw).strip()
    utt, where = (re.split(r"[ \t]+", text, maxsplit=1) + [""])[:2]
    if not where:
        raise InputError(f"line {lineno}: a Kaldi .scp line is 'UTTERANCE_ID PATH'; this one has no path")
    if where.endswith("|"):
        raise InputError(f"line {lineno}: utterance {utt!r} is a command ('{where[:60]}'); clsp runs no command "
                         "from a manifest: write its audio to a file and list that, or convert the data folder "
                         "with lhotse kaldi import")
    if re.search(r"\.ark:\d+$", where):
        raise InputError(f"line {lineno}: utterance {utt!r} is an offset in a Kaldi archive ({where}), which clsp "
                         "does not read; convert the data folder with lhotse kaldi import")
    return json.dumps({"id": utt, "audio": where}, ensure_ascii=False).encode("utf-8", "surrogateescape")


def iter_items(path: str | os.PathLike, modality: str = "audio", audio_root: str | os.PathLike | None = None,
               start_index: int = 0) -> Iterator[Item]:
    """Stream ``Item``s from a JSONL / bare-line / Lhotse manifest or a Kaldi ``wav.scp``
    (a file named ``*.scp``: :func:`kaldi_scp_line`) (``-`` = stdin).

    ``modality`` as in ``parse_line``; relative paths resolve against ``base_dir_of(path,
    audio_root)``; indexes count from ``start_index``. Raises ``InputError`` if the file
    cannot be opened, ``ConfigError`` for a device or socket ("not a regular file": read, it
    would never end), and (at the first item) when stdin or a pipe holds audio, a
    ``.npy`` matrix or other binary data (``clsp.sniff.refuse_binary_stream``). A compressed input cut short yields a last item whose error is a
    ``TruncatedInputError`` ("NAME: truncated after N records ..."). The summary line an
    earlier command closed its output with (``is_summary_line``) is skipped.
    """
    if str(path) != "-":
        from clsp.sniff import node_problem

        problem = node_problem(path, pipes=True)
        if problem is not None and problem.startswith("not a regular file"):  # a device: bytes without end
            raise ConfigError(f"{path}: {problem}")
    stream = open_binary_input(path)
    base = base_dir_of(path, audio_root)
    name = input_name(path)
    scp = modality in ("audio", "any") and is_scp_name(str(path))
    if scp and audio_root is None:
        base = Path.cwd()  # as in Kaldi (and Lhotse's import of it): relative to where the recipe runs
    if str(path) == "-" or is_stream_node(path):  # no file to look at first: audio or a matrix piped in is refused
        try:
            refuse_binary_stream(stream, name, modality)
        except ConfigError:
            if stream is not sys.stdin.buffer:
                stream.close()
            raise
    index, lineno = start_index, 0
    try:
        try:
            for lineno, raw in iter_lines(stream, name):
                if index == start_index:
                    refuse_yaml_manifest(name, raw)
                if index == start_index and raw.strip() in (b"[", b"{"):
                    raise ConfigError(f"{name}: pretty-printed JSON (a lone {raw.strip().decode()!r} on line {lineno}); "
                                      "clsp reads JSON Lines, one record per line (convert with: jq -c '.[]' for an "
                                      "array, jq -c . for objects)")
                if is_summary_line(raw):  # an earlier command's closing summary: not a record
                    continue
                try:
                    line = kaldi_scp_line(lineno, raw) if scp and not is_blank(raw) else raw
                    rec = parse_line(lineno, line, modality, base, base if audio_root is not None else None)
                    yield Item(index=index, id=str(rec["id"]), record=rec)
                except ClspError as exc:
                    given = raw.split(None, 1)[0].decode("utf-8", "replace") if scp and raw.strip() else \
                        _fallback_id(lineno, raw)
                    yield Item(index=index, id=str(given), error=exc,
                               number_id=given if isinstance(given, int) else None)
                index += 1
        except TruncatedInputError as exc:
            reason = str(exc).removeprefix(f"{name}: ")
            err = TruncatedInputError(f"{name}: truncated after {index - start_index} records ({reason})")
            yield Item(index=index, id=f"line-{lineno + 1}", error=err)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def check_sequence(values: Any, name: str, what: str) -> None:
    """``TypeError`` naming the parameter ``name`` when ``values`` is one string, path or
    record where a collection of ``what`` is expected (a string would be read one character
    at a time)."""
    if isinstance(values, (str, bytes, os.PathLike, dict)):
        raise TypeError(f"{name}: a list of {what}, not one {type(values).__name__}; wrap it in a list: [{values!r}]")


def as_items(inputs: Iterable[Any], base: str | os.PathLike | None = None) -> Iterator[Item]:
    """Items from what a Python caller has: audio paths (``str`` / ``Path``), records (dicts
    with ``audio``, ``text`` or a stored ``embedding``; an ``audio`` may be a ``Path``) or
    ready ``Item`` s, in order.

    A path that names a folder stands for the audio files below it, and a glob pattern that
    names no file for the files it matches, as on the command line (``clsp.streams.expand_path``;
    ``ConfigError`` for a folder without audio and a pattern that matches nothing).
    Relative audio paths resolve against ``base`` (default: the working directory). Ids
    default to the path as given, else the position. ``TypeError`` for one string or path
    given instead of a list, or an input that is none of these.
    """
    check_sequence(inputs, "inputs", "audio paths or records")
    return _items_of(inputs, Path(base) if base is not None else Path.cwd())


def _expanded(inputs: Iterable[Any], root: Path) -> Iterator[tuple[int, Any]]:
    """``(position given, value)`` with each folder or pattern path replaced by the files it names."""
    for n, value in enumerate(inputs):
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            given, full = os.fspath(value), resolve_path(value, root)
            found = expand_path(full)
            if found != [full]:  # a folder or a pattern: its files, named as given (relative stays relative)
                relative = not Path(given).is_absolute() and not given.startswith("~")
                for path in found:
                    if os.path.isdir(full):
                        path = os.path.join(given, os.path.relpath(path, full))
                    elif relative:
                        path = os.path.relpath(path, root)
                    yield n, path
                continue
        yield n, value


def _items_of(inputs: Iterable[Any], root: Path) -> Iterator[Item]:
    index = -1
    for n, value in _expanded(inputs, root):
        index += 1
        if isinstance(value, Item):
            yield value
            continue
        if not isinstance(value, (str, os.PathLike, dict)):
            raise TypeError(f"inputs[{n}]: an audio path or a record, got {type(value).__name__}")
        if isinstance(value, (str, os.PathLike)) and {".jsonl", ".ndjson"} & set(Path(value).suffixes):
            raise TypeError(f"inputs[{n}]: {os.fspath(value)!r} names a JSON Lines manifest, not an audio file; give "
                            "the manifest's path itself as inputs (not in a list), or its records")
        rec = {"id": os.fspath(value), "audio": os.fspath(value)} if isinstance(value, (str, os.PathLike)) else dict(value)
        if isinstance(rec.get("audio"), os.PathLike):
            rec["audio"] = os.fspath(rec["audio"])
        if isinstance(rec.get("audio"), str) and rec["audio"]:
            rec.setdefault("id", rec["audio"])
            rec["audio"] = rec["_path"] = resolve_path(rec["audio"], root)
        rec.setdefault("id", index)
        yield Item(index=index, id=str(rec["id"]), record=rec)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` consecutive items (the last one shorter), in order."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def json_vector(vec: Any) -> list[float]:
    """A float32 vector as a JSON list: 9 significant digits, enough to read back the same
    float32 values."""
    return [float(f"{v:.9g}") for v in vec.tolist()]


def public_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the private ``_``-prefixed fields added while reading."""
    return {k: v for k, v in record.items() if not str(k).startswith("_")}


def utf8_encodable(text: str) -> bool:
    """False for a string holding bytes that are not UTF-8 (a file name read with Python's
    surrogate escapes, as ``os.fsdecode`` gives it), which no UTF-8 file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dumps(record: dict[str, Any]) -> str:
    """One JSON line (no trailing newline), UTF-8 kept readable, NaN refused.

    A record holding a string that is not ``utf8_encodable`` is written with ``\\uXXXX``
    escapes instead, which read back to the same string (and file name)."""
    text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    if utf8_encodable(text):
        return text
    return json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def read_jsonl(path: str | os.PathLike, on_cut_tail: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Read a whole (small) JSONL file strictly (compressed and BOM allowed); errors name the line.
    The closing ``__summary__`` line of an evaluation's output (``is_summary_line``) is not a
    record and is skipped, as the commands skip it. With ``on_cut_tail``, a last line that
    has no newline and is not a JSON object (a file another process is still writing) is left
    out and its line number passed to it, not raised."""
    out = []
    stream = open_binary_input(path)
    try:
        for lineno, raw in iter_lines(stream, input_name(path)):
            if is_summary_line(raw):
                continue
            try:
                out.append(_parse_json(lineno, _decode_line(lineno, raw).strip()))
            except InputError:
                if on_cut_tail is None or raw.endswith(b"\n"):
                    raise
                on_cut_tail(lineno)  # only the last line lacks its newline
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return out
