"""Checks shared by every weights reader: file checksums and state-dict/model agreement."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from clsp.errors import CheckpointError


def file_checksum(path: Path, limit: int = 1 << 30) -> str:
    """``sha256:<hex12>`` of a weights file (its first GiB plus its size when larger)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        remaining = limit
        while remaining > 0:
            chunk = fh.read(min(1 << 20, remaining))
            if not chunk:
                break
            h.update(chunk)
            remaining -= len(chunk)
    h.update(str(path.stat().st_size).encode())
    return "sha256:" + h.hexdigest()[:16]


def canonical_safetensors_header(path: Path) -> None:
    """Rewrite, in place, the JSON header of the safetensors file ``path`` with its keys
    sorted: safetensors writes its ``__metadata__`` keys in an order that changes from one
    process to the next, so the same weights gave files, and checksums (``file_checksum``),
    that differed. Only key order changes (the header keeps its length and the tensors their
    offsets); a header that would change length is left as it is."""
    import json
    import struct

    with open(path, "r+b") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(size)
        text = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
        canonical = text.encode("utf-8").ljust(size, b" ")
        if len(canonical) == size and canonical != raw:
            fh.seek(8)
            fh.write(canonical)


def same_safetensors(a: Path, b: Path) -> bool:
    """Whether two safetensors files hold the same tensors (names, dtypes, shapes, offsets and
    bytes) and metadata, whatever the order of their header's keys (files written before
    ``canonical_safetensors_header`` have their own order, so their checksums differ)."""
    import json
    import struct

    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            heads = []
            for fh in (fa, fb):
                (size,) = struct.unpack("<Q", fh.read(8))
                heads.append(json.loads(fh.read(size)))
            if heads[0] != heads[1]:
                return False
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except (OSError, ValueError, struct.error):
        return False


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], ignore_prefixes: tuple[str, ...] = (),
                     source: Path | None = None) -> None:
    """Raise ``CheckpointError`` naming every missing, unexpected or mis-shaped tensor (and
    ``source``, the weights file they were read from, when given)."""
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(ignore_prefixes)}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = sorted(f"{k} (checkpoint {tuple(sd[k].shape)}, model {tuple(expected[k].shape)})"
                    for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k].shape))
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if names:
            shown = ", ".join(names[:10]) + (f" ... (+{len(names) - 10} more)" if len(names) > 10 else "")
            problems.append(f"{len(names)} {label}: {shown}")
    if problems:
        raise CheckpointError((f"{source}: " if source is not None else "") + "checkpoint does not match the model: "
                              + "; ".join(problems))
