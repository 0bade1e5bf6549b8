"""Named bins for acoustic measurements, read from an editable JSON file.

The defaults live in ``default_bins.json`` next to this module; each section documents its
measure and units in a ``_doc`` field. ``load_bins(path)`` reads a user's copy instead.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from clsp.errors import ConfigError

DEFAULT_BINS_PATH = Path(__file__).with_name("default_bins.json")
SCALAR_SECTIONS = ("pitch_range", "pitch_slope", "rate", "loudness", "loudness_relative", "vocal_effort",
                   "dynamics", "voicing", "pauses")
VOICE_QUALITY_KEYS = ("creaky_jitter", "creaky_hnr_db", "creaky_f0_p10_hz", "hoarse_jitter", "hoarse_shimmer",
                      "hoarse_hnr_db", "breathy_cpps_db", "breathy_hnr_db", "tense_alpha_db")
GENDER_KEYS = ("f0_ref_hz", "f3_ref_hz", "alpha_ref_db", "formant_weight", "tilt_weight")
GENDERS = ("male", "female", "unknown")


def _check_edges(name: str, edges, labels) -> None:
    if not isinstance(edges, list) or not all(isinstance(e, (int, float)) for e in edges):
        raise ConfigError(f"bins section {name!r}: edges must be a list of numbers")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError(f"bins section {name!r}: edges must increase strictly, got {edges}")
    if not isinstance(labels, list) or len(labels) != len(edges) + 1:
        raise ConfigError(f"bins section {name!r}: needs {len(edges) + 1} labels for {len(edges)} edges")


@dataclass(frozen=True)
class Bins:
    """Validated bin definitions plus the checksum of the file they came from."""

    spec: dict
    checksum: str
    source: str

    def label(self, section: str, value: float | None, gender: str = "unknown") -> str | None:
        """The label of ``value`` in ``section`` (None when the value was not measurable)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        sec = self.spec[section]
        edges = sec[gender if gender in GENDERS else "unknown"] if section == "pitch" else sec["edges"]
        return sec["labels"][bisect.bisect_right(edges, value)]

    def labels(self, section: str) -> list[str]:
        return list(self.spec[section]["labels"])

    def voice_quality(self, overall: dict) -> str | None:
        """'creaky', 'hoarse', 'breathy', 'tense' or None (modal) from Praat measures (see the section's _doc)."""
        q, o = self.spec["voice_quality"], overall
        voicing = self.label("voicing", o.get("voiced_ratio"))
        if voicing in (None, "whispered"):
            return None  # whisper is stated by voicing; too few periods to judge phonation

        def at_least(key, limit):
            return o.get(key) is not None and o[key] >= limit

        def at_most(key, limit):
            return o.get(key) is not None and o[key] <= limit

        if at_least("jitter_local", q["creaky_jitter"]) and at_most("hnr_db", q["creaky_hnr_db"]) \
                and at_most("f0_p10_hz", q["creaky_f0_p10_hz"]):
            return "creaky"
        if at_least("jitter_local", q["hoarse_jitter"]) and at_least("shimmer_local", q["hoarse_shimmer"]) \
                and at_most("hnr_db", q["hoarse_hnr_db"]):
            return "hoarse"
        little_voicing = voicing != "voiced"
        if at_most("cpps_db", q["breathy_cpps_db"]) and (little_voicing or at_most("hnr_db", q["breathy_hnr_db"])):
            return "breathy"
        if at_least("alpha_ratio_db", q["tense_alpha_db"]):
            return "tense"
        return None

    @property
    def gender(self) -> dict:
        return self.spec["gender"]

    @property
    def change(self) -> dict:
        return self.spec["segment_change"]


def validate_bins(spec: dict, source: str) -> None:
    """Raise ConfigError naming the first section of ``spec`` that is unusable."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: bins must be a JSON object")
    for name in ("pitch", *SCALAR_SECTIONS, "voice_quality", "gender", "segment_change"):
        if name not in spec:
            raise ConfigError(f"{source}: bins section {name!r} is missing")
    for gender in GENDERS:
        _check_edges(f"pitch.{gender}", spec["pitch"].get(gender), spec["pitch"].get("labels"))
    for name in SCALAR_SECTIONS:
        _check_edges(name, spec[name].get("edges"), spec[name].get("labels"))
    for key in VOICE_QUALITY_KEYS:
        if not isinstance(spec["voice_quality"].get(key), (int, float)):
            raise ConfigError(f"{source}: bins section 'voice_quality' needs a number for {key!r}")
    for key in GENDER_KEYS:
        if not isinstance(spec["gender"].get(key), (int, float)):
            raise ConfigError(f"{source}: bins section 'gender' needs a number for {key!r}")
    for key in ("pitch_st", "rate_ratio", "loudness_db"):
        if not isinstance(spec["segment_change"].get(key), (int, float)):
            raise ConfigError(f"{source}: bins section 'segment_change' needs a number for {key!r}")


def load_bins(path: str | Path | None = None) -> Bins:
    """Read and validate a bins file (the packaged defaults when ``path`` is None), as prompt
    packs and configs are read (``clsp.streams.read_text_file``: gzip/zstd/xz/bzip2
    decompressed, a BOM dropped). ``ConfigError`` naming the file for one that is missing, a
    folder, audio or other binary data, UTF-16/32 text, not JSON, or unusable bins."""
    from clsp.errors import InputError
    from clsp.sniff import audio_signature
    from clsp.streams import read_text_file

    path = Path(path) if path is not None else DEFAULT_BINS_PATH
    if not path.is_file():
        raise ConfigError(f"{path}: cannot read bins file ({'a folder' if path.is_dir() else 'no such file'})")
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read bins file ({exc.strerror or exc})") from None
    except InputError as exc:
        with open(path, "rb") as fh:
            what = "an audio file" if audio_signature(fh.read(16)) else str(exc).removeprefix(f"{path}: ")
        raise ConfigError(f"{path}: cannot read bins file ({what}); give a bins JSON file") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: bins file is not valid JSON ({exc})") from None
    validate_bins(spec, str(path))
    checksum = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return Bins(spec=spec, checksum=checksum, source=str(path))
