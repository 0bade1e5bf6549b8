"""Contrastive losses against a direct, loop-based formula written from the paper's equations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clsp.losses import (
    MAX_LOGIT_SCALE,
    caption_keys,
    clamp_logit_scale_,
    contrastive_loss,
    gathered_contrastive_loss,
    stage_one_owner,
    stage_two_owner,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _lse(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def oracle_loss(audio, text, owner, scale, captions=None) -> float:
    """-1/2 [ mean_i sum_{p in P(i)} 1/|P(i)| log softmax_i(p) + mean_k log softmax_k(owner_k) ],
    where a caption whose string repeats one of the row's positives is left out of the softmax."""
    na, nt = len(audio), len(text)
    own = {i: [k for k in range(nt) if owner[k] == i] for i in range(na)}
    sim = lambda i, k: scale * float(np.dot(audio[i], text[k]))  # noqa: E731
    total_at = 0.0
    for i in range(na):
        own_strings = {captions[p] for p in own[i]} if captions else set()
        allowed = [k for k in range(nt) if k in own[i] or not (captions and captions[k] in own_strings)]
        denom = _lse([sim(i, k) for k in allowed])
        total_at += -sum((sim(i, p) - denom) / len(own[i]) for p in own[i])
    total_ta = 0.0
    for k in range(nt):
        allowed = [
            j for j in range(na)
            if j == owner[k] or not (captions and any(captions[p] == captions[k] for p in own[j]))
        ]
        denom = _lse([sim(j, k) for j in allowed])
        total_ta += -(sim(owner[k], k) - denom)
    return 0.5 * (total_at / na + total_ta / nt)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage_one_matches_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d, log_scale = 7, 16, math.log(1 / 0.07)
    a, t = _unit(rng, n, d), _unit(rng, n, d)
    owner = stage_one_owner(n)
    got = contrastive_loss(torch.tensor(a), torch.tensor(t), owner, torch.tensor(log_scale))
    want = oracle_loss(a, t, owner.tolist(), math.exp(log_scale))
    assert got.item() == pytest.approx(want, rel=1e-5)
    # plain symmetric InfoNCE written with cross-entropy as a second, independent check
    logits = torch.tensor(a @ t.T) * math.exp(log_scale)
    labels = torch.arange(n)
    ce = 0.5 * (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels))
    assert got.item() == pytest.approx(ce.item(), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stage_two_soft_targets_match_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes, d, log_scale = [3, 4], 8, 1.7
    n = sum(sizes)
    a, t = _unit(rng, n, d), _unit(rng, 2 * n, d)
    owner = stage_two_owner(sizes)
    assert owner.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 3, 4, 5, 6]
    got = contrastive_loss(torch.tensor(a), torch.tensor(t), owner, torch.tensor(log_scale))
    want = oracle_loss(a, t, owner.tolist(), math.exp(log_scale))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_stage_two_is_not_hard_targets() -> None:
    """Soft 0.5/0.5 speech->text targets differ from using only the first caption."""
    rng = np.random.default_rng(5)
    a, t = _unit(rng, 4, 8), _unit(rng, 8, 8)
    owner = stage_two_owner([4])
    soft = contrastive_loss(torch.tensor(a), torch.tensor(t), owner, torch.tensor(2.0))
    first_only = 0.5 * (
        torch.nn.functional.cross_entropy(torch.tensor(a @ t.T) * math.exp(2.0), torch.arange(4))
        + torch.nn.functional.cross_entropy(torch.tensor(t @ a.T) * math.exp(2.0), owner)
    )
    assert abs(soft.item() - first_only.item()) > 1e-3


@pytest.mark.parametrize("pairs", [1, 2])
def test_duplicate_captions_are_not_negatives(pairs: int) -> None:
    rng = np.random.default_rng(11)
    n, d = 6, 8
    pool = ["a calm woman", "an angry man", "a calm woman", "fast speech", "an angry man", "slow", "x", "y",
            "fast speech", "z", "a calm woman", "w"]
    captions = pool[: n * pairs]
    a, t = _unit(rng, n, d), _unit(rng, n * pairs, d)
    owner = stage_one_owner(n) if pairs == 1 else stage_two_owner([n])
    keys = caption_keys(captions)
    masked = contrastive_loss(torch.tensor(a), torch.tensor(t), owner, torch.tensor(2.5), keys)
    plain = contrastive_loss(torch.tensor(a), torch.tensor(t), owner, torch.tensor(2.5))
    assert masked.item() == pytest.approx(oracle_loss(a, t, owner.tolist(), math.exp(2.5), captions), rel=1e-5)
    assert plain.item() == pytest.approx(oracle_loss(a, t, owner.tolist(), math.exp(2.5)), rel=1e-5)
    assert masked.item() < plain.item()


def test_local_rows_sum_to_global_loss() -> None:
    rng = np.random.default_rng(3)
    sizes = [2, 3, 4]
    n = sum(sizes)
    a, t = torch.tensor(_unit(rng, n, 8)), torch.tensor(_unit(rng, 2 * n, 8))
    owner, keys = stage_two_owner(sizes), caption_keys([f"c{i % 5}" for i in range(2 * n)])
    full = contrastive_loss(a, t, owner, torch.tensor(2.0), keys)
    parts, start = [], 0
    for s in sizes:
        parts.append(contrastive_loss(a, t, owner, torch.tensor(2.0), keys,
                                      slice(start, start + s), slice(2 * start, 2 * (start + s))))
        start += s
    assert sum(p.item() for p in parts) == pytest.approx(full.item(), rel=1e-6)


def test_single_process_gather_is_identity_and_grads_flow() -> None:
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=1).requires_grad_()
    t = torch.nn.functional.normalize(torch.randn(10, 8), dim=1).requires_grad_()
    scale = torch.tensor(1.0, requires_grad=True)
    loss = gathered_contrastive_loss(a, t, scale, captions_per_clip=2)
    loss.backward()
    assert loss.item() == pytest.approx(contrastive_loss(a, t, stage_two_owner([5]), scale).item())
    assert a.grad is not None and t.grad is not None and scale.grad is not None


def test_caption_keys_are_stable_and_distinct() -> None:
    keys = caption_keys(["a", "b", "a"])
    assert keys[0] == keys[2] and keys[0] != keys[1] and keys.dtype == torch.int64
    assert caption_keys(["a"]).item() == keys[0].item()


def test_clamp_logit_scale() -> None:
    p = torch.nn.Parameter(torch.tensor(7.0))
    clamp_logit_scale_(p)
    assert p.item() == pytest.approx(MAX_LOGIT_SCALE)
    p.data.fill_(-1.0)
    clamp_logit_scale_(p)
    assert p.item() == 0.0
