"""Prompts that ask an audio language model for FCaps-style voice captions.

Two kinds: a global caption (a time-agnostic profile of the voice) and a fine-grained
caption (a narrative that follows the utterance in time). Metadata given with a clip
(gender, age, accent, emotion) is passed on as tags so that the model uses it.
"""

from __future__ import annotations

from clsp.errors import ConfigError

KINDS = ("global", "finegrained")

RULES = """Rules:
1. Describe only the speaker's voice and way of speaking. Never repeat, quote or summarise the words that are said, and never use quotation marks.
2. Describe only the human voice. Leave out the background, the environment, the recording and the audio quality.
3. Describe only qualities that are present; never mention that something is absent or missing.
4. State only what can be heard; never guess or speculate.
5. Write one paragraph of plain prose in English, with no lists and no line breaks, about a single speaker."""

TASKS = {
    "global": (
        "Listen to the audio and write one or two sentences that profile the speaker's voice as a "
        "whole: gender, apparent age group, accent, pitch, timbre, speaking rate, loudness, emotion "
        "and expressiveness. Use at least 40 characters."
    ),
    "finegrained": (
        "Listen to the audio and write a detailed description of how the voice unfolds over time: "
        "how the speaker begins, how pitch, pace, loudness and emotion change in the middle, pauses, "
        "breaths, emphasis or laughter where they occur, and how the utterance ends. Use between "
        "150 and 700 characters."
    ),
}

EXAMPLES = {
    "global": "A young man with a clear, medium-high voice and an American accent speaks quickly in a "
              "cheerful, casual tone.",
    "finegrained": "A middle-aged woman with a low, warm voice begins slowly and calmly, then her pace "
                   "quickens and her pitch rises as she stresses a few words with growing excitement, and "
                   "after a short breath she ends softly with a falling intonation.",
}

TAG_FIELDS = (("gender", "Gender"), ("age", "Age"), ("accent", "Accent"), ("emotion", "Emotion"))


def tag_block(metadata: dict) -> str:
    """Known facts about the speaker as a list of tags (empty when nothing is known): the
    given values as words (``clsp.caption.metadata``: ``Wut`` is anger, ``w`` female), those
    that cannot be read left out."""
    from clsp.caption.metadata import caption_metadata

    readable, _ = caption_metadata(metadata)
    if readable.get("gender_stated"):
        readable["gender"] = "non-binary"
    if isinstance(readable.get("age"), float):
        readable["age"] = f"{readable['age']:g} years"
    lines = [f"- {label}: {readable[key]}" for key, label in TAG_FIELDS
             if isinstance(readable.get(key), (str, int, float)) and str(readable[key]).strip()]
    if not lines:
        return ""
    return "Known facts about the speaker (use them in the caption):\n" + "\n".join(lines) + "\n\n"


def build_prompt(kind: str, metadata: dict | None = None) -> str:
    """The instruction text for one clip and caption kind."""
    if kind not in KINDS:
        raise ConfigError(f"caption kind must be one of {KINDS}, got {kind!r}")
    return (f"{TASKS[kind]}\n\n{tag_block(metadata or {})}{RULES}\n\n"
            f"Example of the style (for a different voice): {EXAMPLES[kind]}\n\nCaption:")
