"""Batch embedding of audio and text records, in input order, with bounded memory.

Audio: records are read in chunks; a pool of worker threads decodes and computes fbank for
the next chunk while the model embeds the current one (libsndfile and torch release the
GIL, so the workers run in parallel without forking). Inside a chunk, clips are sorted by
length and batched by total padded seconds, then results are put back in input order.
Long clips follow a deterministic policy: ``truncate`` keeps the first ``max_seconds``,
``chunk-mean`` averages equal windows of at most ``max_seconds``, ``windows`` returns one
embedding per window. Nothing is cropped at random.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from clsp.audio import SAMPLE_RATE, load_audio
from clsp.errors import ClspError, ConfigError, InputError
from clsp.features import fbank
from clsp.records import Item

LONG_AUDIO_POLICIES = ("truncate", "chunk-mean", "windows")


@dataclass
class EmbedConfig:
    """How to batch and run embedding; the CLI builds it, the library takes it."""

    batch_size: int = 64
    max_batch_seconds: float = 240.0
    max_seconds: float = 30.0
    long_audio: str = "chunk-mean"
    workers: int = 2
    chunk_size: int = 256
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False  # torch.compile the speech encoder in place; CUDA only, ignored on CPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EmbedConfig":
        return cls(**d)

    def validate(self) -> None:
        if self.long_audio not in LONG_AUDIO_POLICIES:
            raise ConfigError(f"--long-audio must be one of {LONG_AUDIO_POLICIES}, got {self.long_audio!r}")
        if self.batch_size < 1 or self.max_seconds <= 0 or self.max_batch_seconds <= 0:
            raise ConfigError("batch size, --max-seconds and --max-batch-seconds must be positive")


@dataclass
class AudioResult:
    """Embedding(s) of one input item: one row, or one per window for ``windows``."""

    item: Item
    embeddings: np.ndarray | None = None  # (n_windows or 1, D)
    windows: list[tuple[float, float]] | None = None
    seconds: float = 0.0
    error: ClspError | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: not a device (use auto, cpu, cuda or cuda:N)") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in table:
        raise ConfigError(f"--dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return table[dtype]


def window_bounds(num_samples: int, max_seconds: float, policy: str, sr: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """Deterministic windows ``[(start, end)]`` in samples for the long-audio policy."""
    limit = int(max_seconds * sr)
    if num_samples <= limit:
        return [(0, num_samples)]
    if policy == "truncate":
        return [(0, limit)]
    n = math.ceil(num_samples / limit)
    edges = [round(i * num_samples / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def _decode(item: Item, cfg: EmbedConfig, prepare=fbank):
    """Worker: decode one record and compute fbank per window; errors are returned."""
    if not item.ok:
        return item.error
    rec = item.record
    try:
        wave = load_audio(rec["_path"], rec.get("start"), rec.get("end"))
        bounds = window_bounds(wave.numel(), cfg.max_seconds, cfg.long_audio)
        feats = [prepare(wave[s:e]) for s, e in bounds]
        return feats, bounds, wave.numel() / SAMPLE_RATE
    except ClspError as exc:
        return exc
    except (ValueError, TypeError, KeyError) as exc:
        return InputError(f"{rec.get('audio')}: {exc}")


def _batches(units: list[tuple[int, int, torch.Tensor]], cfg: EmbedConfig, rate: float = 100.0) -> Iterator[list[tuple[int, int, torch.Tensor]]]:
    """Length-sorted batches bounded by clip count and padded seconds (``rate`` rows/s)."""
    order = sorted(units, key=lambda u: -u[2].shape[0])
    batch: list = []
    for unit in order:
        longest = batch[0][2].shape[0] if batch else unit[2].shape[0]
        if batch and (len(batch) >= cfg.batch_size or (len(batch) + 1) * longest / rate > cfg.max_batch_seconds):
            yield batch
            batch = []
        batch.append(unit)
    if batch:
        yield batch


class _Done:
    """A finished result with the ``Future.result()`` interface."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class AudioEmbedder:
    """Embeds streams of audio ``Item``s with one model; yields ``AudioResult`` in order."""

    def __init__(self, model, cfg: EmbedConfig):
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.model = model.to(self.device).eval()
        encoder = self.model.speech_encoder
        if cfg.compile and self.device.type == "cuda" and not getattr(encoder, "_clsp_compiled", False):
            # In place (``nn.Module.compile``): parameter names and state dicts stay as they are;
            # once per module, so later embedders reuse the compiled code.
            encoder.compile(dynamic=True)
            encoder._clsp_compiled = True

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @torch.no_grad()
    def _embed_units(self, units: list[tuple[int, int, torch.Tensor]]) -> dict[tuple[int, int], np.ndarray]:
        out: dict[tuple[int, int], np.ndarray] = {}
        speech = self.model.speech_input
        for batch in _batches(units, self.cfg, speech.frame_rate):
            feats, lens = speech.collate([u[2] for u in batch])
            if self.device.type == "cuda":
                feats = feats.pin_memory()
            with self._autocast():
                emb = self.model.encode_fbank(feats.to(self.device, non_blocking=True), lens.to(self.device))
            emb = emb.float().cpu().numpy()
            for (i, w, _), row in zip(batch, emb):
                out[(i, w)] = row
        return out

    def _finish(self, items: list[Item], decoded: list, rows: dict) -> Iterator[AudioResult]:
        for i, (item, dec) in enumerate(zip(items, decoded)):
            if isinstance(dec, BaseException):
                yield AudioResult(item=item, error=dec)
                continue
            feats, bounds, seconds = dec
            embs = np.stack([rows[(i, w)] for w in range(len(feats))])
            if self.cfg.long_audio == "chunk-mean" and len(feats) > 1:
                weights = np.array([e - s for s, e in bounds], dtype=np.float64)
                mean = (embs * weights[:, None]).sum(0) / weights.sum()
                embs = F.normalize(torch.from_numpy(mean[None]).float(), dim=-1).numpy()
            wins = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in bounds]
            yield AudioResult(item=item, embeddings=embs.astype(np.float32), windows=wins, seconds=seconds)

    def run(self, items: Iterable[Item]) -> Iterator[AudioResult]:
        """Embed ``items`` (errors included) and yield one result per item, in order."""
        it = iter(items)
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.workers)) as pool:
            def submit() -> tuple[list[Item], list[Future]] | None:
                chunk = list(islice(it, self.cfg.chunk_size))
                if not chunk:
                    return None
                if self.cfg.workers == 0:  # decode in this thread, no overlap
                    done = [_Done(_decode(x, self.cfg, self.model.prepare_audio)) for x in chunk]
                    return chunk, done
                return chunk, [pool.submit(_decode, x, self.cfg, self.model.prepare_audio) for x in chunk]

            pending = submit()
            while pending is not None:
                chunk, futures = pending
                decoded = [f.result() for f in futures]
                pending = submit()  # decode the next chunk while this one is embedded
                units = [(i, w, f) for i, d in enumerate(decoded) if not isinstance(d, BaseException)
                         for w, f in enumerate(d[0])]
                rows = self._embed_units(units)
                yield from self._finish(chunk, decoded, rows)


class TextEmbedder:
    """Embeds streams of text ``Item``s in order, batching by length inside chunks."""

    def __init__(self, model, batch_size: int = 64, device: str = "auto", dtype: str = "auto", chunk_size: int = 1024):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(self.device).eval()
        self.batch_size, self.chunk_size = batch_size, chunk_size

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> np.ndarray:
        ctx = nullcontext() if self.dtype == torch.float32 else torch.autocast(self.device.type, dtype=self.dtype)
        with ctx:
            return self.model.encode_text(texts).float().cpu().numpy()

    def run(self, items: Iterable[Item]) -> Iterator[tuple[Item, np.ndarray | None, ClspError | None]]:
        it = iter(items)
        while chunk := list(islice(it, self.chunk_size)):
            good = []
            errors: dict[int, ClspError] = {}
            for i, item in enumerate(chunk):
                if not item.ok:
                    errors[i] = item.error
                elif not item.record["text"].strip():
                    errors[i] = InputError(f"record {item.id!r}: empty text")
                else:
                    good.append(i)
            good.sort(key=lambda i: len(chunk[i].record["text"]))
            rows: dict[int, np.ndarray] = {}
            for b in range(0, len(good), self.batch_size):
                idx = good[b : b + self.batch_size]
                for i, row in zip(idx, self._embed([chunk[i].record["text"] for i in idx])):
                    rows[i] = row
            for i, item in enumerate(chunk):
                yield item, rows.get(i), errors.get(i)
