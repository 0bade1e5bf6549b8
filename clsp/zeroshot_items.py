"""Zero-shot labels for input items (audio clips or stored embeddings), one result each.

``clsp classify`` and :func:`clsp.classify` run :func:`predict`; :class:`GoldTally`
gathers the gold labels for the WA/UA report (``clsp.metrics.classification``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from clsp.errors import ClspError, ConfigError, InputError
from clsp.index.records import EmbeddingReader, holds_vector, record_metadata
from clsp.prompts.schema import PromptSet
from clsp.records import Item, public_fields
from clsp.results import PREDICTION_WRITTEN, Prediction, Result, SinglePass, as_given, prediction_record
from clsp.zeroshot import ZeroShotClassifier

CHUNK = 256  # items read ahead so that the audio among them is embedded in batches


def _wants_audio(item: Item, matrix: np.ndarray | None) -> bool:
    """An item to embed from audio: no stored vector (:func:`~clsp.index.records.holds_vector`:
    a spreadsheet ``row`` or a ``provenance`` note beside ``audio`` is the record's own, as in
    ``clsp embed``), and a path the reader resolved."""
    return item.ok and not holds_vector(item.record, matrix is not None) and isinstance(item.record.get("_path"), str)


def item_embeddings(items: Iterable[Item], model: Any, matrix: np.ndarray | None = None, batch_size: int = 32,
                    device: str = "auto") -> Iterator[Result[np.ndarray]]:
    """A (1, D) embedding per item, in order: from its audio (embedded as ``clsp embed``
    does), or its stored ``embedding`` / ``row`` of ``matrix``, checked by
    :class:`~clsp.index.records.EmbeddingReader` against ``model``'s provenance."""
    from clsp.embed import AudioEmbedder, EmbedConfig

    reader = EmbeddingReader(matrix, provenance=model.provenance(), modality="audio",
                             holds="classify scores speech: it takes",
                             fix="give the clips' embeddings (clsp embed without --modality text), or the clips themselves")
    embedder = AudioEmbedder(model, EmbedConfig(batch_size=batch_size, device=device))
    items = iter(items)
    while chunk := list(islice(items, CHUNK)):
        embedded = {res.item.index: res for res in embedder.run([it for it in chunk if _wants_audio(it, matrix)])}
        for item in chunk:
            if item.index in embedded:
                res = embedded[item.index]
                yield Result(item, None if res.error else res.embeddings[:1], res.error)
                continue
            audio = item.record.get("audio") if item.ok else None
            if (item.ok and "audio" in item.record and not (isinstance(audio, str) and audio)
                    and not holds_vector(item.record, matrix is not None)):  # a clip whose path is no path
                yield Result(item, error=InputError(f"record {item.record.get('id')!r}: 'audio' must be a non-empty "
                                                    f"path string, got {json.dumps(audio)[:80]}"))
                continue
            try:
                yield Result(item, reader.vector(item)[None, :])
            except ClspError as exc:
                yield Result(item, error=exc)
    reader.check_positions()


def prediction_fields(record: dict[str, Any], from_audio: bool = False) -> dict[str, Any]:
    """The input fields a prediction keeps: public ones, without the stored vector it classified
    (``embedding`` or ``row`` and ``row_sha256``) and that vector's ``provenance``, which go
    together (as in an index, ``record_metadata``). A record classified ``from_audio`` has no
    such vector: its fields of those names are its own, and ``Prediction`` keeps them under
    ``metadata``."""
    if from_audio:
        return public_fields(record)
    fields = record_metadata({**record, "id": record.get("id")})
    fields["id"] = record.get("id")  # as given: record_metadata names a record for an index
    return {k: fields[k] for k in public_fields(record) if k in fields}


def input_item(item: Item) -> Item:
    """The item as the input it was made from when an earlier ``clsp classify`` wrote its record
    (:func:`~clsp.results.prediction_record`): that run's ``label``, ``scores`` and ``top_k``
    dropped, the record's own fields it kept under ``metadata`` (a gold ``label``) back under
    their names (:func:`~clsp.results.as_given`); any other item as it is."""
    if not item.ok or not isinstance(item.record, dict):
        return item
    record = as_given(item.record, prediction_record, PREDICTION_WRITTEN)
    return item if record is item.record else replace(item, record=record)


def predict(classifier: ZeroShotClassifier, items: Iterable[Item], model: Any, matrix: np.ndarray | None = None,
            batch_size: int = 32, device: str = "auto", top_k: int = 0) -> Iterator[Result[Prediction]]:
    """One :class:`~clsp.results.Prediction` (or error) per item, in input order.

    ``model`` embeds the audio items (and its provenance must match stored embeddings);
    ``top_k`` > 0 adds the k best classes. Errors: the item's own (unreadable audio, a
    stored vector from another model, NaN/inf...), as ``ClspError`` in the result. A record an
    earlier ``clsp classify`` wrote is read as the input it was made from (:func:`input_item`);
    the results carry that item.
    """
    items = (input_item(item) for item in items)
    for res in item_embeddings(items, model, matrix, batch_size, device):
        if res.error is not None:
            yield res
            continue
        try:
            out = classifier.classify(res.value, top_k=top_k or None)[0]
        except ClspError as exc:
            yield Result(res.item, error=exc)
            continue
        fields = prediction_fields(res.item.record, _wants_audio(res.item, matrix))
        yield Result(res.item, Prediction(fields, out["label"], out["scores"], out.get("top_k")))


def prompt_set_of(pack: str | PromptSet | None = None, attribute: str | None = None,
                  labels: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None) -> PromptSet:
    """The classes to choose from: ``labels``, else a ``PromptSet``, else a built-in pack name
    or pack file (``clsp.prompts.load_pack``; default ``"emotion"``) and its ``attribute``. ``labels`` maps each class
    to its prompt sentence or list of sentences; a plain list of sentences makes each sentence a
    class of its own (as CLAP-style zero-shot lists of prompts do). Raises ``ConfigError`` for an
    unknown or invalid pack, and for ``labels`` of another kind or with a prompt that is not a
    string, naming the class, and for ``pack`` and ``labels`` given together."""
    if labels is not None and pack is not None:
        raise ConfigError("give pack= or labels=, not both: labels= are the classes, and the pack would go unused")
    if labels is not None:
        from clsp.prompts.schema import build_prompt_set

        return build_prompt_set(attribute or "label", {"classes": _label_classes(labels)}, "labels")
    if isinstance(pack, PromptSet):
        return pack
    from clsp.prompts import load_pack

    return load_pack("emotion" if pack is None else pack).get(attribute)


def check_matrix_file(path: str) -> None:
    """``ConfigError`` naming ``path`` and what it holds when it is a file but no NumPy ``.npy``
    matrix (an audio file, a JSONL file of records, other binary data); a missing or unreadable
    file is left to ``clsp.index.records.load_matrix``, which names it."""
    from clsp.sniff import not_npy_kind

    kind = not_npy_kind(path) if os.path.isfile(path) else None
    if kind is None:
        return
    raise ConfigError(f"--npy {path}: not a NumPy .npy matrix ({kind}); give the matrix that clsp embed --npy "
                      "wrote beside these records")


def _label_classes(labels: Any) -> dict[str, dict[str, list]]:
    """``labels`` (see ``prompt_set_of``) as a pack's ``classes``; ``ConfigError`` naming what is wrong."""
    if isinstance(labels, str):
        raise ConfigError("labels: give the classes as a mapping (class -> prompt sentence or sentences) or a "
                          f"list of prompt sentences, not one string ({labels!r})")
    if not isinstance(labels, Mapping):
        try:
            listed = list(labels)
        except TypeError:
            raise ConfigError("labels: give the classes as a mapping (class -> prompt sentence or sentences) or a "
                              f"list of prompt sentences, got {type(labels).__name__}") from None
        bad = next((i for i, p in enumerate(listed) if not isinstance(p, str)), None)
        if bad is not None:
            raise ConfigError(f"labels[{bad}]: a prompt sentence must be a string, got {type(listed[bad]).__name__}")
        again = next((i for i, p in enumerate(listed) if p in listed[:i]), None)
        if again is not None:
            raise ConfigError(f"labels[{again}]: {listed[again]!r} is given twice; each prompt of a list is a class of "
                              "its own, so give each once (or a mapping: class -> its prompts)")
        labels = {p: p for p in listed}
    classes = {}
    for name, prompts in labels.items():
        if not isinstance(name, str):
            raise ConfigError(f"labels: class {name!r}: a class name must be a string, got {type(name).__name__}")
        many = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(many, (list, tuple)) or not all(isinstance(p, str) for p in many):
            raise ConfigError(f"labels: class {name!r}: give its prompt as a string or a list of strings, "
                              f"got {prompts!r}")
        classes[name] = {"prompts": list(many)}
    return classes


class Classification(SinglePass):
    """Zero-shot predictions, iterated (once) as one ``Result[Prediction]`` per input in order;
    the ``classifier`` (classes, softmax scale) and the model's ``provenance`` are known at
    once. A second loop raises ``RuntimeError``: keep the results with ``list(...)``."""

    def __init__(self, classifier: ZeroShotClassifier, items: Iterable[Item], model: Any, provenance: dict,
                 **options: Any):
        self.classifier, self.items, self.model, self.provenance = classifier, items, model, provenance
        self.options = options

    def __iter__(self) -> Iterator[Result[Prediction]]:
        self._start("clsp.classify")
        return predict(self.classifier, self.items, self.model, **self.options)


def classify(model: Any, inputs: Iterable[Any], *, pack: str | PromptSet | None = None, attribute: str | None = None,
             labels: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None, temperature: float | None = None,
             top_k: int = 0, npy: str | None = None, batch_size: int = 32, device: str = "auto",
             base_dir: str | os.PathLike | None = None) -> Classification:
    """Classify speech zero-shot: one :class:`~clsp.results.Prediction` (or error) per input.

    ``model``: a loaded CLSP model or a name for ``clsp.load_model``. ``inputs``: a list of
    audio paths, records (``audio``, or a stored ``embedding`` / ``row`` of the ``npy`` matrix)
    or ``Item`` s (see ``clsp.records.as_items``: a folder or a glob pattern in the list stands
    for its audio files), or the path of one manifest (JSONL or a list of paths, as ``clsp
    classify`` reads it) or of one folder. Relative audio paths resolve against ``base_dir``
    (default: a manifest's own folder, else the working directory). Classes: see :func:`prompt_set_of`.
    Probabilities are ``softmax(scale * cosine)`` with the model's logit scale, or
    ``1 / temperature``. Raises ``ConfigError`` for a bad pack, for an ``npy`` file that is
    no ``.npy`` matrix (saying what it holds: audio, text...) and for a ``base_dir`` that is no
    folder, before the model is loaded.
    """
    from clsp.index.records import load_matrix
    from clsp.inputs import check_audio_root
    from clsp.models.checkpoint import as_model
    from clsp.records import as_items, iter_items

    prompt_set = prompt_set_of(pack, attribute, labels)
    if npy:
        check_matrix_file(npy)
    check_audio_root(base_dir, "base_dir=")
    if _names_a_manifest(inputs):
        items = iter_items(os.fspath(inputs), "audio", audio_root=base_dir)
    elif isinstance(inputs, (str, os.PathLike)) and os.path.isdir(inputs):  # a folder: the audio below it
        items = as_items([inputs], base_dir)
    else:
        items = as_items(inputs, base_dir)
    net = as_model(model)
    clf = ZeroShotClassifier.from_model(net, prompt_set, temperature)
    return Classification(clf, items, net, net.provenance(), matrix=load_matrix(npy) if npy else None,
                          batch_size=batch_size, device=device, top_k=top_k)


def _names_a_manifest(inputs: Any) -> bool:
    """Whether ``inputs`` is the path of one existing manifest file (by its content: JSONL or a
    text list of paths), not audio nor a list. ``InputError`` for a path that names no file."""
    if not isinstance(inputs, (str, os.PathLike)):
        return False
    from clsp.inputs import sniff_file

    path = os.fspath(inputs)
    if path != "-" and not os.path.lexists(path):
        raise InputError(f"inputs: {path}: no such file (give a manifest's path, or a list of audio paths or records)")
    return path != "-" and os.path.isfile(path) and sniff_file(path) == "manifest"


@dataclass
class GoldTally:
    """Gold and predicted labels of the items that carry a known gold label in ``label_key``.

    Gold labels not in the prompt set (or missing) are counted in ``unknown`` and left out.
    """

    prompt_set: PromptSet
    label_key: str
    gold: list[str] = field(default_factory=list)
    pred: list[str] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)
    fields: set[str] = field(default_factory=set)  # of the counted records, to tell a key that none has
    key_seen: bool = False  # some input record, counted or failed, has label_key: no typo

    def add(self, record: dict[str, Any], label: str) -> str | None:
        """Count one prediction; returns the canonical gold label, or None when unknown."""
        self.fields.update(public_fields(record))
        value = record.get(self.label_key)
        canonical = None if value is None else self.prompt_set.canonical_label(value)
        if canonical is None:
            key = "<missing>" if value is None else str(value)
            self.unknown[key] = self.unknown.get(key, 0) + 1
            return None
        self.gold.append(canonical)
        self.pred.append(label)
        return canonical

    def check_key(self) -> None:
        """Raise ``ConfigError`` naming ``label_key`` (and the fields the records have) when
        records were counted and none of them has that field: a mistyped key, not a gap."""
        fields = self.fields
        if fields and self.label_key not in fields and not self.key_seen:
                    raise ConfigError(f"--label-key {self.label_key!r}: no record has this field (their fields: "
                              f"{', '.join(sorted(fields)[:12])}{', ...' if len(fields) > 12 else ''})")

    def summary(self, pack: str, provenance: dict, n_boot: int = 1000) -> dict[str, Any]:
        """The evaluation summary: WA, UA, per-class recall, confusion and 95% bootstrap CIs
        (``clsp.metrics.classification.classification_report``), with the same keys whatever
        the number of gold labels: an undefined statistic or interval (none counted) is ``None``
        (``[None, None]`` for an interval)."""
        from clsp.metrics.classification import classification_report

        metrics = classification_report(self.gold, self.pred, labels=self.prompt_set.output_classes, n_boot=n_boot)
        if n_boot > 0:
            metrics.setdefault("wa_ci", [None, None])
            metrics.setdefault("ua_ci", [None, None])
            metrics.setdefault("ci_level", 0.95)
        return {"task": "classify", "pack": pack, "attribute": self.prompt_set.attribute, "label_key": self.label_key,
                "model": provenance, "skipped_gold": dict(self.unknown), **metrics}
