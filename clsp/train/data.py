"""Training data: streamed manifests, duration-bucketed batches, decoding in workers.

The batch plan is made in the main process from manifest metadata only (never the whole
manifest in memory): rows are read one at a time, sharded by rank (row i goes to rank
i mod world), filtered by duration, shuffled in a bounded buffer seeded by
(seed, epoch, rank), and grouped into duration buckets; a bucket is emitted as a batch
when adding a clip would pass ``max_batch_seconds`` of audio (or ``max_batch_size``).
DataLoader workers then decode audio and prepare the model's speech input (fbank or
waveform, ``clsp.models.speech_input``), each worker taking whole
batches, so the order of batches does not depend on the number of workers and a
resumed run can skip the batches it already trained on by replanning metadata only.

Rows that cannot be used (unreadable JSON, no audio path, no caption, unknown
duration, undecodable audio) are skipped; the reason is logged and counted.
"""

from __future__ import annotations

import logging
import random
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from clsp.errors import ClspError, ConfigError, InputError
from clsp.models.speech_input import SpeechInput
from clsp.train.config import DataConfig

log = logging.getLogger("clsp.train")

GLOBAL_KEYS = ("global_captions", "short_captions", "global_caption")
FINE_KEYS = ("finegrained_captions", "long_captions", "finegrained_caption", "captions", "caption")


@dataclass
class SkipCounter:
    """Counts skipped rows by reason and logs the first few of each kind; a row met again in a
    later epoch (or pass) counts once."""

    counts: Counter = field(default_factory=Counter)
    shown_per_reason: int = 5
    seen: set = field(default_factory=set)
    examples: dict = field(default_factory=dict)  # kind -> the first row's reason
    named: list = field(default_factory=list)  # "ROW: reason" of the first few rows skipped, any kind
    named_max: int = 5

    def skip(self, row_id: str, reason: str, kind: str) -> None:
        if (row_id, kind) in self.seen:
            return
        self.seen.add((row_id, kind))
        self.counts[kind] += 1
        self.examples.setdefault(kind, reason)
        if len(self.named) < self.named_max:
            self.named.append(reason if reason.startswith(f"{row_id}:") else f"{row_id}: {reason}")
        if self.counts[kind] <= self.shown_per_reason:
            log.warning("skipping manifest row %s: %s", row_id, reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def audio_skip_kind(reason: str) -> str:
    """The kind of a clip whose audio could not be read, from the reader's reason: ``missing
    audio`` (no such file), ``too short audio`` (decodes, but shorter than the model reads) or
    ``undecodable audio``."""
    if "no such file" in reason.lower():
        return "missing audio"
    if ": too short (" in reason:
        return "too short audio"
    return "undecodable audio"


def _caption_list(record: dict[str, Any], keys: tuple[str, ...], row_id: str) -> list[str]:
    """The captions of the first of ``keys`` that holds one: an empty list, blank strings or
    null fall through to the next key, as ``clsp embed --modality text`` reads every caption field."""
    for key in keys:
        if key in record and record[key] is not None:
            value = record[key]
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InputError(f"{row_id}: '{key}' must be a string or a list of strings")
            kept = [v.strip() for v in values if v.strip()]
            if kept:
                return kept
    return []


def _duration(record: dict[str, Any], start: Any, end: Any) -> float:
    """Seconds of the record's segment (``start``/``end`` from ``record_span``)."""
    first = float(start or 0.0)
    if end is not None:
        return float(end) - first
    if record.get("_cut") is not None and record.get("duration") is not None:
        return float(record["duration"])
    from clsp.audio import audio_duration

    return audio_duration(record["_path"]) - first


def check_group_key(manifest: str, key: str | None) -> None:
    """``ConfigError`` when ``data.group_key`` names a field no record of ``manifest`` has
    (a typo would turn the grouping off for the whole run, without a word), naming the fields
    the records have. Reads until the first record that has it."""
    import json
    from pathlib import Path

    from clsp.streams import raw_lines

    if not key or not Path(manifest).is_file():
        return
    fields: set[str] = set()
    with open(manifest, "rb") as fh:
        for line in raw_lines(fh, manifest):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                if record.get(key) is not None:
                    return
                fields.update(str(k) for k in record)
    raise ConfigError(f"data.group_key: no record of {manifest} has a {key!r} field, so no clips would be grouped "
                      f"(fields there: {', '.join(sorted(fields)) or 'none'})")


def manifest_digest(manifest: str) -> str | None:
    """SHA-256 (hex) of the training manifest's content: its lines as every reader gets them
    (gzip / zstd / xz / bzip2 decompressed, a byte-order mark dropped), so the same records
    compressed another way give the same digest; None when ``manifest`` is not a regular file
    or cannot be read through. A checkpoint keeps it, so that ``--resume`` can tell a manifest
    changed under the same path."""
    import hashlib
    from pathlib import Path

    from clsp.streams import raw_lines

    path = Path(manifest)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for line in raw_lines(fh, str(path)):
                digest.update(line.rstrip(b"\r\n"))
                digest.update(b"\n")
    except (OSError, ClspError):
        return None
    return digest.hexdigest()


def clip_from_record(record: dict[str, Any], group_key: str | None = None) -> dict[str, Any]:
    """The training view of a manifest record; raises ``InputError`` when it cannot be used.

    With ``group_key`` the clip's ``group`` is that field of the record (None if absent)."""
    row_id = str(record.get("id"))
    global_caps = _caption_list(record, GLOBAL_KEYS, row_id)
    fine_caps = _caption_list(record, FINE_KEYS, row_id)
    if not global_caps and not fine_caps:
        raise InputError(f"{row_id}: no captions (expected global_captions / finegrained_captions, "
                         "short_captions / long_captions, or caption)")
    from clsp.audio import record_span

    try:
        start, end = record_span(record)  # the segment clsp embed reads from the same record
        duration = _duration(record, start, end)
    except (TypeError, ValueError):
        raise InputError(f"{row_id}: duration/start/end must be numbers") from None
    return {"id": row_id, "path": record["_path"], "start": start, "end": end, "duration": duration,
            "cut": record.get("_cut"), "channel": record.get("channel"),
            "global_captions": global_caps, "finegrained_captions": fine_caps,
            "group": None if group_key is None or record.get(group_key) is None else str(record[group_key])}


def check_manifest_complete(manifest: str) -> None:
    """``TruncatedInputError`` (an ``InputError``) naming ``manifest`` when it is a compressed
    file cut short or corrupt. The whole stream is decompressed (nothing parsed), so a run
    refuses a cut manifest at set-up, not when an epoch first reaches the cut, which a short
    run or a shuffle buffer smaller than the file may never do. Plain text passes unread."""
    from clsp.streams import compression_of, decompressed_chunks, input_name, open_binary_input, peek_bytes

    stream = open_binary_input(manifest)
    try:
        kind = compression_of(peek_bytes(stream, 10))
        if kind is not None:
            for _ in decompressed_chunks(stream, kind, input_name(manifest)):
                pass
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def iter_clips(manifest: str, rank: int = 0, world: int = 1, skips: SkipCounter | None = None,
               group_key: str | None = None) -> Iterator[dict]:
    """Stream this rank's usable clips from a JSONL / Lhotse manifest (gzip/zstd allowed).

    Raises ``TruncatedInputError`` (exit 1 in the CLI) for a cut or corrupt compressed manifest.
    """
    from clsp.records import iter_items
    from clsp.streams import TruncatedInputError

    skips = skips if skips is not None else SkipCounter()
    for item in iter_items(manifest, modality="audio"):
        if isinstance(item.error, TruncatedInputError):
            raise item.error  # a cut manifest is not a bad row: never train on part of it unnoticed
        if item.index % world != rank:
            continue
        if not item.ok:
            skips.skip(item.id, str(item.error), "unreadable row")
            continue
        try:
            yield clip_from_record(item.record, group_key)
        except ClspError as exc:
            skips.skip(item.id, str(exc), "unusable row")


def bucket_edges(cfg: DataConfig) -> list[float]:
    """Upper duration bound of each bucket, evenly spaced over [min, max]."""
    n = max(1, cfg.num_buckets)
    lo, hi = cfg.min_duration, cfg.max_duration
    return [lo + (hi - lo) * (i + 1) / n for i in range(n)]


class BatchPlan:
    """Lists of clip metadata per batch for one rank and epoch (a DataLoader batch sampler)."""

    def __init__(self, manifest: str, cfg: DataConfig, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 skip_batches: int = 0, shuffle: bool = True, skips: SkipCounter | None = None):
        self.manifest, self.cfg, self.seed, self.epoch = manifest, cfg, seed, epoch
        self.rank, self.world, self.skip_batches, self.shuffle = rank, world, skip_batches, shuffle
        self.skips = skips if skips is not None else SkipCounter()

    def _in_range(self, clips: Iterator[dict]) -> Iterator[dict]:
        for clip in clips:
            d = clip["duration"]
            if self.cfg.min_duration <= d <= self.cfg.max_duration:
                yield clip
            else:
                self.skips.skip(clip["id"], f"duration {d:.2f} s outside [{self.cfg.min_duration}, "
                                f"{self.cfg.max_duration}] s", "duration filter")

    def _shuffled(self, clips: Iterator[dict]) -> Iterator[dict]:
        if not self.shuffle or self.cfg.shuffle_buffer <= 1:
            yield from clips
            return
        rng = random.Random(f"shuffle-{self.seed}-{self.epoch}-{self.rank}")
        buffer: list[dict] = []
        for clip in clips:
            if len(buffer) < self.cfg.shuffle_buffer:
                buffer.append(clip)
                continue
            i = rng.randrange(len(buffer))
            yield buffer[i]
            buffer[i] = clip
        rng.shuffle(buffer)
        yield from buffer

    def _grouped(self, clips: Iterator[dict]) -> Iterator[dict]:
        """Clips of one group (``data.group_key``) in runs of ``data.group_size``, so that they
        share a batch and serve as each other's hard negatives: clips of one speaker differ
        only in style, so the loss must tell styles apart rather than voices."""
        size = self.cfg.group_size
        if not self.cfg.group_key or size <= 1:
            yield from clips
            return
        pending: dict[str, list[dict]] = {}
        for clip in clips:
            group = clip["group"]
            if group is None:
                yield clip
                continue
            run = pending.setdefault(group, [])
            run.append(clip)
            if len(run) >= size:
                yield from pending.pop(group)
        for run in pending.values():
            yield from run

    def _batches(self) -> Iterator[list[dict]]:
        edges = bucket_edges(self.cfg)
        buckets: list[list[dict]] = [[] for _ in edges]
        seconds = [0.0 for _ in edges]
        limit, max_size = self.cfg.max_batch_seconds, self.cfg.max_batch_size
        clips = iter_clips(self.manifest, self.rank, self.world, self.skips, self.cfg.group_key)
        for clip in self._grouped(self._shuffled(self._in_range(clips))):
            b = next((i for i, e in enumerate(edges) if clip["duration"] <= e), len(edges) - 1)
            full = seconds[b] + clip["duration"] > limit or (max_size and len(buckets[b]) >= max_size)
            if buckets[b] and full:
                yield buckets[b]
                buckets[b], seconds[b] = [], 0.0
            buckets[b].append(clip)
            seconds[b] += clip["duration"]
        yield from self._leftovers([(bucket, secs) for bucket, secs in zip(buckets, seconds) if bucket])

    def _leftovers(self, parts: list[tuple[list[dict], float]]) -> Iterator[list[dict]]:
        """The buckets' last, unfilled batches, packed together (shorter ones first) while they
        fit ``max_batch_seconds`` and ``max_batch_size``: left one per bucket, a long clip that
        fills no bucket of its own became a batch of one, every epoch (no negatives)."""
        limit, max_size = self.cfg.max_batch_seconds, self.cfg.max_batch_size
        batch: list[dict] = []
        total = 0.0
        for bucket, secs in parts:
            if batch and (total + secs > limit or (max_size and len(batch) + len(bucket) > max_size)):
                yield batch
                batch, total = [], 0.0
            batch = batch + bucket
            total += secs
        if batch:
            yield batch

    def __iter__(self) -> Iterator[list[dict]]:
        for index, batch in enumerate(self._batches()):
            if index >= self.skip_batches:
                yield batch


class ClipDecoder(torch.utils.data.Dataset):
    """Map-style dataset whose "index" is a clip's metadata: decodes audio and prepares the
    model's speech input (``SpeechInput.prepare``: fbank, or the waveform for waveform towers)."""

    def __init__(self, speech: SpeechInput | None = None):
        self.speech = speech if speech is not None else SpeechInput()

    def __len__(self) -> int:  # batches come from BatchPlan, never from len()
        return 0

    def __getitem__(self, clip: dict) -> dict:
        from clsp.record_audio import load_record_audio

        try:
            record = {"_path": clip["path"], "start": clip["start"], "end": clip["end"], "_cut": clip.get("cut"),
                      "channel": clip.get("channel")}
            wave = load_record_audio(record, sample_rate=self.speech.sample_rate)
            return {**clip, "feats": self.speech.prepare(wave)}
        except ClspError as exc:
            return {**clip, "error": str(exc)}


def clip_cache_key(clip: dict) -> tuple:
    """Identity of a clip's audio as the model hears it: path, start, end, the augmentation
    applied (``clip["augment"]``, a string naming it; None for none) and, when the record
    picks channels, the channels (two channels of one file are two clips). A Lhotse cut is
    known by its whole audio description (recording, channel, tracks of a mix, padding), so
    two cuts of one file that differ only in channel or mix never share a key."""
    key = (str(clip["path"]), clip.get("start"), clip.get("end"), clip.get("augment"))
    if clip.get("cut") is not None:
        import hashlib
        import json

        text = json.dumps(clip["cut"], sort_keys=True, default=str)
        return key + ("cut", hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest())
    channel = clip.get("channel")
    if channel is None:
        return key  # the key of every clip that reads all channels, as before channels were read
    return key + (tuple(channel) if isinstance(channel, list) else channel,)


class Collator:
    """Pads the decodable clips with the model's ``SpeechInput.collate``; undecodable ones
    are listed under ``skipped``. Batches: ``feats``, ``feat_lens``, ``clips``, ``skipped``."""

    def __init__(self, speech: SpeechInput | None = None):
        self.speech = speech if speech is not None else SpeechInput()

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        good = [it for it in items if "feats" in it]
        skipped = [(it["id"], it["error"]) for it in items if "error" in it]
        feats, lens = self.speech.collate([it["feats"] for it in good])
        clips = [{k: v for k, v in it.items() if k != "feats"} for it in good]
        return {"feats": feats, "feat_lens": lens, "clips": clips, "skipped": skipped}


def collate_clips(items: list[dict]) -> dict[str, Any]:
    """``Collator`` for fbank towers (128 bins)."""
    return Collator()(items)


def _worker_ignores_stop_signals(_worker_id: int) -> None:
    """Workers leave SIGTERM / SIGUSR1 to the main process, which checkpoints and stops them."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def make_loader(plan: BatchPlan, num_workers: int, speech: SpeechInput | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader decoding ``plan``'s batches in ``num_workers`` processes, in plan order,
    into the model's speech input (``model.speech_input``; 128-bin fbank when None).
    It has its own generator, so creating it leaves the global RNG (dropout) untouched."""
    return torch.utils.data.DataLoader(
        ClipDecoder(speech), batch_sampler=plan, collate_fn=Collator(speech),
        num_workers=num_workers, prefetch_factor=2 if num_workers > 0 else None,
        worker_init_fn=_worker_ignores_stop_signals if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(0),
    )
