"""The acoustic caption backend: measure a clip, name the measurements, phrase captions."""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass

from clsp.caption.acoustic import AcousticConfig, Measurements, measure, speech_region
from clsp.caption.bins import Bins, load_bins
from clsp.caption.gender import infer_gender, pitch_word, speaker_female_logit, speaker_female_logits
from clsp.caption.loudness import LoudnessReference
from clsp.caption.metadata import caption_metadata
from clsp.caption.writer import Voice, finegrained_caption, global_caption, is_child

BACKEND_NAME = "acoustic"
BACKEND_VERSION = "3"
METADATA_FIELDS = ("gender", "age", "emotion", "accent", "speaker")
# Seconds of speech (pauses excluded) a syllable rate needs before a pace is stated for a clip or a
# part: the rate counts whole syllable nuclei, so under this one syllable more or less moves it by
# over 1.2 per second, most of a rate bin (conversational speech runs at 4-5; a 0.15 s cut holds
# no whole syllable and read as "very slow", a 0.3 s cut one syllable, 3.3 per second, "slow").
RATE_MIN_SPEECH_S = 0.8


def rate_label(span: dict, bins: Bins) -> str | None:
    """The rate bin of a clip's or part's measurements, None with under ``RATE_MIN_SPEECH_S``
    seconds of measured speech (``measured_speech_s``: no pace can be told from so little)."""
    measured = span.get("measured_speech_s", span["speech_s"])  # speech loud enough for syllables to be found
    return bins.label("rate", span["syllable_rate"]) if measured >= RATE_MIN_SPEECH_S else None


def record_seed(rec_id: object, seed: int) -> int:
    """A stable per-record seed, so phrasing does not depend on batch or order."""
    digest = hashlib.sha256(f"{seed}:{rec_id}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big")


def loudness_label(overall: dict, bins: Bins, reference: LoudnessReference, delta_db: float = 0.0) -> str | None:
    """The loudness word of a clip (or of a part ``delta_db`` louder than it) under ``reference``.

    absolute: integrated LUFS; corpus: LUFS minus the reference LUFS (the clip itself when
    none is known); recording: vocal effort (alpha ratio), the same for every part.
    """
    lufs = overall.get("loudness_lufs")
    if reference.mode == "recording":
        return bins.label("vocal_effort", overall.get("alpha_ratio_db"))
    if lufs is None:
        return None
    if reference.mode == "absolute":
        return bins.label("loudness", lufs + delta_db)
    ref = reference.lufs if reference.lufs is not None else lufs
    return bins.label("loudness_relative", lufs - ref + delta_db)


def _annotate_segments(m: Measurements, bins: Bins, gender: str, reference: LoudnessReference) -> list[dict]:
    whole = m.overall
    change = bins.change
    out = []
    for seg in m.segments:
        pitch_delta = None
        if seg.get("f0_median_hz") and whole.get("f0_median_hz"):
            pitch_delta = 12.0 * math.log2(seg["f0_median_hz"] / whole["f0_median_hz"])
        rate_ratio = None  # a part or a clip with too little speech for a rate states no pace change
        if rate_label(seg, bins) is not None and rate_label(whole, bins) is not None and whole["syllable_rate"] > 0:
            rate_ratio = max(seg["syllable_rate"] / whole["syllable_rate"], 1e-3)
        out.append({
            "pitch_delta_st": pitch_delta,
            "rate_ratio": rate_ratio,
            "loudness_delta_db": seg["loudness_dbfs"] - whole["loudness_dbfs"],
            "rate_label": rate_label(seg, bins),
            "loudness_label": loudness_label(whole, bins, reference, seg["loudness_dbfs"] - whole["loudness_dbfs"]),
            "slope_label": bins.label("pitch_slope", seg.get("f0_slope_st_per_s")),
            "pitch_threshold": change["pitch_st"],
            "rate_threshold": change["rate_ratio"],
            "loudness_threshold": change["loudness_db"],
        })
    return out


_warned: set = set()


def _warn_unused(unused: dict) -> None:
    """One warning per field and value a run could not read (``clsp.caption`` logger)."""
    for key, value in unused.items():
        mark = (key, repr(value))
        if mark not in _warned:
            _warned.add(mark)
            logging.getLogger("clsp.caption").warning(
                f"{key} {value!r} is no {key} clsp can read: left out of the captions"
                + (" (gender inferred from the voice instead)" if key == "gender" else "")
                + " in each record that gives it; such records list it under unused_metadata")


def _warn_fewer(option: str, asked: int, got: int, rec_id: object) -> None:
    """One warning per option when a clip gets fewer distinct phrasings than asked for."""
    if got < asked and option not in _warned:
        _warned.add(option)
        logging.getLogger("clsp.caption").warning(
            f"{option} {asked}: clip {rec_id!r} has only {got} distinct phrasings of its description, so it gets "
            f"{got} (each caption is written once; other clips may get fewer than {asked} too)")


def name_voice(
    m: Measurements, bins: Bins, metadata: dict, reference: LoudnessReference = LoudnessReference(),
) -> tuple[Voice, list[str]]:
    """Bin labels and metadata for a clip, and the names of attributes inferred from audio.

    Without a gender in ``metadata`` it is inferred from the speaker embedding
    (``overall["speaker_female_logit"]``, see ``clsp.caption.gender``) when measured, else from
    pitch, formants and tilt; a clip without voicing gets none."""
    o = m.overall
    inferred = ["pitch", "pitch_range", "pitch_slope", "rate", "loudness", "dynamics", "voicing",
                "voice_quality", "pauses"]
    given, _ = caption_metadata(metadata)
    gender = given.get("gender")
    if gender is None and not given.get("gender_stated"):
        gender = infer_gender(o, bins, o.get("speaker_female_logit")) if o.get("f0_median_hz") else None
        if gender is not None:
            inferred.append("gender")
    pitch_gender = gender or "unknown"
    voicing = bins.label("voicing", o["voiced_ratio"])
    voice = Voice(
        gender=gender,
        pitch=pitch_word(bins, o.get("f0_median_hz"), gender, child=is_child(given.get("age"))),
        pitch_range=bins.label("pitch_range", o.get("f0_range_st")),
        slope=bins.label("pitch_slope", o.get("f0_slope_st_per_s")),
        rate=rate_label(o, bins),
        loudness=loudness_label(o, bins, reference),
        dynamics=bins.label("dynamics", o["loudness_std_db"]),
        voicing=voicing,
        quality=bins.voice_quality(o) or ("breathy" if voicing == "breathy" else None),
        pause_count=int(o["pause_count"]),
        long_pauses=int(o.get("pause_long_count", 0)),
        age=given.get("age"),
        emotion=given.get("emotion"),
        accent=given.get("accent"),
        segments=_annotate_segments(m, bins, pitch_gender, reference),
    )
    return voice, inferred


def voice_labels(voice: Voice) -> dict:
    """The named attributes a caption was written from (for records and tests)."""
    keys = ("gender", "pitch", "pitch_range", "slope", "rate", "loudness", "dynamics", "voicing")
    return {**{k: getattr(voice, k) for k in keys}, "voice_quality": voice.quality}


@dataclass
class AcousticCaptioner:
    """Writes captions from acoustic measurements; deterministic for a given seed."""

    bins: Bins
    config: AcousticConfig = AcousticConfig()
    num_global: int = 1
    num_finegrained: int = 1
    seed: int = 0
    loudness: LoudnessReference = LoudnessReference()
    speaker_gender: bool = True  # gender from the speaker embedding (else pitch/formants/tilt)

    @classmethod
    def from_bins_file(cls, path=None, **kwargs) -> "AcousticCaptioner":
        return cls(bins=load_bins(path), **kwargs)

    def provenance(self) -> dict:
        return {"backend": BACKEND_NAME, "version": BACKEND_VERSION, "bins": self.bins.checksum,
                "loudness_reference": self.loudness.to_dict()}

    def _distinct(self, make, voice: Voice, rng: random.Random, count: int) -> list[str]:
        out: list[str] = []
        for _ in range(count * 8):
            text = make(voice, rng)
            if text not in out:
                out.append(text)
            if len(out) == count:
                break
        return out

    def measure(self, wave, source_rate: int | None = None, speaker: bool = True) -> Measurements:
        """Acoustic measurements of one 16 kHz mono waveform (``source_rate``: the file's own rate),
        with the speaker embedding's log-odds of a female voice (``speaker_female_logit``) of
        its ``voice`` (its speech at a fixed peak); ``speaker=False`` leaves that to
        ``add_speaker_logits``."""
        m = measure(wave, self.config, source_rate=source_rate)
        if self.speaker_gender and speaker:
            m.overall["speaker_female_logit"] = speaker_female_logit(self.voice(wave), self.config.sample_rate)
        return m

    def voice(self, wave):
        """What the speaker encoders hear of a waveform ``(S,)``: its speech
        (``acoustic.speech_region``: the speech frames, without the silence around or between
        the words) at the level recorded, a float64 numpy array ``(S',)``, so that silence does
        not change the gender read from it. The level is kept: scaling every clip to one peak
        cost 15 points of gender on TESS's two speakers (93.6 -> 78.6 %, 140 clips; SAVEE 95.4
        -> 96.9 %, 480 clips), the speech alone at its level 90.0 / 96.0 % (benchmarks/RESULTS.md)."""
        return speech_region(wave, self.config)

    def add_speaker_logits(self, measured: list[tuple[Measurements, object]]) -> None:
        """Set each ``(measurements, waveform)`` pair's speaker log-odds from one batched pass
        over the speaker encoders (``speaker_female_logits``) of each clip's ``voice``;
        nothing without speaker gender."""
        if self.speaker_gender and measured:
            logits = speaker_female_logits([self.voice(wave) for _, wave in measured], self.config.sample_rate)
            for (m, _), logit in zip(measured, logits):
                m.overall["speaker_female_logit"] = logit

    def caption_waveform(self, wave, metadata: dict | None = None, rec_id: object = None,
                         source_rate: int | None = None) -> dict:
        """Caption fields for one 16 kHz mono waveform: captions, measurements, inferred, labels."""
        return self.caption_measurements(self.measure(wave, source_rate), metadata, rec_id)

    def caption_measurements(self, m: Measurements, metadata: dict | None = None, rec_id: object = None) -> dict:
        """Caption fields from measurements already taken (see ``caption_waveform``)."""
        metadata = metadata or {}
        voice, inferred = name_voice(m, self.bins, metadata, self.loudness)
        rng = random.Random(record_seed(rec_id, self.seed))
        global_caps = self._distinct(global_caption, voice, rng, self.num_global)
        fine_caps = self._distinct(finegrained_caption, voice, rng, self.num_finegrained)
        _warn_fewer("--num-global", self.num_global, len(global_caps), rec_id)
        _warn_fewer("--num-finegrained", self.num_finegrained, len(fine_caps), rec_id)
        out = {
            "global_captions": global_caps,
            "finegrained_captions": fine_caps,
            "attributes": voice_labels(voice),
            "measurements": m.to_dict(),
            "inferred": sorted(inferred),
        }
        unused = caption_metadata(metadata)[1]
        if unused:  # given values no caption states (unreadable codes): said, never pasted in
            out["unused_metadata"] = unused
            _warn_unused(unused)
        return out
