"""Lhotse cuts as clsp input records, read and decoded by Lhotse itself.

A cut line of a manifest (MonoCut, MultiCut, MixedCut, PaddingCut, in any Lhotse layout) is
parsed with ``lhotse.serialization.deserialize_item``; the record keeps the cut as a dict in
its private ``_cut`` field and its audio is decoded with ``Cut.load_audio``, so everything
Lhotse supports works as it does there: a cut's ``channel`` of a multi-channel recording or of
a recording made of one file per channel, ``command`` and ``url`` sources, mixes, padding,
relative paths (resolved against the working directory, as Lhotse does, or against
``--audio-root`` when given: ``rooted_cut``). Lhotse is imported
only when a cut is met (it imports torch).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import numpy as np
import torch

from clsp.audio import MIN_SECONDS, _seconds, peak_problem, resample, resampled_length
from clsp.errors import AudioError, InputError
from clsp.streams import absolute_path
from clsp.sniff import audio_file_problem

SUPERVISION_FIELDS = ("speaker", "gender", "language")


def _cut(data: dict[str, Any], where: str):
    from lhotse.serialization import deserialize_item

    try:
        return deserialize_item(copy.deepcopy(data))  # Lhotse pops keys of the dict it reads
    except Exception as exc:  # Lhotse raises many kinds for a malformed cut
        raise InputError(f"{where}: not a cut Lhotse can read ({type(exc).__name__}: {exc})") from None


def _source_name(cut) -> str:
    """Where a cut's audio comes from, for output records: the file of its channel as an
    absolute path, ``kind:source`` for command/url sources, ``memory:recording-id`` for audio
    Lhotse holds in memory (Shar), ``padding`` for silence."""
    while getattr(cut, "tracks", None):  # MixedCut: its first track's cut
        cut = cut.tracks[0].cut
    recording = getattr(cut, "recording", None)
    if recording is None:
        return "padding"
    channel = getattr(cut, "channel", 0)
    wanted = set(channel if isinstance(channel, list) else [channel])
    source = next((s for s in recording.sources if wanted & set(s.channels)), recording.sources[0])
    if source.type == "file":
        return absolute_path(source.source)
    if source.type in ("memory", "shar"):
        return f"{source.type}:{recording.id}"  # audio held by Lhotse (e.g. read from a Shar tar)
    return f"{source.type}:{source.source}"


def _file_channel(cut, source) -> Any:
    """The channel(s) a plain cut reads within its one multi-channel ``source`` (an index, or
    a list), for output records; None when the source holds one channel."""
    if len(source.channels) < 2:
        return None
    channel = getattr(cut, "channel", 0)
    inside = [source.channels.index(c) for c in (channel if isinstance(channel, list) else [channel])
              if c in source.channels]
    return inside[0] if len(inside) == 1 else inside


def _used_sources(cut) -> list[Any]:
    """The sources of a plain cut's recording that hold the channel(s) it reads."""
    channel = getattr(cut, "channel", 0)
    wanted = set(channel if isinstance(channel, list) else [channel])
    return [s for s in cut.recording.sources if wanted & set(s.channels)]


def _is_mp3_source(source) -> bool:
    """Whether a Lhotse source is a file of MP3 data: by its name (``.mp3``) or, whatever it is
    named (``x.wav``, ``x.mpga``), by its content (libsndfile's reading of its header)."""
    if source.type != "file":
        return False
    if str(source.source).lower().endswith(".mp3"):
        return True
    if not os.path.isfile(source.source):  # a FIFO or device would block the read: reading it says why
        return False
    import soundfile as sf

    try:
        return sf.info(os.fsencode(source.source)).format == "MP3"
    except Exception:  # noqa: BLE001  reading the audio reports it
        return False


def mp3_cut_problem(path: str | os.PathLike) -> str | None:
    """Why no Lhotse cut can be written for a segment of the audio file at ``path``, or ``None``:
    an MP3, which clsp decodes gapless (encoder and decoder delay removed: ``clsp.mp3gapless``)
    while Lhotse keeps that delay or not depending on its decoding backend and the file's tag
    (up to 69 ms at 16 kHz), so the cut would hold other samples than those read, in Lhotse
    and in clsp (which decodes a cut with Lhotse). Unreadable files: ``None`` (reading says why)."""
    import soundfile as sf

    try:
        fmt = sf.info(os.fsencode(path)).format
    except Exception:  # noqa: BLE001  reading the audio reports it
        return None
    if fmt != "MP3":
        return None
    return ("an MP3's samples start where its decoder puts them: clsp removes the encoder/decoder delay, "
            "Lhotse may not, so a cut of it would not hold the audio that was read; convert it to FLAC or "
            "WAV (e.g. sox in.mp3 out.flac) and caption that for --as-cuts")


def _transforms(cut) -> list[Any]:
    """The transforms Lhotse applies to a plain cut's recording as it reads it (``perturb_speed``,
    ``perturb_volume``, ``resample``, ``reverb_rir``...), as in the cut's JSON; [] for none."""
    recording = getattr(cut, "recording", None)
    return [_jsonable(t.to_dict() if hasattr(t, "to_dict") else t)
            for t in (getattr(recording, "transforms", None) or [])]


def rooted_cut(data: Any, root: str | os.PathLike) -> Any:
    """A copy of a cut's JSON whose relative ``file`` sources (of its recording, of every
    track of a mix, of each channel's file) are joined to ``root``: the cut as read with
    ``--audio-root``. Absolute paths, ``command``/``url``/``memory`` sources stay."""
    if isinstance(data, list):
        return [rooted_cut(v, root) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: rooted_cut(v, root) for k, v in data.items()}
    if out.get("type") == "file" and isinstance(out.get("source"), str) and "channels" in out:
        source = os.path.expanduser(out["source"])
        if not os.path.isabs(source):
            out["source"] = absolute_path(os.path.join(root, source))
    return out


_TIME_FIELDS = ("start", "duration")


def _time_value(value: Any, name: str, who: str) -> Any:
    """A cut's ``start``/``duration`` (or a track's ``offset``) as Lhotse can use it: a JSON
    number as it is (the cut's own checks follow), a string by the plain records' rules
    (``clsp.audio._seconds``: a plain ASCII decimal number of seconds >= 0, e.g. "0.2") as its
    float; anything else (``1_0``, ``inf``, a negative string, true, null, a list) is an
    ``InputError`` naming ``who`` (the cut) and the field."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if value is None:
        raise InputError(f"{who}: invalid {name} null (expected seconds >= 0)")
    try:
        return _seconds(who, name, value)  # type: ignore[arg-type]  # who: named in the message
    except AudioError as exc:
        raise InputError(str(exc)) from None


def _checked_times(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``data`` (a cut's JSON) whose string ``start``/``duration`` values (its mix
    tracks' cuts' and ``offset`` included) are read as plain records read them
    (``_time_value``). Raises ``InputError`` naming ``where``, the cut and the field."""
    def fixed(cut: Any, names: tuple[str, ...]) -> Any:
        if not isinstance(cut, dict):
            return cut
        who = f"{where}: cut {cut.get('id')!r}"
        out = {**cut, **{k: _time_value(cut[k], k, who) for k in names if k in cut}}
        if isinstance(cut.get("tracks"), list):
            out["tracks"] = [{**t, **({"offset": _time_value(t["offset"], "offset", f"{who}: track {i + 1}")}
                                      if "offset" in t else {}), "cut": fixed(t.get("cut"), _TIME_FIELDS)}
                             if isinstance(t, dict) and "cut" in t else t for i, t in enumerate(cut["tracks"])]
        return out

    return fixed(data, _TIME_FIELDS)


def sources_problem(cut: Any) -> str | None:
    """Why a cut's audio files cannot be read, as a plain record's file would be refused
    (``clsp.sniff.audio_file_problem``): ``"REASON: SOURCE"`` for the first file source it
    reads (of each track of a mix) that is missing, a dangling link, a link loop, a FIFO, a
    device, a folder or empty, or ``None``. Checked before Lhotse opens them: opening a FIFO
    blocks, a device reads without end, a missing file gives a long report of every backend
    Lhotse tried. A relative source is checked where Lhotse reads it (the working directory)."""
    cuts = [t.cut for t in cut.tracks] if getattr(cut, "tracks", None) else [cut]
    for one in cuts:
        if getattr(one, "recording", None) is None:
            continue
        for source in _used_sources(one):
            if source.type != "file":
                continue
            problem = audio_file_problem(source.source)
            if problem is not None:
                return f"{problem}: {source.source}"
    return None


def cut_record(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A flat record ``{"id", "audio", "start", "end", <supervision fields>, "_cut"}`` for a cut,
    plus ``channel`` (the channel(s) read inside a multi-channel ``audio`` file). A MixedCut (a
    mix, or a cut padded by Lhotse), a cut whose channels come from several files (averaged)
    and a cut whose recording Lhotse transforms as it reads it (``perturb_speed``,
    ``perturb_volume``, ``resample``...; the record keeps them as ``transforms``) are
    ``{"id", "audio": "mix:ID", "duration", "audio_files"}``, and a PaddingCut ``{"id",
    "audio": "padding", "duration"}``: no segment of one file, and no record read back from
    the output passes for one. A cut that starts outside its recording (a negative start, or
    one at or past its end) raises ``InputError``.

    The speaker, gender, language, text (as ``transcript``) and custom fields (FCaps captions
    such as ``global_captions``) of the first supervision heard in the cut
    (``heard_supervisions``; one wholly outside it is not) become record fields, then the cut's
    own custom fields (read from the JSON, so a hand-written supervision without Lhotse's
    required keys is still used). Raises ``InputError`` naming ``where`` for a cut whose audio
    part Lhotse rejects.
    """
    data = _checked_times(data, where)  # "1_0", "inf", true...: one error record naming the field
    audio_only = {**data, "supervisions": []} if data.get("supervisions") else data  # the audio needs none
    cut = _cut(audio_only, where)
    if getattr(cut, "tracks", None) or getattr(cut, "recording", None) is None:
        # a mix or padding is no segment of one file: named so that no record read back from
        # the output takes it for one ("mix:ID" or "padding" is no file), with the files mixed
        out: dict[str, Any] = {"id": cut.id, "audio": "padding" if not getattr(cut, "tracks", None) else f"mix:{cut.id}",
                               "duration": float(cut.duration)}
        files = sorted({absolute_path(s.source) for t in getattr(cut, "tracks", None) or []
                        if getattr(t.cut, "recording", None) is not None
                        for s in t.cut.recording.sources if s.type == "file"})
        if files:
            out["audio_files"] = files
        return _with_fields(out, data, audio_only)
    bad = _outside_recording(cut)
    if bad:  # Lhotse would read another span (a negative start decodes from 0) or fail later
        raise InputError(f"{where}: cut {cut.id!r}: {bad}")
    used, transforms = _used_sources(cut), _transforms(cut)
    if len(used) > 1 or transforms or any(_is_mp3_source(s) for s in used):
        # channels of several sources averaged, audio Lhotse changes as it reads it (speed, volume,
        # rate, reverb...), or an MP3 that Lhotse decodes with the encoder/decoder delay clsp removes
        # from a plain record's segment: no segment of one file as a record reads it, named as a mix
        # is ("mix:ID"), with the files it is made from and the transforms, so that no record read
        # back passes for it
        out = {"id": cut.id, "audio": f"mix:{cut.id}", "duration": float(cut.duration)}
        files = [absolute_path(s.source) for s in used if s.type == "file"]
        if files:
            out["audio_files"] = files
        if transforms:
            out["transforms"] = transforms
        return _with_fields(out, data, audio_only)
    out = {"id": cut.id, "audio": _source_name(cut), "start": float(cut.start), "end": float(cut.start + cut.duration)}
    channel = _file_channel(cut, used[0]) if used else None
    if channel is not None:  # which channel of "audio" was heard: a record with it reads the same samples
        out["channel"] = channel
    return _with_fields(out, data, audio_only)


def heard_supervisions(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(position, supervision)`` for each supervision of a cut's JSON that overlaps the cut
    (its ``start`` is relative to the cut, as in Lhotse): one wholly before or after it,
    as trimming and windowing leave, describes speech the cut does not hold. A MixedCut keeps
    its supervisions in its tracks: they are Lhotse's ``MixedCut.supervisions`` (those of its
    audible tracks, shifted by each track's offset), so a mix lends its fields as a MonoCut does."""
    supervisions, length = _json_supervisions(data)
    heard = []
    for pos, sup in enumerate(supervisions):
        if not isinstance(sup, dict):
            continue
        try:
            start = float(sup.get("start", 0.0))
            end = start + float(sup.get("duration", length))
        except (TypeError, ValueError):
            start, end = 0.0, length
        if end > 0.0 and start < length:
            heard.append((pos, sup))
    return heard


def _json_supervisions(data: dict[str, Any]) -> tuple[list[Any], float]:
    """``(supervisions, duration)`` of a cut's JSON, supervision starts relative to the cut: its
    own ``supervisions`` list, or for a MixedCut those Lhotse gives (``cut.supervisions``); an
    unknown duration is infinite."""
    if data.get("tracks"):
        try:
            cut = _cut(data, str(data.get("id")))
            return [s.to_dict() for s in cut.supervisions], float(cut.duration)
        except InputError:  # reading the cut's audio says why
            return [], float("inf")
    try:
        length = float(data.get("duration"))
    except (TypeError, ValueError):
        length = float("inf")
    return list(data.get("supervisions") or []), length


def _with_fields(out: dict[str, Any], data: dict[str, Any], audio_only: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the first heard supervision's fields, the cut's custom fields and the cut itself."""
    heard = heard_supervisions(data)
    if heard:
        sup = heard[0][1]
        out.update({k: sup[k] for k in SUPERVISION_FIELDS if sup.get(k) is not None})
        if sup.get("text"):
            out["transcript"] = sup["text"]
        if isinstance(sup.get("custom"), dict):
            out.update({k: _jsonable(v) for k, v in sup["custom"].items() if k not in out})
    if isinstance(data.get("custom"), dict):
        out.update({k: _jsonable(v) for k, v in data["custom"].items() if k not in out})
    out["_cut"] = audio_only
    out["_cut_json"] = data
    return out


def _jsonable(value: Any) -> Any:
    """A custom field as JSON can hold it (Lhotse may put paths there, e.g. a Shar cut's
    ``shard_origin``): values JSON cannot encode become their text."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def cut_samples(data: dict[str, Any], sample_rate: int) -> int:
    """Samples the cut's audio has at ``sample_rate`` (from its duration, no decoding)."""
    cut = _cut(data, str(data.get("id")))
    return resampled_length(int(round(cut.duration * cut.sampling_rate)), int(cut.sampling_rate), sample_rate)


def cut_seconds(data: dict[str, Any]) -> float:
    """The cut's duration in seconds (a mix or padding included)."""
    return float(_cut(data, str(data.get("id"))).duration)


def cut_sample_rate(data: dict[str, Any]) -> int:
    """The sampling rate of the cut's recording(s), in Hz."""
    return int(_cut(data, str(data.get("id"))).sampling_rate)


def _note_files(cut) -> None:
    """Note the files a cut's audio is read from (``clsp.runfiles``: no output replaces them)."""
    from clsp.runfiles import note_read

    cuts = [t.cut for t in cut.tracks] if getattr(cut, "tracks", None) else [cut]
    for one in cuts:
        recording = getattr(one, "recording", None)
        for source in getattr(recording, "sources", None) or []:
            if source.type == "file":
                note_read(source.source)


def _outside_recording(cut: Any) -> str | None:
    """Why a cut of one recording does not start inside it (a negative start, or one at or
    past the recording's end), or ``None``: Lhotse decodes such a cut from the recording's
    start (or fails), so its records would name audio it does not hold."""
    recording = getattr(cut, "recording", None)
    if recording is None or getattr(cut, "tracks", None):
        return None
    start, total = float(cut.start), float(recording.duration)
    if start < 0:
        return (f"its start {start:.3f} s is negative (before recording {recording.id!r} begins): "
                "fix the cut's start")
    if start >= total:
        return (f"its start {start:.3f} s is at or past the end of recording {recording.id!r}, which holds "
                f"{total:.3f} s: fix the cut's start (or the recording's num_samples)")
    return None


def _past_recording_end(cut: Any) -> str | None:
    """What is wrong with a cut that reaches past its recording's end (or starts before 0),
    or ``None``; a cut of a mix or padding has no one recording to check."""
    recording = getattr(cut, "recording", None)
    if recording is None or getattr(cut, "tracks", None):
        return None
    start, end, total = float(cut.start), float(cut.start + cut.duration), float(recording.duration)
    if start < 0 or end > total + 0.5 / float(recording.sampling_rate):
        return (f"it spans {start:.3f}-{end:.3f} s of recording {recording.id!r}, which holds {total:.3f} s: "
                "fix the cut's start/duration (or the recording's num_samples)")
    return None


def load_cut_audio(data: dict[str, Any], start: float | None = None, end: float | None = None,
                   sample_rate: int = 16000) -> torch.Tensor:
    """Decode a cut with Lhotse to a mono float32 tensor ``(samples,)`` at ``sample_rate``.

    ``start``/``end`` (seconds within the cut) select part of it. Several channels (a
    MultiCut) are averaged. Raises ``AudioError`` naming the cut and Lhotse's reason.
    """
    cut = _cut(data, f"cut {data.get('id')!r}")
    problem = sources_problem(cut)  # before Lhotse opens them: a FIFO would block, a device never end
    if problem:
        raise AudioError(f"cut {cut.id!r}: {problem}")
    _note_files(cut)
    try:
        if start is not None or end is not None:
            lo = float(start or 0.0)
            hi = float(end) if end is not None else cut.duration
            cut = cut.truncate(offset=lo, duration=max(hi - lo, 0.0), preserve_id=True)
        samples = np.asarray(cut.load_audio(), dtype=np.float32)
    except Exception as exc:  # missing files, failing commands, unreachable URLs, bad channels
        past = _past_recording_end(cut)
        if past:
            raise AudioError(f"cut {cut.id!r}: {past}") from None
        # Lhotse appends "[extra info] When calling: ..." lines (whole reprs): the first line says why
        reason = str(exc).split("\n[extra info]")[0].strip()
        raise AudioError(f"cut {cut.id!r}: Lhotse cannot load its audio ({type(exc).__name__}: {reason})") from None
    problem = peak_problem(float(np.abs(samples).max())) if samples.size else None
    if problem:  # NaN / infinity, or float samples past twice full scale: as a plain record's file
        raise AudioError(f"cut {cut.id!r}: {problem}")
    mono = samples.reshape(-1, samples.shape[-1]).mean(axis=0) if samples.ndim > 1 else samples
    wave = resample(torch.from_numpy(np.ascontiguousarray(mono)), int(cut.sampling_rate), sample_rate)
    if wave.numel() < MIN_SECONDS * sample_rate:
        raise AudioError(f"cut {cut.id!r}: too short ({wave.numel() / sample_rate:.3f} s; at least {MIN_SECONDS} s needed)")
    return wave


def several_voices(data: dict[str, Any]) -> str | None:
    """Why a cut holds more than one voice, or ``None``: its supervisions name two or more
    speakers, or two of them overlap in time (two people at once). A caption describes one
    voice, and clsp reads a cut's speaker fields from its first supervision. Supervisions
    that lie wholly outside the cut are not heard and do not count."""
    sups = [s for _, s in heard_supervisions(data)]
    speakers = sorted({str(s["speaker"]) for s in sups if s.get("speaker") is not None})
    if len(speakers) > 1:
        return f"its {len(sups)} supervisions name {len(speakers)} speakers ({', '.join(speakers[:4])})"
    spans = []
    for s in sups:
        try:
            start = float(s.get("start", 0.0))
            spans.append((start, start + float(s.get("duration", 0.0)), s.get("id")))
        except (TypeError, ValueError):
            continue
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end - 1e-6:
            return f"its supervisions {first!r} and {second!r} overlap in time"
    return None


def captioned_cut(record: dict[str, Any], captions: dict[str, Any], own: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Lhotse cut dict carrying ``captions`` in the ``custom`` of its first supervision: the
    first one heard in the cut, moved to the front, or a new one covering the cut (the FCaps
    layout: ``global_captions``, ``finegrained_captions``, plus ``caption_provenance``).

    The input's own cut when it was one (MonoCut/MultiCut), otherwise a cut made by Lhotse for
    the record's file, segment (``clsp.record_audio.record_span``) and ``channel`` (a MonoCut
    of that channel, a MultiCut of several or of all); a cut without supervisions gets one covering
    it. Raises ``InputError`` for a MixedCut or PaddingCut (their supervisions live in tracks).
    """
    data = record.get("_cut_json")
    if data is not None:
        if data.get("type") in ("MixedCut", "PaddingCut"):
            raise InputError(f"cut {record.get('id')!r}: captions can be attached to MonoCut/MultiCut only, "
                             f"not a {data['type']}")
        cut = copy.deepcopy(data)
    else:
        from lhotse import Recording
        from lhotse.cut import MonoCut, MultiCut

        from clsp.audio import record_span, select_channels

        problem = mp3_cut_problem(record["_path"])
        if problem:
            raise InputError(f"{record['_path']}: no Lhotse cut for record {record.get('id')!r}: {problem}")
        recording = Recording.from_file(record["_path"], recording_id=str(record["id"]))
        picks = select_channels(record["_path"], record.get("channel"), recording.num_channels)
        if picks is None:  # every channel, averaged, as clsp read it
            mono = recording.to_cut()
        elif len(picks) == 1:
            mono = MonoCut(str(record["id"]), 0.0, recording.duration, picks[0], recording=recording)
        else:
            mono = MultiCut(str(record["id"]), 0.0, recording.duration, picks, recording=recording)
        start, end = record_span(record)  # the segment clsp read: start/end, or start + duration
        if start is not None or end is not None:
            lo = float(start or 0.0)
            hi = float(end) if end is not None else mono.duration
            mono = mono.truncate(offset=lo, duration=min(hi, mono.duration) - lo)
        cut = mono.to_dict()
        cut["id"] = str(record["id"])
    sups = list(cut.get("supervisions") or [])
    heard = heard_supervisions(cut)
    if heard:
        carrier = sups.pop(heard[0][0])
    else:  # none, or none inside the cut: one covering it carries the captions
        carrier = {"id": cut["id"], "recording_id": cut["recording"]["id"], "start": 0.0, "duration": cut["duration"],
                   "channel": cut.get("channel", 0)}
        if data is None:  # a plain record's own fields, as a flat caption record keeps them
            carrier = _record_supervision(record if own is None else own, carrier)
    custom = dict(carrier.get("custom") or {})
    custom.update({key: captions[key] for key in ("global_captions", "finegrained_captions") if key in captions})
    custom["caption_provenance"] = captions.get("provenance")
    # first, where Lhotse and icefall recipes read a cut's captions (supervisions[0].custom)
    cut["supervisions"] = [{**carrier, "custom": custom}, *sups]
    return cut


# a plain record's fields that say which audio it is (the cut says it), not what is in it
_SEGMENT_FIELDS = ("id", "audio", "start", "end", "duration", "channel")


def _record_supervision(record: dict[str, Any], carrier: dict[str, Any]) -> dict[str, Any]:
    """``carrier`` (a supervision covering a plain record's cut) with the record's own fields,
    as a flat caption record keeps them (``record``: ``clsp.caption.pipeline.input_fields`` of
    it, given to ``captioned_cut`` as ``own``): its speaker, gender and language as the
    supervision's fields, its ``transcript`` as its ``text``, its other fields in ``custom``, so
    that reading the cut back (``cut_record``) gives them again."""
    fields = {k: v for k, v in record.items() if k not in _SEGMENT_FIELDS and not k.startswith("_")}
    out = dict(carrier)
    for key in SUPERVISION_FIELDS:
        if isinstance(fields.get(key), str) and fields[key]:
            out[key] = fields.pop(key)
    if isinstance(fields.get("transcript"), str) and fields["transcript"].strip():
        out["text"] = fields.pop("transcript")
    if fields:
        out["custom"] = {**fields, **(carrier.get("custom") or {})}
    return out
