"""Write one output file atomically: a temporary sibling renamed into place.

A target that is not a regular file (``/dev/null``, a FIFO) is written through, and a
symlink is followed to its target, so an output never replaces another file. No output
replaces an audio file (``refuse_audio_target``): clsp writes records, matrices, pages and
figures, never audio, so an output path that holds audio is a mistyped path, and the audio
may be a clip a manifest or index names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clsp.errors import OutputError


def missing_folders(folder: str | Path) -> list[Path]:
    """``folder`` and the folders above it that do not exist yet, deepest first: what making
    ``folder`` creates (and what to remove again, each only when left empty)."""
    missing, probe = [], Path(folder)
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    return missing


def refuse_audio_target(path: str | Path, shown: str | None = None) -> None:
    """``ConfigError`` (a usage error) when ``path`` is an existing regular file (a symlink
    followed) that holds audio, whatever its name: its first bytes are those of an audio
    container (``clsp.streams.audio_signature``: WAV, FLAC, Ogg, MP3, AIFF, ...), or libsndfile
    reads it as audio (W64, VOC, PAF, IRCAM, HTK, AVR, ... : every format clsp decodes by its
    header); ``shown`` names it in the message."""
    import stat

    from clsp.errors import ConfigError
    from clsp.streams import audio_signature

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return
        with open(path, "rb") as fh:
            head = fh.read(64)
    except (OSError, ValueError):  # missing or unreadable: nothing of it to keep
        return
    if audio_signature(head) or _libsndfile_reads(path):
        raise ConfigError(f"{shown or path}: an audio file; clsp writes no audio, so it does not write its output "
                          "over it; give the output another path")


def _libsndfile_reads(path: str | Path) -> bool:
    """Whether libsndfile (soundfile) recognises ``path`` as audio by its header."""
    try:
        import soundfile
    except ImportError:  # soundfile is a dependency; without it the header signatures above decide
        return False
    try:
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001 - any refusal (LibsndfileError, RuntimeError): not audio it knows
        return False
    return info.frames > 0 or info.channels > 0


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (temp file + rename for regular files); returns the path.

    A missing folder is created, as for ``-o``. Raises ``OutputError`` when the folder cannot
    be made or written to; ``ConfigError`` when ``path`` holds audio (``refuse_audio_target``).
    """
    refuse_audio_target(path, str(path))
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            with open(target, "wb") as fh:
                fh.write(data)
            return Path(path)
        from clsp.runfiles import check_publish

        check_publish(target, str(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return Path(path)
