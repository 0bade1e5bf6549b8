"""Input arguments as users give them: manifests, audio files, folders and globs.

``plan_sources`` looks at each argument once, before any work starts, and says what it
is; ``iter_source_items`` then streams one ``Item`` per clip or manifest line, indexed
across all arguments in order:

- ``-``: a manifest on stdin;
- a Lhotse Shar folder (``cuts.NNNNNN.jsonl[.gz]`` shards): its cuts, audio read by Lhotse;
- an existing folder: every audio file below it (recursive, by name, sorted; the
  extensions in ``AUDIO_EXTENSIONS``);
- a pattern with ``*``, ``?`` or ``[`` that names no existing file: its matches, sorted
  (``**`` crosses folders);
- a file a folder walk or a pattern finds that is not a regular file (a FIFO, a device, a
  dangling symbolic link, a link loop): one error record naming it, the rest read;
- a file whose name ends in an audio extension (``AUDIO_EXTENSIONS``): one audio clip,
  whatever it holds (one that does not decode becomes one error record naming it, never a
  list of paths);
- any other file: compressed text or text content is a manifest (``clsp.records``); content with
  an audio signature (RIFF/WAVE, FLAC, Ogg, MP3, AIFF, ...) or that libsndfile can open is
  one audio clip; any other binary file is a ``ConfigError`` (a usage error).

Audio clips given directly get ``{"id": PATH AS GIVEN, "audio": ABSOLUTE PATH}``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Sequence

from clsp.errors import ClspError, ConfigError, InputError
from clsp.records import Item, home_path, iter_items, resolve_path
from clsp.sniff import node_problem, url_problem  # noqa: F401  (re-exported)
from clsp.sniff import (  # noqa: F401  (re-exported: the tests of what a file holds)
    NPY_MAGIC, RECORDS_EXPECTED, SNIFF_BYTES, audio_signature, looks_like_text, refuse_binary_stream,
)
from clsp.streams import (  # noqa: F401  (AUDIO_EXTENSIONS, GLOB_CHARS: re-exported)
    AUDIO_EXTENSIONS, GLOB_CHARS, compression_of, decompressed_head, expand_path, is_stream_node, open_binary_input,
    peek_bytes, refuse_compressed_content, refuse_wide_text,
)


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` "manifest" (a file or ``-``), "audio" (one clip) or "shar" (a Lhotse
    Shar folder), and its path."""

    kind: str
    path: str


def _soundfile_opens(path: str) -> bool:
    try:
        import soundfile as sf

        sf.info(os.fsencode(path))
        return True
    except Exception:  # libsndfile raises several types for "not audio"
        return False


def sniff_file(path: str, expected: str = "audio files, folders, or a JSONL / path-list manifest") -> str:
    """``"manifest"`` or ``"audio"`` for an existing file, by its content.

    Raises ``ConfigError`` for a binary file that is neither audio nor compressed text, saying
    to give ``expected`` (what the caller reads there) instead (compressed
    data is decompressed to test its first bytes as an uncompressed file's: compressed audio, a
    compressed ``.npy`` matrix or compressed binary data is refused), and ``InputError`` for one
    that cannot be read.
    """
    stream = open_binary_input(path)
    inner = b""
    try:
        head = stream.read(SNIFF_BYTES)
        kind = compression_of(head)
        if kind is not None:  # a regular file, or a pipe's kept bytes: read again from the start
            stream.seek(0)
            inner = decompressed_head(stream, kind)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        stream.close()
    if kind is not None:  # the same tests on its first decompressed bytes
        refuse_wide_text(inner[:64], path, kind)
        refuse_compressed_content(inner, path, kind)
        return "manifest"
    refuse_wide_text(head, path)
    if audio_signature(head) and is_stream_node(path):
        raise ConfigError(f"{path}: a pipe holding audio data; give the audio file itself, or a list of paths")
    if audio_signature(head):
        return "audio"
    if head.startswith(NPY_MAGIC):
        raise ConfigError(f"{path}: a NumPy .npy matrix, not a list of records; give it where matrices are read "
                          "(a .npy INPUT of clsp search / plot map, or --npy), named *.npy")
    if looks_like_text(head):
        return "manifest"
    if not is_stream_node(path) and _soundfile_opens(path):
        return "audio"
    raise ConfigError(f"{path}: neither an audio file nor a text list of records (binary data); give {expected}")


def _named_audio(path: str) -> bool:
    """A regular file whose name says audio: read as one clip, whatever its content."""
    return path.lower().endswith(AUDIO_EXTENSIONS) and not is_stream_node(path)


def is_shar(folder: str) -> bool:
    """Whether a folder is a Lhotse Shar export (it holds ``cuts.000000.jsonl[.gz]``)."""
    return os.path.isdir(folder) and any(os.path.exists(os.path.join(folder, f"cuts.000000.{ext}"))
                                         for ext in ("jsonl", "jsonl.gz"))


def plan_sources(args: Sequence[str], modality: str = "audio") -> list[Source]:
    """What each input argument is (see the module docstring), checked before any work.

    Raises ``ConfigError`` (a usage error, exit 2) for an unusable argument: a missing file
    (a dangling symbolic link, a link loop), a URL, a device or other file that is neither
    regular nor a FIFO/pipe ("not a regular file": it would be read without end), a binary
    non-audio file, an empty folder, a pattern without matches, audio given unless
    ``modality`` is "audio" or "any", audio data on stdin. A file a folder walk or a pattern
    found that cannot be read so (a dangling link, a loop, a FIFO, a device) is an audio
    source whose reading gives one error record naming it (``clsp.audio``).
    """
    sources: list[Source] = []
    for arg in args or ["-"]:
        if arg == "-":
            refuse_binary_stream(sys.stdin.buffer, "stdin", modality)
            sources.append(Source("manifest", "-"))
            continue
        if is_shar(arg):
            sources.append(Source("shar", arg))
            continue
        if not os.path.lexists(arg) and url_problem(arg) is not None:
            raise ConfigError(f"{arg}: {url_problem(arg)}")
        for path in expand_path(arg):
            found = path != arg  # by a folder walk or a pattern (an argument that exists is itself)
            problem = node_problem(path, pipes=not found)
            if problem is not None and found:  # one error record naming it (clsp.audio), the rest read
                sources.append(Source("audio", path))
                continue
            if problem is not None:
                raise ConfigError(f"{path}: {problem}")
            kind = "audio" if _named_audio(path) else sniff_file(path)
            if kind == "audio" and modality == "text":
                raise ConfigError(f"{path} is an audio file, but --modality text expects captions")
            if kind == "audio" and modality not in ("audio", "any"):
                raise ConfigError(f"{path} is an audio file; expected a JSONL file of records here")
            sources.append(Source(kind, path))
    return sources


def check_audio_root(audio_root: str | os.PathLike | None, name: str = "--audio-root") -> None:
    """``ConfigError`` (a usage error, exit 2) for an ``--audio-root`` (``name``: ``base_dir=``
    in Python) given empty, missing or not a folder: every relative path would resolve against
    nothing (or, empty, silently against the working directory). None (not given) passes."""
    if audio_root is None:
        return
    text = os.fspath(audio_root)
    if not str(text).strip():
        raise ConfigError(f"{name} is empty: give the folder relative audio paths resolve against, "
                          "or leave it out")
    folder = home_path(text)
    if not os.path.isdir(folder):
        problem = node_problem(folder)
        reason = "not a folder" if problem is None else problem.replace("no such file", "no such folder", 1)
        raise ConfigError(f"{name} {text}: {reason}")


def iter_source_items(sources: Sequence[Source], modality: str = "audio",
                      audio_root: str | os.PathLike | None = None) -> Iterator[Item]:
    """One ``Item`` per audio clip or manifest line of ``sources``, indexed in order.

    Manifests are read with ``clsp.records.iter_items`` (relative paths against their own
    folder, the working directory for stdin, or ``audio_root``); direct audio files resolve
    against the working directory. Raises ``ConfigError`` at once (before the first item) for
    an unusable ``audio_root`` (``check_audio_root``).
    """
    check_audio_root(audio_root)
    return _source_items(sources, modality, audio_root)


def _source_items(sources: Sequence[Source], modality: str, audio_root: str | os.PathLike | None) -> Iterator[Item]:
    index = 0
    for src in sources:
        if src.kind == "shar":
            for item in shar_items(src.path, index):
                yield item
                index = item.index + 1
            continue
        if src.kind == "audio":  # named on the command line or found below one: a '~' in it is a name
            path = resolve_path(src.path, Path.cwd(), expand_home=False)
            yield Item(index=index, id=src.path, record={"id": src.path, "audio": path, "_path": path})
            index += 1
            continue
        for item in iter_items(src.path, modality, audio_root=audio_root, start_index=index):
            yield item
            index = item.index + 1


def shar_items(folder: str, start_index: int = 0) -> Iterator[Item]:
    """One ``Item`` per cut of a Lhotse Shar folder (``CutSet.from_shar``), its audio kept in
    memory by Lhotse; a cut Lhotse cannot read becomes an error item naming it."""
    from lhotse import CutSet

    from clsp.cuts import cut_record

    for offset, cut in enumerate(CutSet.from_shar(in_dir=folder)):
        where = f"{folder}: cut {offset + 1}"
        try:
            record = cut_record(cut.to_dict(), where)
            record["_path"] = record["audio"]
            yield Item(index=start_index + offset, id=record["id"], record=record)
        except (ClspError, ValueError) as exc:
            yield Item(index=start_index + offset, id=getattr(cut, "id", where), error=exc)


# what each kind of record input expects, in refusals of audio or binary data given there
EXPECTED_RECORDS = {
    "pairs": "a pairs JSONL file",
    "manifest": "a training manifest (JSONL of clips with captions, or Lhotse cuts)",
    "queries": "query records (JSONL with an 'embedding', 'text' or 'audio' field and the relevant ids)",
    "metrics": "a training run folder or its metrics.jsonl",
    "shards": "the JSONL output of a sharded clsp embed run",
}
EXPECTED_EMBEDDINGS = "embedding records (what clsp embed writes) or a .npy matrix"


def refuse_audio_file(path: str | os.PathLike, modality: str) -> None:
    """``ConfigError`` (exit 2) when ``path``, where records of embeddings, pairs, queries,
    metrics... (``modality``) are read, is an audio file (read as text it gave one error per
    binary "line") or other binary data, naming what is expected there."""
    if not os.path.isfile(path) or is_stream_node(path):
        return
    expected = EXPECTED_RECORDS.get(modality, EXPECTED_EMBEDDINGS)
    if sniff_file(str(path), expected) != "audio":
        return
    if modality == "pairs":
        raise ConfigError(f"{path} is an audio file; expected {expected} (or give two sides: "
                          f"clsp similarity {path} OTHER)")
    if modality == "manifest":
        raise ConfigError(f"{path} is an audio file; expected {expected}: caption it first, e.g. clsp caption {path} "
                          f"--as-cuts -o {Path(path).stem}.cuts.jsonl")
    if modality in EXPECTED_RECORDS:
        raise ConfigError(f"{path} is an audio file; expected {expected}")
    raise ConfigError(f"{path} is an audio file; expected {expected}: embed it first, e.g. clsp embed {path} -o "
                      f"{Path(path).stem}.emb.jsonl")
