"""Given speaker metadata (gender, age, emotion, accent) as words a caption may state.

Corpora code these fields in many ways (``F``, ``w`` for *weiblich*, ``ANG``, ``Wut``, ``hap``,
``30s``, ``child``). A value clsp can read becomes the word a caption uses; a value it cannot
read is kept out of the captions and reported (``unused``), never pasted in as written ("in a
wut tone", "a child man"). A stated non-binary gender gives neutral wording, and no gender
is inferred for that clip.

Emotion codes: CREMA-D (ANG, DIS, FEA, HAP, NEU, SAD), IEMOCAP (ang, hap, exc, sad, neu, fru,
sur, fea, dis), EmoDB's German names (Wut, Freude, Trauer, Angst, Ekel, Langeweile) and
labels (W, F, T, A, E, L, N are left out: single letters are ambiguous). An accent is used
when it is named by known accent, language, nationality or region words (:data:`ACCENT_WORDS`);
"other", "not given" or a word clsp does not know is reported, never pasted in ("an other
accent") nor left to fail the clip's captions.
"""

from __future__ import annotations

import math
import re
from typing import Any

from clsp.caption.gender import normalise_gender

NOT_GIVEN = {"", "unknown", "unk", "n/a", "na", "none", "null", "?", "-", "x?", "unspecified", "undefined"}
NEUTRAL_GENDERS = {"nonbinary", "non-binary", "non binary", "nb", "enby", "genderqueer", "agender", "other",
                   "diverse", "divers", "d", "x", "neutral", "genderfluid"}
EMOTION_CODES = {
    "ang": "anger", "anger": "anger", "angry": "anger", "wut": "anger", "mad": "anger",
    "hap": "happiness", "happy": "happiness", "happiness": "happiness", "freude": "happiness", "joy": "joy",
    "joyful": "joy", "exc": "excited", "excited": "excited", "excitement": "excited",
    "sad": "sadness", "sadness": "sadness", "trauer": "sadness",
    "neu": "neutral", "neutral": "neutral", "default": "neutral",
    "fea": "fear", "fear": "fear", "fearful": "fear", "angst": "fear", "afraid": "fear", "scared": "fear",
    "dis": "disgust", "disgust": "disgust", "disgusted": "disgust", "ekel": "disgust",
    "sur": "surprise", "surprise": "surprise", "surprised": "surprise",
    "cal": "calm", "calm": "calm", "bor": "boredom", "bored": "boredom", "boredom": "boredom",
    "langeweile": "boredom", "fru": "frustrated", "frustrated": "frustrated", "frustration": "frustrated",
    "contempt": "contemptuous", "contemptuous": "contemptuous", "amused": "amused", "amusement": "amused",
    "confused": "confused", "sarcastic": "sarcastic", "sympathetic": "sympathetic", "anxious": "anxious",
    "nervous": "nervous", "tender": "tender", "proud": "proud", "sleepy": "sleepy", "annoyed": "annoyed",
    "relaxed": "relaxed", "serious": "serious", "playful": "playful", "laughing": "laughing",
}
AGE_WORDS = {
    "child": "child", "kid": "child", "children": "child", "boy": "child", "girl": "child",
    "teen": "teenage", "teens": "teenage", "teenager": "teenage", "teenage": "teenage", "adolescent": "teenage",
    "youth": "young adult", "young": "young adult", "young adult": "young adult", "adult": "adult",
    "middle": "middle-aged", "middle-aged": "middle-aged", "middle aged": "middle-aged", "mid": "middle-aged",
    "old": "older", "older": "older", "elderly": "older", "senior": "older", "aged": "older",
}
ACCENT_TEXT = re.compile(r"^[^\W\d_][^\W\d_ .'-]*(?:[ .'-]+[^\W\d_]+)*$")
# Accent, language, nationality and region words an accent may be named by ("Scottish
# English", "South African", "General American"), each value holding at least one that is not
# a qualifier: a value of other words ("other", "not given", "zzqx", "southern") is no accent
# clsp can read.
ACCENT_QUALIFIERS = frozenset("""
    northern southern eastern western central midwestern northeastern northwestern southwestern
    southeastern north south east west standard general received new hong puerto sri
""".split())
ACCENT_WORDS = ACCENT_QUALIFIERS | frozenset("""
    african afghan albanian algerian american arab arabic argentinian argentine armenian asian
    australian austrian azerbaijani bangladeshi basque belarusian belgian bengali bosnian brazilian
    british bulgarian burmese cajun californian cambodian canadian cantonese caribbean castilian
    catalan chilean chinese cockney colombian congolese croatian cuban czech danish dutch
    ecuadorian egyptian english estonian ethiopian european filipino finnish flemish french
    geordie georgian german ghanaian greek gujarati haitian hawaiian hebrew hindi hispanic
    hungarian icelandic indian indonesian iranian iraqi irish israeli italian jamaican japanese
    jordanian kannada kazakh kenyan korean kurdish latin latino lebanese lithuanian malay
    malayalam malaysian maltese mandarin marathi mexican moroccan nepali nigerian norwegian
    pakistani palestinian persian peruvian polish portuguese punjabi romanian russian scandinavian
    scottish scouse serbian sicilian singaporean slovak slovenian somali spanish lankan swahili
    swedish swiss syrian taiwanese tamil telugu texan thai tunisian turkish ugandan ukrainian urdu
    uzbek venezuelan vietnamese welsh yiddish yoruba yorkshire zimbabwean zulu
    zealand kong rican pronunciation
""".split())
ACCENT_SUFFIXES = ("accent", "accented")


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip().lower() in NOT_GIVEN)


def read_gender(value: Any) -> tuple[str | None, bool]:
    """``(gender, stated)``: "male"/"female", or None; ``stated`` is True when the value says
    the voice is neither (neutral wording, nothing inferred)."""
    gender = normalise_gender(value)
    if gender is None and isinstance(value, str):
        v = value.strip().lower()
        gender = {"w": "female", "weiblich": "female", "frau": "female", "women": "female",
                  "mann": "male", "männlich": "male", "maennlich": "male", "men": "male"}.get(v)
        if gender is None and v in NEUTRAL_GENDERS:
            return None, True
    return gender, False


def read_age(value: Any) -> float | str | None:
    """Years (a number, ``"35"``, ``"30s"``, ``"20-29"``: the first number) or an age word
    (child, teenage, young adult, adult, middle-aged, older); None when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and 0 <= value < 130 else None
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in AGE_WORDS:
        return AGE_WORDS[v]
    found = re.match(r"^(\d{1,3})(?:\.\d+)?\s*(?:s|\+|-\s*\d{1,3}|\s*(?:years?|yrs?|y)(?:\s*old)?)?$", v)
    if found and int(found.group(1)) < 130:
        return float(found.group(1))
    return None


def read_emotion(value: Any) -> str | None:
    """The emotion word of a label or corpus code (``ANG``, ``hap``, ``Wut``), or None."""
    if not isinstance(value, str):
        return None
    return EMOTION_CODES.get(value.strip().lower())


def read_accent(value: Any) -> str | None:
    """An accent name as given ("German", "Scottish English", "Irish accent") when each of its
    words is one of :data:`ACCENT_WORDS` (an optional last word "accent"); None for codes,
    noise, words clsp does not know and statements of absence ("other", "not given")."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if len(v) < 3 or not ACCENT_TEXT.match(v):
        return None
    words = re.split(r"[ .'-]+", v.lower())
    if words[-1] in ACCENT_SUFFIXES:
        words = words[:-1]
    known = words and all(w in ACCENT_WORDS for w in words) and not set(words) <= ACCENT_QUALIFIERS
    return v if known else None


def caption_metadata(metadata: dict) -> tuple[dict, dict]:
    """``(readable, unused)``: the given fields as caption words (``gender``, ``gender_stated``,
    ``age``, ``emotion``, ``accent``), and the given values that could not be read, as given."""
    readable: dict[str, Any] = {}
    unused: dict[str, Any] = {}
    gender = metadata.get("gender")
    if _given(gender):
        readable["gender"], readable["gender_stated"] = read_gender(gender)
        if readable["gender"] is None and not readable["gender_stated"]:
            unused["gender"] = gender
    for key, reader in (("age", read_age), ("emotion", read_emotion), ("accent", read_accent)):
        value = metadata.get(key)
        if _given(value):
            readable[key] = reader(value)
            if readable[key] is None:
                unused[key] = value
    return readable, unused
