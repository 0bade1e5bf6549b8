"""Style similarity: cosine between two CLSP embeddings (speech-speech or speech-caption).

The score is the cosine of the two unit-norm embeddings in the joint space, in [-1, 1].
Speech-speech: how alike two clips sound (speaker traits, emotion, pace, voice quality),
not what is said. Speech-caption: how well a caption describes the voice; this is the
score the paper correlates with human ratings. Scores are comparable within one model
only; for the released model matching speech-caption pairs typically score well above
mismatched ones (about 0.6-0.7 vs 0.2-0.3 in the paper's example), so thresholds for
``--below`` / ``--above`` should be chosen on a sample of your own data.

Pairs are records ``{"a": ..., "b": ...}``; each side is an audio file or a text. A side
is audio when it is an existing file, or a string without line breaks ending in an audio
extension (``.wav``, ``.flac``...) that has no spaces or contains a path separator;
otherwise it is text. Explicit fields ``a_audio`` / ``a_text`` / ``b_audio`` / ``b_text``
override the guess, and a side may be an object ``{"audio": path, "start": s, "end": s}``
or ``{"text": ...}``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from clsp.errors import ClspError, InputError
from clsp.inputs import AUDIO_EXTENSIONS  # noqa: F401  (one list of audio extensions)
from clsp.records import error_record



@dataclass(frozen=True)
class Side:
    """One side of a pair: an audio clip (path, optional start/end seconds) or a text."""

    kind: str  # "audio" or "text"
    value: str
    start: float | None = None
    end: float | None = None

    @property
    def key(self) -> tuple:
        return (self.kind, self.value, self.start, self.end)


def _resolve(path: str, base: Path | None) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or base is None else base / p)


def looks_like_audio(value: str, base: Path | None = None) -> bool:
    """Guess whether a string names an audio file rather than being free text."""
    if "\n" in value or not value.strip():
        return False
    if os.path.isfile(_resolve(value, base)):
        return True
    if not value.lower().endswith(AUDIO_EXTENSIONS):
        return False
    return (" " not in value) or ("/" in value) or (os.sep in value)


def side_from_value(value: Any, where: str, base: Path | None = None) -> Side:
    """A pair side from a string (guessed) or an ``{"audio"|"text": ...}`` object.

    Relative audio paths resolve against ``base`` (the pairs file's folder) when given.
    """
    if isinstance(value, dict):
        if "audio" in value:
            return _audio_side(value["audio"], where, value.get("start"), value.get("end"), base)
        if "text" in value:
            return _text_side(value["text"], where)
        raise InputError(f"{where}: an object side needs an 'audio' or 'text' field")
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a path or a text, got {type(value).__name__}")
    return _audio_side(value, where, base=base) if looks_like_audio(value, base) else _text_side(value, where)


def _audio_side(path: Any, where: str, start: Any = None, end: Any = None, base: Path | None = None) -> Side:
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"{where}: empty audio path")
    try:
        s = None if start is None else float(start)
        e = None if end is None else float(end)
    except (TypeError, ValueError):
        raise InputError(f"{where}: start/end must be numbers of seconds") from None
    return Side("audio", _resolve(path, base), s, e)


def _text_side(text: Any, where: str) -> Side:
    if not isinstance(text, str):
        raise InputError(f"{where}: text must be a string")
    if not text.strip():
        raise InputError(f"{where}: empty text")
    return Side("text", text)


def resolve_side(record: dict, side: str, base: Path | None = None) -> Side:
    """Side ``side`` ("a" or "b") of a pair record, honouring ``{side}_audio`` / ``{side}_text``."""
    given = [k for k in (f"{side}_audio", f"{side}_text", side) if k in record]
    if not given:
        raise InputError(f"pair has no '{side}' (or '{side}_audio' / '{side}_text') field")
    if len(given) > 1:
        raise InputError(f"pair gives side '{side}' twice ({', '.join(given)})")
    key = given[0]
    if key.endswith("_audio"):
        return _audio_side(record[key], f"field '{key}'", base=base)
    if key.endswith("_text"):
        return _text_side(record[key], f"field '{key}'")
    return side_from_value(record[key], f"field '{key}'", base)


def pair_kind(a: Side, b: Side) -> str:
    return f"{a.kind}-{b.kind}"


def cosine(a: Any, b: Any) -> float:
    """Cosine of two vectors, in [-1, 1] (the vectors need not be unit-norm).

    Raises ``InputError`` for vectors of different sizes, all zeros, or holding NaN/inf
    (named "side a" / "side b"), so a score is always a finite number.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"embeddings have different sizes ({x.size} vs {y.size})")
    for name, v in (("a", x), ("b", y)):
        if not np.isfinite(v).all():
            raise InputError(f"the embedding of side {name} holds NaN or infinite values")
    x, y = x / max(np.abs(x).max(), 1e-300), y / max(np.abs(y).max(), 1e-300)  # no overflow in the norms
    denom = np.linalg.norm(x) * np.linalg.norm(y)
    if denom == 0:
        raise InputError("an embedding is all zeros")
    return float(np.clip(x @ y / denom, -1.0, 1.0))


def keep_score(score: float, below: float | None = None, above: float | None = None) -> bool:
    """True when ``score`` passes ``--below`` (score < below) and ``--above`` (score > above)."""
    return (below is None or score < below) and (above is None or score > above)


class Encoders(Protocol):
    """Embeds pair sides; each item gives a vector or the ClspError that stopped it."""

    def embed_audio(self, sides: Sequence[Side]) -> list[np.ndarray | ClspError]: ...

    def embed_text(self, texts: Sequence[str]) -> list[np.ndarray | ClspError]: ...


def record_id(record: dict, index: int) -> Any:
    return record.get("id", index)


def _embed_missing(sides: list[Side], encoders: Encoders, cache: dict) -> None:
    todo_audio = list({s.key: s for s in sides if s.kind == "audio" and s.key not in cache}.values())
    todo_text = list({s.key: s for s in sides if s.kind == "text" and s.key not in cache}.values())
    if todo_audio:
        for s, v in zip(todo_audio, encoders.embed_audio(todo_audio)):
            cache[s.key] = v
    if todo_text:
        for s, v in zip(todo_text, encoders.embed_text([s.value for s in todo_text])):
            cache[s.key] = v


def _score_batch(batch: list[tuple[int, Any]], encoders: Encoders, cache: dict, base: Path | None) -> list[dict]:
    prepared: list[tuple[int, Any, Any]] = []
    for index, rec in batch:
        if isinstance(rec, ClspError):
            prepared.append((index, None, rec))
            continue
        try:
            prepared.append((index, rec, (resolve_side(rec, "a", base), resolve_side(rec, "b", base))))
        except ClspError as exc:
            prepared.append((index, rec, exc))
    _embed_missing([s for _, _, p in prepared if isinstance(p, tuple) for s in p], encoders, cache)
    out = []
    for index, rec, p in prepared:
        rid = getattr(p, "record_id", index) if rec is None else record_id(rec, index)
        if isinstance(p, ClspError):
            out.append(error_record(rid, p))
            continue
        ea, eb = cache[p[0].key], cache[p[1].key]
        bad = ea if isinstance(ea, ClspError) else eb if isinstance(eb, ClspError) else None
        if bad is not None:
            out.append(error_record(rid, bad))
            continue
        try:
            score = cosine(ea, eb)
        except InputError as exc:
            out.append(error_record(rid, InputError(f"pair {rid!r} ({pair_kind(*p)}): {exc}")))
            continue
        out.append(pair_result(rec, rid, round(score, 6), pair_kind(*p)))
    return out


RESULT_FIELDS = ("score", "pair", "metadata")


def pair_result(record: dict, rid: Any, score: float, pair: str) -> dict:
    """The pair record with clsp's ``id``, ``score`` and ``pair``; the record's own fields named
    like :data:`RESULT_FIELDS` (e.g. a human rating called ``score``) move under ``metadata``."""
    out = {k: v for k, v in record.items() if k not in RESULT_FIELDS}
    out.update(id=rid, score=score, pair=pair)
    nested = {k: record[k] for k in RESULT_FIELDS if k in record}
    if nested:
        out["metadata"] = nested
    return out


def record_field(result: dict, key: str) -> Any:
    """A field of the input pair record as it was given, from a result of :func:`pair_result`."""
    return (result.get("metadata") or {}).get(key) if key in RESULT_FIELDS else result.get(key)


def score_pairs(
    records: Iterable[dict | ClspError],
    encoders: Encoders,
    batch_size: int = 16,
    cache_size: int = 4096,
    base_dir: str | Path | None = None,
) -> Iterator[dict]:
    """Stream one result per pair, in order: the record plus ``score`` and ``pair`` (see
    :func:`pair_result`), or an error record.

    Input items may already be ``ClspError`` (an unreadable line), which become error
    records. Embeddings are cached so a clip or caption shared by many pairs is embedded once.
    """
    base = None if base_dir is None else Path(base_dir)
    cache: dict = {}
    batch: list[tuple[int, Any]] = []
    for index, rec in enumerate(records):
        batch.append((index, rec))
        if len(batch) >= batch_size:
            yield from _score_batch(batch, encoders, cache, base)
            batch = []
            if len(cache) > cache_size:
                cache.clear()
    if batch:
        yield from _score_batch(batch, encoders, cache, base)


class ModelEncoders:
    """``Encoders`` backed by a CLSP model, embedding audio exactly as ``clsp embed`` does."""

    def __init__(self, model: Any, batch_size: int = 16, device: str = "auto") -> None:
        from clsp.embed import AudioEmbedder, EmbedConfig, TextEmbedder

        self.audio = AudioEmbedder(model, EmbedConfig(batch_size=batch_size, device=device, workers=1))
        self.text = TextEmbedder(model, batch_size=batch_size, device=device)

    def embed_audio(self, sides: Sequence[Side]) -> list[np.ndarray | ClspError]:
        from clsp.records import Item

        items = [Item(index=i, id=s.value, record={"audio": s.value, "_path": s.value, "start": s.start, "end": s.end})
                 for i, s in enumerate(sides)]
        return [r.error if r.error is not None else r.embeddings[0] for r in self.audio.run(items)]

    def embed_text(self, texts: Sequence[str]) -> list[np.ndarray | ClspError]:
        from clsp.records import Item

        items = [Item(index=i, id=str(i), record={"text": t}) for i, t in enumerate(texts)]
        return [err if err is not None else emb for _, emb, err in self.text.run(items)]
