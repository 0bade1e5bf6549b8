"""Bounded fuzzing of the readers: arbitrary bytes into the JSONL reader, the .npy loader and
the audio decoder give records or named ``ClspError``s, never another exception."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clsp.errors import ClspError, ConfigError
from clsp.streams import compression_of
from clsp.records import iter_items, read_jsonl

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_ish = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20) | st.integers(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@FAST
@given(lines=st.lists(st.binary(max_size=200) | json_ish.map(lambda v: __import__("json").dumps(v).encode()), max_size=12),
       modality=st.sampled_from(["audio", "text"]))
@example(lines=[b"\xef\xbb\xbf"], modality="audio")  # a line holding only the BOM holds nothing
@example(lines=[b'{"type":[]}'], modality="audio")  # a "type" that is no cut type name
@example(lines=[b"~\x01", b"~\x00"], modality="audio")  # "~name" of no user; a NUL byte
@example(lines=[b"["], modality="text")  # pretty-printed JSON
def test_jsonl_reader_one_item_per_line(tmp_path_factory, lines, modality):
    lines = [b.replace(b"\n", b" ").replace(b"\r", b" ") for b in lines]
    path = tmp_path_factory.mktemp("fz") / "m.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    body = path.read_bytes()
    body = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    first = next((raw.strip() for raw in body.splitlines() if raw.strip().decode("utf-8", "replace").strip()), b"")
    if compression_of(body[:8]) is None and first in (b"[", b"{"):
        # a lone bracket opening the file is pretty-printed JSON: refused as a whole, with the fix
        with pytest.raises(ConfigError, match="pretty-printed JSON"):
            list(iter_items(path, modality))
        return
    items = list(iter_items(path, modality))
    if compression_of(path.read_bytes()[:8]) is not None:
        # a file that starts like gzip/zstd is read as one: bad data ends it with one error naming the file
        assert items and items[-1].error is not None and str(path) in str(items[-1].error)
        return
    # one item per line holding more than whitespace (ASCII or Unicode, after splitting on the
    # same newline), a leading UTF-8 byte-order mark dropped as the reader drops it
    data = path.read_bytes()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    expected = sum(1 for raw in data.splitlines(keepends=True)
                   if raw.strip() and raw.strip().decode("utf-8", "replace").strip())
    assert len(items) == expected
    for item in items:
        assert (item.record is None) != (item.error is None)
        assert isinstance(item.id, str)
        if item.error is not None:
            assert isinstance(item.error, ClspError) and str(item.error)
        elif modality == "audio":
            assert isinstance(item.record["_path"], str)
        else:
            assert isinstance(item.record["text"], str)


@FAST
@given(data=st.binary(max_size=400))
def test_read_jsonl_raises_only_clsp_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "m.jsonl"
    path.write_bytes(data)
    try:
        read_jsonl(path)
    except ClspError:
        pass


def _npy_variants(draw_bytes: bytes, shape, dtype) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=dtype))
    good = bytearray(buf.getvalue())
    for k in range(0, len(draw_bytes) - 1, 2):  # flip a few bytes at drawn positions
        good[draw_bytes[k] % len(good)] = draw_bytes[k + 1]
    return bytes(good)


@FAST
@given(noise=st.binary(max_size=16), shape=st.sampled_from([(3, 4), (0, 4), (5,), (2, 2, 2)]),
       dtype=st.sampled_from(["<f4", "<f8", "<i4", "|u1", ">f4"]), cut=st.integers(0, 200))
def test_npy_loader(tmp_path_factory, noise, shape, dtype, cut):
    from clsp.index.records import load_matrix

    data = _npy_variants(noise, shape, dtype)
    path = tmp_path_factory.mktemp("fz") / "x.npy"
    path.write_bytes(data[: len(data) - cut] if cut < len(data) else data)
    try:
        mat = load_matrix(path)
    except ClspError:
        return
    assert mat.ndim == 2 and mat.dtype.kind == "f"


def _wav(frames: int, sr: int, channels: int, bits: int, fmt: int) -> bytes:
    block = max(channels * bits // 8, 0)
    data = bytes(frames * block)
    return (b"RIFF" + struct.pack("<I", (36 + len(data)) & 0xFFFFFFFF) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, fmt, channels, sr, (sr * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
            + b"data" + struct.pack("<I", len(data)) + data)


@FAST
@given(frames=st.integers(0, 4000), sr=st.sampled_from([0, 1, 8000, 16000, 44100, 2**31 - 1]),
       channels=st.integers(0, 9), bits=st.sampled_from([0, 8, 12, 16, 24, 32, 64]), fmt=st.sampled_from([0, 1, 3, 6, 0xFFFE]),
       flips=st.binary(max_size=8), cut=st.integers(0, 64), start=st.none() | st.floats(-1, 5), end=st.none() | st.floats(-1, 5))
def test_audio_decoder(tmp_path_factory, frames, sr, channels, bits, fmt, flips, cut, start, end):
    from clsp.audio import load_audio

    data = bytearray(_wav(frames, sr, channels, bits, fmt))
    for k in range(0, len(flips) - 1, 2):
        data[flips[k] % len(data)] = flips[k + 1]
    path = tmp_path_factory.mktemp("fz") / "x.wav"
    path.write_bytes(bytes(data[: max(len(data) - cut, 0)]))
    try:
        wave = load_audio(path, start, end)
    except ClspError as exc:
        assert str(path) in str(exc)
        return
    assert wave.ndim == 1 and wave.numel() >= 1600 and bool(wave.isfinite().all())


@pytest.mark.parametrize("suffix", [".flac", ".mp3", ".ogg"])
@FAST
@given(data=st.binary(max_size=600))
def test_audio_decoder_random_bytes(tmp_path_factory, suffix, data):
    from clsp.audio import load_audio

    path = tmp_path_factory.mktemp("fz") / f"x{suffix}"
    path.write_bytes(data)
    with pytest.raises(ClspError):
        load_audio(path)
