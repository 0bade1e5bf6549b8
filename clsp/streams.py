"""Text inputs as users have them: compressed or not, with or without a byte-order mark.

Compression is recognised by content, not by the file name, so ``clsp embed - < x.jsonl.gz``
works like ``clsp embed x.jsonl.gz``: gzip by its magic bytes ``1f 8b`` (RFC 1952, several
members allowed) and zstd by ``28 b5 2f fd`` (RFC 8878, several frames allowed). A UTF-8
byte-order mark (``EF BB BF``, written by Notepad, Excel and PowerShell 5) at the start of
the text is dropped. A compressed stream cut short raises ``TruncatedInputError`` after
the complete lines before the cut; the torn last line is never returned.
"""

from __future__ import annotations

import glob
import io
import os
import re
import stat
import sys
import zlib
from pathlib import Path
from typing import IO, Iterator

from clsp.errors import ConfigError, InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # after "BZh" and the block size: a first block, or an empty stream
UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 1 << 16


class TruncatedInputError(InputError):
    """A compressed input ends before its end marker, or its compressed data is corrupt."""


def input_name(path: str | os.PathLike) -> str:
    """How messages name an input: its path, or ``stdin`` for ``-``."""
    return "stdin" if str(path) == "-" else str(path)


def open_binary_input(path: str | os.PathLike) -> IO[bytes]:
    """Open ``path`` (``-`` is stdin) for reading its raw bytes. ``ConfigError`` (a usage
    error) when it does not exist or is a folder, ``InputError`` when it cannot be read."""
    if str(path) == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.exists():  # the argument names nothing: a usage error (exit 2)
        raise ConfigError(f"{p}: no such file")
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a file")
    from clsp.runfiles import note_read

    note_read(p)
    try:
        if is_stream_node(p):
            return io.BytesIO(_stream_bytes(p))
        return open(p, "rb")
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None


_STREAMS: dict[str, bytes] = {}  # what each pipe or FIFO this process read held


def is_stream_node(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a pipe, FIFO or character device (``<(cmd)`` in a shell, ``mkfifo``):
    its bytes can be read once only."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _stream_bytes(path: Path) -> bytes:
    """All of a pipe's bytes, read at the first open and kept, so that looking at its start
    (which kind of input it is) and reading its records later see the same bytes, and a FIFO
    is opened once."""
    key = str(path)
    if key not in _STREAMS:
        with open(path, "rb") as fh:
            _STREAMS[key] = fh.read()
    return _STREAMS[key]


def peek_bytes(stream: IO[bytes], n: int = 8) -> bytes:
    """Up to ``n`` first bytes of a buffered stream, without consuming them."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(n)[:n]
    try:
        if stream.seekable():  # e.g. an in-memory stream
            pos = stream.tell()
            head = stream.read(n)
            stream.seek(pos)
            return head
    except (AttributeError, OSError):
        pass
    return b""


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"``, ``"xz"``, ``"bzip2"`` or None, from the first (10) bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0" and head[4:10] in BZIP2_BLOCKS:
        return "bzip2"
    return None


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


def _decompressor(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(wbits=31), zlib.error
    if kind == "xz":
        import lzma

        return lzma.LZMADecompressor(), lzma.LZMAError
    if kind == "bzip2":
        import bz2

        return bz2.BZ2Decompressor(), OSError
    try:
        import zstandard
    except ImportError:
        raise InputError("zstd-compressed input needs the 'zstandard' package (pip install zstandard)") from None
    return zstandard.ZstdDecompressor().decompressobj(), zstandard.ZstdError


def decompressed_chunks(raw: IO[bytes], kind: str, name: str = "input") -> Iterator[bytes]:
    """Decompressed chunks of a gzip, zstd, xz or bzip2 stream of one or more members/frames/streams.

    Raises ``TruncatedInputError`` naming ``name`` when the data stops inside a member or
    is corrupt. Zero bytes after the last member (block padding) are ignored.
    """
    dec, dec_error = _decompressor(kind)
    inside = False
    while data := raw.read(CHUNK_BYTES):
        while data:
            if not inside and not data.strip(b"\0"):
                break  # zero padding between or after members
            inside = True
            try:
                out = dec.decompress(data)
            except dec_error as exc:
                raise TruncatedInputError(f"{name}: corrupt {kind} data ({exc})") from None
            if out:
                yield out
            if not dec.eof:
                break
            data, inside = dec.unused_data, False
            dec, _ = _decompressor(kind)
    if inside:
        raise TruncatedInputError(f"{name}: {kind} stream ends before its end marker")


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines (each with its ``\\n``) of a chunked byte stream; a last line without one is kept."""
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part + b"\n"
    if rest:
        yield rest


# a number written as text in a record field: plain ASCII decimal (sign, digits, point, exponent),
# as JSON writes numbers; not 1_0, other scripts' digits, spaces, 0x1, inf or nan, which float() takes
PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def wide_encoding(head: bytes) -> str | None:
    """``"UTF-16"`` or ``"UTF-32"`` (``"UTF-16LE"`` / ``"UTF-16BE"`` without a byte-order mark,
    as iconv names them) when ``head`` (a file's first bytes) is text in one of them:
    a byte-order mark (``FF FE``, what Windows PowerShell 5 writes with ``>``, would otherwise
    pass for an MPEG audio frame sync) or, without one, ASCII characters each followed or
    preceded by NUL bytes; None otherwise."""
    for bom, enc, codec in ((b"\xff\xfe\x00\x00", "UTF-32", "utf-32"), (b"\x00\x00\xfe\xff", "UTF-32", "utf-32"),
                            (b"\xff\xfe", "UTF-16", "utf-16"), (b"\xfe\xff", "UTF-16", "utf-16")):
        if head.startswith(bom) and len(head) >= len(bom) + 2:
            width = 4 if enc == "UTF-32" else 2
            try:
                text = head[: len(head) // width * width].decode(codec)
            except UnicodeDecodeError:
                return None
            return enc if text and all(c.isprintable() or c.isspace() for c in text[:200]) else None
    sample = head[:64]
    if len(sample) >= 8 and len(sample) % 2 == 0:
        for name, data, pad in (("UTF-16LE", sample[0::2], sample[1::2]), ("UTF-16BE", sample[1::2], sample[0::2])):
            if not any(pad) and all(32 <= b < 127 or b in (9, 10, 13) for b in data):
                return name  # iconv's names for BOM-less text
    return None


AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".au", ".sph",
                    ".webm", ".wma")  # a file named so is one audio clip (clsp.inputs)
CUT_SOURCE_NAME = re.compile(r"^(mix|memory|shar|command|url):|^padding$")  # how clsp names cut audio that is no file
DECOMPRESS_COMMANDS = {"gzip": "gzip -dc", "zstd": "zstd -dc", "xz": "xz -dc", "bzip2": "bzip2 -dc"}


GLOB_CHARS = ("*", "?", "[")


def _audio_files_below(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS))
    return found


def expand_path(arg: str) -> list[str]:
    """The files an argument names: itself, the audio files below a folder (sorted, as
    ``os.walk`` finds them), or glob matches (``**`` recursive). ``ConfigError`` for a folder
    without audio files and for a pattern that matches nothing."""
    if os.path.isdir(arg):
        files = _audio_files_below(arg)
        if not files:
            raise ConfigError(f"{arg}: folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        return files
    if os.path.lexists(arg) or not any(c in arg for c in GLOB_CHARS):
        return [arg]
    matches = sorted(glob.glob(arg, recursive=True))
    if not matches:
        raise ConfigError(f"{arg}: no such file, and no files match it as a pattern")
    out: list[str] = []
    for m in matches:
        out.extend(_audio_files_below(m) if os.path.isdir(m) else [m])
    return out



def refuse_wide_text(head: bytes, name: str, compression: str | None = None) -> None:
    """``ConfigError`` naming the encoding and how to convert when ``head`` (the first bytes
    of the input ``name``, after decompressing ``compression`` data) is UTF-16 or UTF-32 text
    (``wide_encoding``)."""
    enc = wide_encoding(head)
    if enc is not None:
        src = "IN" if name == "stdin" else name
        plain = os.path.splitext(src)[0] if compression is not None else src
        suffix = os.path.splitext(plain)[1] if os.path.splitext(plain)[1] in (".json", ".yaml", ".yml") else ".jsonl"
        how = (f"iconv -f {enc} -t UTF-8 {src} > OUT{suffix}" if compression is None else
               f"{DECOMPRESS_COMMANDS[compression]} {src} | iconv -f {enc} -t UTF-8 > OUT{suffix}")
        raise ConfigError(f"{name}: {enc} text{f' ({compression}-compressed)' if compression else ''}; clsp reads "
                          f"UTF-8 (convert it, e.g. {how}, or in PowerShell: Set-Content -Encoding utf8)")


SNIFF_COMPRESSED_BYTES = 4 << 20  # compressed bytes read at most to see the first decompressed ones (a bzip2 block)


class _Bounded:
    """At most ``limit`` bytes of a binary stream (``read`` only)."""

    def __init__(self, raw: IO[bytes], limit: int):
        self.raw, self.left = raw, limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.raw.read(n) if n > 0 else b""
        self.left -= len(data)
        return data


def decompressed_head(raw: IO[bytes], kind: str, n: int = SNIFF_BYTES, limit: int = SNIFF_COMPRESSED_BYTES) -> bytes:
    """The first (up to ``n``) decompressed bytes of the ``kind``-compressed stream ``raw``, read
    from at most ``limit`` of its bytes (consumed). Data cut short or corrupt gives what came
    before the cut (b"" when nothing did): its reading reports it (``TruncatedInputError``)."""
    out = b""
    try:
        for chunk in decompressed_chunks(_Bounded(raw, limit), kind):
            out += chunk
            if len(out) >= n:
                break
    except InputError:  # cut or corrupt, or zstandard missing: said when the records are read
        pass
    return out[:n]


_AUDIO_EXTENSION_OF = ((b"fLaC", "flac"), (b"OggS", "ogg"), (b"RIFF", "wav"), (b"RF64", "wav"), (b"FORM", "aiff"),
                       (b".snd", "au"), (b"ID3", "mp3"), (b"caff", "caf"), (b"wvpk", "wv"), (b"NIST_1A", "sph"))


def refuse_compressed_content(head: bytes, name: str, compression: str) -> None:
    """``ConfigError`` (a usage error) naming ``name`` when ``head``, the first decompressed
    bytes of its ``compression`` data, is no text list of records: audio, a NumPy ``.npy``
    matrix or other binary data (the tests an uncompressed input gets); text passes."""
    src = "IN" if name == "stdin" else name
    cmd = DECOMPRESS_COMMANDS[compression]
    if audio_signature(head):
        ext = next((e for magic, e in _AUDIO_EXTENSION_OF if head.startswith(magic)),
                   "mp3" if head[:1] == b"\xff" else "audio")
        raise ConfigError(f"{name}: {compression}-compressed audio, not a list of records; decompress it and give "
                          f"the audio file as an argument ({cmd} {src} > clip.{ext}, then give clip.{ext})")
    if head.startswith(NPY_MAGIC):
        raise ConfigError(f"{name}: a {compression}-compressed NumPy .npy matrix, not a list of records; decompress "
                          f"it ({cmd} {src} > x.npy) and give it where matrices are read (a .npy INPUT of clsp "
                          "search / plot map, or --npy)")
    if not looks_like_text(head):
        raise ConfigError(f"{name}: {compression}-compressed binary data, neither compressed audio nor a compressed "
                          "text list of records; give audio files, folders, or a JSONL / path-list manifest "
                          "(compressed or not)")


def _refusing_non_text(chunks: Iterator[bytes], name: str, compression: str) -> Iterator[bytes]:
    """The chunks, once their first ``SNIFF_BYTES`` passed ``refuse_wide_text`` (first 64 bytes)
    and ``refuse_compressed_content``: UTF-16/32 text, audio, a matrix or binary data inside a
    compressed file is refused as it is outside one, before any line is read. A cut in the
    data within them is raised after them (the lines before a cut are kept)."""
    held: list[bytes] = []
    size = 0

    def check() -> None:
        head = b"".join(held)[:SNIFF_BYTES]
        refuse_wide_text(head[:64], name, compression)
        refuse_compressed_content(head, name, compression)

    try:
        for chunk in chunks:
            if size >= SNIFF_BYTES:
                yield chunk
                continue
            held.append(chunk)
            size += len(chunk)
            if size >= SNIFF_BYTES:
                check()
                yield from held
    except TruncatedInputError:
        if size < SNIFF_BYTES:
            check()
            yield from held
        raise
    if size < SNIFF_BYTES:
        check()
        yield from held


def raw_lines(stream: IO[bytes], name: str = "input") -> Iterator[bytes]:
    """Byte lines of ``stream``: decompressed when it starts with gzip/zstd/xz/bzip2 magic, a UTF-8
    BOM dropped at the start of any line (files that each start with one, joined by ``cat``).

    Raises ``TruncatedInputError`` (after the lines before the cut) for a cut or corrupt
    compressed stream, ``ConfigError`` for UTF-16 / UTF-32 text (``refuse_wide_text``) and
    for compressed data that is no text (``refuse_compressed_content``).
    """
    refuse_wide_text(peek_bytes(stream, 64), name)
    kind = compression_of(peek_bytes(stream, 10))
    lines = stream if kind is None else _split_lines(_refusing_non_text(decompressed_chunks(stream, kind, name), name, kind))
    for raw in lines:
        if raw.startswith(UTF8_BOM):  # the file's, or one of files joined by cat
            raw = raw[len(UTF8_BOM):]
        yield raw


def read_text_file(path: str | os.PathLike) -> str:
    """A whole (small) text file as ``str``: decompressed if compressed, BOM dropped.

    Raises ``InputError`` for a missing, truncated or non-UTF-8 file.
    """
    stream = open_binary_input(path)
    try:
        data = b"".join(raw_lines(stream, input_name(path)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{input_name(path)}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def absolute_path(path: str | os.PathLike) -> str:
    """``path`` made absolute (against the working directory) as the system resolves it.

    A ``..`` after a symlinked folder leads to the parent of the folder the link points to, as
    ``open()`` and ``ls`` go (``data/../wavs`` with ``data -> ../store/lists`` is
    ``store/wavs``): the part up to the last ``..`` is resolved on disk (``os.path.realpath``).
    The rest, and a path without ``..``, is only tidied (``.`` and repeated ``/`` dropped),
    keeping symlinks as written.
    """
    joined = os.path.join(os.getcwd(), os.fspath(path))  # an absolute path stays itself
    parts = joined.split(os.sep)
    if os.pardir not in parts:
        return os.path.normpath(joined)
    last = len(parts) - 1 - parts[::-1].index(os.pardir)
    head = os.path.realpath(os.sep.join(parts[: last + 1]) or os.sep)
    rest = os.sep.join(parts[last + 1:])
    return os.path.normpath(os.path.join(head, rest)) if rest.strip(os.sep) else head
