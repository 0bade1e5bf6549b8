"""Gender of a voice, inferred from a pretrained speaker embedding and, as a fallback, from
pitch, third formant and spectral tilt (see default_bins.json).

The speaker-embedding head (``clsp.models.gender_head``: ``clsp/models/weights/gender_head.json``)
is a logistic regression on pretrained speaker d-vectors, fitted by
examples/default_model/gender_head.py on Flite, espeak-ng and MBROLA voices and the EmoDB
training speakers only. A d-vector describes the
voice as a whole, so it does not flip with the recording's bandwidth the way formants do.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from clsp.caption.bins import Bins

MIN_SPEAKER_SECONDS = 0.3  # shorter clips fall back to the acoustic score


def gender_score(overall: dict, bins: Bins) -> float | None:
    """Score in semitones, above 0 for a female-sounding voice; None without voiced speech."""
    median, p10 = overall.get("f0_median_hz"), overall.get("f0_p10_hz")
    if not median or not p10:
        return None
    g = bins.gender
    score = 12.0 * math.log2(math.sqrt(median * p10) / g["f0_ref_hz"])
    formants = overall.get("formants_hz")
    if formants and len(formants) >= 3 and formants[2] is not None:
        score += g["formant_weight"] * 12.0 * math.log2(formants[2] / g["f3_ref_hz"])
    tilt = overall.get("alpha_ratio_db")
    if tilt is not None:
        score -= g["tilt_weight"] * (tilt - g["alpha_ref_db"])
    return float(score)


@lru_cache(maxsize=1)
def _speaker_head():
    """(speaker encoders, frozen Linear) of the packaged gender head."""
    from clsp.models.fusion import SPEAKER_ENCODERS
    from clsp.models.gender_head import gender_linear, head_settings, read_head

    head = read_head()
    names, settings = head["speakers"], head_settings(head)
    return [SPEAKER_ENCODERS[n](**settings.get(n, {})).eval() for n in names], gender_linear(names, True, settings).eval()


SPEAKER_BATCH_SECONDS = 240.0  # audio per speaker-encoder call when clips are scored together


def speaker_female_logits(waves, sample_rate: int = 16000) -> list[float | None]:
    """Log-odds that each 16 kHz mono waveform ``(S_i,)`` is a female voice, from its speaker
    d-vectors (``p = sigmoid(w . d + b)``); None for clips under ``MIN_SPEAKER_SECONDS``.
    Clips go through the speaker encoders together (at most ``SPEAKER_BATCH_SECONDS`` of
    audio per call), which on a CPU with native bfloat16 (AMX) is several times faster than one at a time
    (``clsp.models.lstm_precision``); each clip's answer does not depend on the others."""
    import torch

    xs = [torch.as_tensor(w, dtype=torch.float32).reshape(-1) for w in waves]
    out: list[float | None] = [None] * len(xs)
    live = [i for i, x in enumerate(xs) if x.numel() >= MIN_SPEAKER_SECONDS * sample_rate]
    if not live:
        return out
    encoders, head = _speaker_head()
    groups, group, seconds = [], [], 0.0
    for i in live:
        if group and seconds + xs[i].numel() / sample_rate > SPEAKER_BATCH_SECONDS:
            groups.append(group)
            group, seconds = [], 0.0
        group.append(i)
        seconds += xs[i].numel() / sample_rate
    groups.append(group)
    with torch.no_grad():
        for group in groups:
            lengths = torch.tensor([xs[i].numel() for i in group])
            batch = torch.zeros(len(group), int(lengths.max()))
            for row, i in enumerate(group):
                batch[row, : xs[i].numel()] = xs[i]
            d = torch.cat([enc(batch, lengths) for enc in encoders], dim=-1)
            for i, logit in zip(group, head(d)[:, 0].tolist()):
                out[i] = float(logit)
    return out


def speaker_female_logit(wave, sample_rate: int = 16000) -> float | None:
    """``speaker_female_logits`` of one clip."""
    return speaker_female_logits([wave], sample_rate)[0]


def infer_gender(overall: dict, bins: Bins, speaker_logit: float | None = None) -> str | None:
    """'female', 'male', or None when the clip has too little voicing to tell.

    With ``speaker_logit`` (``speaker_female_logit``) the speaker embedding decides; otherwise
    the pitch/formant/tilt score does."""
    if speaker_logit is not None:
        return "female" if speaker_logit > 0 else "male"
    score = gender_score(overall, bins)
    if score is None:
        return None
    return "female" if score > 0 else "male"


# Pitch words a caption may not pair with a gender: a "very low" woman or a "very high" man
# reads as a contradiction, so the extreme label is softened one step.
_SOFTEN = {("female", "very low"): "low", ("male", "very high"): "high"}


def pitch_word(bins: Bins, f0_median_hz: float | None, gender: str | None, child: bool = False) -> str | None:
    """The pitch label relative to ``gender``'s norms (default_bins.json ``pitch``), never one
    that contradicts the stated gender.

    The bins hold adult norms only, so a stated child's voice (``child``) is judged against
    its gender's adult norms with "very low" softened to "low": a child (boy, girl) is never
    called "very deep", and a voice low even for an adult is still not called high."""
    label = bins.label("pitch", f0_median_hz, gender or "unknown")
    if child and label == "very low":
        return "low"
    return _SOFTEN.get((gender, label), label)


def normalise_gender(value) -> str | None:
    """Map a metadata gender value (M/F/male/female/man/woman...) to 'male'/'female'."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in {"m", "male", "man", "boy", "masculine"}:
        return "male"
    if v in {"f", "female", "woman", "girl", "feminine"}:
        return "female"
    return None
