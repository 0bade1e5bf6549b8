"""Batch embedding of audio and text records, in input order, with bounded memory.

Audio: each record's header is read to lay out its windows, and the windows are read in
chunks of at most ``chunk_size`` records and half of ``max_inflight_seconds`` of audio; a
pool of worker threads decodes and computes fbank for the next chunk while the model
embeds the current one (libsndfile and torch release the GIL, so the workers run in
parallel without forking). A long file is decoded window by window (block reads after a
seek), so the decoded audio held at once is bounded by seconds, not by record count or
length. Inside a chunk, windows are sorted by length and batched by total padded seconds,
then results are put back in input order.
Long clips follow a deterministic policy: ``truncate`` keeps the first ``max_seconds``,
``chunk-mean`` averages equal windows of at most ``max_seconds`` (digitally silent windows
left out), ``windows`` returns one embedding per window (a digitally silent window: its
error, as for a silent clip). Nothing is cropped at random.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from clsp.audio import MIN_SECONDS, SAMPLE_RATE
from clsp.record_audio import load_record_audio, record_segment
from clsp.errors import AudioError, ClspError, ConfigError, InputError
from clsp.features import fbank
from clsp.records import Item, not_utf8
from clsp.results import Result

LONG_AUDIO_POLICIES = ("truncate", "chunk-mean", "windows")
FBANK_PLACES = ("auto", "workers", "device")


@dataclass
class EmbedConfig:
    """How to batch and run embedding; the CLI builds it, the library takes it."""

    batch_size: int = 64
    max_batch_seconds: float = 240.0
    max_seconds: float = 30.0
    long_audio: str = "chunk-mean"
    workers: int = 2
    chunk_size: int = 256  # most records read ahead at once
    max_inflight_seconds: float = 3600.0  # most decoded audio held at once (two chunks), seconds
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False  # torch.compile the speech encoder in place; CUDA only, ignored on CPU
    fbank_on: str = "auto"  # workers: fbank in the decoding threads; device: batched on the model's device; auto: device on a GPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EmbedConfig":
        return cls(**d)

    def validate(self) -> None:
        if self.long_audio not in LONG_AUDIO_POLICIES:
            raise ConfigError(f"--long-audio must be one of {LONG_AUDIO_POLICIES}, got {self.long_audio!r}")
        if self.fbank_on not in FBANK_PLACES:
            raise ConfigError(f"--fbank-on must be one of {FBANK_PLACES}, got {self.fbank_on!r}")
        import math

        # named as the command line and the Python call spell them (--max-seconds / max_seconds=)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"--batch-size (batch_size=) must be a whole number >= 1, got {self.batch_size!r}")
        for key in ("max_seconds", "max_batch_seconds", "max_inflight_seconds"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ConfigError(f"--{key.replace('_', '-')} ({key}=) must be a positive finite number of seconds, "
                                  f"got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"--workers must be a whole number >= 0 (0: decode in the embedding thread), "
                              f"got {self.workers!r}")
        if self.max_seconds < MIN_SECONDS:
            raise ConfigError(f"--max-seconds must be at least {MIN_SECONDS} s (shorter windows are too short to "
                              f"embed), got {self.max_seconds}")


@dataclass
class AudioResult(Result[np.ndarray]):
    """Embedding(s) of one input item (``value``, also ``embeddings``: (n_windows or 1, D)
    float32, one row per window of ``windows`` in seconds), its audio ``seconds``, or
    the ``error`` that stopped it. With ``--long-audio windows``, ``window_errors`` holds the
    windows that are digital silence (their rows hold no voice: written as error records)."""

    windows: list[tuple[float, float]] | None = None
    offset: float = 0.0  # where the record's segment starts in its file, seconds (windows count from it)
    window_errors: dict[int, ClspError] = field(default_factory=dict)  # window -> why it has no embedding

    @property
    def embeddings(self) -> np.ndarray | None:
        return self.value


def resolve_device(device: str) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a device; raises ``ConfigError`` for an unusable one
    (no CUDA, a GPU number this machine lacks, or a device type other than CPU and CUDA).

    ``auto`` and a bare ``cuda`` take the GPU of this process's local rank (torchrun's
    LOCAL_RANK, srun's SLURM_LOCALID; modulo the visible GPUs), so that the processes of
    ``torchrun --nproc_per_node G`` each drive their own GPU; ``auto`` is the CPU without CUDA.
    """
    if device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if device in ("auto", "cuda"):
        from clsp.distributed import env_dist_info

        return torch.device("cuda", env_dist_info().local_rank % max(1, torch.cuda.device_count()))
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):  # devices torch names that clsp does not run on (mps, xla, meta...)
        raise ConfigError(f"--device {device}: clsp runs on the CPU or a CUDA GPU; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                          f"numbered from cuda:0")
    return dev


def fbank_on_device(cfg: "EmbedConfig", device: torch.device) -> bool:
    """Whether fbank is computed batched on ``device`` (else in the decoding worker threads):
    ``device`` says yes, ``workers`` no, ``auto`` yes on a GPU (the host threads then only
    decode, which lifts the most audio the host can feed per second)."""
    return cfg.fbank_on == "device" or (cfg.fbank_on == "auto" and device.type == "cuda")


def _waveform(wave: torch.Tensor) -> torch.Tensor:
    """Worker-side preparation when fbank runs on the device: the mono float32 samples ``(S,)``."""
    return wave.to(torch.float32).reshape(-1)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in table:
        raise ConfigError(f"--dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    if table[dtype] is torch.float16 and device.type == "cpu":  # torch's CPU kernels (fbank, int8 LSTMs) lack it
        raise ConfigError(f"--dtype {dtype}: float16 runs on a GPU only; on the CPU use float32 (the default) or bfloat16")
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


@dataclass
class _Record:
    """One input record on its way through the embedder: its windows and their rows so far."""

    item: Item
    offset: float = 0.0  # where the segment starts in the file, seconds
    samples: int = 0  # segment length at SAMPLE_RATE
    bounds: list[tuple[int, int]] | None = None  # windows in samples from ``offset``
    rows: dict[int, np.ndarray] | None = None
    error: ClspError | None = None
    silent: dict[int, ClspError] = field(default_factory=dict)  # windows read in part that are digital silence

    def all_silent(self) -> ClspError | None:
        """An ``AudioError`` when every window of a record read window by window is digital
        silence (``check_not_silent``'s rule over the whole segment), else None."""
        if not self.bounds or len(self.silent) < len(self.bounds):
            return None
        rec = self.item.record
        read = self.bounds[-1][1]
        if read < self.samples:  # --long-audio truncate: the rest of the clip was never read
            return AudioError(f"{rec.get('audio', rec.get('_path'))}: its first {read / SAMPLE_RATE:.1f} s (of "
                              f"{self.samples / SAMPLE_RATE:.1f} s), all that --long-audio truncate reads, are silent "
                              "(peak below one 16-bit step): no voice to embed; --long-audio chunk-mean or windows "
                              "reads the rest")
        return AudioError(f"{rec.get('audio', rec.get('_path'))}: silent (every window's peak below one 16-bit step): "
                          "no voice to embed")

    @property
    def complete(self) -> bool:
        return self.error is not None or len(self.rows) == len(self.bounds)


def _errors_of(rec: dict):
    """Turn decoding mishaps into ``ClspError``s naming the file."""
    return lambda exc: exc if isinstance(exc, ClspError) else InputError(f"{rec.get('audio')}: {exc}")


def _plan(item: Item, cfg: EmbedConfig) -> _Record:
    """Read the header of a record's audio and lay out its windows (no decoding)."""
    if not item.ok:
        return _Record(item, error=item.error)
    rec = item.record
    try:
        offset, samples = record_segment(rec)
    except (ClspError, ValueError, TypeError, KeyError) as exc:
        return _Record(item, error=_errors_of(rec)(exc))
    return _Record(item, offset, samples, window_bounds(samples, cfg.max_seconds, cfg.long_audio), {})


SILENT_PEAK = 1.0 / 32768  # below one step of 16-bit audio: digital silence


def check_not_silent(wave, rec: dict) -> None:
    """``AudioError`` naming the clip when no sample of ``wave`` reaches one 16-bit step
    (``SILENT_PEAK``): digital silence holds no voice, and its embedding would still answer
    every question confidently. A record read window by window (longer than ``max_seconds``)
    is silent when every window is (``_Record.all_silent``): one silent window inside speech is
    not, but it is left out of a ``chunk-mean`` and, with ``windows``, is that window's error."""
    peak = float(torch.as_tensor(wave).abs().max()) if len(wave) else 0.0
    if peak < SILENT_PEAK:
        channel = rec.get("channel")
        which = "" if channel is None else f" (channel{'s' if isinstance(channel, list) else ''} " \
            f"{', '.join(map(str, channel)) if isinstance(channel, list) else channel})"
        raise AudioError(f"{rec.get('audio', rec.get('_path'))}{which}: silent (peak {peak:.3g}, below one 16-bit "
                         "step): no voice to embed")


def _decode_window(r: _Record, k: int, prepare=fbank):
    """Worker: decode window ``k`` of a record and compute its features; errors are returned.

    A record seen whole (one window, nothing cut) is decoded as asked; otherwise only the
    window's samples are read from the file, so a long file is never held whole in memory.
    """
    rec = r.item.record
    try:
        start, end = r.bounds[k]
        if len(r.bounds) == 1 and (start, end) == (0, r.samples):
            wave = load_record_audio(rec)
            check_not_silent(wave, rec)
        else:
            wave = load_record_audio(rec, r.offset + start / SAMPLE_RATE, r.offset + end / SAMPLE_RATE)[: end - start]
            try:
                check_not_silent(wave, rec)
            except AudioError as exc:  # the window alone, read back, is this silent clip
                r.silent[k] = exc
        return prepare(wave)
    except (ClspError, ValueError, TypeError, KeyError) as exc:
        return _errors_of(rec)(exc)


def _decode(item: Item, cfg: EmbedConfig, prepare=fbank):
    """Decode one whole record: ``(features per window, bounds, seconds)``, or the error."""
    r = _plan(item, cfg)
    if r.error is not None:
        return r.error
    feats = [_decode_window(r, k, prepare) for k in range(len(r.bounds))]
    bad = next((f for f in feats if isinstance(f, BaseException)), None) or r.all_silent()
    return bad if bad is not None else (feats, r.bounds, r.samples / SAMPLE_RATE)


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


def _windows(items: Iterator[Item], cfg: EmbedConfig) -> Iterator[tuple[_Record, int | None]]:
    """``(record, window)`` units in input order; ``(record, None)`` for a record that failed early."""
    for item in items:
        r = _plan(item, cfg)
        if r.error is not None:
            yield r, None
        else:
            for k in range(len(r.bounds)):
                yield r, k


class AudioEmbedder:
    """Embeds streams of audio ``Item``s with one model; yields ``AudioResult`` in order."""

    def __init__(self, model, cfg: EmbedConfig):
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.model = model.to(self.device).eval()
        self.on_batch: Callable[[int], None] | None = None  # told the windows of each finished batch (progress)
        self.device_fbank = self.model.speech_input.kind == "fbank" and fbank_on_device(cfg, self.device)
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
        for batch in _batches(units, self.cfg, float(SAMPLE_RATE) if self.device_fbank else speech.frame_rate):
            if self.device_fbank:  # waveforms travel; fbank of the whole batch on the device
                from clsp.features import fbank_batch

                feats, lens = fbank_batch([u[2] for u in batch], speech.num_mel_bins, device=self.device)
            else:
                feats, lens = speech.collate([u[2] for u in batch])
                if self.device.type == "cuda":
                    feats = feats.pin_memory()
            with self._autocast():
                emb = self.model.encode_fbank(feats.to(self.device, non_blocking=True), lens.to(self.device))
            emb = emb.float().cpu().numpy()
            for (i, w, _), row in zip(batch, emb):
                out[(i, w)] = row
            if self.on_batch is not None:
                self.on_batch(len(batch))
        return out

    def _result(self, r: _Record) -> AudioResult:
        if r.error is not None or r.all_silent() is not None:
            return AudioResult(item=r.item, error=r.error or r.all_silent())
        embs = np.stack([r.rows[k] for k in range(len(r.bounds))])
        if self.cfg.long_audio == "chunk-mean" and len(r.bounds) > 1:  # silent windows hold no voice: left out
            weights = np.array([0 if k in r.silent else e - s for k, (s, e) in enumerate(r.bounds)], dtype=np.float64)
            mean = (embs * weights[:, None]).sum(0) / weights.sum()
            embs = F.normalize(torch.from_numpy(mean[None]).float(), dim=-1).numpy()
        wins = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in r.bounds]
        if not np.isfinite(embs).all():
            return AudioResult(item=r.item, error=InputError(
                f"record {r.item.id!r}: the model's embedding of its 'audio' holds NaN or infinite values"))
        errors = dict(r.silent) if self.cfg.long_audio == "windows" else {}
        return AudioResult(item=r.item, value=embs.astype(np.float32), windows=wins,
                           seconds=r.samples / SAMPLE_RATE, offset=r.offset, window_errors=errors)

    def _take(self, units: Iterator[tuple[_Record, int | None]], order: deque) -> list[tuple[_Record, int | None]]:
        """The next chunk of units: at most ``chunk_size`` records and about half of
        ``max_inflight_seconds`` of audio (one window more at most)."""
        chunk: list[tuple[_Record, int | None]] = []
        records, seconds = 0, 0.0
        budget = self.cfg.max_inflight_seconds / 2
        while records < self.cfg.chunk_size and seconds < budget:
            unit = next(units, None)
            if unit is None:
                break
            r, k = unit
            if not k:  # a record's first unit
                order.append(r)
                records += 1
            if k is not None:
                start, end = r.bounds[k]
                seconds += (end - start) / SAMPLE_RATE
            chunk.append(unit)
        return chunk

    def run(self, items: Iterable[Item]) -> Iterator[AudioResult]:
        """Embed ``items`` (errors included) and yield one result per item, in order.

        Decoded audio waiting for the model is bounded by ``max_inflight_seconds`` (plus
        one window), whatever the records' lengths: long files are decoded window by window.
        """
        units = _windows(iter(items), self.cfg)
        order: deque[_Record] = deque()
        prepare = _waveform if self.device_fbank else self.model.prepare_audio
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.workers)) as pool:
            def submit() -> tuple[list, list] | None:
                chunk = [u for u in self._take(units, order) if u[1] is not None]
                if not chunk and not order:
                    return None
                if self.cfg.workers == 0:  # decode in this thread, no overlap
                    return chunk, [_Done(_decode_window(r, k, prepare)) for r, k in chunk]
                return chunk, [pool.submit(_decode_window, r, k, prepare) for r, k in chunk]

            pending = submit()
            while pending is not None:
                chunk, futures = pending
                decoded = [f.result() for f in futures]
                pending = submit()  # decode the next chunk while this one is embedded
                for (r, _), d in zip(chunk, decoded):
                    if isinstance(d, BaseException) and r.error is None:
                        r.error = d
                units_in = [(j, 0, d) for j, d in enumerate(decoded) if not isinstance(d, BaseException)]
                for (j, _), row in self._embed_units(units_in).items():
                    chunk[j][0].rows[chunk[j][1]] = row
                while order and order[0].complete:
                    yield self._result(order.popleft())


class TextEmbedder:
    """Embeds streams of text ``Item``s in order, batching by length inside chunks."""

    chunk_size_default = 1024

    def __init__(self, model, batch_size: int = 64, device: str = "auto", dtype: str = "auto",
                 chunk_size: int = chunk_size_default):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(self.device).eval()
        self.batch_size, self.chunk_size = batch_size, chunk_size
        self.on_batch: Callable[[int], None] | None = None  # told the captions of each finished batch (progress)

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids of one batch on the host (pinned for a GPU), ready to travel."""
        tokens = self.model.text_encoder.tokenize(texts, "cpu")
        return {k: v.pin_memory() for k, v in tokens.items()} if self.device.type == "cuda" else tokens

    @torch.no_grad()
    def _embed_tokens(self, tokens: dict[str, torch.Tensor]) -> np.ndarray:
        """``model.encode_text`` of tokenized captions: unit-norm ``(B, D)`` float32."""
        ctx = nullcontext() if self.dtype == torch.float32 else torch.autocast(self.device.type, dtype=self.dtype)
        with ctx:
            return self.model.encode_tokens(tokens).cpu().numpy()

    def run(self, items: Iterable[Item]) -> Iterator[Result[np.ndarray]]:
        """One ``Result`` per item, in order: its (D,) float32 embedding, or the error (an
        unreadable record, empty text, NaN/inf from the model)."""
        it = iter(items)
        while chunk := list(islice(it, self.chunk_size)):
            good = []
            errors: dict[int, ClspError] = {}
            for i, item in enumerate(chunk):
                if not item.ok:
                    errors[i] = item.error
                elif not item.record["text"].strip():
                    errors[i] = InputError(f"record {item.id!r}: empty text")
                elif (problem := not_utf8(item.record["text"])) is not None:
                    errors[i] = InputError(f"record {item.id!r}: its 'text' is not valid UTF-8 ({problem})")
                else:
                    good.append(i)
            good.sort(key=lambda i: len(chunk[i].record["text"]))
            rows: dict[int, np.ndarray] = {}
            batches = [good[b : b + self.batch_size] for b in range(0, len(good), self.batch_size)]
            # The next batch is tokenized in a thread while the model runs this one.
            with ThreadPoolExecutor(max_workers=1) as pool:
                tokens = [pool.submit(self._tokenize, [chunk[i].record["text"] for i in idx]) for idx in batches[:1]]
                for k, idx in enumerate(batches):
                    if k + 1 < len(batches):
                        tokens.append(pool.submit(self._tokenize, [chunk[i].record["text"] for i in batches[k + 1]]))
                    self._rows(chunk, idx, self._embed_tokens(tokens[k].result()), rows, errors)
                    tokens[k] = None
            for i, item in enumerate(chunk):
                yield Result(item, rows.get(i), errors.get(i))

    def _rows(self, chunk: list[Item], idx: list[int], embs: np.ndarray, rows: dict, errors: dict) -> None:
        """File one batch's embeddings (non-finite ones as errors) and report its progress."""
        for i, row in zip(idx, embs):
            if np.isfinite(row).all():
                rows[i] = row
            else:
                errors[i] = InputError(f"record {chunk[i].id!r}: the model's embedding of its 'text' holds "
                                       "NaN or infinite values")
        if self.on_batch is not None:
            self.on_batch(len(idx))


def embed_items(model, items: Iterable[Item], modality: str, cfg: EmbedConfig, chunk_size: int | None = None,
                on_batch: Callable[[int], None] | None = None) -> Iterator[Result[np.ndarray]]:
    """Embeddings of ``audio`` or ``text`` items with ``model``, one ``Result`` per item in
    order (``AudioResult`` for audio: (rows, D), else (D,)). ``on_batch`` is told the
    windows or captions of each finished batch (progress)."""
    if modality == "audio":
        embedder: AudioEmbedder | TextEmbedder = AudioEmbedder(model, cfg)
    else:
        embedder = TextEmbedder(model, cfg.batch_size, cfg.device, cfg.dtype,
                                chunk_size or TextEmbedder.chunk_size_default)
    embedder.on_batch = on_batch
    return embedder.run(items)
