"""The acoustic caption backend: measure a clip, name the measurements, phrase captions."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from clsp.caption.acoustic import AcousticConfig, Measurements, measure
from clsp.caption.bins import Bins, load_bins
from clsp.caption.gender import infer_gender, normalise_gender, pitch_word, speaker_female_logit
from clsp.caption.writer import Voice, finegrained_caption, global_caption

BACKEND_NAME = "acoustic"
BACKEND_VERSION = "2"
METADATA_FIELDS = ("gender", "age", "emotion", "accent", "speaker")


def record_seed(rec_id: object, seed: int) -> int:
    """A stable per-record seed, so phrasing does not depend on batch or order."""
    digest = hashlib.sha256(f"{seed}:{rec_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _annotate_segments(m: Measurements, bins: Bins, gender: str) -> list[dict]:
    whole = m.overall
    change = bins.change
    out = []
    for seg in m.segments:
        pitch_delta = None
        if seg.get("f0_median_hz") and whole.get("f0_median_hz"):
            pitch_delta = 12.0 * math.log2(seg["f0_median_hz"] / whole["f0_median_hz"])
        rate_ratio = seg["syllable_rate"] / whole["syllable_rate"] if whole["syllable_rate"] > 0 else 1.0
        out.append({
            "pitch_delta_st": pitch_delta,
            "rate_ratio": max(rate_ratio, 1e-3),
            "loudness_delta_db": seg["loudness_dbfs"] - whole["loudness_dbfs"],
            "rate_label": bins.label("rate", seg["syllable_rate"]) if seg["speech_s"] >= 0.3 else None,
            "loudness_label": bins.label("loudness", seg["loudness_dbfs"]),
            "slope_label": bins.label("pitch_slope", seg.get("f0_slope_st_per_s")),
            "pitch_threshold": change["pitch_st"],
            "rate_threshold": change["rate_ratio"],
            "loudness_threshold": change["loudness_db"],
        })
    return out


def name_voice(m: Measurements, bins: Bins, metadata: dict, speaker_logit: float | None = None) -> tuple[Voice, list[str]]:
    """Bin labels and metadata for a clip, and the names of attributes inferred from audio.

    ``speaker_logit``: log-odds of a female voice from the speaker embedding
    (``clsp.caption.gender.speaker_female_logit``), used when metadata gives no gender."""
    o = m.overall
    inferred = ["pitch", "pitch_range", "pitch_slope", "rate", "loudness", "dynamics", "voicing", "pauses"]
    gender = normalise_gender(metadata.get("gender"))
    if gender is None:
        gender = infer_gender(o, bins, speaker_logit) if o.get("f0_median_hz") else None
        if gender is not None:
            inferred.append("gender")
    pitch_gender = gender or "unknown"
    voice = Voice(
        gender=gender,
        pitch=pitch_word(bins, o.get("f0_median_hz"), gender),
        pitch_range=bins.label("pitch_range", o.get("f0_range_st")),
        slope=bins.label("pitch_slope", o.get("f0_slope_st_per_s")),
        rate=bins.label("rate", o["syllable_rate"]),
        loudness=bins.label("loudness", o["loudness_dbfs"]),
        dynamics=bins.label("dynamics", o["loudness_std_db"]),
        voicing=bins.label("voicing", o["voiced_ratio"]),
        pause_count=int(o["pause_count"]),
        age=metadata.get("age"),
        emotion=metadata.get("emotion") if isinstance(metadata.get("emotion"), str) else None,
        accent=metadata.get("accent") if isinstance(metadata.get("accent"), str) else None,
        segments=_annotate_segments(m, bins, pitch_gender),
    )
    return voice, inferred


def voice_labels(voice: Voice) -> dict:
    """The named attributes a caption was written from (for records and tests)."""
    keys = ("gender", "pitch", "pitch_range", "slope", "rate", "loudness", "dynamics", "voicing")
    return {k: getattr(voice, k) for k in keys}


@dataclass
class AcousticCaptioner:
    """Writes captions from acoustic measurements; deterministic for a given seed."""

    bins: Bins
    config: AcousticConfig = AcousticConfig()
    num_global: int = 1
    num_finegrained: int = 1
    seed: int = 0
    speaker_gender: bool = True  # gender from the speaker embedding (else pitch/formants/tilt)

    @classmethod
    def from_bins_file(cls, path=None, **kwargs) -> "AcousticCaptioner":
        return cls(bins=load_bins(path), **kwargs)

    def provenance(self) -> dict:
        return {"backend": BACKEND_NAME, "version": BACKEND_VERSION, "bins": self.bins.checksum}

    def _distinct(self, make, voice: Voice, rng: random.Random, count: int) -> list[str]:
        out: list[str] = []
        for _ in range(count * 8):
            text = make(voice, rng)
            if text not in out:
                out.append(text)
            if len(out) == count:
                break
        return out

    def caption_waveform(self, wave, metadata: dict | None = None, rec_id: object = None) -> dict:
        """Caption fields for one 16 kHz mono waveform: captions, measurements, inferred, labels."""
        metadata = metadata or {}
        m = measure(wave, self.config)
        logit = None
        if self.speaker_gender and normalise_gender(metadata.get("gender")) is None:
            logit = speaker_female_logit(wave, self.config.sample_rate)
        voice, inferred = name_voice(m, self.bins, metadata, logit)
        rng = random.Random(record_seed(rec_id, self.seed))
        return {
            "global_captions": self._distinct(global_caption, voice, rng, self.num_global),
            "finegrained_captions": self._distinct(finegrained_caption, voice, rng, self.num_finegrained),
            "attributes": voice_labels(voice),
            "measurements": m.to_dict(),
            "inferred": sorted(inferred),
        }
