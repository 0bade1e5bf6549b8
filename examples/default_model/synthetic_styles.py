"""Voice inventory, style levels and caption phrasing for the synthetic espeak-ng corpus.

Kept apart from the generator so that the evaluation script can build its zero-shot
prompts from the same words the captions use.
"""

from __future__ import annotations

import random

# espeak-ng voice variants (files under espeak-ng-data/voices/!v), by gender.
MALE_VOICES = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "AnxiousAndy", "Denis", "Diogo",
    "Henrique", "Hugo", "Lee", "Marco", "Storm", "antonio", "michel", "miguel", "sandro",
    "travis", "victor",
]
FEMALE_VOICES = [
    "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "f1", "f2", "f3", "f4", "f5",
    "grandma", "linda", "steph", "steph2", "steph3",
]
# Held out for evaluation. Variants with near-identical definitions are held out together
# (Hugo/Henrique, linda/belinda) so that no test voice has a twin in training.
TEST_VOICES = {"m3", "m7", "Hugo", "Henrique", "victor", "f2", "f5", "linda", "belinda"}

# Flite voices (Debian package flite): recorded human speakers, not formant voices. Their
# accent is fixed; pitch, intonation range and pace are set per segment
# (int_f0_target_mean / int_f0_target_stddev / duration_stretch). The words per minute
# were measured at duration_stretch 1 on three corpus sentences, whole files.
FLITE_VOICES = {
    "flite-slt": {"voice": "slt", "gender": "female", "accent": "american", "wpm": 184, "f0_hz": (165, 265)},
    "flite-rms": {"voice": "rms", "gender": "male", "accent": "american", "wpm": 160, "f0_hz": (85, 150)},
    "flite-awb": {"voice": "awb", "gender": "male", "accent": "scottish", "wpm": 183, "f0_hz": (85, 150)},
    "flite-kal16": {"voice": "kal16", "gender": "male", "accent": "american", "wpm": 185, "f0_hz": (85, 150)},
}
# espeak-ng's own measured words per minute is about 1.09 times its -s setting (same
# sentences, whole files), so a Flite pace level uses RATE_WPM scaled by this factor.
ESPEAK_WPM_FACTOR = 1.09
# Flite F0 standard deviation (Hz) per intonation level.
RANGE_F0_STD_HZ = {"flat": (3.0, 8.0), "natural": (18.0, 28.0), "lively": (40.0, 60.0)}

ACCENTS = {
    "en-us": "american",
    "en-gb-x-rp": "british",
    "en-gb-scotland": "scottish",
    "en-029": "caribbean",
    "en-gb-x-gbclan": "northern english",
    "en-gb-x-gbcwmd": "west midlands",
}

# Speaking rate in words per minute (espeak-ng -s), one interval per level, with gaps.
RATE_WPM = {"slow": (95, 125), "moderate": (160, 190), "fast": (240, 290)}
# RMS level of the voiced part in dBFS, one interval per level.
LOUDNESS_DBFS = {"quiet": (-40.0, -34.0), "normal": (-27.0, -22.0), "loud": (-15.0, -11.0)}
# SSML prosody range per intonation level.
RANGE_SSML = {"flat": "x-low", "natural": "medium", "lively": "x-high"}
PITCH_LEVELS = ("low", "medium", "high")

GENDER_NOUN = {
    "male": ["a man", "a male speaker", "a male voice", "an adult man"],
    "female": ["a woman", "a female speaker", "a female voice", "an adult woman"],
}
ACCENT_PHRASE = {
    "american": ["an American accent", "a General American accent"],
    "british": ["a British accent", "a standard southern British accent"],
    "scottish": ["a Scottish accent", "a Scottish English accent"],
    "caribbean": ["a Caribbean accent", "a West Indian English accent"],
    "northern english": ["a northern English accent", "a Lancashire accent"],
    "west midlands": ["a West Midlands accent", "a Birmingham-area accent"],
}
PITCH_ADJ = {
    "low": ["low-pitched", "deep", "low"],
    "medium": ["medium-pitched", "mid-range", "moderately pitched"],
    "high": ["high-pitched", "high", "bright, high"],
}
PITCH_SEG = {
    "low": ["low in pitch", "deep in pitch"],
    "medium": ["medium in pitch", "mid-range in pitch"],
    "high": ["high in pitch", "high-pitched"],
}
RATE_ADV = {
    "slow": ["slowly", "at a slow pace", "in an unhurried, slow way"],
    "moderate": ["at a moderate pace", "at an even, normal speed", "at a steady, medium tempo"],
    "fast": ["quickly", "at a fast pace", "rapidly"],
}
RATE_ADJ = {"slow": ["slow", "unhurried"], "moderate": ["moderate", "even-paced"],
            "fast": ["fast", "rapid"]}
LOUD_ADV = {
    "quiet": ["quietly", "softly", "at a low volume"],
    "normal": ["at a normal volume", "at a comfortable volume", "at conversational loudness"],
    "loud": ["loudly", "at a high volume", "forcefully and loud"],
}
LOUD_ADJ = {"quiet": ["quiet", "soft"], "normal": ["normal-volume", "moderately loud"],
            "loud": ["loud", "powerful"]}
RANGE_PHRASE = {
    "flat": ["in a flat, monotonous tone", "with very little intonation", "in a monotone"],
    "natural": ["with natural intonation", "with ordinary intonation"],
    "lively": ["with lively, expressive intonation", "with a wide, animated pitch range",
               "in a sing-song, expressive manner"],
}
WHISPER_PHRASE = ["whispers", "speaks in a breathy whisper", "talks in a hushed whisper"]


def pick(rng: random.Random, options: list[str]) -> str:
    """One phrasing at random."""
    return options[rng.randrange(len(options))]


def capitalize(text: str) -> str:
    """Upper-case the first letter only."""
    return text[:1].upper() + text[1:]


def describe_segment(rng: random.Random, seg: dict) -> str:
    """A short noun-free description of one segment's style (rate, volume, pitch or whisper)."""
    parts = [pick(rng, RATE_ADJ[seg["rate"]]), pick(rng, LOUD_ADJ[seg["loudness"]])]
    if seg["whisper"]:
        parts.append("whispered")
    else:
        parts.append(pick(rng, PITCH_SEG[seg["pitch"]]))
    rng.shuffle(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def global_caption(rng: random.Random, clip: dict) -> str:
    """A one-sentence description of the whole clip's voice, from its generation settings."""
    who = pick(rng, GENDER_NOUN[clip["gender"]])
    accent = pick(rng, ACCENT_PHRASE[clip["accent"]])
    segs = clip["segments"]
    if len(segs) == 1:
        return _single_caption(rng, who, accent, segs[0])
    changing = [k for k in ("rate", "loudness", "pitch", "whisper") if len({s[k] for s in segs}) > 1]
    names = {"rate": "pace", "loudness": "volume", "pitch": "pitch", "whisper": "voice quality"}
    change = " and ".join(names[k] for k in changing) or "delivery"
    steady = [pick(rng, RATE_ADJ[segs[0]["rate"]]) + " pace"] if "rate" not in changing else []
    if "loudness" not in changing:
        steady.append(pick(rng, LOUD_ADJ[segs[0]["loudness"]]) + " volume")
    steady_txt = (", keeping a " + " and ".join(steady)) if steady else ""
    templates = [
        f"{capitalize(who)} with {accent} speaks with a changing {change}{steady_txt}.",
        f"{capitalize(who)} with {accent}, whose {change} shifts during the recording{steady_txt}.",
        f"A recording of {who} with {accent} in which the {change} varies{steady_txt}.",
    ]
    return pick(rng, templates)


def described_key(clip: dict, kind: str, accent: bool = True) -> tuple:
    """What a ``kind`` ("global" or "fine") caption of ``clip`` says, as a hashable key:
    clips with equal keys get captions that cannot tell them apart. With ``accent=False``
    the accent is left out (what a listener deaf to accent could still tell)."""
    segs = clip["segments"]
    head = (clip["gender"], clip["accent"] if accent else None)

    def voice(s: dict, with_range: bool) -> tuple:
        if s["whisper"]:
            return ("whisper",)
        return (s["pitch"], s["range"]) if with_range else (s["pitch"],)

    if len(segs) == 1:
        s = segs[0]
        return head + (s["rate"], s["loudness"]) + voice(s, True)
    if kind == "fine":
        return head + tuple((s["rate"], s["loudness"]) + voice(s, False) for s in segs)
    changing = tuple(k for k in ("rate", "loudness", "pitch", "whisper") if len({s[k] for s in segs}) > 1)
    return head + ("changing", changing,
                   None if "rate" in changing else segs[0]["rate"],
                   None if "loudness" in changing else segs[0]["loudness"])


def _single_caption(rng: random.Random, who: str, accent: str, seg: dict) -> str:
    rate = pick(rng, RATE_ADV[seg["rate"]])
    loud = pick(rng, LOUD_ADV[seg["loudness"]])
    if seg["whisper"]:
        verb = pick(rng, WHISPER_PHRASE)
        templates = [
            f"{capitalize(who)} with {accent} {verb} {rate} and {loud}.",
            f"With {accent}, {who} {verb} {rate}, {loud}.",
            f"A whispering voice: {who} with {accent}, speaking {rate} and {loud}.",
        ]
        return pick(rng, templates)
    pitch = pick(rng, PITCH_ADJ[seg["pitch"]])
    intonation = pick(rng, RANGE_PHRASE[seg["range"]])
    templates = [
        f"{capitalize(who)} with {accent} speaks {rate} and {loud} in a {pitch} voice, {intonation}.",
        f"A {pitch} voice: {who} with {accent} talking {rate}, {loud}, {intonation}.",
        f"With {accent}, {who} speaks {loud} and {rate}, {intonation}, in a {pitch} register.",
        f"{capitalize(who)} talks {rate} {intonation}; the voice is {pitch}, with {accent}, "
        f"and comes across {loud}.",
    ]
    return pick(rng, templates)


def fine_caption(rng: random.Random, clip: dict) -> str:
    """A time-ordered description of the clip's style, segment by segment."""
    who = pick(rng, GENDER_NOUN[clip["gender"]])
    accent = pick(rng, ACCENT_PHRASE[clip["accent"]])
    segs = clip["segments"]
    if len(segs) == 1:
        seg = segs[0]
        body = describe_segment(rng, seg)
        tone = "" if seg["whisper"] else " " + pick(rng, RANGE_PHRASE[seg["range"]])
        templates = [
            f"{capitalize(who)} with {accent}; from start to finish the speech stays {body}{tone}.",
            f"Throughout the clip, {who} with {accent} keeps a steady delivery, {body}{tone}.",
        ]
        return pick(rng, templates)
    openers = ["At first the voice is", "It begins", "The clip opens"]
    middles = ["then it turns", "after that it becomes", "next it grows"]
    closers = ["and finally it ends", "and at the end it is", "before finishing"]
    pieces = [f"{pick(rng, openers)} {describe_segment(rng, segs[0])}"]
    if len(segs) == 3:
        pieces.append(f"{pick(rng, middles)} {describe_segment(rng, segs[1])}")
    pieces.append(f"{pick(rng, closers)} {describe_segment(rng, segs[-1])}")
    return f"{capitalize(who)} with {accent}. " + ", ".join(pieces) + "."
