"""Gender of a voice inferred from pitch, third formant and spectral tilt (see default_bins.json)."""

from __future__ import annotations

import math

from clsp.caption.bins import Bins


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


def infer_gender(overall: dict, bins: Bins) -> str | None:
    """'female', 'male', or None when the clip has too little voicing to tell."""
    score = gender_score(overall, bins)
    if score is None:
        return None
    return "female" if score > 0 else "male"


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
