"""Compressed inputs get the sniffing uncompressed ones get; cut-short AIFF/AU/W64/NIST/Ogg files are errors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import numpy as np
import pytest
import soundfile as sf

from clsp.audio import load_audio
from clsp.errors import AudioError, ConfigError
from clsp.inputs import plan_sources
from clsp.records import iter_items
from clsp.sniff import refuse_binary_stream
from clsp.streams import TruncatedInputError, raw_lines

COMPRESSORS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}
try:
    import zstandard

    COMPRESSORS["zstd"] = zstandard.ZstdCompressor().compress
except ImportError:  # pragma: no cover
    pass


def _noise(seconds: float = 1.5, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.3 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _audio_bytes(fmt: str = "FLAC", subtype: str | None = None, seconds: float = 1.5) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _noise(seconds), 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


def _captions(n: int = 300) -> bytes:
    return "".join(f'{{"id":"u{i}","text":"a calm voice number {i}"}}\n' for i in range(n)).encode()


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_audio_is_a_usage_error_and_compressed_text_still_reads(tmp_path, kind):
    squeeze = COMPRESSORS[kind]
    clip = tmp_path / "clipz"
    clip.write_bytes(squeeze(_audio_bytes()))
    with pytest.raises(ConfigError, match=rf"clipz: {kind}-compressed audio"):
        plan_sources([str(clip)])
    with pytest.raises(ConfigError, match=rf"{kind}-compressed audio"):
        plan_sources([str(clip)], modality="embeddings")
    caps = tmp_path / "caps"
    caps.write_bytes(squeeze(_captions()))
    assert [s.kind for s in plan_sources([str(caps)], modality="text")] == ["manifest"]
    items = list(iter_items(str(caps), modality="text"))
    assert len(items) == 300 and all(it.ok for it in items)
    cut = tmp_path / "cut"
    data = squeeze(_captions())
    cut.write_bytes(data[: len(data) // 2])
    assert [s.kind for s in plan_sources([str(cut)], modality="text")] == ["manifest"]
    last = list(iter_items(str(cut), modality="text"))[-1]
    assert isinstance(last.error, TruncatedInputError) and "truncated after" in str(last.error)


@pytest.mark.parametrize("content,what", [
    (lambda: _npy_bytes(), "NumPy .npy matrix"),
    (lambda: b"B" + np.random.default_rng(1).bytes(3000), "binary data"),
])
def test_compressed_matrix_or_binary_data_is_a_usage_error(tmp_path, content, what):
    path = tmp_path / "thing.gz"
    path.write_bytes(gzip.compress(content()))
    with pytest.raises(ConfigError, match=rf"thing\.gz: .*gzip-compressed .*{what}"):
        plan_sources([str(path)])


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), np.float32))
    return buf.getvalue()


def test_compressed_audio_on_stdin_is_refused_before_and_while_reading():
    packed = gzip.compress(_audio_bytes())
    with pytest.raises(ConfigError, match="stdin: gzip-compressed audio"):
        refuse_binary_stream(io.BufferedReader(io.BytesIO(packed)), "stdin", "audio")
    big = bz2.compress(_audio_bytes("WAV", "PCM_16", seconds=40.0))  # a first bzip2 block beyond a peek
    with pytest.raises(ConfigError, match="stdin: bzip2-compressed audio"):
        list(raw_lines(io.BytesIO(big), "stdin"))


@pytest.mark.parametrize("fmt,subtype", [("AIFF", "PCM_16"), ("AIFF", "PCM_24"), ("AU", "PCM_16"), ("W64", "PCM_16"),
                                         ("W64", "FLOAT"), ("NIST", "PCM_16")])
def test_cut_short_files_whose_header_announces_their_length_are_truncated(tmp_path, fmt, subtype):
    data = _audio_bytes(fmt, subtype)
    whole = tmp_path / f"whole.{fmt.lower()}"
    whole.write_bytes(data)
    assert load_audio(whole).numel() == 24000  # a whole file loads as before
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=rf"cut\.{fmt.lower()}: truncated: its header announces \d+ bytes"):
        load_audio(cut)


def test_a_cut_short_ogg_without_samples_is_named_truncated_not_empty(tmp_path):
    data = _audio_bytes("OGG", "VORBIS", seconds=2.0)
    whole = tmp_path / "whole.ogg"
    whole.write_bytes(data)
    assert load_audio(whole).numel() == 32000
    cut = tmp_path / "cut.ogg"
    for keep in (0.45, 0.35, 0.25, 0.15):
        cut.write_bytes(data[: int(len(data) * keep)])
        if sf.info(str(cut)).frames <= 0:
            break
    assert sf.info(str(cut)).frames <= 0
    with pytest.raises(AudioError, match=r"cut\.ogg: truncated or corrupt Ogg stream") as exc:
        load_audio(cut)
    assert "no audio samples" not in str(exc.value)


@pytest.mark.parametrize("fmt,subtype,name,keep", [("OGG", "VORBIS", "Ogg", 1000), ("OGG", "OPUS", "Ogg", 300),
                                                    ("FLAC", "PCM_16", "FLAC", 100), ("FLAC", "PCM_16", "FLAC", 0.5)])
def test_an_ogg_or_flac_stream_cut_short_in_its_headers_or_frames_is_named_so(tmp_path, fmt, subtype, name, keep):
    data = _audio_bytes(fmt, subtype, seconds=2.0)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(AudioError, match=rf"cut\.{fmt.lower()}: cannot decode audio \(.*\); a truncated or corrupt "
                                         rf"{name} stream: cut short or damaged"):
        load_audio(cut)
