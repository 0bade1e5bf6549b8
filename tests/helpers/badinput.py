"""A corpus of broken and awkward inputs, mixed with good ones, for every subcommand.

``make_audio_corpus(folder)`` writes the files and returns ``(good, bad)``: lists of
manifest records (dicts, or raw ``bytes`` lines for lines that are not JSON objects).
Good records must come out with a result; bad ones as an error record naming them.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import tone


def _wav_header(frames: int, sr: int = 16000, channels: int = 1, bits: int = 16) -> bytes:
    """A canonical PCM RIFF header declaring ``frames`` frames."""
    block = channels * bits // 8
    data = frames * block
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * block, block, bits)
            + b"data" + struct.pack("<I", data))


def sparse_wav(path: Path, seconds: float, sr: int = 16000, head_seconds: float = 2.0) -> Path:
    """A long 16-bit wav made in milliseconds: a short tone, then a sparse run of zeros."""
    frames = int(seconds * sr)
    head = (tone(head_seconds, 200, sr) * 32767).astype("<i2").tobytes()
    with open(path, "wb") as fh:
        fh.write(_wav_header(frames, sr))
        fh.write(head)
        fh.truncate(44 + frames * 2)
    return path


def _good_files(d: Path) -> dict[str, dict]:
    """Unusual but valid audio: every one must be processed."""
    sf.write(d / "plain.wav", tone(1.2, 180), 16000)
    six = np.stack([tone(1.0, 150 + 20 * k, 48000, seed=k) for k in range(6)], axis=1)
    sf.write(d / "six48k.wav", six, 48000)
    sf.write(d / "narrow8k.wav", tone(1.5, 240, 8000), 8000)
    sf.write(d / "pcm24.wav", tone(1.0, 210, 16000), 16000, subtype="PCM_24")
    sf.write(d / "double.wav", tone(1.0, 230, 16000).astype(np.float64), 16000, subtype="DOUBLE")
    sf.write(d / "silence.wav", np.zeros(16000, np.float32), 16000)
    sf.write(d / "clip.flac", tone(1.1, 260, 22050), 22050)
    sf.write(d / "loud.wav", np.clip(tone(1.0, 190, 16000) * 4, -1, 1), 16000)  # clipped at its peaks
    sf.write(d / "segment.wav", tone(3.0, 170, 16000), 16000)
    (d / "sub").mkdir(exist_ok=True)
    sf.write(d / "sub" / "nested.wav", tone(1.0, 205, 16000), 16000)
    sf.write(d.parent / f"{d.name}-outside.wav", tone(1.0, 215, 16000), 16000)
    return {
        "plain": {"audio": "plain.wav"},
        "six-channels-48k": {"audio": "six48k.wav"},
        "8khz": {"audio": "narrow8k.wav"},
        "24-bit": {"audio": "pcm24.wav"},
        "float64": {"audio": "double.wav"},
        "silence": {"audio": "silence.wav"},
        "flac-22k": {"audio": "clip.flac"},
        "clipped": {"audio": "loud.wav"},
        "segment": {"audio": "segment.wav", "start": 0.5, "end": 2.0},
        "nested-relative": {"audio": "sub/nested.wav"},
        "parent-relative": {"audio": f"../{d.name}-outside.wav"},
        "absolute": {"audio": str((d / "plain.wav").resolve())},
        "unknown-fields": {"audio": "plain.wav", "x-extra": {"deep": [1, 2, {"a": None}]}, "speaker": 7},
        "unicode-id-\u00e9\u4e2d\U0001f600": {"audio": "plain.wav"},
        "huge-field": {"audio": "plain.wav", "note": "x" * 2_000_000},
    }


def _broken_files(d: Path) -> dict[str, dict]:
    """Files that cannot be used: each must give an error record naming it."""
    rng = np.random.default_rng(7)
    (d / "empty.wav").write_bytes(b"")
    (d / "header-only.wav").write_bytes(_wav_header(16000)[:20])
    (d / "noise.wav").write_bytes(rng.bytes(4096))
    (d / "noise.flac").write_bytes(rng.bytes(4096))
    (d / "noise.mp3").write_bytes(rng.bytes(4096))
    (d / "noise.ogg").write_bytes(b"OggS" + rng.bytes(4096))
    (d / "text.wav").write_text("this is not audio\n" * 50)
    (d / "zero-frames.wav").write_bytes(_wav_header(0))
    sf.write(d / "tiny.wav", np.zeros(10, np.float32), 16000)
    nan = tone(1.0, 200, 16000)
    nan[100:200] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = tone(1.0, 200, 16000)
    inf[5] = np.inf
    sf.write(d / "inf.wav", inf, 16000, subtype="FLOAT")
    (d / "a-directory.wav").mkdir(exist_ok=True)
    bad_fmt = bytearray(_wav_header(100) + bytes(200))
    bad_fmt[22:24] = struct.pack("<H", 0)  # zero channels
    (d / "zero-channels.wav").write_bytes(bytes(bad_fmt))
    (d / "loop.wav").unlink(missing_ok=True)
    os.symlink("loop.wav", d / "loop.wav")
    return {
        "empty-file": {"audio": "empty.wav"},
        "truncated-header": {"audio": "header-only.wav"},
        "random-bytes-wav": {"audio": "noise.wav"},
        "random-bytes-flac": {"audio": "noise.flac"},
        "random-bytes-mp3": {"audio": "noise.mp3"},
        "random-bytes-ogg": {"audio": "noise.ogg"},
        "text-named-wav": {"audio": "text.wav"},
        "zero-samples": {"audio": "zero-frames.wav"},
        "ten-samples": {"audio": "tiny.wav"},
        "nan-samples": {"audio": "nan.wav"},
        "inf-samples": {"audio": "inf.wav"},
        "directory": {"audio": "a-directory.wav"},
        "zero-channels": {"audio": "zero-channels.wav"},
        "symlink-loop": {"audio": "loop.wav"},
        "missing-file": {"audio": "does-not-exist.wav"},
        "escapes-folder": {"audio": "../../../../../../../../etc/passwd"},
        "start-after-end": {"audio": "plain.wav", "start": 1.0, "end": 0.5},
        "start-past-file": {"audio": "plain.wav", "start": 60.0},
        "negative-start": {"audio": "plain.wav", "start": -1.0},
        "start-not-number": {"audio": "plain.wav", "start": "soon"},
        "audio-not-string": {"audio": 5},
        "audio-null": {"audio": None},
        "audio-empty": {"audio": ""},
        "no-audio-field": {"transcript": "hello"},
    }


# Lines that are not usable records at all (raw bytes, one per line).
RAW_BAD_LINES: dict[str, bytes] = {
    "invalid-json": b'{"id": "invalid-json", "audio": "plain.wav"',
    "json-array": b'["json-array", "plain.wav"]',
    "json-nan-field": b'{"id": "json-nan-field", "audio": "plain.wav", "score": NaN}',
    "json-infinity-start": b'{"id": "json-infinity-start", "audio": "plain.wav", "start": Infinity}',
    "non-utf8": b'{"id": "non-utf8", "audio": "pl\xff\xfeain.wav"}',
    "lhotse-without-recording": b'{"id": "lhotse-without-recording", "type": "MonoCut", "duration": 1.0, "recording": 3}',
    "nul-bytes": b'{"id": "nul-bytes", "audio": "plain\\u0000.wav"}',
}


def make_audio_corpus(d: Path, with_hour: bool = False) -> tuple[list[dict], list]:
    """Write the files under ``d``; return (good records, bad records or raw lines)."""
    d.mkdir(parents=True, exist_ok=True)
    good = [{"id": k, **v} for k, v in _good_files(d).items()]
    if with_hour:
        sparse_wav(d / "hour.wav", 3600.0)
        good.append({"id": "hour-long", "audio": "hour.wav"})
    bad: list = [{"id": k, **v} for k, v in _broken_files(d).items()]
    bad += list(RAW_BAD_LINES.items())
    return good, bad


def interleave(good: list, bad: list) -> list:
    """Good and bad records alternated, so every good one follows a failure."""
    out, gi, bi = [], iter(good), iter(bad)
    for g, b in zip(gi, bi):
        out += [b, g]
    return out + list(gi) + list(bi)


def write_manifest(path: Path, entries: list) -> list[str]:
    """Write records (dicts) and raw lines (``(id, bytes)``); returns ids in order."""
    ids, lines = [], []
    for e in entries:
        if isinstance(e, tuple):
            ids.append(e[0])
            lines.append(e[1])
        else:
            ids.append(e["id"])
            lines.append(json.dumps(e, ensure_ascii=False).encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return ids
