"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from clsp.metrics.retrieval import (
    NO_RELEVANT,
    first_relevant_ranks,
    metrics_from_ranks,
    ranks_from_hits,
    retrieval_metrics,
    speech_text_retrieval,
)


def test_ranks_single_relevant():
    sim = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # relevant 0 is best -> rank 0
            [0.9, 0.1, 0.2, 0.3],  # relevant 2: 0.9 and 0.3 above -> rank 2
            [0.1, 0.2, 0.3, 0.4],  # relevant 0: three above -> rank 3
        ]
    )
    assert first_relevant_ranks(sim, [[0], [2], [0]]).tolist() == [0, 2, 3]


def test_ranks_several_relevant_use_the_best():
    sim = np.array([[0.1, 0.5, 0.9, 0.7]])
    # relevant {0, 3}: best relevant is 0.7, only 0.9 (non-relevant) above
    assert first_relevant_ranks(sim, [{0, 3}]).tolist() == [1]


def test_ties_count_against_the_query():
    sim = np.zeros((3, 3))
    ranks = first_relevant_ranks(sim, [[0], [1], [2]])
    assert ranks.tolist() == [2, 2, 2]
    assert retrieval_metrics(sim, [[0], [1], [2]], n_boot=0)["R@1"] == 0.0


def test_scores_a_rounding_apart_are_ties_and_count_against_the_query():
    # the same caption embedded in two batches: scores ~1e-8 apart, on either side
    sim = np.array([[0.5, 0.5 + 3e-8, 0.2], [0.5 + 3e-8, 0.5, 0.2], [0.5, 0.5 + 3e-3, 0.2]])
    assert first_relevant_ranks(sim, [[0], [0], [0]]).tolist() == [1, 1, 1]
    assert first_relevant_ranks(100 * sim, [[0], [0], [2]]).tolist() == [1, 1, 2]  # relative to the score's size
    hits = [["a", "b", "c"], ["b", "a", "c"], ["a", "b"]]
    scores = [[0.5 + 3e-8, 0.5, 0.2], [0.5 + 3e-8, 0.5, 0.2], [0.5, 0.49]]
    assert ranks_from_hits(hits, [{"a"}, {"a"}, {"a"}], scores).tolist() == [1, 1, 0]
    assert ranks_from_hits(hits, [{"a"}, {"a"}, {"a"}]).tolist() == [0, 1, 0]  # no scores: the list's order
    # ties are relative to the scores' own size: inner products of small vectors are not all ties
    small = np.eye(4) * 1e-8
    assert first_relevant_ranks(small, [[0], [1], [2], [3]]).tolist() == [0, 0, 0, 0]
    assert ranks_from_hits([["a", "b"]], [{"a"}], [[1e-8, 0.0]]).tolist() == [0]


def test_a_bootstrap_of_too_few_resamples_gives_no_interval_rather_than_one_without_the_estimate():
    ranks = np.arange(40) % 12
    m = metrics_from_ranks(ranks, n_boot=1, seed=0)
    for name in ("R@1", "R@5", "R@10", "mAP@10"):
        lo, hi = m[f"{name}_lo"], m[f"{name}_hi"]
        assert (lo is None and hi is None) or lo <= m[name] <= hi


def test_no_relevant_is_a_miss():
    ranks = first_relevant_ranks(np.eye(2), [[0], []])
    assert ranks[1] == NO_RELEVANT
    assert metrics_from_ranks(ranks, n_boot=0)["R@10"] == 0.5


def test_metrics_hand_computed():
    ranks = np.array([0, 1, 4, 9, 10, 30])
    m = metrics_from_ranks(ranks, n_boot=0)
    assert m["R@1"] == pytest.approx(1 / 6)
    assert m["R@5"] == pytest.approx(3 / 6)
    assert m["R@10"] == pytest.approx(4 / 6)
    assert m["mAP@10"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 6)
    assert m["count"] == 6 and isinstance(m["count"], int)  # a number of queries, not 6.0 in JSON
    assert "R@1_lo" not in m


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 20, size=200)
    m = metrics_from_ranks(ranks, n_boot=300, seed=1)
    for name in ("R@1", "R@5", "R@10", "mAP@10"):
        assert m[f"{name}_lo"] <= m[name] <= m[f"{name}_hi"]
        assert m[f"{name}_hi"] - m[f"{name}_lo"] > 0
    assert metrics_from_ranks(ranks, n_boot=300, seed=1) == m


def test_ranks_from_hits():
    hits = [["a", "b", "c"], ["x", "y"], ["p"]]
    assert ranks_from_hits(hits, [{"b"}, {"y", "x"}, {"q"}]).tolist() == [1, 0, NO_RELEVANT]


def test_speech_text_both_directions_hand_computed():
    audio = np.eye(3)
    # caption 0 matches clip 0; caption 1 (of clip 1) is closest to clip 2; caption 2 of clip 2.
    text = np.array([[1.0, 0, 0], [0, 0.4, 0.9], [0, 0, 1.0]])
    m = speech_text_retrieval(audio, text, n_boot=0)
    # s2t: clip0 -> cap0 rank0; clip1 -> cap1 (0.4) rank0 (others 0); clip2 -> cap2 1.0 rank0
    assert m["s2t_R@1"] == 1.0
    # t2s: cap1 -> clip1 scores [0, .4, .9]: clip2 above -> rank 1
    assert m["t2s_R@1"] == pytest.approx(2 / 3)
    assert m["t2s_mAP@10"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_speech_text_multiple_captions_per_clip():
    audio = np.array([[1.0, 0], [0, 1.0]])
    text = np.array([[0.2, 0.9], [1.0, 0.0], [0.0, 1.0]])
    owner = [0, 0, 1]  # clip 0 has captions 0 and 1
    m = speech_text_retrieval(audio, text, owner, n_boot=0, prefix="global_")
    assert m["global_s2t_R@1"] == 1.0  # caption 1 is clip 0's best match
    assert m["global_t2s_R@1"] == pytest.approx(2 / 3)  # caption 0 prefers clip 1
    assert m["global_s2t_count"] == 2 and m["global_t2s_count"] == 3


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    a = torch.eye(4, requires_grad=True)
    m = speech_text_retrieval(a, torch.eye(4), n_boot=0)
    assert m["s2t_R@1"] == 1.0 and m["t2s_mAP@10"] == 1.0


def test_shape_errors():
    with pytest.raises(ValueError):
        first_relevant_ranks(np.eye(2), [[0]])
    with pytest.raises(ValueError):
        first_relevant_ranks(np.eye(2), [[0], [5]])
    with pytest.raises(ValueError):
        speech_text_retrieval(np.eye(2), np.eye(3))


def test_uncaptioned_clips_are_candidates_not_queries():
    audio = np.eye(3)
    text = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    m = speech_text_retrieval(audio, text, [0, 2], n_boot=0)
    assert m["s2t_count"] == 2 and m["s2t_R@1"] == 1.0
    assert m["t2s_count"] == 2 and m["t2s_R@1"] == 1.0


def test_one_query_has_a_metric_but_no_interval():
    import json

    from clsp.metrics.retrieval import metrics_from_ranks

    out = metrics_from_ranks(np.array([0]), n_boot=50)  # ranks count from 0
    assert out["R@1"] == 1.0 and out["R@1_lo"] is None and out["R@1_hi"] is None
    json.dumps(out, allow_nan=False)


def test_a_metric_no_ranking_could_miss_is_none():
    """In a pool of 4 clips every caption's clip is within the top 4: R@5 and R@10 say nothing."""
    rng = np.random.default_rng(0)
    audio, text = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))
    wrong = speech_text_retrieval(audio, text, text_to_audio=[1, 2, 3, 0], n_boot=20)
    for d in ("s2t", "t2s"):
        assert wrong[f"{d}_R@5"] is None and wrong[f"{d}_R@10"] is None and wrong[f"{d}_R@5_lo"] is None
        assert wrong[f"{d}_R@1"] is not None and wrong[f"{d}_mAP@10"] is not None
    # one clip with two captions: nothing to rank in either direction, so nothing is measured
    one = speech_text_retrieval(audio[:1], text[:2], text_to_audio=[0, 0], n_boot=0)
    assert all(v is None for k, v in one.items() if not k.endswith("count"))
    # 12 clips: R@10 is measured (a caption's clip can rank 11th or 12th)
    big = speech_text_retrieval(rng.standard_normal((12, 8)), rng.standard_normal((12, 8)), n_boot=0)
    assert all(big[f"{d}_R@10"] is not None for d in ("s2t", "t2s"))
    # two captions per clip among 6 clips: a clip's 10 other captions can all outrank its own
    six = speech_text_retrieval(rng.standard_normal((6, 8)), rng.standard_normal((12, 8)),
                                text_to_audio=[i // 2 for i in range(12)], n_boot=0)
    assert six["s2t_R@10"] is not None and six["t2s_R@5"] is not None and six["t2s_R@10"] is None


def test_repeated_caption_texts_are_one_caption_of_all_their_clips():
    """Templated captions repeat: a model that ranks the right text first scores R@1 = 1 when
    captions with one text are one caption, and 0 when an identical text of another clip,
    tied with the clip's own, counts against it."""
    labels = [0, 1, 2, 0, 1, 2, 0, 1]  # 8 clips, 3 caption texts
    audio = np.eye(3)[labels] + 1e-3 * np.arange(8)[:, None]  # each clip near its label's text
    text = np.eye(3)[labels]  # caption j, of clip j, embeds its text exactly
    texts = [f"text {lab}" for lab in labels]
    apart = speech_text_retrieval(audio, text, n_boot=0)
    assert apart["s2t_R@1"] == 0.0  # the tied identical captions sink every clip
    assert apart["t2s_R@1"] == pytest.approx(3 / 8)  # only the clip each text scores highest is "its" clip
    one = speech_text_retrieval(audio, text, n_boot=0, caption_keys=texts)
    assert one["s2t_R@1"] == 1.0 and one["t2s_R@1"] == 1.0 and one["s2t_mAP@10"] == 1.0
    assert one["s2t_count"] == 8 and one["t2s_count"] == 8
    # a model that confuses two texts still misses: text 1's clips hear text 2 best
    confused = np.eye(3)[[0, 2, 2, 0, 2, 2, 0, 2]] + 1e-3 * np.arange(8)[:, None]
    bad = speech_text_retrieval(confused, text, n_boot=0, caption_keys=texts)
    assert bad["s2t_R@1"] == pytest.approx(5 / 8) and bad["t2s_R@1"] < 1.0
    # distinct keys give the metrics without keys
    assert speech_text_retrieval(audio, text, n_boot=0, caption_keys=list(range(8))) == apart
    with pytest.raises(ValueError, match="caption keys"):
        speech_text_retrieval(audio, text, n_boot=0, caption_keys=texts[:3])


def test_speech_to_text_ranks_each_repeated_caption_once():
    """12 clips, 3 texts of 4 copies each; the sad clips hear "happy" best, then "angry", then
    their own: their own text ranks 3rd of the 3 distinct texts (reciprocal rank 1/3), not 9th
    behind 8 copies of the others (1/9); with 3 distinct texts no ranking can miss R@5 (None)."""
    labels = [0, 1, 2] * 4  # happy, angry, sad
    text = np.eye(3)[labels]
    audio = np.eye(3)[labels].copy()
    for i, lab in enumerate(labels):
        if lab == 2:
            audio[i] = [0.9, 0.5, 0.1]
    keys = [f"A {['happy', 'angry', 'sad'][lab]} voice." for lab in labels]
    m = speech_text_retrieval(audio, text, n_boot=0, caption_keys=keys)
    assert m["s2t_R@1"] == pytest.approx(8 / 12)
    assert m["s2t_mAP@10"] == pytest.approx((8 + 4 / 3) / 12)
    assert m["s2t_R@5"] is None and m["s2t_R@10"] is None
    assert m["t2s_count"] == 12  # every caption still asks for its clips
