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
from clsp.streams import (  # noqa: F401  (re-exported: the tests of what bytes hold live beside decompression)
    NPY_MAGIC, SNIFF_BYTES, SNIFF_COMPRESSED_BYTES, audio_signature, compression_of, decompressed_head, looks_like_text,
    peek_bytes, refuse_compressed_content, refuse_wide_text, wide_encoding,
)

def refuse_binary_stream(stream: IO[bytes], name: str = "stdin", modality: str = "audio") -> None:
    """``ConfigError`` (a usage error, exit 2) when ``stream`` (stdin, or a pipe such as
    ``<(cmd)``, named ``name``), where records are read, holds audio data, a NumPy ``.npy``
    matrix, UTF-16/32 text or other binary data (``sniff_file``'s tests), looked at without
    consuming it; compressed data gets them after decompressing its first bytes
    (``refuse_compressed_content``; what stdin's buffer does not hold is checked as it is read)."""
    head = peek_bytes(stream, SNIFF_BYTES)
    kind = compression_of(head)
    if kind is not None:  # its first decompressed bytes get the same tests (stdin: those its buffer holds)
        import io

        inner = decompressed_head(io.BytesIO(peek_bytes(stream, SNIFF_COMPRESSED_BYTES)), kind)
        refuse_wide_text(inner[:64], name, kind)
        refuse_compressed_content(inner, name, kind)
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


def audio_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened as an audio file, or None for a regular file with content:
    ``node_problem``'s reasons (no such file, a dangling symbolic link, a link loop, a FIFO or
    device that opening would block on or read without end, cannot open), "is a directory" or
    "empty file". Checked before a decoder (or Lhotse, for a cut's sources) opens it."""
    problem = node_problem(path)
    if problem is not None:
        return problem
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:  # gone since: as node_problem says it
        return node_problem(path) or f"cannot open ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if st.st_size == 0:
        return "empty file"
    return None


def binary_kind(path: str | os.PathLike) -> str | None:
    """What a file that is no text holds, from its first bytes: ``"an audio
    file"``, ``"a NumPy .npy matrix"`` or ``"binary data"``; None for text, compressed data and
    UTF-16/32 text (whose readers name it), or a file that cannot be opened."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return None
    if compression_of(head) is not None or wide_encoding(head) is not None:
        return None
    if head.startswith(NPY_MAGIC):
        return "a NumPy .npy matrix"
    if audio_signature(head):
        return "an audio file"
    return None if looks_like_text(head) else "binary data"


def not_npy_kind(path: str | os.PathLike) -> str | None:
    """What the regular file ``path`` holds when it is no NumPy ``.npy`` file (its first bytes
    are not the ``.npy`` magic): ``"an audio file"``, ``"binary data"``, ``"text, such as
    records"``...; None for a ``.npy`` file, or a file that cannot be opened."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
    except OSError:
        return None
    if not head:
        return "an empty file"
    return None if head == NPY_MAGIC else binary_kind(path) or "text, such as records"
