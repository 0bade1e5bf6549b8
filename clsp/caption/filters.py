"""FCaps rule filters for captions, each rejection with its reason, and similarity-based choice.

Rules: no negation or absence words, global captions of at least 32 characters, fine-grained
captions of 128-768 characters, no multi-speaker words, no quotation marks, no newlines; also
no hedged guesses, no talk of the recording or surroundings, and (when the transcript is known)
no run of four or more transcript words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NEGATION = re.compile(
    r"\b(no|not|neither|nor|free from|with no|without|lacking|rather than|never|none|absence|absent)\b"
    r"|n't\b", re.IGNORECASE)
MULTI_SPEAKER = re.compile(r"\b(speakers|first speaker|second speaker|another speaker|other speaker|"
                           r"two voices|multiple voices)\b", re.IGNORECASE)
QUOTES = re.compile(r"[\"“”„«»‘’`]|(?<![A-Za-z])'|'(?![A-Za-z])")
GUESS = re.compile(r"\b(maybe|perhaps|possibly|probably|likely|seems?|seemingly|appears? to|"
                   r"might|could be|presumably)\b", re.IGNORECASE)
SURROUNDINGS = re.compile(r"\b(background|noise|noisy|music|recording|recorded|microphone|mic|"
                          r"audio quality|sound quality|room|echo|reverb|environment|static|hiss)\b",
                          re.IGNORECASE)
LENGTHS = {"global": (32, None), "finegrained": (128, 768)}


@dataclass(frozen=True)
class Rejection:
    """Why a caption was dropped."""

    caption: str
    kind: str
    reason: str

    def to_dict(self) -> dict:
        return {"caption": self.caption, "kind": self.kind, "reason": self.reason}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def transcript_overlap(caption: str, transcript: str, n: int = 4) -> str | None:
    """The first run of ``n`` transcript words that the caption repeats, if any."""
    words = _words(transcript)
    grams = {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    cap = _words(caption)
    for i in range(len(cap) - n + 1):
        gram = " ".join(cap[i : i + n])
        if gram in grams:
            return gram
    return None


def check_caption(text: str, kind: str, transcript: str | None = None) -> str | None:
    """The reason ``text`` breaks a rule for captions of ``kind`` ('global'/'finegrained'), or None."""
    if not isinstance(text, str):
        return "caption is not a string"
    lo, hi = LENGTHS[kind]
    if "\n" in text or "\r" in text:
        return "contains a newline"
    if len(text) < lo:
        return f"too short ({len(text)} < {lo} characters)"
    if hi is not None and len(text) > hi:
        return f"too long ({len(text)} > {hi} characters)"
    checks = ((QUOTES, "contains a quotation mark"), (NEGATION, "states an absence or negation"),
              (MULTI_SPEAKER, "mentions several speakers"), (GUESS, "hedges or guesses"),
              (SURROUNDINGS, "describes the surroundings or the recording"))
    for pattern, reason in checks:
        hit = pattern.search(text)
        if hit:
            return f"{reason} ({hit.group(0)!r})"
    if transcript:
        gram = transcript_overlap(text, transcript)
        if gram:
            return f"repeats speech content ({gram!r})"
    return None


def filter_captions(
    captions: list[str], kind: str, transcript: str | None = None
) -> tuple[list[str], list[Rejection]]:
    """Split captions into those kept and those rejected (with reasons); duplicates are dropped."""
    kept: list[str] = []
    rejected: list[Rejection] = []
    for text in captions:
        text = text.strip() if isinstance(text, str) else text
        reason = check_caption(text, kind, transcript)
        if reason is None and text in kept:
            reason = "duplicate of an earlier caption"
        if reason is None:
            kept.append(text)
        else:
            rejected.append(Rejection(str(text), kind, reason))
    return kept, rejected


def rank_by_similarity(model, wave, captions: list[str]) -> list[tuple[str, float]]:
    """Captions sorted by CLSP speech-caption cosine similarity with ``wave`` (best first)."""
    import torch

    if not captions:
        return []
    with torch.no_grad():
        audio = model.encode_audio(wave.reshape(1, -1), torch.tensor([wave.shape[-1]]))
        text = model.encode_text(list(captions))
        scores = (text @ audio.T).squeeze(-1).tolist()
    order = sorted(range(len(captions)), key=lambda i: (-scores[i], i))
    return [(captions[i], float(scores[i])) for i in order]
