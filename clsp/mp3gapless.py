"""Gapless MP3: where the encoded signal starts and ends inside the decoded samples.

An MP3 decoder's output starts with the encoder delay (LAME: 576 samples) plus the decoder
delay (529 samples, the MDCT/polyphase filterbank; cf. the LAME technical FAQ and
mpg123's ``GAPLESS_DELAY``) and ends with the encoder's padding. Encoders record the exact
numbers in the LAME/Info tag of the first frame (the Xing VBR header; "LAME tag rev 1",
http://gabriel.mp3-tech.org/mp3infotag.html): a 12-bit encoder delay and a 12-bit
padding at byte 21 of the LAME extension. Decoders that honour the tag (sox, ffmpeg,
recent libsndfile) already return only the signal; ``mp3_signal_range`` says which part
of what libsndfile returned is the signal, whichever decoder behaviour is at hand.

Without a tag (e.g. files written by ``sox`` through libmp3lame) the start is still exact
for LAME streams (576 + 529 samples; LAME names itself in the first frame or, in untagged
files, in the ancillary data of the last frames, so both the file's head and its last
``TAIL_BYTES`` are searched), but the padding is known only through LAME's rule
(``576 <= padding < 576 + frame``), so the end is estimated to within half a frame
(18 ms for 16 kHz MPEG-2, 13 ms for 44.1 kHz MPEG-1).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

DECODER_DELAY = 529
LAME_ENCODER_DELAY = 576
HEAD_BYTES = 16384
TAIL_BYTES = 8192  # libmp3lame without a tag (sox) names itself ("LAME3.100") in its last frames' ancillary data
_LAME_MARK = re.compile(rb"LAME\d")  # the encoder's version string, as LAME writes it
_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1 Layer III
         2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}     # MPEG-2 and 2.5
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True)
class Mp3Head:
    """The first Layer III frame: samples per frame and the gapless tag, if any."""

    samples_per_frame: int
    tag_frames: int | None = None  # audio frames after the tag frame (Xing "frames" field)
    encoder_delay: int | None = None
    padding: int | None = None
    lame: bool = False  # the stream names the LAME encoder (tag or ancillary data)
    bitrate: int = 0  # of the first frame, bits per second
    sample_rate: int = 0


def _id3v2_size(data: bytes) -> int:
    if not data.startswith(b"ID3") or len(data) < 10:
        return 0
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def _frame_header(data: bytes, pos: int) -> tuple[int, int, int, int, int, int] | None:
    """(MPEG version id, samples per frame, side-info bytes incl. CRC, frame bytes, kbps, sample
    rate) of a Layer III header."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    bitrate_index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mono = (data[pos + 3] >> 6) == 3
    crc = 2 if not data[pos + 1] & 1 else 0
    kbps, rate = _KBPS[3 if version == 3 else 2][bitrate_index], _RATES[version][rate_index]
    pad = (data[pos + 2] >> 1) & 1
    if version == 3:
        return version, 1152, (17 if mono else 32) + crc, 144000 * kbps // rate + pad, kbps, rate
    return version, 576, (9 if mono else 17) + crc, 72000 * kbps // rate + pad, kbps, rate


def parse_mp3_head(data: bytes) -> Mp3Head | None:
    """Read the first Layer III frame of ``data`` (a file's first bytes); None if not MP3."""
    pos = _id3v2_size(data)
    while pos < min(len(data) - 4, HEAD_BYTES):
        header = _frame_header(data, pos)
        if header is not None and (pos + header[3] + 4 > len(data) or _frame_header(data, pos + header[3])):
            break  # a sync word followed by another frame header where the first frame ends
        pos += 1
    else:
        return None
    _, spf, side, _, kbps, rate = header
    lame = b"LAME" in data[pos:]
    xing = pos + 4 + side
    if data[xing:xing + 4] not in (b"Xing", b"Info") or len(data) < xing + 8:
        return Mp3Head(spf, lame=lame, bitrate=kbps * 1000, sample_rate=rate)
    flags = int.from_bytes(data[xing + 4:xing + 8], "big")
    at, frames = xing + 8, None
    if flags & 1:
        frames = int.from_bytes(data[at:at + 4], "big")
        at += 4
    at += (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    ext = data[at:at + 24]
    if len(ext) < 24 or not ext[:4].isalpha():
        return Mp3Head(spf, tag_frames=frames, lame=lame, bitrate=kbps * 1000, sample_rate=rate)
    b = ext[21:24]
    return Mp3Head(spf, tag_frames=frames, encoder_delay=(b[0] << 4) | (b[1] >> 4),
                   padding=((b[1] & 0x0F) << 8) | b[2], lame=lame or ext.startswith(b"LAME"),
                   bitrate=kbps * 1000, sample_rate=rate)


def mp3_signal_range(path: str | os.PathLike, decoded_frames: int) -> tuple[int, int]:
    """``(offset, frames)``: the encoded signal inside ``decoded_frames`` decoded samples.

    ``decoded_frames`` is what the decoder (libsndfile) reports. With a LAME/Info tag the
    range is exact, and ``(0, decoded_frames)`` when the decoder already trimmed it. Without
    a tag: LAME streams start after 576 + 529 samples and end by LAME's padding rule (see
    the module docstring); other streams lose only the decoder delay. Not an MP3 (or an
    unreadable file): ``(0, decoded_frames)``.
    """
    return mp3_signal(path, decoded_frames)[:2]


def mp3_signal(path: str | os.PathLike, decoded_frames: int, counted: bool = False) -> tuple[int, int, int, bool]:
    """``(offset, frames, decoded, promised)``: ``mp3_signal_range``, the decoded samples it was
    taken from, and whether the stream promises that count.

    With a Xing/Info frame count the decoder's count is the stream's (``promised``). Without
    one, libsndfile only estimates it from the file size, counting an ID3v2 tag's bytes (a
    cover picture) as audio: that estimate is taken without the tag (``decoded``, at the first
    frame's bitrate) and promises nothing, so a shorter decode is no truncation. ``counted``:
    ``decoded_frames`` is what the stream was found to decode (``clsp.audio``), taken as it is.
    """
    try:
        id3 = _id3v2_size(_read_at(path, 0, 10))
        data = _read_at(path, id3, HEAD_BYTES)
    except OSError:
        return 0, decoded_frames, decoded_frames, True
    head = parse_mp3_head(data)
    if head is None:
        return 0, decoded_frames, decoded_frames, True
    promised = bool(head.tag_frames)
    if not promised and id3 and not counted:
        decoded_frames = _without_tag(path, head, id3, decoded_frames)
    return (*_signal_range(path, head, decoded_frames), decoded_frames, promised)


def _without_tag(path, head: Mp3Head, id3: int, decoded_frames: int) -> int:
    """A size estimate of the decoded samples (``decoded_frames``: bytes after any ID3v1 tag
    at the first frame's bitrate, as libsndfile makes it) without the ``id3`` bytes of the
    ID3v2 tag; ``decoded_frames`` as it is when it is no such estimate."""
    if not head.bitrate or not head.sample_rate:
        return decoded_frames
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 128))
            if fh.read(3) == b"TAG":  # an ID3v1 tag, which libsndfile leaves out
                size -= 128
    except OSError:
        return decoded_frames
    per_byte = 8 * head.sample_rate / head.bitrate  # decoded samples per byte of the stream
    if abs(decoded_frames - size * per_byte) > head.samples_per_frame:
        return decoded_frames  # not the size estimate (a decoder that skips the tag, a VBRI header...)
    return max(0, int((size - id3) * per_byte))


def _signal_range(path, head: Mp3Head, decoded_frames: int) -> tuple[int, int]:
    """``mp3_signal_range`` once the head is read."""
    if not head.lame and head.encoder_delay is None:
        head = replace(head, lame=_tail_names_lame(path))
    if head.encoder_delay is not None and head.padding is not None and head.tag_frames:
        signal = head.tag_frames * head.samples_per_frame - head.encoder_delay - head.padding
        if abs(decoded_frames - signal) <= 1 or signal <= 0:
            return 0, decoded_frames  # the decoder honoured the tag
        return _clip(head.encoder_delay + DECODER_DELAY, signal, decoded_frames)
    if not head.lame:
        return _clip(DECODER_DELAY, decoded_frames - DECODER_DELAY, decoded_frames)
    spf = head.samples_per_frame
    mean_padding = (LAME_ENCODER_DELAY + LAME_ENCODER_DELAY + spf - 1) // 2  # padding in [576, 576 + spf)
    signal = decoded_frames - LAME_ENCODER_DELAY - mean_padding
    return _clip(LAME_ENCODER_DELAY + DECODER_DELAY, signal, decoded_frames)


def _tail_names_lame(path) -> bool:
    """Whether the file's last ``TAIL_BYTES`` (before an ID3v1/APE tag, read within them) name
    the LAME encoder: libmp3lame writes its version into the ancillary data of the stream's
    last frames, where an untagged file (as sox writes it) names its encoder only there."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - TAIL_BYTES))
            return _LAME_MARK.search(fh.read(TAIL_BYTES)) is not None
    except OSError:
        return False


def _read_at(path, offset: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(n)


def _clip(offset: int, frames: int, decoded_frames: int) -> tuple[int, int]:
    offset = max(0, min(offset, decoded_frames))
    return offset, max(0, min(frames, decoded_frames - offset))
