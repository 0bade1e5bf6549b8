"""FCaps rule filters, and that every caption the acoustic backend writes passes them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from clsp.caption.acoustic import Measurements
from clsp.caption.backend import name_voice, record_seed
from clsp.caption.bins import load_bins
from clsp.caption.filters import check_caption, filter_captions, rank_by_similarity
from clsp.caption.writer import finegrained_caption, global_caption

GOOD_LONG = ("A young woman with a bright, high-pitched voice begins at a fast pace, then slows "
             "down and lowers her pitch, and ends with a soft, falling intonation after a brief pause.")


@pytest.mark.parametrize("text,kind,reason", [
    ("A man speaks with " + "a " * 5, "global", "too short"),
    (GOOD_LONG * 6, "finegrained", "too long"),
    ("A man speaks.\nHe is calm and steady in tone.", "global", "newline"),
    ('A man says "hello" in a calm voice at a slow pace.', "global", "quotation"),
    ("A man speaks calmly without any hurry in a level voice.", "global", "absence or negation"),
    ("A man does not raise his voice and speaks at a level pace.", "global", "absence or negation"),
    ("Two speakers talk over each other in fast, loud voices.", "global", "several speakers"),
    ("A man, probably middle-aged, speaks at a slow and steady pace.", "global", "guesses"),
    ("A man speaks slowly over light background music in a deep voice.", "global", "surroundings"),
    (GOOD_LONG.replace("voice", "voice (noisy recording)"), "finegrained", "surroundings"),
])
def test_rule_violations_are_rejected_with_reasons(text, kind, reason):
    kept, rejected = filter_captions([text], kind)
    assert kept == [] and len(rejected) == 1
    assert reason in rejected[0].reason


def test_good_captions_pass_and_transcript_runs_are_caught():
    assert check_caption(GOOD_LONG, "finegrained") is None
    assert check_caption("A woman speaks in a bright, high-pitched voice.", "global") is None
    words = "she carried the heavy basket of apples up the hill"
    leaked = "A woman says she carried the heavy basket in a loud, high-pitched voice."
    assert "speech content" in check_caption(leaked, "global", transcript=words)
    kept, rejected = filter_captions([GOOD_LONG, GOOD_LONG], "finegrained")
    assert kept == [GOOD_LONG] and "duplicate" in rejected[0].reason


def _random_measurements(rng: np.random.Generator) -> Measurements:
    def span():
        voiced = rng.random() > 0.15
        f0 = float(rng.uniform(60, 450)) if voiced else None
        return {
            "start_s": 0.0, "end_s": 1.0, "speech_s": float(rng.uniform(0.05, 5)),
            "voiced_ratio": float(rng.uniform(0.3, 1) if voiced else rng.uniform(0, 0.2)),
            "syllable_rate": float(rng.uniform(0, 10)),
            "loudness_dbfs": float(rng.uniform(-60, 0)), "loudness_std_db": float(rng.uniform(0, 20)),
            "pause_count": int(rng.integers(0, 12)), "pause_total_s": 0.5, "pause_mean_s": 0.2,
            "f0_median_hz": f0, "f0_p10_hz": f0 and f0 * 0.8, "f0_p90_hz": f0 and f0 * 1.3,
            "f0_range_st": f0 and float(rng.uniform(0, 15)),
            "f0_slope_st_per_s": f0 and float(rng.uniform(-8, 8)),
        }
    overall = span()
    overall.update({"formants_hz": [500.0, 1500.0, float(rng.uniform(2200, 3400)), 4000.0],
                    "formant_spacing_hz": 1100.0, "alpha_ratio_db": float(rng.uniform(-20, 0))})
    return Measurements(duration_s=3.0, overall=overall, segments=[span() for _ in range(int(rng.integers(1, 4)))])


def test_every_acoustic_caption_passes_the_filters():
    bins = load_bins()
    rng = np.random.default_rng(0)
    metadata_options = [{}, {"gender": "male", "age": 70}, {"gender": "F", "age": 25, "emotion": "happiness"},
                        {"accent": "Irish", "age": "elderly"}, {"emotion": "surprise", "age": 8},
                        {"gender": "unknown", "accent": "Indian English accent", "emotion": "boredom"}]
    for trial in range(400):
        m = _random_measurements(rng)
        voice, _ = name_voice(m, bins, metadata_options[trial % len(metadata_options)])
        prng = random.Random(record_seed(trial, 0))
        for kind, make in (("global", global_caption), ("finegrained", finegrained_caption)):
            text = make(voice, prng)
            assert check_caption(text, kind) is None, (check_caption(text, kind), text)


class _FakeModel:
    """Scores a caption by how many times it says 'high' (a stand-in for CLSP similarity)."""

    def encode_audio(self, waveforms, lengths):
        return torch.tensor([[1.0, 0.0]])

    def encode_text(self, texts):
        return torch.nn.functional.normalize(
            torch.tensor([[t.count("high") + 0.1, 1.0] for t in texts]), dim=-1)


def test_rank_by_similarity_orders_best_first():
    ranked = rank_by_similarity(_FakeModel(), torch.zeros(1600), ["a low voice", "a high high voice", "a high voice"])
    assert [c for c, _ in ranked] == ["a high high voice", "a high voice", "a low voice"]
    assert ranked[0][1] > ranked[-1][1]
