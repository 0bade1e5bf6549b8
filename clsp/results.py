"""One result per input item: the value it gave, or the error that stopped it.

Batch APIs (:func:`clsp.classify`, :func:`clsp.search`, :func:`clsp.compare`) yield one
:class:`Result` per input, in input order, so a caller writes one output record per input
record. The typed values (:class:`SearchHit`, :class:`Prediction`, :class:`PairScore`) turn
into the JSON records ``clsp`` writes with ``to_dict``; the field names and order there are
the command-line output format (see README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

from clsp.errors import ClspError
from clsp.records import error_record

T = TypeVar("T")


@dataclass
class Result(Generic[T]):
    """The outcome for one input ``item`` (a ``clsp.records.Item``, or a record id).

    Exactly one of ``value`` and ``error`` is set; ``error`` is a ``ClspError`` naming
    the item and the reason. ``seconds`` is the audio the item held (for throughput).
    ``fields``: the field names of a failed input record where the item is only its id (a
    pair's), so that an evaluation tells a key some failed record had from a mistyped one.
    """

    item: Any
    value: T | None = None
    error: ClspError | None = None
    seconds: float = 0.0
    fields: frozenset = frozenset()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def id(self) -> Any:
        """The input's id: ``item.id`` for an ``Item``, else ``item`` itself."""
        return getattr(self.item, "id", self.item)

    @property
    def given_id(self) -> Any:
        """The id as the input wrote it (``Item.given_id``: an integer stays an integer), for
        output records."""
        return getattr(self.item, "given_id", self.id)

    def to_dict(self) -> dict[str, Any]:
        """The output record: ``value.to_dict()`` (or the value itself), or an error record."""
        if self.error is not None:
            return error_record(self.given_id, self.error)
        return self.value.to_dict() if hasattr(self.value, "to_dict") else self.value


@dataclass
class SearchHit:
    """One index hit: the indexed ``id``, its ``score`` (cosine/ip: higher is closer; l2:
    squared distance, lower is closer) and the fields stored with it."""

    id: str | int  # as the indexed records had it (an index of integer ids gives integers)
    score: float
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, hit: dict[str, Any]) -> "SearchHit":
        """From a ``VectorIndex.search`` hit ``{"id", "score", **fields}``."""
        rid = hit["id"]
        rid = rid if isinstance(rid, int) and not isinstance(rid, bool) else str(rid)
        return cls(rid, float(hit["score"]), {k: v for k, v in hit.items() if k not in ("id", "score")})

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "score" (6 decimals), **fields}``."""
        return {"id": self.id, "score": round(self.score, 6), **self.fields}


@dataclass
class SearchHits:
    """The hits of one query, best first."""

    id: Any
    hits: list[SearchHit]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hits": [h.to_dict() for h in self.hits]}


# what an embedding record says of its vector: the vector (inline, or a row of the --npy matrix and
# that row's checksum) and the provenance naming the model that made it; they travel together
VECTOR_FIELDS = ("embedding", "row", "row_sha256", "provenance")


def embedding_provenance(value: Any) -> bool:
    """True for the provenance of an embedding clsp wrote (a dict naming its ``model`` and ``dim``)."""
    return isinstance(value, dict) and isinstance(value.get("model"), str) and isinstance(value.get("dim"), int)


def under_metadata(record: dict[str, Any], reserved: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an input record for an output record that writes fields named ``reserved``
    itself: ``(fields, kept)``, the record's other fields, and its own fields of those names,
    which the output keeps under ``metadata`` (never overwritten, never read as clsp's: a MOS
    stored as ``score``, a note in ``provenance``, an ``error`` field that would make a
    successful record read as an error record). A record's own ``metadata`` moves too when it
    is reserved, or when anything else moves, so its keys never clash with the moved ones.
    An embedding travels with its provenance: when one of :data:`VECTOR_FIELDS` moves, the
    record's others move with it, so that no vector is left without the model that made it
    (nor beside another's provenance)."""
    names = set(reserved)
    if any(k in record for k in names.intersection(VECTOR_FIELDS)):
        names.update(VECTOR_FIELDS)
    kept = {k: v for k, v in record.items() if k in names}
    if kept and "metadata" in record:
        kept["metadata"] = record["metadata"]
    return {k: v for k, v in record.items() if k not in kept}, kept


def as_given(record: dict[str, Any], made_by: Callable[[dict[str, Any]], bool],
             written: Iterable[str]) -> dict[str, Any]:
    """The input record that an output record of :func:`under_metadata` was made from, when
    ``made_by`` says that the command wrote ``record`` (else ``record`` itself): without the
    fields it wrote (``written``), and with the record's own fields that it kept under
    ``metadata`` back under their own names (a MOS stored as ``score``, a gold label stored as
    ``label``, the record's own ``metadata``); repeated for an output of that output. A command
    that reads its own output again (:func:`prediction_record`, :func:`pair_score_record`) thus
    reads what the user gave, never its earlier result, and writes one level of ``metadata``."""
    names = set(written)
    while made_by(record):
        out = {k: v for k, v in record.items() if k not in names}
        out.update(record.get("metadata") or {})
        record = out
    return record


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _written_metadata(record: dict[str, Any]) -> bool:
    """``metadata`` absent, or an object (what :func:`under_metadata` writes)."""
    return "metadata" not in record or isinstance(record["metadata"], dict)


def prediction_record(record: dict[str, Any]) -> bool:
    """True for a record an earlier ``clsp classify`` wrote (:class:`Prediction`): a string
    ``label`` that is one of its ``scores`` (class -> probability), an optional ``top_k`` list
    and ``metadata`` object."""
    scores, label = record.get("scores"), record.get("label")
    return (isinstance(label, str) and isinstance(scores, dict) and label in scores
            and all(_number(v) and 0 <= v <= 1 for v in scores.values())
            and isinstance(record.get("top_k", []), list) and _written_metadata(record))


PAIR_KINDS = ("audio", "text", "embedding")  # what a side is (``clsp.similarity.Side.kind``)


def pair_score_record(record: dict[str, Any]) -> bool:
    """True for a record an earlier ``clsp similarity`` wrote (:class:`PairScore`): a ``pair``
    naming two side kinds (``audio-text``...), a cosine ``score`` in [-1, 1] and an optional
    ``metadata`` object."""
    pair, score = record.get("pair"), record.get("score")
    return (isinstance(pair, str) and pair.count("-") == 1 and all(k in PAIR_KINDS for k in pair.split("-"))
            and _number(score) and -1 <= score <= 1 and _written_metadata(record))


# "error" marks error records; a prediction holds no vector, so the record's own fields named like an
# embedding record's (a note in ``provenance``, a spreadsheet ``row``) are never read as one downstream
PREDICTION_FIELDS = ("label", "scores", "top_k", *VECTOR_FIELDS, "metadata", "error")
PREDICTION_WRITTEN = ("label", "scores", "top_k", "metadata")  # what a prediction's record holds of them


@dataclass
class Prediction:
    """A zero-shot label for one clip: the input record's fields plus ``label``, ``scores``
    (class -> probability, summing to 1) and, when asked for, ``top_k`` (best classes first);
    the record's own fields named ``label``, ``scores``, ``top_k``, ``metadata`` or ``error``
    (a gold label stored as ``label``; an ``error`` field would make the record read as an
    error record), and named like an embedding record's (:data:`VECTOR_FIELDS`: a note in
    ``provenance``, a caption backend's provenance, a spreadsheet ``row``) are kept under
    ``metadata``, as ``PairScore`` and index hits do. ``fields`` hold no vector that was
    classified (:func:`clsp.zeroshot_items.prediction_fields` leaves it out)."""

    fields: dict[str, Any]
    label: str
    scores: dict[str, float]
    top_k: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out, kept = under_metadata(self.fields, PREDICTION_FIELDS)
        out.update(label=self.label, scores=self.scores)
        if self.top_k is not None:
            out["top_k"] = self.top_k
        if kept:
            out["metadata"] = kept
        return out


PAIR_RESULT_FIELDS = ("score", "pair", "metadata", "error")  # "error" marks error records
PAIR_WRITTEN = ("score", "pair", "metadata")  # what a scored pair's record holds of them


@dataclass
class PairScore:
    """The similarity of one pair: the pair record's fields plus ``id``, ``score`` (cosine in
    [-1, 1], 6 decimals) and ``pair`` (``audio-audio``, ``audio-text``...); the record's own
    fields named ``score``, ``pair``, ``metadata`` or ``error`` are kept under ``metadata``
    (:func:`under_metadata`)."""

    id: Any
    score: float
    pair: str
    fields: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None

    def field(self, key: str) -> Any:
        """A field of the pair record as it was given (``score`` and the like from ``metadata``)."""
        return (self.metadata or {}).get(key) if key in PAIR_RESULT_FIELDS else self.fields.get(key)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.fields, "id": self.id, "score": self.score, "pair": self.pair}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


class SinglePass:
    """A run that streams its results: iterated once. A second loop raises ``RuntimeError``
    saying so (it found nothing, silently, since the inputs were consumed)."""

    _consumed = False

    def _start(self, what: str) -> None:
        if self._consumed:
            raise RuntimeError(f"the results of this {what} were already iterated: it streams them once; keep them "
                               f"with list(...) to read them again")
        self._consumed = True


def group_name(value: Any) -> str:
    """The ``--group-key`` group of a record's value (``search eval``, ``similarity``): a string
    as it is, ``null`` for a missing field or JSON null, any other value as its JSON text
    (``true``, ``3``, ``["a"]``). ``group_names`` keeps values apart whose names meet."""
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "array" if isinstance(value, (list, tuple)) else "object"


def group_names(values: list[Any]) -> list[str]:
    """``group_name`` of each value, except that a value that is not a string, whose JSON text
    is also a string value among ``values`` (the number ``1`` beside the string ``"1"``, a
    missing field beside ``"null"``), is named with its JSON kind (``1 (number)``,
    ``null (null)``; ``1 (number 2)`` where a string is spelled ``1 (number)`` too), so that the
    values stay apart."""
    strings = {v for v in values if isinstance(v, str)}
    names = []
    for value in values:
        name = group_name(value)
        if not isinstance(value, str) and name in strings:
            kind, n = _json_kind(value), 1
            name = f"{group_name(value)} ({kind})"
            while name in strings:  # a string value spelled so too ("1 (number)"): a name no value has
                n += 1
                name = f"{group_name(value)} ({kind} {n})"
        names.append(name)
    return names
