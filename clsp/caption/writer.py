"""Caption phrasing: named bins and given metadata turned into global and time-following captions.

Only present qualities of the voice are described: no speech content, no surroundings or
recording, no statements of absence, no hedged guesses (see ``filters.py``). Only what was
measured is stated: a clip whose loudness could not be measured (too short for BS.1770) gets
no volume phrase, and the pace is called "even" only when no segment-to-segment change of the
syllable rate reaches the change the fine-grained caption states (``stated_changes``), and
likewise no "even, steady loudness" beside a stated loudness change and no "monotone" beside a
stated pitch change, so the global and the fine-grained caption of one clip agree. The
fine-grained caption opens with the first part's pace and volume only when it goes on to state
a change of that quality and the part differs from the whole clip by such a change; otherwise
with the clip's, as the global caption states them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

PITCH = {"very low": "very deep", "low": "low-pitched", "medium": "medium-pitched",
         "high": "high-pitched", "very high": "very high-pitched"}
RATE = {"very slow": "a very slow, drawn-out pace", "slow": "a slow, unhurried pace",
        "moderate": "a moderate, even pace", "fast": "a fast, brisk pace",
        "very fast": "a rapid, hurried pace"}
LOUDNESS = {"very soft": "a very soft, hushed volume", "soft": "a soft volume",
            "moderate": "a moderate volume", "loud": "a loud, projected volume",
            "very loud": "a very loud, forceful volume"}
RANGE = {"monotone": "a flat, monotone intonation",
         "moderately varied": "a moderately varied intonation",
         "highly varied": "a lively, highly varied intonation"}
DYNAMICS = {"steady": "an even, steady loudness", "moderately varying": "some swells in loudness",
            "strongly varying": "strong swings in loudness"}
SLOPE = {"falling": "a falling intonation", "level": "a level intonation",
         "rising": "a rising intonation"}
EMOTION = {"anger": "angry", "angry": "angry", "happiness": "happy", "happy": "happy",
           "joy": "joyful", "sadness": "sad", "sad": "sad", "fear": "fearful",
           "fearful": "fearful", "disgust": "disgusted", "boredom": "bored", "bored": "bored",
           "neutral": "calm, neutral", "calm": "calm", "surprise": "surprised",
           "surprised": "surprised"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass
class Voice:
    """What the captions may state: bin labels plus metadata that was given or inferred."""

    gender: str | None
    pitch: str | None
    pitch_range: str | None
    slope: str | None
    rate: str | None
    loudness: str | None
    dynamics: str | None
    voicing: str | None
    quality: str | None = None
    pause_count: int = 0
    long_pauses: int = 0  # of pause_count, those of at least AcousticConfig.long_pause_s (1 s)
    age: object = None
    emotion: str | None = None
    accent: str | None = None
    segments: list[dict] = field(default_factory=list)

    @property
    def whispered(self) -> bool:
        return self.voicing == "whispered"


def is_child(age) -> bool:
    """A child's voice: the age word ``child`` or under 13 years."""
    return age == "child" or (isinstance(age, (int, float)) and not isinstance(age, bool) and age < 13)


def _noun(voice: Voice, rng: random.Random) -> str:
    if is_child(voice.age):
        return {"male": "boy", "female": "girl"}.get(voice.gender, "child")
    options = {"male": ["man", "male speaker", "man"], "female": ["woman", "female speaker", "woman"]}
    return rng.choice(options.get(voice.gender, ["speaker", "person"]))


def _pronoun(voice: Voice) -> tuple[str, str]:
    return {"male": ("he", "his"), "female": ("she", "her")}.get(voice.gender, ("the speaker", "the speaker's"))


def _age_word(age) -> str | None:
    if is_child(age):
        return None  # the noun says it: a boy, a girl, a child
    if isinstance(age, (int, float)) and not isinstance(age, bool) and math.isfinite(age):
        for limit, word in ((20, "teenage"), (36, "young adult"), (60, "middle-aged")):
            if age < limit:
                return word
        return "older"
    return age.strip() if isinstance(age, str) and age.strip() else None


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def subject(voice: Voice, rng: random.Random) -> str:
    """Opening noun phrase: 'A young adult woman with a German accent'."""
    words = [w for w in (_age_word(voice.age), _noun(voice, rng)) if w]
    text = _article(" ".join(words))
    return text[0].upper() + text[1:]


def _quality(voice: Voice) -> str:
    """'a creaky, low-pitched voice and a German accent' (pitch, voice quality, any given accent)."""
    if voice.whispered:
        text = "a whispered, breathy voice"
    else:
        pitch = PITCH.get(voice.pitch, "steady")
        text = f"a {voice.quality}, {pitch} voice" if voice.quality else f"a {pitch} voice"
    if voice.accent:
        accent = voice.accent.strip()
        text += " and " + _article(accent if accent.lower().endswith("accent") else accent + " accent")
    return text


def _pauses(voice: Voice) -> str:
    """The pauses by number and length: 'brief'/'short' under 1 s (``AcousticConfig.long_pause_s``), else 'long'."""
    n, long = voice.pause_count, min(voice.long_pauses, voice.pause_count)
    if n == 0:
        return "in one continuous flow"
    if n == 1:
        return "with one long pause" if long else "with one brief pause"
    if n >= 6:
        return "with frequent pauses" + (", some of them long" if long else "")
    count = NUMBER_WORDS.get(n, "several")
    if long == 0:
        return f"with {count} short pauses"
    if long == n:
        return f"with {count} long pauses"
    return f"with {count} pauses, {NUMBER_WORDS.get(long, 'several')} of them long"


def _emotion(voice: Voice) -> str | None:
    if not voice.emotion:
        return None
    word = EMOTION.get(voice.emotion.strip().lower(), voice.emotion.strip().lower())
    return f"in {_article(word)} tone"


def _pace_change(seg: dict, prev: dict | None) -> float | None:
    """The rate ratio of ``seg`` to the segment before (to the whole utterance for the first)
    when it reaches the segment-change threshold, the change a fine-grained caption states; else None."""
    own, before = seg.get("rate_ratio", 1.0), (prev.get("rate_ratio", 1.0) if prev else 1.0)
    if own is None or before is None:  # a rate not measured (too little speech): no change told
        return None
    rate_ratio = own / before
    if abs(math.log(max(rate_ratio, 1e-3))) >= math.log(1 + seg["rate_threshold"]):
        return rate_ratio
    return None


def _pitch_change(seg: dict, prev: dict | None, voice: Voice) -> float | None:
    """The pitch step in semitones of ``seg`` from the segment before (from the utterance for the
    first, or when the one before has no pitch) when it reaches the segment-change threshold and
    the voice is not whispered; else None."""
    delta = seg.get("pitch_delta_st")
    if delta is None or voice.whispered:
        return None
    if prev is not None and prev.get("pitch_delta_st") is not None:
        delta -= prev["pitch_delta_st"]
    return delta if abs(delta) >= seg["pitch_threshold"] else None


def _loudness_change(seg: dict, prev: dict | None) -> float | None:
    """The loudness step in dB of ``seg`` from the segment before (from the utterance for the
    first) when it reaches the segment-change threshold; else None."""
    delta = seg.get("loudness_delta_db", 0.0) - (prev.get("loudness_delta_db", 0.0) if prev else 0.0)
    return delta if abs(delta) >= seg["loudness_threshold"] else None


def stated_changes(voice: Voice) -> set[str]:
    """What the fine-grained caption says changes in the clip (``"pitch"``, ``"pace"``,
    ``"loudness"``: a segment after the first that differs from the one before by the
    threshold). Neither caption of the clip then calls that quality even, steady or monotone."""
    segs, changes = voice.segments, set()
    for prev, seg in zip(segs, segs[1:]):
        if _pitch_change(seg, prev, voice) is not None:
            changes.add("pitch")
        if _pace_change(seg, prev) is not None:
            changes.add("pace")
        if _loudness_change(seg, prev) is not None:
            changes.add("loudness")
    return changes


def pace_changes(voice: Voice) -> bool:
    """True when the fine-grained caption states a change of pace: the pace is then not "even"."""
    return "pace" in stated_changes(voice)


def _range(voice: Voice) -> str | None:
    """The intonation phrase, none for a whispered voice, and no "monotone" beside a stated pitch change."""
    if voice.whispered or (voice.pitch_range == "monotone" and "pitch" in stated_changes(voice)):
        return None
    return RANGE.get(voice.pitch_range)


def _dynamics(voice: Voice) -> str | None:
    """The loudness-variation phrase, none for "steady" beside a stated loudness change."""
    if voice.dynamics == "steady" and "loudness" in stated_changes(voice):
        return None
    return DYNAMICS.get(voice.dynamics)


def _rate(label: str | None, voice: Voice) -> str | None:
    """The pace phrase of a rate label, without its steadiness word when the pace changes."""
    phrase = RATE.get(label)
    if phrase is not None and pace_changes(voice):
        phrase = phrase.replace(", even pace", " pace")
    return phrase


def global_caption(voice: Voice, rng: random.Random) -> str:
    """A time-agnostic profile of the voice in one sentence (no volume phrase when the
    loudness was not measured, no pace phrase when the rate was not)."""
    who, tone = subject(voice, rng), _emotion(voice)
    rate = _rate(voice.rate, voice)
    loud = LOUDNESS.get(voice.loudness)
    verb = "whispers" if voice.whispered else ("talks" if "speaker" in who else "speaks")
    style = _range(voice)
    # "at a moderate pace and a moderate volume"; without a pace "and a moderate volume" after
    # "with a deep voice", "at a moderate volume" after the verb alone
    paced = f" at {rate}" + (f" and {loud}" if loud else "") if rate else (f" at {loud}" if loud else "")
    templates = [
        f"{who} {verb} with {_quality(voice)}" + (f" at {rate}" if rate else "") + (f" and {loud}" if loud else ""),
        f"{who} with {_quality(voice)} {verb}" + (f" at {rate}" if rate else "") + (f", using {loud}" if loud else ""),
        f"In {_quality(voice)}, {who[0].lower() + who[1:]} {verb}{paced}",
    ]
    text = rng.choice(templates)
    extras = [e for e in (tone, f"with {style}" if style else None) if e]
    if extras:
        text += ", " + " and ".join(extras)
    return text + "."


def _segment_phrase(seg: dict, prev: dict | None, voice: Voice) -> list[str]:
    """What changes in a segment relative to the utterance (first) or to the segment before."""
    _, his = _pronoun(voice)
    parts = []
    pitch_delta = _pitch_change(seg, prev, voice)
    if pitch_delta is not None:
        parts.append(f"{his} pitch {'rises' if pitch_delta > 0 else 'drops'}")
    rate_ratio = _pace_change(seg, prev)
    if rate_ratio is not None:
        parts.append("the pace quickens" if rate_ratio > 1 else "the pace slows")
    loud_delta = _loudness_change(seg, prev)
    if loud_delta is not None:
        parts.append(f"{his} voice grows {'louder' if loud_delta > 0 else 'softer'}")
    return parts


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def finegrained_caption(voice: Voice, rng: random.Random) -> str:
    """A narrative that follows the utterance in time: begins ..., then ..., ends ...."""
    he, his = _pronoun(voice)
    who = subject(voice, rng)
    verb = "whispering" if voice.whispered else "speaking"
    segs = voice.segments
    first = segs[0] if segs else {}
    changes = stated_changes(voice)
    # the first part's own bin only where this caption goes on to state a change of that quality
    # and the part itself differs from the whole clip by a stated change; else the clip's, which
    # the global caption states (a part just across a bin edge would contradict it)
    own_pace = "pace" in changes and first and _pace_change(first, None) is not None
    own_loudness = "loudness" in changes and first and _loudness_change(first, None) is not None
    rate_label = first.get("rate_label") if own_pace else voice.rate
    loud_label = first.get("loudness_label") if own_loudness else voice.loudness
    pace = _rate(rate_label, voice) or _rate(voice.rate, voice)
    # a clip of one part has no course to follow: it "speaks", it does not "begin speaking"
    action = f"begins {verb}" if len(segs) >= 2 else ("whispers" if voice.whispered else "speaks")
    opening = f"{who} with {_quality(voice)} {action}" + (f" at {pace}" if pace else "")
    if LOUDNESS.get(loud_label):
        opening += f" {'and' if pace else 'at'} {LOUDNESS[loud_label]}"
    sentences = [opening]
    for prev, seg in zip(segs[:-2], segs[1:-1]):
        change = _segment_phrase(seg, prev, voice)
        link = rng.choice(["then", "after that", "in the middle"])
        sentences.append(f"{link} {_join(change)}" if change else
                         f"{link} {he} {rng.choice(['keeps', 'holds', 'maintains'])} the same delivery")
    if len(segs) >= 2:
        last = segs[-1]
        change = _segment_phrase(last, segs[-2], voice)
        ending = SLOPE.get(last.get("slope_label")) if not voice.whispered else None
        # "her pitch drops ... and she ends with a rising intonation" reads as a contradiction
        # (a lower part can end on a rise): the ending contour only where it agrees
        step = _pitch_change(last, segs[-2], voice)
        if step is not None and last.get("slope_label") == ("rising" if step < 0 else "falling"):
            ending = None
        tail = f"and {he} ends with {ending}" if ending else f"and {he} finishes the utterance"
        if change:
            tail = f"towards the close {_join(change)}, " + tail
        sentences.append(tail)
    body = ", ".join(sentences) + "."
    summary = [_range(voice), _dynamics(voice)]
    summary = [s for s in summary if s]
    closing = f" Overall {he} delivers the words {_pauses(voice)}"
    if summary:
        closing += f", with {_join(summary)}"
    tone = _emotion(voice)
    closing += f", {tone}." if tone else "."
    text = body + closing
    return text[0].upper() + text[1:]
