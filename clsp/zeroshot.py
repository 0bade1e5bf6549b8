"""Zero-shot classification of speech embeddings against a prompt pack.

Each class embedding is the mean of its prompts' unit-norm text embeddings, renormalized.
A clip's class scores are the cosines between its (unit-norm) audio embedding and the
class embeddings; probabilities are ``softmax(scale * cosine)`` where ``scale`` is the
model's ``exp(logit_scale)`` or ``1 / temperature``. The label is the best prompt class,
mapped through the pack's ``merge`` (IEMOCAP counts "excited" as "happy", as in the
paper); the probability of a merged class is added to its target's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from clsp.errors import ConfigError, InputError
from clsp.prompts import PromptSet

TextEncoder = Callable[[list[str]], Any]
SAME_CLASS_TOLERANCE = 1e-6  # two class embeddings this close (1 - cosine) are the same class


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of a numpy array, list or (detached) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit length (by :func:`clsp.index.vectors.unit_rows`, as the index and
    search do: rows of any finite size keep their direction); an all-zero or non-finite row
    is refused (it has no direction)."""
    from clsp.index.vectors import unit_rows

    x = np.moveaxis(np.asarray(x), axis, -1)
    if not np.isfinite(x).all() or not x.any(axis=-1).all():
        raise InputError("an embedding is all zeros or not finite")
    return np.moveaxis(unit_rows(x), -1, axis)


def ensemble_class_embeddings(prompt_set: PromptSet, encode_text: TextEncoder) -> np.ndarray:
    """(C, D) class embeddings: mean of normalized prompt embeddings per class, renormalized.

    Raises ``ConfigError`` naming the prompt whose text embedding holds NaN/inf or is zero, and
    naming two classes whose embeddings are the same (cosine >= 1 - 1e-6: prompts that differ
    only in what the text model does not tell apart, such as letter case), which would score
    every clip alike and label it by the tie-break.
    """
    prompts = [p for c in prompt_set.classes for p in c.prompts]
    emb = to_numpy(encode_text(prompts))
    bad = ~np.isfinite(emb).all(axis=1) | ~emb.any(axis=1)
    if bad.any():
        n = int(np.argmax(bad))
        owner = next(c.name for c in prompt_set.classes if prompts[n] in c.prompts)
        raise ConfigError(f"prompt {prompts[n]!r} of class {owner!r}: the model's text embedding is zero or holds "
                          "NaN or infinite values")
    emb = l2_normalize(emb)
    out, i = [], 0
    for c in prompt_set.classes:
        out.append(emb[i : i + len(c.prompts)].mean(axis=0))
        i += len(c.prompts)
    classes = l2_normalize(np.stack(out))
    same = np.triu(classes @ classes.T >= 1 - SAME_CLASS_TOLERANCE, k=1)
    if same.any():
        a, b = (int(v) for v in np.argwhere(same)[0])
        names = prompt_set.class_names
        raise ConfigError(f"classes {names[a]!r} and {names[b]!r} of attribute {prompt_set.attribute!r} have the "
                          "same text embedding: their prompts differ only in what the model does not tell apart "
                          "(letter case, spacing...), so every clip would score alike; give them different prompts")
    return classes


def scale_for(logit_scale: float | None = None, temperature: float | None = None) -> float:
    """Softmax scale: ``1/temperature`` when given, else ``exp(logit_scale)`` (ln of the scale).

    Raises ``ConfigError`` when the scale would not be a finite positive number.
    """
    if temperature is not None:
        if not (temperature > 0 and math.isfinite(temperature)) or not math.isfinite(1.0 / temperature):
            raise ConfigError(f"temperature must be a positive number, got {temperature}")
        return 1.0 / temperature
    if logit_scale is None:
        raise ConfigError("give a temperature or a model logit scale")
    value = float(logit_scale)
    if not math.isfinite(value) or value > math.log(np.finfo(np.float64).max):
        raise ConfigError(f"the model's logit_scale {value} gives no finite softmax scale; pass --temperature")
    return float(math.exp(value))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class ZeroShotClassifier:
    """Class embeddings of one prompt set plus the softmax scale."""

    prompt_set: PromptSet
    class_embeddings: np.ndarray
    scale: float

    @classmethod
    def from_model(cls, model: Any, prompt_set: PromptSet, temperature: float | None = None) -> "ZeroShotClassifier":
        """Embed the prompts with ``model.encode_text``; scale from ``model.logit_scale``."""
        import torch

        with torch.no_grad():
            class_emb = ensemble_class_embeddings(prompt_set, model.encode_text)
            logit_scale = None if temperature is not None else float(model.logit_scale.detach().cpu())
        return cls(prompt_set, class_emb, scale_for(logit_scale, temperature))

    @property
    def dim(self) -> int:
        return int(self.class_embeddings.shape[1])

    def cosines(self, audio_embeddings: Any) -> np.ndarray:
        """(N, C) cosines between clips and prompt classes (audio rows are renormalized).

        Raises ``InputError`` naming the row when an embedding is zero or holds NaN/inf, or
        when a cosine is not finite (so no NaN ever becomes the best class).
        """
        a = to_numpy(audio_embeddings)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise InputError(f"audio embeddings have shape {tuple(a.shape)}, expected (N, {self.dim})")
        bad = ~np.isfinite(a).all(axis=1) | ~a.any(axis=1)
        if bad.any():
            raise InputError(f"audio embedding {int(np.argmax(bad))} is all zeros or holds NaN or infinite values")
        from clsp.index.vectors import unit_rows

        with np.errstate(over="ignore", invalid="ignore"):
            cos = unit_rows(a) @ self.class_embeddings.T
        bad = ~np.isfinite(cos).all(axis=1)
        if bad.any():
            raise InputError(f"audio embedding {int(np.argmax(bad))}: its cosines with the classes are not finite")
        return cos

    def classify(self, audio_embeddings: Any, top_k: int | None = None) -> list[dict]:
        """Per clip: ``label``, ``scores`` (output class -> probability) and optional ``top_k``."""
        cos = self.cosines(audio_embeddings)
        probs = _softmax(self.scale * cos)
        names = self.prompt_set.class_names
        outputs = self.prompt_set.output_classes
        column = {name: outputs.index(self.prompt_set.output_class(name)) for name in names}
        merged = np.zeros((probs.shape[0], len(outputs)))
        for j, name in enumerate(names):
            merged[:, column[name]] += probs[:, j]
        results = []
        for i in range(probs.shape[0]):
            best = names[int(np.argmax(cos[i]))]
            rec: dict = {
                "label": self.prompt_set.output_class(best),
                "scores": {c: round(float(merged[i, k]), 6) for k, c in enumerate(outputs)},
            }
            if top_k:
                order = np.argsort(-merged[i], kind="stable")[:top_k]
                rec["top_k"] = [{"label": outputs[k], "score": round(float(merged[i, k]), 6)} for k in order]
            results.append(rec)
        return results


def gold_labels(prompt_set: PromptSet, raw: Sequence[Any]) -> list[str | None]:
    """Map gold labels to output classes (names or aliases, any case); None when unknown."""
    return [prompt_set.canonical_label(x) for x in raw]
