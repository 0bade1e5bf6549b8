"""Write one output file atomically: a temporary sibling renamed into place.

A target that is not a regular file (``/dev/null``, a FIFO) is written through, and a
symlink is followed to its target, so an output never replaces another file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clsp.errors import OutputError


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (temp file + rename for regular files); returns the path.

    A missing folder is created, as for ``-o``. Raises ``OutputError`` when the folder cannot
    be made or written to.
    """
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
