"""Audio decoding: soundfile for files, torchaudio for resampling; mono 16 kHz float32.

Never a random crop: segments come only from explicit ``start``/``end`` seconds or from
the deterministic long-audio policy in ``clsp.longaudio``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio  # noqa: F401  imported once here: decoding worker threads that resample or compute
# features would otherwise import it concurrently, which fails inside torchaudio's circular imports

from clsp.errors import AudioError
from clsp.streams import DECOMPRESS_COMMANDS, PLAIN_NUMBER, compression_of

SAMPLE_RATE = 16000
MIN_SECONDS = 0.1
MIN_RATE, MAX_RATE = 1000, 768000
# Float samples are full scale at 1.0; a float file may go somewhat over it (processing that
# did not limit its peaks), but samples past this are not audio at full scale 1.0: most often
# integer PCM values written as floats (int16 x 32768). Refused, as NaN / infinity are.
PEAK_LIMIT = 2.0


def peak_problem(peak: float) -> str | None:
    """Why samples whose largest magnitude is ``peak`` cannot be heard as audio, or ``None``:
    NaN / infinite samples, or a peak over ``PEAK_LIMIT`` (2.0, twice full scale)."""
    if not math.isfinite(peak):
        return "non-finite samples (NaN or infinity)"
    if peak > PEAK_LIMIT:
        hint = " (integer PCM values stored as floats? divide by 32768)" if peak >= 256 else ""
        return (f"samples reach {peak:.6g}, over {PEAK_LIMIT:g} (full scale is 1.0){hint}; "
                f"scale the audio to [-1, 1] or store it as integer PCM")
    return None
MAX_KERNEL = 4_000_000  # (orig/g) * (new/g) above this: sinc kernels get too large


def _local_path(path: str | os.PathLike) -> Path:
    """``Path(path)``; ``AudioError`` naming a URL exactly as given (a ``Path`` would fold its
    ``//``): clsp reads local files only (``clsp.sniff.url_problem``)."""
    if isinstance(path, str):
        from clsp.sniff import url_problem

        problem = url_problem(path)
        if problem is not None:
            raise AudioError(f"{path}: {problem}")
    return Path(path)


def _open_info(path: Path):
    import soundfile as sf

    if "\x00" in str(path):
        raise AudioError(f"{str(path)!r}: a file name cannot hold a NUL byte")
    try:
        from clsp.sniff import node_problem

        problem = node_problem(path)  # missing, a link loop, or a device / FIFO that reading would never end
        if problem is not None and problem.startswith("cannot open"):  # a name too long, a permission denied...
            raise AudioError(f"{str(path)[:200]}{'...' if len(str(path)) > 200 else ''}: {problem}")
        if problem is not None:
            from clsp.streams import CUT_SOURCE_NAME

            cut = problem == "no such file" and CUT_SOURCE_NAME.match(str(path)) is not None
            raise AudioError(f"{path}: {problem}" + (" (how clsp names a Lhotse cut's audio that is no file: "
                                                     "read the cut manifest it came from)" if cut else ""))
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file")
    except OSError as exc:  # a name too long for the filesystem, a permission denied on the way, ...
        raise AudioError(f"{str(path)[:200]}{'...' if len(str(path)) > 200 else ''}: cannot open "
                         f"({exc.strerror or type(exc).__name__})") from None
    from clsp.runfiles import note_read

    note_read(path)
    try:
        info = sf.info(os.fsencode(path))  # bytes: a file name that is not UTF-8 opens too
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({_short(exc)}){_header_hint(path, exc)}") from None
    _check_not_truncated(path, info)
    return info


WAV_HEADER_BYTES = 44  # RIFF + fmt + data chunk headers of a plain PCM WAV


STREAM_MAGIC = {b"OggS": "Ogg", b"fLaC": "FLAC"}  # containers libsndfile reports damage in with its own words


DAMAGE_WORDS = ("malformed", "lost sync", "unknown error", "ended unexpectedly")  # libsndfile on a damaged stream


def _header_hint(path: Path, exc: BaseException | None = None) -> str:
    """What a file libsndfile could not decode is, for the decoding error ('' when unknown): a
    RIFF file too short for its headers, or an Ogg or FLAC stream cut short or damaged (when
    libsndfile's error ``exc`` says damage, not an unsupported codec)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(WAV_HEADER_BYTES)
    except OSError:
        return ""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and len(head) < WAV_HEADER_BYTES:
        return f"; the file is {len(head)} bytes, shorter than a WAV header ({WAV_HEADER_BYTES} bytes): it holds no audio"
    if head[:4] in STREAM_MAGIC and any(word in str(exc).lower() for word in DAMAGE_WORDS):
        return f"; a truncated or corrupt {STREAM_MAGIC[head[:4]]} stream: cut short or damaged"
    compression = compression_of(head)
    if compression is not None:
        return (f"; it is {compression}-compressed: decompress it first ({DECOMPRESS_COMMANDS[compression]} "
                f"{path.name} > {Path(path.name).stem}) and give the audio file")
    return ""


def _unfinished_header_hint(path: Path, info) -> str:
    """For a WAV whose header says 0 frames while bytes follow it (a header never finished,
    as some tools write one to a pipe): what happened and how to repair it ('' otherwise)."""
    if info.format not in ("WAV", "WAVEX", "RF64"):
        return ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        size = path.stat().st_size
    except OSError:
        return ""
    at = head.find(b"data", 12)
    if at < 0:
        return ""
    extra = size - (at + 8)
    after = head[at + 8 : at + 16]
    if extra <= 0 or (len(after) == 8 and all(0x20 <= b < 0x7F for b in after[:4])
                      and at + 16 + int.from_bytes(after[4:], "little") <= size):
        return ""  # nothing follows, or another chunk (LIST, id3 ...) does: an empty recording
    return (f" (its header announces 0 bytes of audio, but {extra} bytes follow it: a header never finished, "
            "as some tools write one to a pipe; repair it with: sox --ignore-length IN.wav OUT.wav)")


_DATA_SIZE_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
STREAMING_DATA_SIZE = 0x7F000000  # a data size this large is a placeholder (written to a pipe), not a length


W64_DATA_GUID = b"data\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"
MAX_HEADER_CHUNKS = 64  # chunks looked at before the audio data's (AIFF, W64): a few bytes read each
SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                "FLOAT": 4, "DOUBLE": 8}  # fixed-width sample encodings: bytes per sample
RAW_SAMPLE_FORMATS = ("AIFF", "AU", "AVR", "CAF", "HTK", "IRCAM", "MAT4", "MAT5", "NIST", "PAF", "PVF", "RAW", "RF64",
                      "SD2", "SVX", "VOC", "W64", "WAV", "WAVEX", "WVE")  # containers of uncompressed samples


def _announced_data(path: Path, fmt: str) -> tuple[int, int] | None:
    """``(start, size)`` of the audio data an AIFF/AIFC ('SSND' chunk), W64 ('data' chunk),
    AU/SND (its data size; 0xffffffff: unknown) or NIST SPHERE (sample_count x sample_n_bytes x
    channel_count) header announces, from a few header bytes;
    None when the header gives no length (or a placeholder length, as written to a pipe)."""
    try:
        with open(path, "rb") as fh:
            if fmt == "AU":
                head = fh.read(12)
                order = "big" if head[:4] == b".snd" else "little"
                if len(head) < 12 or head[:4] not in (b".snd", b"dns."):
                    return None
                start, size = int.from_bytes(head[4:8], order), int.from_bytes(head[8:12], order)
                return None if size == 0xFFFFFFFF else (start, size)
            if fmt == "NIST":  # a text header: its size on line 2, then "sample_count -i N" and the like
                head = fh.read(1024).decode("latin-1")
                fields = dict(re.findall(r"^(sample_count|sample_n_bytes|channel_count) -i (\d+)\s*$", head, re.M))
                lines = head.split("\n")
                if len(lines) < 2 or not lines[1].strip().isdigit() or "sample_count" not in fields:
                    return None
                size = int(fields["sample_count"]) * int(fields.get("sample_n_bytes", 2)) * int(fields.get("channel_count", 1))
                return int(lines[1]), size
            aiff = fmt == "AIFF"
            pos, head_bytes = (12, 8) if aiff else (40, 24)
            for _ in range(MAX_HEADER_CHUNKS):
                fh.seek(pos)
                chunk = fh.read(head_bytes)
                if len(chunk) < head_bytes:
                    return None
                if aiff:
                    size = int.from_bytes(chunk[4:8], "big")
                    if chunk[:4] == b"SSND":  # 8 bytes of offset and block size, then the samples
                        return (pos + 16, size - 8) if 8 <= size < STREAMING_DATA_SIZE else None
                    pos += 8 + size + (size & 1)
                else:
                    size = int.from_bytes(chunk[16:24], "little")  # a W64 chunk's size counts its 24-byte header
                    if chunk[:16] == W64_DATA_GUID:
                        return (pos + 24, size - 24) if 24 <= size < 1 << 62 else None
                    if size < 24:
                        return None
                    pos += size + (-size % 8)
    except OSError:
        return None
    return None


def _ogg_ends_in_a_page(path: Path) -> bool:
    """Whether an Ogg file ends inside a page (the page header announces more bytes than are
    left) after pages none of which carries the end-of-stream flag: a file cut short. Walks the
    page headers (27 bytes and the lacing table each; RFC 3533, section 6); bytes after an
    end-of-stream page, or that are no page, are not a cut."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            pos, ended = 0, False
            while pos < size:
                fh.seek(pos)
                head = fh.read(27)
                if len(head) < 27:
                    return head == b"OggS"[: len(head)] and not ended
                if head[:4] != b"OggS":
                    return False
                lacing = fh.read(head[26])
                end = pos + 27 + head[26] + sum(lacing)
                if len(lacing) < head[26] or end > size:
                    return not ended  # a cut page's own end-of-stream flag does not count
                ended = ended or bool(head[5] & 0x04)
                pos = end
    except OSError:
        return False
    return False


def _check_not_truncated(path: Path, info) -> None:
    """``AudioError`` for a file cut short: its header announces more audio than the file
    holds, where libsndfile reads what is there without an error. WAV (libsndfile notes the
    mismatch in its log), AIFF/AIFC, W64, AU and NIST SPHERE (their data chunk or data size, a
    few header bytes read), and any container of fixed-width samples whose frame count the
    file cannot hold.
    Placeholder sizes of files written to a pipe are not a cut. An Ogg stream in which
    libsndfile finds no samples and no end-of-stream page is a truncated or corrupt one, and so
    is one that ends inside a page without an end-of-stream page (libsndfile logs both and
    decodes the pages before the cut)."""
    fmt = info.format
    log = getattr(info, "extra_info", "") or ""
    if fmt in ("WAV", "WAVEX", "RF64"):
        m = _DATA_SIZE_LOG.search(log)
        if m is not None:
            said, holds = int(m.group(1)), int(m.group(2))
            if holds < said < STREAMING_DATA_SIZE:
                raise AudioError(f"{path}: truncated: its header announces {said} bytes of audio, the file holds {holds}")
        return
    if fmt == "OGG" and info.frames <= 0 and ("ended unexpectedly" in log or "lacks an end-of-stream" in log):
        raise AudioError(f"{path}: truncated or corrupt Ogg stream: it ends without its end-of-stream page, "
                         "and libsndfile finds no sample count in it (a file cut short)")
    if fmt == "OGG" and "Junk after the last page" in log and _ogg_ends_in_a_page(path):
        raise AudioError(f"{path}: truncated Ogg stream: it ends in the middle of a page, with no end-of-stream "
                         f"page (a file cut short; only its first {info.frames} frames could be decoded)")
    try:
        size = path.stat().st_size
    except OSError:
        return
    if fmt in ("AIFF", "W64", "AU", "NIST"):
        data = _announced_data(path, fmt)
        if data is not None and data[0] + data[1] > size:
            raise AudioError(f"{path}: truncated: its header announces {data[1]} bytes of audio, the file holds "
                             f"{max(0, size - data[0])}")
    width = SAMPLE_BYTES.get(info.subtype) if fmt in RAW_SAMPLE_FORMATS else None
    if width is not None and info.frames > 0 and info.frames * info.channels * width > size:
        raise AudioError(f"{path}: truncated: its header announces {info.frames} frames "
                         f"({info.frames * info.channels * width} bytes of audio), the file holds {size} bytes")


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]


def _signal_range(path: Path, info) -> tuple[int, int, int, bool]:
    """``(offset, frames, decoded, promised)``: the signal in the decoded samples (MP3 delay and
    padding removed), the samples the decoder gives, and whether the file promises that count
    (False for an MP3 whose count the decoder only estimated from its size: such a file is
    decoded once to count its frames, and a shorter read is no truncation;
    ``clsp.mp3gapless.mp3_signal``)."""
    if info.format != "MP3":
        return 0, int(info.frames), int(info.frames), True
    from clsp.mp3gapless import mp3_signal

    offset, frames, decoded, promised = mp3_signal(path, int(info.frames))
    if not promised:  # the size estimate can be off by a few frames per minute: count what decodes
        counted = _decoded_frames(path, int(info.frames))
        if counted is not None and 0 < counted != decoded:
            offset, frames, decoded, _ = mp3_signal(path, counted, counted=True)
    return offset, frames, decoded, promised


_DECODED_FRAMES: dict[tuple, int] = {}  # (path, device, inode, size, mtime) -> frames decoded
_DECODED_FRAMES_KEPT = 4096


def _decoded_frames(path: Path, estimate: int) -> int | None:
    """The frames libsndfile decodes from ``path`` (an MP3 whose header gives no frame count), up
    to its size ``estimate`` (libsndfile reads no further), counted by decoding the file once per
    version of it (cached by device, inode, size and modification time); None if it cannot be read."""
    import soundfile as sf

    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _DECODED_FRAMES:
        return _DECODED_FRAMES[key]
    count = 0
    try:
        with sf.SoundFile(os.fsencode(path)) as fh:
            while count < estimate:
                n = fh.read(min(BLOCK_FRAMES, estimate - count), dtype="float32", always_2d=True).shape[0]
                if n == 0:
                    break
                count += n
    except (sf.LibsndfileError, RuntimeError, ValueError, OverflowError, MemoryError):
        return None
    if len(_DECODED_FRAMES) >= _DECODED_FRAMES_KEPT:
        _DECODED_FRAMES.clear()
    _DECODED_FRAMES[key] = count
    return count


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding; gapless for MP3)."""
    p = _local_path(path)
    info = _open_info(p)
    return float(_signal_range(p, info)[1]) / float(info.samplerate) if info.samplerate else 0.0


def audio_sample_rate(path: str | os.PathLike) -> int:
    """The file's own sample rate in Hz, from its header (no decoding); AudioError if unreadable."""
    return int(_open_info(_local_path(path)).samplerate)


def _seconds(path: Path, name: str, value) -> float:
    """A finite, non-negative time in seconds from a record field, or ``AudioError``. A string
    must be a plain ASCII decimal number (sign, digits, point, exponent): not ``1_0``, other
    scripts' digits, spaces, ``0x1``, ``inf`` or ``nan``, which Python's ``float`` takes."""
    try:
        sec = float(value) if not isinstance(value, str) or PLAIN_NUMBER.fullmatch(value) else math.nan
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
        sec = math.nan
    if isinstance(value, bool) or not math.isfinite(sec) or sec < 0:
        shown = ("true" if value else "false") if isinstance(value, bool) else repr(value)  # as JSON spells it
        raise AudioError(f"{path}: invalid {name} {shown} (expected seconds >= 0)")
    return sec


END_TOLERANCE = 0.025  # seconds an ``end`` may pass the file's end (Lhotse's duration-mismatch tolerance)


def _frame_range(path: Path, sr: int, frames: int, start: float | None, end: float | None,
                 slack: int = 0) -> tuple[int, int]:
    """First and end frame of a segment; an ``end`` past the file's end by more than
    ``END_TOLERANCE`` (plus ``slack`` frames, e.g. the MP3 delay and padding other decoders
    count) is an ``AudioError``, as a Lhotse cut past its recording is."""
    # positions past the file's end are clamped to it first: seconds * rate may overflow (1e308)
    s = 0 if start is None else int(round(min(_seconds(path, "start", start) * sr, frames)))
    if start is not None and s >= frames:
        raise AudioError(f"{path}: start={start} is at or past the end of the file ({frames / sr:.3f} s)")
    explicit = end is not None and not isinstance(end, DurationEnd)  # a duration field is often the clip's, stale
    if explicit and _seconds(path, "end", end) > (frames + slack) / sr + END_TOLERANCE:
        raise AudioError(f"{path}: end={end} is past the end of the file ({frames / sr:.3f} s)")
    e = frames if end is None else int(round(min(_seconds(path, "end", end) * sr, frames)))
    if s >= e:
        raise AudioError(f"{path}: empty segment (start={start}, end={end}, file has {frames / sr:.3f} s)")
    return s, e


DURATION_TOLERANCE = 0.01  # seconds: end - start may differ from a given duration by rounding


class DurationEnd(float):
    """An end (seconds) that a record's ``duration`` gave, not an ``end`` field: read up to the
    file's end when it lies past it (manifests often keep a source clip's duration on a
    shorter copy), where an explicit ``end`` past the end is an error."""


def record_span(record: dict[str, Any]) -> tuple[Any, Any]:
    """``(start, end)`` of a plain record's segment as given (None: the file's start / end):
    its ``start``/``end`` fields, ``end`` taken as ``start + duration`` when only ``duration``
    is given. Raises ``AudioError`` naming the file for a ``duration`` that is not a number of
    seconds >= 0, or one that disagrees with ``end - start`` by more than 10 ms."""
    start, end, duration = record.get("start"), record.get("end"), record.get("duration")
    if duration is None or record.get("_cut") is not None:
        return start, end
    where = record.get("_path", record.get("audio"))
    dur = _seconds(where, "duration", duration)
    first = 0.0 if start is None else _seconds(where, "start", start)
    if end is None:
        return start, DurationEnd(first + dur)
    if abs(_seconds(where, "end", end) - first - dur) > DURATION_TOLERANCE:
        raise AudioError(f"{where}: end - start = {float(end) - first:g} s disagrees with duration = {dur:g} s")
    return start, end


def load_audio(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    channel: int | list[int] | None = None,
) -> torch.Tensor:
    """Decode ``path`` (wav/flac/ogg/mp3...) to a mono float32 tensor at ``sample_rate``.

    ``start``/``end`` select a segment in seconds, counted from the first sample of the
    signal: MP3 encoder/decoder delay and padding are removed (``clsp.mp3gapless``).
    ``channel``: None averages all channels; an index (0 = first) keeps that channel alone;
    a list of indices averages those (a record's ``channel`` field, as in a Lhotse cut).
    Raises ``TypeError`` for a ``path`` that is no str or path (bytes of audio data: the message
    says how to embed them), ``ConfigError`` for a ``sample_rate`` that is not a positive whole number, ``AudioError`` naming the file and the reason for anything unusable (missing,
    a symbolic link loop, a URL, not a regular file (a device, a FIFO), empty, undecodable,
    no samples, NaN/Inf, float samples past ``PEAK_LIMIT`` (2.0, twice full scale), a channel
    the file does not have).
    """
    check_sample_rate(sample_rate, "load_audio")
    if not isinstance(path, (str, os.PathLike)):
        hint = (": audio held in memory is decoded with soundfile.read(io.BytesIO(data)), its samples then "
                "embedded with model.encode_audio" if isinstance(path, (bytes, bytearray, memoryview)) else "")
        raise TypeError(f"load_audio: path must be a file path (str or os.PathLike), got {type(path).__name__}{hint}")
    p = _local_path(path)
    sr, s, e, offset, channels, promised = _segment(p, start, end, channel)
    mono = _read_mono(p, s + offset, e + offset, channels, promised)
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    wave = resample(wave, sr, sample_rate)
    if wave.numel() < MIN_SECONDS * sample_rate:
        raise AudioError(f"{p}: too short ({wave.numel() / sample_rate:.3f} s; at least {MIN_SECONDS} s needed)")
    return wave


def select_channels(path: str | os.PathLike, channel, num_channels: int) -> list[int] | None:
    """The channel indices a ``channel`` value picks in a file of ``num_channels`` channels:
    None for None (all, averaged), ``[c]`` for an index ``c``, the list itself for a non-empty
    list of distinct indices. ``AudioError`` naming the file for anything else (a bool, a
    float, a string, a negative or missing index)."""
    if channel is None:
        return None
    picks = channel if isinstance(channel, list) else [channel]
    ok = bool(picks) and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_channels
                             for c in picks) and len(set(picks)) == len(picks)
    if not ok:
        raise AudioError(f"{path}: invalid channel {channel!r} (the file has {num_channels} channel"
                         f"{'s' if num_channels != 1 else ''}; expected an index 0..{num_channels - 1} "
                         f"or a list of distinct indices)")
    return picks


def _segment(p: Path, start: float | None, end: float | None,
             channel=None) -> tuple[int, int, int, int, list[int] | None, bool]:
    """(file rate, first frame, end frame, frames before the signal, channels, whether the file
    promises its frame count) of a segment, from the header alone; frames count from the first
    signal sample (after any MP3 encoder delay)."""
    info = _open_info(p)
    channels = select_channels(p, channel, int(info.channels))
    sr = int(info.samplerate)
    if info.frames <= 0:
        raise AudioError(f"{p}: no audio samples{_unfinished_header_hint(p, info)}")
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioError(f"{p}: unsupported sample rate {sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")
    offset, frames, decoded, promised = _signal_range(p, info)
    if frames <= 0:
        raise AudioError(f"{p}: no audio samples")
    s, e = _frame_range(p, sr, frames, start, end, slack=decoded - frames)
    return sr, s, e, offset, channels, promised


def segment_plan(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    sample_rate: int = SAMPLE_RATE,
    channel: int | list[int] | None = None,
) -> tuple[float, int]:
    """``(offset, samples)`` of a segment without decoding it: where it starts in the file
    (seconds) and how many samples ``load_audio`` returns for it at ``sample_rate``
    (``channel`` checked against the header as ``load_audio`` does).

    Lets long files be decoded window by window (``load_audio(path, offset + a, offset + b)``).
    Raises the ``AudioError`` ``load_audio`` would raise for an unusable header or segment;
    samples that turn out NaN/Inf or missing are only found when decoding.
    """
    p = _local_path(path)
    sr, s, e = _segment(p, start, end, channel)[:3]
    n = resampled_length(e - s, sr, sample_rate)
    if n < MIN_SECONDS * sample_rate:
        raise AudioError(f"{p}: too short ({n / sample_rate:.3f} s; at least {MIN_SECONDS} s needed)")
    return s / sr, n


BLOCK_FRAMES = 1 << 20
MP3_SHORTFALL_FRAMES = 2 * 1152  # an MP3's frame count is the decoder's estimate: two MPEG frames of leeway


def _read_mono(p: Path, start: int, stop: int, channels: list[int] | None = None,
               promised: bool = True) -> np.ndarray:
    """Frames ``[start, stop)`` downmixed to mono, read in blocks: the mean of ``channels``
    (None: of all channels). Fewer frames than asked are a truncated file only when the header
    ``promised`` them (an MP3 without a Xing/Info frame count promises none: what it holds is read).

    Memory follows the samples actually in the file (a header that claims more frames than
    the file holds cannot trigger a huge allocation), and channels are averaged per block.
    """
    import soundfile as sf

    parts: list[np.ndarray] = []
    try:
        with sf.SoundFile(os.fsencode(p)) as fh:
            fmt = fh.format
            if start:
                fh.seek(start)
            remaining = stop - start
            while remaining > 0:
                block = fh.read(min(BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if channels is not None:
                    block = block[:, channels]
                problem = peak_problem(float(np.abs(block).max())) if block.size else None
                if problem:
                    raise AudioError(f"{p}: {problem}")
                parts.append(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0].copy())
                remaining -= block.shape[0]
    except (sf.LibsndfileError, RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise AudioError(f"{p}: cannot decode audio ({_short(exc)}){_header_hint(p, exc)}") from None
    if not parts:
        raise AudioError(f"{p}: no audio samples")
    if promised and remaining > (0 if fmt != "MP3" else MP3_SHORTFALL_FRAMES):
        raise AudioError(f"{p}: truncated: the header promises {stop - start} frames from frame {start}, "
                         f"the file holds {stop - start - remaining}")
    return np.concatenate(parts).astype(np.float32, copy=False)


def _near_rate(orig_sr: int, new_sr: int) -> int | None:
    """For an odd rate (e.g. 44101 Hz) the nearest 100 Hz, reached first by linear interpolation
    so that the exact sinc resampler works on a small ratio; None for a usual rate."""
    g = math.gcd(orig_sr, new_sr)
    if (orig_sr // g) * (new_sr // g) > MAX_KERNEL:
        return max(100, round(orig_sr / 100) * 100)
    return None


def resampled_length(num_samples: int, orig_sr: int, new_sr: int = SAMPLE_RATE) -> int:
    """Samples ``resample`` returns for ``num_samples`` at ``orig_sr`` (torchaudio's
    ``ceil(new * n / orig)`` on the reduced ratio, after the odd-rate step)."""
    if orig_sr == new_sr:
        return num_samples
    near = _near_rate(orig_sr, new_sr)
    if near is not None:
        num_samples = max(1, round(num_samples * near / orig_sr))
        orig_sr = near
        if orig_sr == new_sr:
            return num_samples
    g = math.gcd(orig_sr, new_sr)
    return int(torch.ceil(torch.as_tensor((new_sr // g) * num_samples / (orig_sr // g))).long())


def check_sample_rate(rate: object, caller: str) -> int:
    """``rate`` when it is a positive whole number of Hz (an int, not a bool); ``ConfigError``
    naming ``caller`` otherwise."""
    from clsp.errors import ConfigError

    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ConfigError(f"{caller}: sample_rate must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Deterministic band-limited resampling with torchaudio (no-op when rates match)."""
    if orig_sr == new_sr:
        return wave
    import torchaudio.functional as AF

    near = _near_rate(orig_sr, new_sr)
    if near is not None:
        n = max(1, round(wave.numel() * near / orig_sr))
        wave = torch.nn.functional.interpolate(wave[None, None], size=n, mode="linear", align_corners=False)[0, 0]
        orig_sr = near
        if orig_sr == new_sr:
            return wave
    return AF.resample(wave, orig_sr, new_sr)


SPEAKER_BANDS = ("full", "telephone")
TELEPHONE_BAND_HZ = (100.0, 3400.0)  # the band a telephone channel keeps (also signal_stats' "telephone")


def band_mask(n_fft: int, band: str = "full", sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Weights ``(n_fft // 2 + 1,)`` for the bins of an ``n_fft``-point spectrum: all 1 for
    ``"full"``; for ``"telephone"`` 1 for bins in 100 Hz-3.4 kHz and 0 elsewhere, so that
    features read through it barely move when a clip went through an 8 kHz channel
    (telephone, narrow-band codec), which keeps that band. Raises ``ValueError`` for an
    unknown band."""
    if band not in SPEAKER_BANDS:
        raise ValueError(f"band must be one of {', '.join(SPEAKER_BANDS)}, got {band!r}")
    hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    if band == "full":
        return torch.ones(hz.numel())
    lo, hi = TELEPHONE_BAND_HZ
    return ((hz >= lo) & (hz <= hi)).float()


def narrowband_copy(waves: torch.Tensor, lengths: torch.Tensor, rate: int = 8000,
                    sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Each clip of ``waves`` ``(B, S)`` (valid samples ``lengths`` ``(B,)``) resampled down to
    ``rate`` Hz and back to ``sample_rate``: what an 8 kHz channel (telephone, narrow-band
    codec) leaves of it, ``(B, S)``, zero past each clip's length. torchaudio's windowed-sinc
    resampler; a clip's copy does not depend on the rest of the batch (its padding is zeros,
    and every clip gets the same 1024 zeros after its end, longer than the filters). Raises
    ``ValueError`` unless ``0 < rate < sample_rate``."""
    import torchaudio.functional as AF

    if not 0 < rate < sample_rate:
        raise ValueError(f"rate must be between 0 and {sample_rate} Hz, got {rate}")
    valid = torch.arange(waves.shape[1], device=waves.device)[None, :] < lengths.to(waves.device)[:, None]
    x = torch.nn.functional.pad(waves.float() * valid, (0, 1024))
    copy = AF.resample(AF.resample(x, sample_rate, rate), rate, sample_rate)[:, : waves.shape[1]]
    if copy.shape[1] < waves.shape[1]:
        copy = torch.nn.functional.pad(copy, (0, waves.shape[1] - copy.shape[1]))
    return copy * valid


CONSISTENCY_COPIES = ("narrowband", "padded", "offset", "gain", "noise")


def consistency_copy(wave: torch.Tensor, kinds: list[str] | tuple[str, ...], identity: str, rate: int = 8000,
                     sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, str]:
    """One clip ``(S,)`` as recorded another way, for a channel-consistency term: ``(S',)`` and
    a tag naming the copy (a cache key part). The kind is ``kinds[h % len(kinds)]`` and its
    setting is drawn from ``h``, a SHA-256 of ``identity``, so a clip always gets the same copy:

    * ``narrowband``: through ``rate`` Hz and back (``narrowband_copy``); tag ``narrowband-RATE``;
    * ``padded``: 0.2-1.0 s of digital silence before and 0.2-1.0 s after (``S' > S``);
    * ``offset``: a DC offset of 0.02-0.1, either sign, added to every sample;
    * ``gain``: 6-26 dB quieter;
    * ``noise``: white noise at -60 to -40 dBFS (RMS re full scale) added, drawn from ``h``.

    Raises ``ValueError`` for an unknown kind or an empty ``kinds``."""
    import hashlib

    if not kinds or any(k not in CONSISTENCY_COPIES for k in kinds):
        raise ValueError(f"copy kinds must be among {CONSISTENCY_COPIES}, got {list(kinds)}")
    h = int.from_bytes(hashlib.sha256(identity.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    kind = kinds[h % len(kinds)]
    u1, u2 = ((h >> 16) % 10007) / 10006, ((h >> 32) % 10009) / 10008  # two settings in [0, 1]
    wave = wave.float().reshape(-1)
    if kind == "narrowband":
        copy = narrowband_copy(wave[None], torch.tensor([wave.numel()]), rate, sample_rate)[0]
        return copy, f"narrowband-{rate}"
    if kind == "padded":
        before, after = (int(round((0.2 + 0.8 * u) * sample_rate)) for u in (u1, u2))
        return torch.nn.functional.pad(wave, (before, after)), f"padded-{before}-{after}"
    if kind == "gain":
        db = 6 + 20 * u1
        return wave * 10 ** (-db / 20), f"gain-{db:.2f}"
    if kind == "noise":
        dbfs = -60 + 20 * u1
        gen = torch.Generator().manual_seed(h % (2**63))
        return wave + 10 ** (dbfs / 20) * torch.randn(wave.numel(), generator=gen), f"noise-{dbfs:.2f}"
    dc = (0.02 + 0.08 * u1) * (1 if u2 < 0.5 else -1)
    return wave + dc, f"offset-{dc:.5f}"


SPEECH_LEVEL_DBFS = -26.0  # ITU-T P.56's nominal active speech level
TRIM_BELOW_PEAK_DB = 35.0
ACTIVE_BELOW_PEAK_DB = 30.0
TRIM_MARGIN_S = 0.05
MIN_SPEECH_RUN = 5  # frames (50 ms): a click or the step at the edge of padding is shorter
DITHER_DBFS = -70.0


def _speech_levels(centred: torch.Tensor, sample_rate: int):
    """Frames ``(T, win)`` (25 ms every 10 ms), their energy in 100 Hz-3.4 kHz in dB, the
    reference (95th percentile of the frames within 60 dB of the loudest), win and hop in
    samples; None for a clip under one frame or digital silence."""
    win, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
    if centred.numel() < win:
        return None
    frames = centred.unfold(0, win, hop)  # (T, win), frame t starts at t * hop
    n_fft = 1 << (win - 1).bit_length()
    spec = torch.fft.rfft(frames * torch.hann_window(win), n=n_fft).abs().pow(2)
    band_db = 10 * torch.log10((spec * band_mask(n_fft, "telephone", sample_rate)).sum(-1) + 1e-20)
    if float(band_db.max()) < -150.0:
        return None
    ref = torch.quantile(band_db[band_db > band_db.max() - 60.0], 0.95)
    return frames, band_db, ref, win, hop


def shorten_pauses(wave: torch.Tensor, max_pause_s: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``(S,)`` -> ``(S',)``: each pause inside the speech longer than ``max_pause_s`` seconds cut
    to that length (its middle taken out, its edges kept), the rest of the clip unchanged.

    Speech frames as ``normalize_speech`` trims (25 ms every 10 ms, energy in 100 Hz-3.4 kHz
    within 35 dB of the clip's 95th-percentile frame); a pause runs from the end of one speech
    frame to the start of the next. Silence before the first and after the last speech frame
    is left as it is. A clip without speech frames comes back unchanged."""
    wave = wave.float().reshape(-1)
    levels = _speech_levels(wave - wave.mean() if wave.numel() else wave, sample_rate)
    if levels is None:
        return wave
    _, band_db, ref, win, hop = levels
    speech = torch.nonzero(band_db > ref - TRIM_BELOW_PEAK_DB).reshape(-1).tolist()
    keep_s = int(round(max_pause_s * sample_rate))
    cuts = []  # sample ranges [a, b) taken out
    for prev, nxt in zip(speech, speech[1:]):
        end, start = prev * hop + win, nxt * hop
        if start - end > keep_s:
            cuts.append((end + keep_s // 2, start - (keep_s - keep_s // 2)))
    if not cuts:
        return wave
    parts, at = [], 0
    for a, b in cuts:
        parts.append(wave[at:a])
        at = b
    parts.append(wave[at:])
    return torch.cat(parts)


def normalize_speech(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE,
                     level_dbfs: float | None = SPEECH_LEVEL_DBFS, trim: bool = True) -> torch.Tensor:
    """A clip as a speech front end should hear it, whatever its recording: ``(S,)`` -> ``(S',)``.
    With ``level_dbfs=None`` only steps 1 and 2 (``trim_speech``); with ``trim=False`` every
    step but 2, so ``S' = S`` (``level_speech``).

    1. DC removed (the mean of the kept samples subtracted).
    2. Leading and trailing non-speech trimmed: speech starts at the first and ends at the
       last run of at least 5 frames (25 ms every 10 ms) whose energy in 100 Hz-3.4 kHz
       (``TELEPHONE_BAND_HZ``, so an 8 kHz copy trims alike) is within 35 dB of the clip's
       95th-percentile frame energy; 50 ms are kept on each side. Frames 60 dB or more below
       the loudest (digital silence, padding) never count towards that percentile.
    3. Scaled to an active speech level of ``level_dbfs`` (-26 dBFS, the nominal level of
       ITU-T P.56): the mean power of the frames within 30 dB of that reference.
    4. A fixed white-noise floor at -70 dBFS added (Gaussian, from a generator seeded with 0,
       so the same clip always gets the same floor), 44 dB below the speech level: the
       recording's own quantisation noise and digital silence, which a level change moves,
       no longer decide what the speaker encoders hear in quiet bins (cf. Kaldi's dither).

    A clip without such frames (silence, under 25 ms) comes back with only its DC removed.
    Samples may leave [-1, 1] after scaling (float features do not clip)."""
    wave = wave.float().reshape(-1)
    centred = wave - wave.mean() if wave.numel() else wave
    levels = _speech_levels(centred, sample_rate)
    if levels is None:
        return centred
    frames, band_db, ref, win, hop = levels
    above = (band_db > ref - TRIM_BELOW_PEAK_DB).float()
    run = min(MIN_SPEECH_RUN, above.numel())
    starts = torch.nonzero(above.unfold(0, run, 1).min(-1).values > 0).reshape(-1)  # runs of `run` frames
    if level_dbfs is not None:
        active = band_db > ref - ACTIVE_BELOW_PEAK_DB
        power = frames[active].var(-1, unbiased=False).mean()  # each frame's own mean out: no DC in the level
        gain = 10.0 ** (level_dbfs / 20.0) / float(power.sqrt().clamp(min=1e-10))
    if trim and starts.numel():
        margin = int(TRIM_MARGIN_S * sample_rate)
        first = max(0, int(starts[0]) * hop - margin)
        last = min(wave.numel(), (int(starts[-1]) + run - 1) * hop + win + margin)
        wave = wave[first:last]
    wave = wave - wave.mean()  # the DC of the speech itself, whatever was trimmed
    if level_dbfs is None:
        return wave
    noise = torch.randn(wave.numel(), generator=torch.Generator().manual_seed(0))
    return wave * gain + 10.0 ** (DITHER_DBFS / 20.0) * noise


def level_speech(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``normalize_speech`` without trimming: DC removed, scaled to the -26 dBFS active speech
    level, the fixed -70 dBFS floor added; ``(S,)`` -> ``(S,)``. Silence and pauses stay where
    they are, so a copy of the clip at another gain or with a DC offset comes out the same
    (up to the floor), while how much silence surrounds the speech still shows."""
    return normalize_speech(wave, sample_rate, trim=False)


def trim_speech(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``normalize_speech`` steps 1 and 2 only: DC removed and leading / trailing non-speech
    trimmed, the level left as recorded. ``(S,)`` -> ``(S',)``."""
    return normalize_speech(wave, sample_rate, None)
