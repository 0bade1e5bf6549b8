"""What a file or stream holds, from its first bytes: audio, a NumPy matrix, text or other
binary data (``clsp.inputs`` plans its arguments with these tests, ``clsp.records`` refuses a
binary stream where records are read)."""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import IO

from clsp.errors import ConfigError
from clsp.streams import compression_of, peek_bytes, refuse_wide_text

SNIFF_BYTES = 4096


def audio_signature(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a common audio container.

    Signatures: RIFF/RIFX/RF64 + WAVE, fLaC, OggS, ID3 or an MPEG audio frame sync (MP3),
    FORM + AIFF/AIFC, ``.snd`` (AU), NIST_1A (SPHERE), caff, wvpk, ``ftyp`` (MP4/M4A) and
    the ASF/WMA GUID.
    """
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    if head.startswith((b"fLaC", b"OggS", b"ID3", b".snd", b"NIST_1A", b"caff", b"wvpk",
                        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")):
        return True
    if head[4:8] == b"ftyp":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


_CONTROL_BYTES = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x20)) + b"\x7f"


def _text_line(line: bytes) -> bool:
    """UTF-8, or free of control bytes: a path list line naming a file whose name is in
    another 8-bit encoding (Latin-1, CP1252) is text too."""
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return not any(b in _CONTROL_BYTES for b in line)


NPY_MAGIC = b"\x93NUMPY"  # a NumPy .npy matrix (any name; clsp.index.records.is_npy_name says one by its name)


def _many_nuls(head: bytes) -> bool:
    """NUL bytes as binary formats hold them (a run of four, or more than one byte in eight of
    the sample), not a stray NUL in a line of text (which is one error record for its line)."""
    nuls = head.count(b"\0")
    return b"\0\0\0\0" in head or (nuls >= 2 and nuls * 8 > len(head))


def looks_like_text(head: bytes) -> bool:
    """Not NUL-padded binary data (``_many_nuls``), and most lines of the sample are text (a bad
    line, a stray NUL byte included, is one error record)."""
    if _many_nuls(head):
        return False
    lines = head.split(b"\n")
    if len(lines) > 1 and len(head) >= SNIFF_BYTES:
        lines.pop()  # may be cut in the middle of a character
    good = sum(1 for line in lines if _text_line(line))
    return good * 2 > len(lines)


def refuse_binary_stream(stream: IO[bytes], name: str = "stdin", modality: str = "audio") -> None:
    """``ConfigError`` (a usage error, exit 2) when ``stream`` (stdin, or a pipe such as
    ``<(cmd)``, named ``name``), where records are read, holds audio data, a NumPy ``.npy``
    matrix, UTF-16/32 text or other binary data (``sniff_file``'s tests), looked at without
    consuming it; compressed data passes (its text is checked as it is read)."""
    head = peek_bytes(stream, SNIFF_BYTES)
    if compression_of(head) is not None:
        return
    refuse_wide_text(head, name)
    where = "stdin" if name == "stdin" else f"{name} (a pipe)"
    if audio_signature(head):
        if modality in ("audio", "any"):
            raise ConfigError(f"{where} holds audio data: give the audio file as an argument "
                              "(clsp embed clip.wav) or a list of paths on stdin")
        raise ConfigError(f"{where} holds audio data; expected {RECORDS_EXPECTED.get(modality, 'records')}: give "
                          "the audio file as an argument (embed it first: clsp embed clip.wav -o clip.emb.jsonl)")
    if head.startswith(NPY_MAGIC):
        raise ConfigError(f"{where} holds a NumPy .npy matrix, which is read from a file: give it as a file, as "
                          "INPUT (x.npy) or with --npy x.npy beside its records")
    if not looks_like_text(head):
        raise ConfigError(f"{where}: neither a text list of records nor compressed text (binary data); "
                          "give audio files as arguments, or JSONL / path-list records on stdin")


RECORDS_EXPECTED = {"embeddings": "embedding records (what clsp embed writes)", "pairs": "a pairs JSONL file",
                    "queries": "query records (JSONL with an 'embedding', 'text' or 'audio' field)",
                    "text": "captions", "manifest": "a training manifest", "shards": "the JSONL output of clsp embed"}


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # scheme://...: http, https, s3, gs, file...
_NODE_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISSOCK, "a socket"))


def url_problem(text: str) -> str | None:
    """Why ``text`` (a path as given) cannot be read, when it is a URL: clsp reads local files
    only (a ``file://`` URL is refused too, naming the local path to give instead); None for
    any other text."""
    if URL.match(text) is None:
        return None
    if text[:7].lower() == "file://":
        from urllib.parse import unquote, urlsplit

        return f"a file:// URL, not a path: give the local path ({unquote(urlsplit(text).path)})"
    return "a URL; clsp reads local files only: download it and give its local path"


def node_problem(path: str | os.PathLike, pipes: bool = False) -> str | None:
    """Why ``path`` cannot be read as an input file, or None for a regular file or a folder (and,
    with ``pipes``, a FIFO or pipe, read once as a stream): "no such file" (a dangling symbolic
    link named as such), a symbolic link loop, or "not a regular file" for a device, socket or
    (without ``pipes``) FIFO, whose reading would block or never end."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return "a symbolic link loop (too many levels of symbolic links)"
        if os.path.islink(path):
            try:
                return f"no such file (a dangling symbolic link to {os.readlink(path)})"
            except OSError:
                pass
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot open ({exc.strerror or type(exc).__name__})"
        return "no such file"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or (pipes and stat.S_ISFIFO(mode)):
        return None
    kind = next((name for test, name in _NODE_KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind})"
