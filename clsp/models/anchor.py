"""Gender anchor: the joint space's gender subspace, driven by a calibrated gender head.

A contrastive speech head trained on few voices learns gender from whatever separates
them in training (pitch and loudness statistics, the training voices' d-vectors) and
carries that into its zero-shot answers on real speech. The gender anchor takes the
decision away from it: the captions' gender subspace of the joint space (text side) is
projected out of the speech head's output, and the speech embedding's component there
is set by the frozen gender head of the speech tower alone
(``clsp.models.gender_head``: log-odds of a female voice from pretrained speaker
d-vectors)::

    y   = normalize(x - B^T B x)                         x: speech head output (N, D)
    out = y + scale * tanh(slope * logodds) * u          then L2-normalised by the model

``B`` ``(rank, D)``: orthonormal (or zero) rows spanning the differences between text embeddings of
captions that differ only in gender words (``swap_gender``): exactly for captions that name
a gender and nothing else (``exact_captions``: ``BASE_CAPTIONS`` and the built-in packs'
gender prompts), then the principal directions of the training captions' differences;
``u`` ``(D,)``: the first row, the unit mean difference female - male. ``B`` and ``u`` are buffers fitted from the
training captions when a model with an unfitted anchor starts training
(``fit_gender_anchor``; a fine-tuned model keeps its parent's), for a text side that
stays frozen; ``scale`` and ``slope`` are trained. The decision threshold stays the gender
head's own (log-odds 0), which was fitted with every training voice weighted equally. A zero-shot question about
gender then compares ``cos(out, t_female) - cos(out, t_male)``, whose sign follows the
gender head for any caption pair in the subspace; for a pair only nearly in it, the part
outside meets the trained ``y`` and can tip answers the head is unsure of (on the default
model's training data that moved zero-shot gender on English actors by up to 3.4 points
between training seeds before the gender-only captions were spanned exactly).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

SWAPS = {"man": "woman", "woman": "man", "male": "female", "female": "male", "he": "she", "she": "he",
         "his": "her", "her": "his", "men": "women", "women": "men", "boy": "girl", "girl": "boy"}
FEMALE_WORDS = {"woman", "female", "she", "her", "women", "girl"}
_WORD = re.compile(r"\b(" + "|".join(SWAPS) + r")\b", re.IGNORECASE)
# caption pairs that name the speaker's gender and nothing else, added to the training captions' pairs;
# their differences lie in the subspace exactly (with the built-in packs' gender prompts: ``exact_captions``)
BASE_CAPTIONS = ("A man speaks.", "A male speaker.", "The voice of a man.", "A male voice.", "He is speaking.",
                 "A man is talking.", "A male speaker talks.", "An adult man speaks.", "A male speaker speaks.",
                 "The voice of a male speaker.", "A man.", "A man speaking.", "A man's voice.",
                 "Speech from a man.", "A male voice speaks.")


def exact_captions() -> list[str]:
    """``BASE_CAPTIONS`` and the prompts of every built-in prompt pack's ``gender`` attribute:
    the captions whose gender-swap differences ``fit_gender_anchor`` puts into the anchor's
    subspace exactly, so that a zero-shot gender question asked with them is answered by
    the gender head alone."""
    from clsp.prompts import builtin_pack_names, load_pack

    out = list(BASE_CAPTIONS)
    for name in builtin_pack_names():
        prompt_set = load_pack(name).attributes.get("gender")
        if prompt_set is not None:
            out += [p for c in prompt_set.classes for p in c.prompts]
    return list(dict.fromkeys(out))


def swap_gender(caption: str) -> tuple[str, bool] | None:
    """The caption with gender words swapped (man <-> woman, male <-> female, he <-> she,
    his <-> her, ...) and whether the original names a female speaker; ``None`` when it names
    no gender or mixes both."""
    words = [m.group(1).lower() for m in _WORD.finditer(caption)]
    if not words:
        return None
    female = {w in FEMALE_WORDS for w in words}
    if len(female) != 1:
        return None

    def swap(m: re.Match) -> str:
        w = SWAPS[m.group(1).lower()]
        return w.capitalize() if m.group(1)[0].isupper() else w

    return _WORD.sub(swap, caption), female.pop()


class GenderAnchor(nn.Module):
    """``forward(x (N, D), logodds (N, 1)) -> (N, D)``, see the module docstring."""

    def __init__(self, dim: int, rank: int = 4):
        super().__init__()
        self.rank = rank
        self.register_buffer("basis", torch.zeros(rank, dim))
        self.register_buffer("direction", torch.zeros(dim))
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.slope = nn.Parameter(torch.tensor(0.5))

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has set the subspace (a new anchor's buffers are zero)."""
        return bool(self.direction.abs().sum() > 0)

    def forward(self, x: torch.Tensor, logodds: torch.Tensor) -> torch.Tensor:
        basis = self.basis.to(x.dtype)
        y = F.normalize(x - (x @ basis.T) @ basis, dim=-1)
        gate = torch.tanh(self.slope * logodds.to(x.dtype).reshape(-1, 1))
        return y + self.scale * gate * self.direction.to(x.dtype)

    @torch.no_grad()
    def fit(self, female: torch.Tensor, male: torch.Tensor, exact: int = 0) -> float:
        """Set ``basis`` and ``direction`` from paired unit text embeddings ``(P, D)`` (row i
        of ``female`` and of ``male`` differ only in gender words). The differences of the
        first ``exact`` pairs are spanned exactly (as far as ``rank`` allows), the remaining
        rows by the principal directions of what the others keep outside them. Returns the
        share of the differences' energy the basis holds."""
        diff = (female - male).double()
        u = F.normalize(diff.mean(0), dim=0)
        rest = diff - (diff @ u)[:, None] * u
        # rows beyond the pairs' own rank stay zero (they project nothing out)
        first = _principal_rows(rest[:exact], self.rank - 1)
        rest = rest[exact:] - (rest[exact:] @ first.T) @ first
        keep = torch.cat([first, _principal_rows(rest, self.rank - 1 - len(first))])
        basis = torch.zeros(self.rank, diff.shape[1], dtype=diff.dtype)
        basis[0], basis[1 : 1 + len(keep)] = u, keep
        self.basis.copy_(basis.float())
        self.direction.copy_(u.float())
        return float(((diff @ basis.T) ** 2).sum() / (diff ** 2).sum().clamp(min=1e-12))


def _principal_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """Up to ``k`` orthonormal rows spanning the principal directions of ``x`` ``(P, D)``
    (fewer when ``x`` has lower rank; ``(0, D)`` for none)."""
    if k <= 0 or x.shape[0] == 0:
        return x.new_zeros(0, x.shape[1])
    _, sv, vh = torch.linalg.svd(x, full_matrices=False)
    return vh[:k][sv[:k] > 1e-6 * float(sv.max().clamp(min=1e-12))]


def fit_gender_anchor(model, captions: list[str], max_pairs: int = 2000) -> dict:
    """Fit ``model.gender_anchor`` from ``captions`` (the training captions) plus
    ``exact_captions()``: each caption naming one gender is paired with its gender-swapped
    twin and both go through the (frozen) text side; the ``exact_captions`` pairs' differences
    are spanned exactly. Returns ``{"pairs", "exact", "energy"}``. With fewer independent
    pair differences than ``rank``, the remaining basis rows stay zero."""
    pairs: dict[str, str] = {}

    def add(caption: str) -> None:
        swapped = swap_gender(caption)
        if swapped is not None and len(pairs) < max_pairs:
            twin, is_female = swapped
            female, male = (caption, twin) if is_female else (twin, caption)
            pairs.setdefault(female, male)

    for caption in exact_captions():
        add(caption)
    exact = len(pairs)
    for caption in dict.fromkeys(captions):
        add(caption)
    anchor = model.gender_anchor
    female, male = list(pairs), list(pairs.values())
    was_training = model.training
    model.eval()
    try:
        t_f = torch.cat([model.encode_text(female[i : i + 256]) for i in range(0, len(female), 256)])
        t_m = torch.cat([model.encode_text(male[i : i + 256]) for i in range(0, len(male), 256)])
    finally:
        model.train(was_training)
    energy = anchor.fit(t_f.to(anchor.basis.device), t_m.to(anchor.basis.device), exact=exact)
    return {"pairs": len(pairs), "exact": exact, "energy": energy}
