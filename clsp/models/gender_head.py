"""A frozen gender head over pretrained speaker d-vectors, shared by the acoustic captioner
and the ``speaker_fusion`` tower.

``weights/gender_head.json`` holds a logistic regression ``p(female) = sigmoid(w . d + b)``
over the concatenated, each L2-normalised d-vectors of the speaker encoders it names
(``"speakers"``, e.g. ``["ge2e", "voicefilter"]``). It is fitted by
``examples/default_model/gender_head.py`` on synthetic voices (Flite, espeak-ng, MBROLA
diphone voices) and the EmoDB training speakers only; that script prints its accuracy on
held-out speakers. Towers on other speaker encoders read ``weights/gender_head_<a>_<b>.json``
(``head_file``), e.g. ``gender_head_ge2e.json`` for GE2E alone.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

HEAD_FILE = Path(__file__).resolve().parent / "weights" / "gender_head.json"


def head_file(speakers: list[str]) -> Path:
    """The packaged head for the speaker encoders ``speakers``: ``weights/gender_head.json``
    (the captioner's) when it was fitted on them, else ``weights/gender_head_<a>_<b>.json``."""
    if read_head()["speakers"] == list(speakers):
        return HEAD_FILE
    return HEAD_FILE.with_name(f"gender_head_{'_'.join(speakers)}.json")


@lru_cache(maxsize=1)
def read_head(path: str = str(HEAD_FILE)) -> dict:
    """The packaged head: ``{"speakers": [...], "weights": [...], "bias": float, ...}``.
    Raises ``ModelError`` when missing or unreadable."""
    from clsp.errors import ModelError

    try:
        head = json.loads(Path(path).read_text())
        head["speakers"], head["weights"], head["bias"] = list(head["speakers"]), list(head["weights"]), float(head["bias"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: cannot read the gender head ({exc})") from None
    return head


def gender_linear(speakers: list[str], load_weights: bool = True) -> nn.Linear:
    """A frozen ``Linear(speaker_dim, 1)`` whose output is the female log-odds of the
    concatenated d-vectors of ``speakers``; weights from the packaged head when
    ``load_weights`` (``ConfigError`` when the head was fitted on other speaker encoders)."""
    from clsp.errors import ConfigError

    head = read_head(str(head_file(speakers))) if load_weights else read_head()
    if load_weights and head["speakers"] != list(speakers):
        raise ConfigError(f"gender head: fitted on speaker encoders {head['speakers']}, the tower has {list(speakers)}")
    layer = nn.Linear(len(head["weights"]) if load_weights else 256 * len(speakers), 1)
    if load_weights:
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(head["weights"], dtype=torch.float32)[None])
            layer.bias.fill_(head["bias"])
    layer.requires_grad_(False)
    return layer
