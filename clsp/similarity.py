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
override the guess, and a side may be an object ``{"audio": path, "start": s, "end": s,
"channel": c}`` (``channel``: an index or a list of indices, as in input records) or
``{"text": ...}``. An object side that holds its vector (an ``embedding`` record as
``clsp embed`` writes it) is that vector, not embedded again; its ``provenance`` must name the
model in use (``ProvenanceError`` otherwise), and a ``row`` side (``clsp embed --npy``) is
refused: the pairs hold no matrix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from clsp.errors import ClspError, InputError
from clsp.inputs import AUDIO_EXTENSIONS  # noqa: F401  (one list of audio extensions)
from clsp.records import Item, home_path, is_cut, resolve_path, upstream_error
from clsp.results import PAIR_RESULT_FIELDS, PAIR_WRITTEN, PairScore, Result, SinglePass, as_given, pair_score_record, under_metadata



@dataclass(frozen=True)
class Side:
    """One side of a pair: an audio clip (path, optional start/end seconds and channel), a
    text, or an embedding given with the pair (``vector``; ``kind`` then says what it embeds)."""

    kind: str  # "audio" or "text"
    value: str
    start: float | None = None
    end: float | None = None
    channel: int | tuple[int, ...] | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    provenance: dict | None = field(default=None, compare=False, repr=False)
    guessed: bool = field(default=False, compare=False, repr=False)  # audio because a file of that name exists
    cut: dict | None = field(default=None, compare=False, repr=False)  # a Lhotse cut's JSON: decoded by Lhotse

    @property
    def key(self) -> tuple:
        if self.vector is not None:
            from clsp.index.records import row_checksum

            return ("vector", row_checksum(self.vector))
        if self.cut is not None:  # the same cut is the same audio, whatever its name
            return ("cut", json.dumps(self.cut, sort_keys=True, default=str))
        # an end that a ``duration`` gave reads to the file's end where an explicit one past it fails
        return (self.kind, self.value, self.start, self.end, type(self.end).__name__, self.channel)


def _resolve(path: str, base: Path | None) -> str:
    return resolve_path(path, base) if base is not None else str(home_path(path))


def looks_like_audio(value: str, base: Path | None = None) -> bool:
    """Guess whether a string names an audio file rather than being free text.

    An existing file is audio; so is a string that looks like a path: an audio extension
    with no spaces or with a folder, or no whitespace at all and a folder separator or a
    file-like extension (``clips/a.fla``, a mistyped ``a.wav``), so that a missing file is
    reported as missing, not scored as a caption. Write ``{"text": ...}`` to force text."""
    if "\n" in value or not value.strip():
        return False
    if os.path.isfile(_resolve(value, base)):
        return True
    if value.lower().endswith(AUDIO_EXTENSIONS):
        return (" " not in value) or ("/" in value) or (os.sep in value)
    if any(ch.isspace() for ch in value.strip()):
        return False
    return "/" in value or os.sep in value or re.search(r"\.[A-Za-z0-9]{2,5}$", value) is not None


def file_with_extension(value: str, base: Path | None) -> str | None:
    """The audio file a one-word side names without its extension (``clip1`` when
    ``clip1.wav`` exists), or None: a mistyped file name, not a caption."""
    word = value.strip()
    if not word or any(ch.isspace() for ch in word) or len(word) > 255:
        return None
    for ext in AUDIO_EXTENSIONS:
        try:
            if os.path.isfile(_resolve(word + ext, base)):
                return word + ext
        except (OSError, ValueError):
            return None
    return None


def side_from_value(value: Any, where: str, base: Path | None = None) -> Side:
    """A pair side from a string (guessed) or an ``{"audio"|"text": ...}`` object.

    Relative audio paths resolve against ``base`` (the pairs file's folder) when given.
    """
    if isinstance(value, dict):
        from clsp.index.records import holds_vector

        if holds_vector(value, matrix_given=False):  # a 'row' of a spreadsheet beside 'audio' is the clip's own field
            return embedded_side(value, where)
        if is_cut(value):  # a Lhotse cut: read as every command reads a cut line
            from clsp.cuts import cut_record

            return record_audio_side(cut_record(value, where), where, base)
        if "audio" in value:
            return record_audio_side(value, where, base)
        if "text" in value:
            return _text_side(value["text"], where)
        raise upstream_error(value, where) or InputError(f"{where}: an object side needs an 'audio' or 'text' field")
    if not isinstance(value, str):
        raise InputError(f"{where}: expected a path or a text, got {type(value).__name__}")
    if not looks_like_audio(value, base):
        word = value.strip()
        try:
            folder = bool(word) and not any(ch.isspace() for ch in word) and os.path.isdir(_resolve(word, base))
        except (OSError, ValueError):  # a name too long for the filesystem is no folder
            folder = False
        if folder:  # a one-word side naming a folder (a speaker's folder of clips), not a caption
            raise InputError(f"{where}: {value!r} is a folder, not an audio file: name a clip in it to score it, or "
                             f"{{\"text\": {json.dumps(value)}}} to score the word as a caption")
        named = file_with_extension(value, base)
        if named is not None:
            raise InputError(f"{where}: {value!r} names no file, but {named} exists: give the file name to score "
                             f"the clip, or {{\"text\": {json.dumps(value)}}} to score it as a caption")
        return _text_side(value, where)
    side = audio_side(value, where, base=base)
    if not value.lower().endswith(AUDIO_EXTENSIONS) and "." not in os.path.basename(value) and os.path.isfile(side.value):
        side = replace(side, guessed=True)  # a plain word that names a file: perhaps meant as a caption
    return side


def embedded_side(record: dict, where: str) -> Side:
    """The side an embedding record is (``clsp embed`` output: ``embedding`` and ``provenance``
    beside the ``audio`` or ``text`` it came from): its vector, used as it is. ``InputError``
    naming ``where`` for a vector that is not a flat list of finite numbers, not all zero, or
    for a ``row`` (a row of a ``--npy`` matrix, which pairs cannot give)."""
    from clsp.index.records import check_usable, record_vector

    if "embedding" not in record:
        raise InputError(f"{where}: 'row' {record['row']!r} points into a matrix that clsp similarity cannot read; "
                         "give the side its inline 'embedding' (clsp embed without --npy) or its 'audio' / 'text'")
    try:
        vec = check_usable(record_vector(record), record, where)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    kind = "audio" if "audio" in record else "text" if "text" in record else "embedding"
    prov = record.get("provenance") if isinstance(record.get("provenance"), dict) else None
    label = record.get("id", record.get("audio", record.get("text", "embedding")))
    return Side(kind, str(label), vector=vec, provenance=prov)


def audio_side(path: Any, where: str, start: Any = None, end: Any = None, base: Path | None = None,
               channel: Any = None) -> Side:
    """An audio side (or query): the path resolved against ``base``, optional ``start``/``end``
    in seconds (numbers or numeric strings) and ``channel`` (an index or a list of indices;
    checked against the file when it is decoded). Raises ``InputError`` naming ``where``."""
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"{where}: empty audio path")
    from clsp.audio import PLAIN_NUMBER, DurationEnd

    try:
        if any(isinstance(v, str) and not PLAIN_NUMBER.fullmatch(v) for v in (start, end)):
            raise ValueError("not a plain decimal number")  # 1_0, other scripts' digits: float() takes them
        s = None if start is None else float(start)
        e = None if end is None else float(end)
    except (TypeError, ValueError):
        raise InputError(f"{where}: start/end must be numbers of seconds") from None

    if isinstance(end, DurationEnd):  # start + duration (``record_span``): reads up to the file's end, as in embed
        e = DurationEnd(e)
    if isinstance(channel, list):  # hashable, for the side's key
        channel = tuple(channel)
    return Side("audio", _resolve(path, base), s, e, channel)


def record_audio_side(record: dict, where: str, base: Path | None = None) -> Side:
    """The audio side of an object with an ``audio`` path: its segment read as input records
    are (``start``/``end``, or ``start + duration``: ``clsp.record_audio.record_span``) and
    its ``channel``; a record read from a Lhotse cut (its ``_cut``) is that cut, decoded by
    Lhotse as ``clsp embed`` decodes it (``clsp.record_audio.load_record_audio``). Raises
    ``InputError`` naming ``where``."""
    from clsp.audio import record_span

    if record.get("_cut") is not None:
        name = record.get("audio") if isinstance(record.get("audio"), str) else f"cut:{record.get('id')}"
        return Side("audio", name, cut=record["_cut"])

    try:
        start, end = record_span({k: v for k, v in record.items() if k != "_cut"})
    except ClspError as exc:
        raise InputError(f"{where}: {exc}") from None
    return audio_side(record["audio"], where, start, end, base, record.get("channel"))


def _text_side(text: Any, where: str) -> Side:
    if not isinstance(text, str):
        raise InputError(f"{where}: text must be a string")
    if not text.strip():
        raise InputError(f"{where}: empty text")
    return Side("text", text)


def resolve_side(record: dict, side: str, base: Path | None = None) -> Side:
    """Side ``side`` ("a" or "b") of a pair record, honouring ``{side}_audio`` / ``{side}_text``."""
    given = [k for k in (f"{side}_audio", f"{side}_text", side) if k in record]
    if not given and not any(k in record for k in ("a", "a_audio", "a_text", "b", "b_audio", "b_text")):
        upstream = upstream_error(record, f"pair {record.get('id')!r}")  # an earlier command's error record
        if upstream is not None:
            raise upstream
    if not given:
        raise InputError(f"pair has no '{side}' (or '{side}_audio' / '{side}_text') field")
    if len(given) > 1:
        raise InputError(f"pair gives side '{side}' twice ({', '.join(given)})")
    key = given[0]
    value, where = record[key], f"field '{key}'"
    if isinstance(value, dict):  # an object: a segment {"audio", "start", "end"}, a caption, or an embed record
        want = "audio" if key.endswith("_audio") else "text" if key.endswith("_text") else None
        if (want is not None and "embedding" not in value and "row" not in value and want not in value
                and not (want == "audio" and is_cut(value))):
            raise InputError(f"{where}: an object side needs {'an' if want == 'audio' else 'a'} '{want}' field")
        side = side_from_value(value, where, base)
        if want is not None and side.kind not in (want, "embedding"):  # "embedding": a vector of unnamed origin
            raise InputError(f"{where}: holds {side.kind}, not {want}")
        return side
    if key.endswith("_audio"):
        return audio_side(value, where, base=base)
    if key.endswith("_text"):
        return _text_side(value, where)
    return side_from_value(value, where, base)


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


def _entry(index: int, rec: Any) -> tuple[Any, dict | None, ClspError | None]:
    """``(id, record, None)`` or ``(id, None, error)`` of one input: a pair record, an
    ``Item`` from the record reader, or the ``ClspError`` of an unreadable line. A record an
    earlier ``clsp similarity`` wrote (:func:`~clsp.results.pair_score_record`) is the pair it
    was made from: its ``score`` and ``pair`` dropped, the record's own fields kept under
    ``metadata`` (a rating called ``score``) back under their names (``results.as_given``)."""
    if isinstance(rec, Item):
        if not rec.ok:
            return rec.id, None, rec.error
        rec = rec.record
        if rec.get("id") == "null":  # the reader's stand-in for a record without an id
            rec = {**rec, "id": index}
    if isinstance(rec, ClspError):
        return getattr(rec, "record_id", index), None, rec
    if isinstance(rec, dict):
        rec = as_given(rec, pair_score_record, PAIR_WRITTEN)
    return record_id(rec, index), rec, None


def _embed_missing(sides: list[Side], encoders: Encoders, cache: dict) -> None:
    for s in sides:
        if s.vector is not None:
            cache[s.key] = s.vector
    todo_audio = list({s.key: s for s in sides if s.kind == "audio" and s.key not in cache}.values())
    todo_text = list({s.key: s for s in sides if s.kind == "text" and s.key not in cache}.values())
    if todo_audio:
        for s, v in zip(todo_audio, encoders.embed_audio(todo_audio)):
            cache[s.key] = v
    if todo_text:
        for s, v in zip(todo_text, encoders.embed_text([s.value for s in todo_text])):
            cache[s.key] = v


def _check_given(sides: tuple[Side, Side], provenance: dict | None) -> None:
    """``ProvenanceError`` when an embedding given with the pair was made by another model than
    the one in use (``provenance``), or the two given embeddings by two different models."""
    from clsp.index.store import same_provenance, use_model_fix

    given = [(name, s) for name, s in zip("ab", sides) if s.vector is not None]
    for name, s in given:
        same_provenance(provenance, s.provenance, f"side {name}'s embedding", "this run uses",
                        use_model_fix((s.provenance or {}).get("model"), "that made it"))
    if len(given) == 2:
        same_provenance(given[0][1].provenance, given[1][1].provenance, "side b's embedding",
                        "side a's embedding came from")


def _score_batch(batch: list[tuple[int, Any]], encoders: Encoders, cache: dict,
                 base: Path | None) -> list[Result[PairScore]]:
    prepared: list[tuple[Any, Any, Any]] = []
    for index, entry in batch:
        rid, rec, err = _entry(index, entry)
        if err is None:
            try:
                sides = (resolve_side(rec, "a", base), resolve_side(rec, "b", base))
                _check_given(sides, getattr(encoders, "provenance", None))
                prepared.append((rid, rec, sides))
            except ClspError as exc:
                prepared.append((rid, rec, exc))
        else:
            prepared.append((rid, rec, err))
    _embed_missing([s for _, _, p in prepared if isinstance(p, tuple) for s in p], encoders, cache)
    out: list[Result[PairScore]] = []
    for rid, rec, p in prepared:
        fields = frozenset(str(k) for k in rec) if isinstance(rec, dict) else frozenset()
        if isinstance(p, ClspError):
            out.append(Result(rid, error=p, fields=fields))
            continue
        ea, eb = cache[p[0].key], cache[p[1].key]
        bad = ea if isinstance(ea, ClspError) else eb if isinstance(eb, ClspError) else None
        if bad is not None:
            side = p[0] if bad is ea else p[1]
            name = "a" if side is p[0] else "b"
            if side.guessed:  # a one-word caption that happens to name a file here
                bad = type(bad)(f"side {name}: {bad}; side {name} was read as audio because a file of "
                                f"that name exists: for the caption, write it in a pairs file as {{\"text\": ...}} or a_text / b_text")
            else:
                bad = type(bad)(f"side {name}: {bad}")  # which side failed, as the sides' own field errors say
            out.append(Result(rid, error=bad, fields=fields))
            continue
        try:
            score = cosine(ea, eb)
        except InputError as exc:
            out.append(Result(rid, error=InputError(f"pair {rid!r} ({pair_kind(*p)}): {exc}"), fields=fields))
            continue
        out.append(Result(rid, pair_result(_absolute_audio(rec, p), rid, round(score, 6), pair_kind(*p))))
    return out


def cut_sides_rooted(items: Iterable[Any], root: str | os.PathLike) -> Iterator[Any]:
    """The pair items with each side that is a Lhotse cut rooted at ``root`` (``--audio-root``:
    its relative file sources joined to it, ``clsp.cuts.rooted_cut``), as ``clsp embed`` reads
    cut lines with ``--audio-root``."""
    from clsp.cuts import rooted_cut

    for item in items:
        rec = getattr(item, "record", None)
        if isinstance(rec, dict) and any(isinstance(rec.get(k), dict) and is_cut(rec[k]) for k in _SIDE_KEYS):
            item.record = {k: rooted_cut(v, root) if k in _SIDE_KEYS and isinstance(v, dict) and is_cut(v) else v
                           for k, v in rec.items()}
        yield item


_SIDE_KEYS = ("a", "b", "a_audio", "b_audio")


def _absolute_audio(record: dict, sides: tuple[Side, Side]) -> dict:
    """The pair record with each audio side's path as it was read (absolute), so that the output
    scores again from any folder, as every command's output records carry ``audio``: a path side
    (``a``, ``a_audio``) becomes the path, an object side keeps its fields with ``audio`` replaced,
    a Lhotse cut gets its relative file sources joined to the working directory, where Lhotse read them."""
    out = dict(record)
    for name, side in zip("ab", sides):
        if side.kind != "audio" or side.vector is not None:
            continue
        key = next(k for k in (f"{name}_audio", f"{name}_text", name) if k in record)
        value = record[key]
        if side.cut is not None:  # a Lhotse cut: its relative sources are read from the working directory
            if isinstance(value, dict) and is_cut(value):
                from clsp.cuts import rooted_cut

                out[key] = rooted_cut(value, os.getcwd())
        elif isinstance(value, str):
            out[key] = side.value
        elif isinstance(value, dict) and isinstance(value.get("audio"), str):
            out[key] = {**value, "audio": side.value}
    return out


RESULT_FIELDS = PAIR_RESULT_FIELDS


def pair_result(record: dict, rid: Any, score: float, pair: str) -> PairScore:
    """The pair record with clsp's ``id``, ``score`` and ``pair``; the record's own fields named
    like :data:`RESULT_FIELDS` (e.g. a human rating called ``score``, an ``error`` note) move
    under ``metadata``."""
    fields, nested = under_metadata(record, RESULT_FIELDS)
    return PairScore(rid, score, pair, fields, nested or None)


def record_field(result: dict | PairScore, key: str) -> Any:
    """A field of the input pair record as it was given, from a result of :func:`pair_result`
    (or its ``to_dict()`` record)."""
    if isinstance(result, PairScore):
        return result.field(key)
    return (result.get("metadata") or {}).get(key) if key in RESULT_FIELDS else result.get(key)


def pair_scores(
    records: Iterable[dict | Item | ClspError],
    encoders: Encoders,
    batch_size: int = 16,
    cache_size: int = 4096,
    base_dir: str | Path | None = None,
) -> Iterator[Result[PairScore]]:
    """One :class:`~clsp.results.Result` per pair, in order: a :class:`~clsp.results.PairScore`
    (see :func:`pair_result`) or the error that stopped the pair.

    Inputs are pair records, ``Item`` s of the record reader, or ``ClspError`` (an unreadable
    line). Relative audio paths resolve against ``base_dir``. Embeddings are cached so a clip
    or caption shared by many pairs is embedded once.
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


def score_pairs(records: Iterable[dict | Item | ClspError], encoders: Encoders, batch_size: int = 16,
                cache_size: int = 4096, base_dir: str | Path | None = None) -> Iterator[dict]:
    """:func:`pair_scores` as output records: the pair record plus ``score`` and ``pair``,
    or an error record ``{"id", "error": {"type", "message"}}``."""
    for res in pair_scores(records, encoders, batch_size, cache_size, base_dir):
        yield res.to_dict()


def audio_only(records: Sequence[dict], base: Path | None = None) -> bool:
    """True for a one-off check of two audio files: the text tower need not load."""
    if len(records) != 1:
        return False
    try:
        return all(resolve_side(records[0], s, base).kind == "audio" for s in ("a", "b"))
    except ClspError:
        return False


class ModelEncoders:
    """``Encoders`` backed by a CLSP model, embedding audio exactly as ``clsp embed`` does."""

    def __init__(self, model: Any, batch_size: int = 16, device: str = "auto") -> None:
        from clsp.embed import AudioEmbedder, EmbedConfig, TextEmbedder

        self.audio = AudioEmbedder(model, EmbedConfig(batch_size=batch_size, device=device, workers=1))
        self.provenance = model.provenance()
        self.text = TextEmbedder(model, batch_size=batch_size, device=device)

    def embed_audio(self, sides: Sequence[Side]) -> list[np.ndarray | ClspError]:
        items = [Item(index=i, id=s.value, record=_side_record(s)) for i, s in enumerate(sides)]
        return [r.error if r.error is not None else r.embeddings[0] for r in self.audio.run(items)]

    def embed_text(self, texts: Sequence[str]) -> list[np.ndarray | ClspError]:
        items = [Item(index=i, id=str(i), record={"text": t}) for i, t in enumerate(texts)]
        return [r.error if r.error is not None else r.value for r in self.text.run(items)]


def _side_record(side: Side) -> dict:
    """The input record ``clsp embed`` would read for an audio side: a segment of a file, or a
    Lhotse cut (its ``_cut``, decoded by Lhotse)."""
    if side.cut is not None:
        return {"id": side.value, "audio": side.value, "_path": side.value, "_cut": side.cut}
    return {"audio": side.value, "_path": side.value, "start": side.start, "end": side.end,
            "channel": list(side.channel) if isinstance(side.channel, tuple) else side.channel}


def _plain(value: Any) -> Any:
    """A ``Path`` given for an audio side, as the path text a pair record holds (a NumPy string
    as a plain one)."""
    if isinstance(value, str):
        return str(value)
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class Comparison(SinglePass):
    """Pair scores, iterated (once) as one ``Result[PairScore]`` per pair in order. A second
    loop raises ``RuntimeError``: keep the results with ``list(...)``."""

    def __init__(self, results: Iterator[Result[PairScore]]):
        self.results = results

    def __iter__(self) -> Iterator[Result[PairScore]]:
        self._start("clsp.compare")
        return self.results


def compare(model: Any, pairs: Iterable[Any], *, batch_size: int = 16, device: str = "auto",
            base_dir: str | Path | None = None) -> Comparison:
    """Score pairs by speaking-style similarity: one :class:`~clsp.results.PairScore` (cosine of
    the two CLSP embeddings, in [-1, 1]) or error per pair, in order. The results stream: loop
    over them once (a second loop raises ``RuntimeError``).

    ``model``: a loaded CLSP model or a name for ``clsp.load_model``. ``pairs``: ``(a, b)``
    tuples or pair records (``{"a", "b"}``, see :func:`resolve_side`), or the path of a pairs
    JSONL file (as ``clsp similarity`` reads it); a side is an audio path or a caption.
    Relative audio paths resolve against ``base_dir`` (default: a pairs file's own folder, else
    the working directory). ``InputError`` for a pairs file path that names no file.
    """
    from clsp.inputs import check_audio_root
    from clsp.models.checkpoint import as_model
    from clsp.records import Item, base_dir_of, check_sequence, iter_items

    check_audio_root(base_dir, "base_dir=")
    if isinstance(pairs, (str, os.PathLike)) and not os.fspath(pairs).lower().endswith(AUDIO_EXTENSIONS):
        path = os.fspath(pairs)
        if not os.path.isfile(path):
            raise InputError(f"pairs: {path}: no such file (give a pairs JSONL file's path, or a list of (a, b) "
                             "tuples or pair records)")
        base_dir = base_dir_of(path, base_dir)
        pairs = iter_items(path, "pairs", audio_root=base_dir)
    net = as_model(model)
    check_sequence(pairs, "pairs", "(a, b) tuples or pair records")

    def record(n: int, p: Any) -> Any:
        if type(p).__module__ == "numpy" and getattr(p, "ndim", None) == 1:  # a row of np.array(pairs)
            p = p.tolist()
        if isinstance(p, (tuple, list)):
            if len(p) != 2:
                raise TypeError(f"pairs[{n}]: a pair is two sides (a, b), got {len(p)}")
            return {"id": n, "a": _plain(p[0]), "b": _plain(p[1])}
        if isinstance(p, Item):  # a pair record read from a file (clsp similarity)
            return p
        if not isinstance(p, dict):
            raise TypeError(f"pairs[{n}]: an (a, b) tuple or a pair record, got {type(p).__name__}")
        return {k: _plain(v) for k, v in p.items()}

    records = (record(n, p) for n, p in enumerate(pairs))
    return Comparison(pair_scores(records, ModelEncoders(net, batch_size, device), batch_size,
                                  base_dir=Path.cwd() if base_dir is None else base_dir))
