"""Caption backends by name, and :func:`caption_clips`, the call behind ``clsp caption``.

A backend is a class registered with :func:`register_caption_backend`: built from keyword
options by ``from_options(**options)`` (refusing, with ``ConfigError``, options that are not
its own), it turns input items into one ``Result`` per item whose value is the caption
record (``global_captions``, ``finegrained_captions``, ``provenance``...). A new backend
is one class and one registration.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator, Protocol

from clsp.errors import ClspError, ConfigError, InputError
from clsp.records import Item, as_items, batched
from clsp.results import Result

Log = Callable[[str], None]
SPEAKER_CHUNK = 16  # clips the acoustic backend scores with the speaker encoders at once


class CaptionBackend(Protocol):
    """What :func:`caption_clips` needs of a backend."""

    def caption_items(self, items: Iterable[Item]) -> Iterator[Result[dict]]: ...


_BACKENDS: dict[str, Any] = {}


def register_caption_backend(name: str) -> Callable[[type], type]:
    """Class decorator registering a caption backend under ``name``."""

    def deco(cls: type) -> type:
        _BACKENDS[name] = cls
        return cls

    return deco


def caption_backend_names() -> list[str]:
    return sorted(_BACKENDS)


PROGRESS_HOOKS = ("log", "on_measured")  # callbacks any backend may take or leave


def backend_options(name: str) -> set[str]:
    """The option names backend ``name`` takes: its ``from_options`` parameters, and the progress
    callbacks (``PROGRESS_HOOKS``); ``ConfigError`` for an unknown name."""
    import inspect

    if name not in _BACKENDS:
        raise ConfigError(f"unknown caption backend {name!r}; known: {', '.join(caption_backend_names())}")
    params = inspect.signature(_BACKENDS[name].from_options).parameters.values()
    return {p.name for p in params if p.kind is not p.VAR_KEYWORD} | set(PROGRESS_HOOKS)


def build_caption_backend(name: str, **options: Any) -> CaptionBackend:
    """The backend ``name`` built from ``options``; ``ConfigError`` for an unknown name or an
    option it does not take (another backend's, such as ``temperature`` for ``acoustic`` or
    ``bins`` for ``model``, or no backend's), naming them."""
    extra = sorted(set(options) - backend_options(name))
    if extra:
        owners = sorted({other for other in _BACKENDS if other != name for key in extra
                         if key in backend_options(other)})
        whose = f"; options that belong to {' or '.join(f'--backend {b}' for b in owners)}" if owners else ""
        raise ConfigError(f"caption backend {name!r} takes no option {', '.join(extra)}{whose} "
                          f"(it takes: {', '.join(sorted(backend_options(name) - set(PROGRESS_HOOKS)))})")
    return _BACKENDS[name].from_options(**options)


def _kinds_check(num_global: int, num_finegrained: int) -> None:
    if num_global < 0 or num_finegrained < 0 or num_global + num_finegrained == 0:
        raise ConfigError("--num-global and --num-finegrained must be >= 0, and not both 0")


@register_caption_backend("acoustic")
class AcousticBackend:
    """Offline measurements (pitch, rate, loudness, voice quality) put into words, on CPU.

    With a ``corpus`` loudness reference and no LUFS value, every clip is measured first
    (the reference is the corpus median), then captioned.
    """

    def __init__(self, captioner: Any, log: Log | None = None, on_measured: Callable[[int], None] | None = None):
        self.captioner, self.log, self.on_measured = captioner, log, on_measured

    @classmethod
    def from_options(cls, bins: str | None = None, loudness_reference: str = "corpus", num_global: int = 1,
                     num_finegrained: int = 1, seed: int = 0, log: Log | None = None,
                     on_measured: Callable[[int], None] | None = None) -> "AcousticBackend":
        """``on_measured(n)``: called as each ``n`` clips are measured in the pass that finds the
        corpus loudness, before any caption is written (progress for long inputs). Options of
        another backend are refused before this (``build_caption_backend``)."""
        from clsp.caption.backend import AcousticCaptioner
        from clsp.caption.loudness import LoudnessReference

        _kinds_check(num_global, num_finegrained)
        reference = LoudnessReference.parse(loudness_reference)
        return cls(AcousticCaptioner.from_bins_file(bins, num_global=num_global, num_finegrained=num_finegrained,
                                                    seed=seed, loudness=reference), log, on_measured)

    def _measured(self, items: Iterable[Item]) -> Iterator[tuple[Item, Any]]:
        """Each item with its measurements, or the error that stops it, in order; the clips of
        ``SPEAKER_CHUNK`` items at a time share one pass of the speaker encoders."""
        from clsp.caption.pipeline import measure_records

        for chunk in batched(items, SPEAKER_CHUNK):
            todo = [item for item in chunk if item.error is None]
            measured = iter(measure_records([item.record for item in todo], self.captioner))
            for item in chunk:
                yield item, (item.error if item.error is not None else next(measured))

    def _counted(self, pairs: Iterable[tuple[Item, Any]]) -> Iterator[tuple[Item, Any]]:
        for pair in pairs:
            if self.on_measured is not None:
                self.on_measured(1)
            yield pair

    def caption_items(self, items: Iterable[Item]) -> Iterator[Result[dict]]:
        from clsp.caption.loudness import LoudnessReference, corpus_reference
        from clsp.caption.pipeline import caption_acoustic

        captioner = self.captioner
        pairs: Iterable = self._measured(items)
        if captioner.loudness.mode == "corpus" and captioner.loudness.lufs is None:
            pairs = list(self._counted(pairs))
            lufs = corpus_reference([m.overall.get("loudness_lufs") for _, m in pairs if not isinstance(m, ClspError)])
            captioner = replace(captioner, loudness=LoudnessReference("corpus", lufs))
            if lufs is not None and self.log is not None:
                self.log(f"caption: loudness words relative to the corpus median of {lufs:.1f} LUFS "
                         f"(pass --loudness-reference {lufs:.1f} to caption more clips of this corpus alike)")
        for item, m in pairs:
            try:
                if isinstance(m, ClspError):
                    raise m
                rec = caption_acoustic(item.record, captioner, measurements=m)
            except ClspError as exc:
                yield Result(item, error=exc)
                continue
            yield Result(item, rec, seconds=rec["measurements"]["duration_s"])


@register_caption_backend("model")
class AudioLMBackend:
    """An audio language model (e.g. Qwen2-Audio) prompted for each kind of caption, with
    optional ranking of sampled candidates by a CLSP model's speech-caption similarity."""

    def __init__(self, config: Any, select_with: str | None, keep: dict[str, int]):
        self.config, self.select_with, self.keep = config, select_with, keep

    @classmethod
    def from_options(cls, model: str | None = None, num_global: int = 1, num_finegrained: int = 1, seed: int = 0,
                     temperature: float = 0.6, top_p: float = 0.95, top_k: int = 20, num_samples: int = 1,
                     max_new_tokens: int = 512, select_with: str | None = None, batch_size: int = 8,
                     device: str = "auto", dtype: str = "auto", **others: Any) -> "AudioLMBackend":
        """Checks the options; the models load when the first batch is captioned."""
        from clsp.caption.llm import ModelCaptionConfig, SamplingConfig

        _kinds_check(num_global, num_finegrained)
        if not model:
            raise ConfigError("--backend model needs --model DIR_OR_HUB_ID")
        kinds = tuple(k for k, n in (("global", num_global), ("finegrained", num_finegrained)) if n > 0)
        sampling = SamplingConfig(temperature=temperature, top_p=top_p, top_k=top_k, num_samples=num_samples,
                                  max_new_tokens=max_new_tokens, seed=seed)
        config = ModelCaptionConfig(model=model, device=device, dtype=dtype, batch_size=batch_size, kinds=kinds,
                                    sampling=sampling)
        return cls(config, select_with, {"global": num_global, "finegrained": num_finegrained})

    def caption_items(self, items: Iterable[Item]) -> Iterator[Result[dict]]:
        from clsp.caption.llm import AudioLMCaptioner
        from clsp.caption.pipeline import caption_model_batch

        captioner = AudioLMCaptioner(self.config)
        ranker = None
        if self.select_with:
            from clsp.models import load_model

            ranker = load_model(self.select_with)
        for batch in batched(items, self.config.batch_size):
            good = [it for it in batch if it.error is None]
            results = iter(caption_model_batch([it.record for it in good], captioner, ranker, self.keep))
            for item in batch:
                res = item.error if item.error is not None else next(results)
                yield Result(item, error=res) if isinstance(res, ClspError) else Result(item, res)


def _as_cut(res: Result[dict]) -> Result[dict]:
    """The caption record as a Lhotse cut (``clsp.cuts.captioned_cut``), or the error."""
    from clsp.caption.pipeline import input_fields
    from clsp.cuts import captioned_cut

    if not res.ok:
        return res
    try:
        own = input_fields(res.item.record)  # the record's fields as a flat caption record keeps them
        record = _own_cut_fields(res.item.record)
        return Result(res.item, captioned_cut(record, res.value, own), seconds=res.seconds)
    except ClspError as exc:
        return Result(res.item, error=exc)
    except Exception as exc:  # Lhotse failing on one file stays that record's error, the run goes on
        path = str(res.item.record.get("_path", res.item.record.get("id")))
        return Result(res.item, error=InputError(f"{path}: cannot be described as a Lhotse cut ({_lhotse_reason(path, exc)})"))


def _own_cut_fields(record: dict) -> dict:
    """The record of an input cut with the custom fields of the supervision that will carry the
    captions (the first heard) as a captioned cut keeps them (``pipeline.cut_custom_fields``):
    a corpus's own captions under ``metadata``, an earlier ``clsp caption``'s replaced."""
    from clsp.caption.pipeline import cut_custom_fields
    from clsp.cuts import heard_supervisions

    data = record.get("_cut_json")
    if not isinstance(data, dict) or not isinstance(data.get("supervisions"), list):
        return record
    heard = heard_supervisions(data)
    if not heard:
        return record
    pos, sup = heard[0]
    if pos >= len(data["supervisions"]) or data["supervisions"][pos] is not sup or not isinstance(sup.get("custom"), dict):
        return record
    sups = list(data["supervisions"])
    sups[pos] = {**sup, "custom": cut_custom_fields(sup["custom"])}
    return {**record, "_cut_json": {**data, "supervisions": sups}}


def _lhotse_reason(path: str, exc: BaseException) -> str:
    """Why Lhotse could not describe the file at ``path``, in a few words."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its file name is not valid UTF-8, and Lhotse keeps file names as text; rename it"
    first = str(exc).splitlines()[0][:200] if str(exc) else "no message"
    return f"{type(exc).__name__}: {first}"


def caption_clips(items: Iterable[Any], backend: str = "acoustic", as_cuts: bool = False,
                  **options: Any) -> Iterator[Result[dict]]:
    """Speaking-style captions for audio items: one ``Result`` per item, in order, whose value
    is the caption record (with ``as_cuts``: the input's cut, or a new MonoCut, with the
    captions in its first supervision's custom fields). The reader's private ``_``-fields
    (the resolved path...) never reach a caption record, whatever the backend returns.

    ``items``: audio paths, records or ``Item`` s, as ``clsp.records.as_items`` takes them
    (``TypeError`` for one path given instead of a list). ``options`` go to the backend (see
    :func:`build_caption_backend`); the backend is built at once, so bad options raise
    ``ConfigError`` here. With ``as_cuts`` a record whose id repeats an earlier record's is an
    ``InputError`` result: Lhotse keys cuts and recordings by id, and one would be lost.
    """
    items = as_items(items)
    captioner = build_caption_backend(backend, **options)
    if not as_cuts:
        return (_public_result(r) for r in captioner.caption_items(_one_voice(items)))
    return (_as_cut(r) for r in captioner.caption_items(_cut_writable(_one_voice(items))))


def _public_result(res: Result[dict]) -> Result[dict]:
    """``res`` with its caption record's private ``_``-fields left out."""
    if not res.ok or not isinstance(res.value, dict) or not any(str(k).startswith("_") for k in res.value):
        return res
    return Result(res.item, {k: v for k, v in res.value.items() if not str(k).startswith("_")}, seconds=res.seconds)


def _cut_writable(items: Iterable[Item]) -> Iterator[Item]:
    """The items, a plain record of a file no Lhotse cut can describe sample for sample (an MP3:
    ``clsp.cuts.mp3_cut_problem``), and a record whose id repeats an earlier one's (two cuts or
    recordings of one id: Lhotse keeps one), turned into an ``InputError`` before it is captioned."""
    from clsp.cuts import mp3_cut_problem

    first: dict[str, int] = {}
    for item in items:
        rec = item.record
        problem = (mp3_cut_problem(rec["_path"]) if item.ok and rec and rec.get("_cut_json") is None
                   and rec.get("_path") else None)
        if problem is not None:
            yield Item(item.index, item.id, rec,
                       InputError(f"{rec['_path']}: no Lhotse cut for record {item.id!r}: {problem}"))
        elif item.ok and item.id in first:
            yield Item(item.index, item.id, rec,
                       InputError(f"record {item.index + 1}: id {item.id!r} repeats that of record "
                                  f"{first[item.id] + 1}; Lhotse keys cuts and recordings by id and would keep only "
                                  "one of them: give each record its own id"))
        else:
            if item.ok:
                first[item.id] = item.index
            yield item


def _one_voice(items: Iterable[Item]) -> Iterator[Item]:
    """The items, a Lhotse cut that holds several voices (``clsp.cuts.several_voices``) turned
    into an ``InputError`` naming it: one caption would describe them all as one."""
    from clsp.cuts import several_voices

    for item in items:
        why = several_voices(item.record.get("_cut_json") or {}) if item.ok and item.record else None
        if why is None:
            yield item
        else:
            yield Item(item.index, item.id, item.record,
                       InputError(f"cut {item.id!r}: {why}; a caption describes one voice: split the cut at its "
                                  "supervisions first (lhotse cut trim-to-supervisions)"))
