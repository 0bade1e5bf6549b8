"""Which captions go into the loss at a step.

Stage two draws a task per optimizer step: Task 1 pairs a global caption with a
fine-grained one, Task 2 pairs two different fine-grained captions, with
P(Task 1) = max(p_min, p0 - (p0 - p_min) * t / horizon). The draw depends only on
(seed, step), so every rank makes the same choice without communicating and a resumed
run makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

TASK_GLOBAL_AND_FINE = 1
TASK_TWO_FINE = 2


def task1_probability(step: int, p0: float = 0.95, p_min: float = 0.5, horizon: float = 10000.0) -> float:
    return max(p_min, p0 - (p0 - p_min) * step / horizon)


def draw_task(seed: int, step: int, p0: float = 0.95, p_min: float = 0.5, horizon: float = 10000.0) -> int:
    """Task 1 or 2 for ``step``; identical on every rank."""
    u = random.Random(f"task-{seed}-{step}").random()
    return TASK_GLOBAL_AND_FINE if u < task1_probability(step, p0, p_min, horizon) else TASK_TWO_FINE


def _pick(rng: random.Random, options: Sequence[str], fallback: Sequence[str]) -> str:
    return rng.choice(list(options or fallback))


def stage_one_captions(clips: Sequence[dict], rng: random.Random, which: str = "finegrained") -> list[str]:
    """One caption per clip (falling back to the other kind when a clip lacks the asked one)."""
    out = []
    for c in clips:
        g, f = c["global_captions"], c["finegrained_captions"]
        if which == "global":
            out.append(_pick(rng, g, f))
        elif which == "any":
            out.append(_pick(rng, list(g) + list(f), ()))
        else:
            out.append(_pick(rng, f, g))
    return out


def stage_two_captions(clips: Sequence[dict], task: int, rng: random.Random) -> list[str]:
    """Texts laid out ``[c1_1..c1_B, c2_1..c2_B]``.

    Task 1: c1 a global caption, c2 a fine-grained one. Task 2: two distinct fine-grained
    captions. A clip that cannot fill the task (no global caption, or a single
    fine-grained one) uses what it has; with one caption in all, c1 == c2.
    """
    first, second = [], []
    for c in clips:
        g, f = list(c["global_captions"]), list(c["finegrained_captions"])
        if task == TASK_TWO_FINE and len(f) >= 2:
            a, b = rng.sample(f, 2)
        elif g and f:
            a, b = rng.choice(g), rng.choice(f)
        else:
            pool = g or f
            a, b = rng.sample(pool, 2) if len(pool) >= 2 else (pool[0], pool[0])
        first.append(a)
        second.append(b)
    return first + second
