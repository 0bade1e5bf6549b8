"""Training config loading/overrides, learning-rate schedules and the stage-two task scheduler."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from clsp.errors import ConfigError
from clsp.train.config import OptimConfig, TrainConfig, load_config
from clsp.train.schedule import lr_factor
from clsp.train.tasks import draw_task, stage_one_captions, stage_two_captions, task1_probability

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "configs"


@pytest.mark.parametrize("name", ["tiny.yaml", "stage1.yaml", "stage2.yaml"])
def test_example_configs_load(name: str) -> None:
    cfg = load_config(EXAMPLES / name).validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLES / "stage2.yaml", ["optim.lr_heads=5e-4", "max_steps=7", "freeze=[text]", "data.valid=null"])
    assert cfg.optim.lr_heads == 5e-4 and cfg.max_steps == 7 and cfg.freeze == ["text"] and cfg.data.valid is None
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(None, ["max_steps=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["max_steps"])
    (tmp_path / "c.json").write_text('{"loss": {"stage": 3}, "data": {"train": "x"}, "init_from": "tiny-random"}')
    with pytest.raises(ConfigError, match="stage"):
        load_config(tmp_path / "c.json").validate()


def test_schedules() -> None:
    cos = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(cos, 0, 0, 110) == pytest.approx(0.1)
    assert lr_factor(cos, 10, 0, 110) == pytest.approx(1.0)
    assert lr_factor(cos, 60, 0, 110) == pytest.approx(0.55)
    assert lr_factor(cos, 110, 0, 110) == pytest.approx(0.1)
    eden = OptimConfig(schedule="eden", warmup_steps=500, eden_lr_batches=100000, eden_lr_epochs=100)
    assert lr_factor(eden, 0, 0, 1) == pytest.approx(0.5)
    b, e = 100000.0, 100.0
    want = ((50000**2 + b**2) / b**2) ** -0.25 * ((3**2 + e**2) / e**2) ** -0.25
    assert lr_factor(eden, 50000, 3, 1) == pytest.approx(want)


def test_task_scheduler() -> None:
    assert task1_probability(0) == pytest.approx(0.95)
    assert task1_probability(5000) == pytest.approx(0.725)
    assert task1_probability(20000) == pytest.approx(0.5)
    assert [draw_task(42, s) for s in range(50)] == [draw_task(42, s) for s in range(50)]
    late = [draw_task(1, s) for s in range(20000, 22000)]
    assert 0.45 < late.count(1) / len(late) < 0.55
    early = [draw_task(1, s) for s in range(0, 400)]
    assert early.count(1) / len(early) > 0.9


def test_caption_layouts() -> None:
    clips = [{"global_captions": ["g0"], "finegrained_captions": ["a0", "b0", "c0"]},
             {"global_captions": [], "finegrained_captions": ["a1", "b1"]},
             {"global_captions": ["g2"], "finegrained_captions": ["a2"]}]
    rng = random.Random(0)
    t1 = stage_two_captions(clips, 1, rng)
    assert t1[0] == "g0" and t1[3] in ("a0", "b0", "c0") and set(t1[1::3]) <= {"a1", "b1"} and t1[2] == "g2"
    t2 = stage_two_captions(clips, 2, rng)
    assert t2[0] != t2[3] and {t2[0], t2[3]} <= {"a0", "b0", "c0"} and {t2[2], t2[5]} == {"g2", "a2"}
    assert stage_one_captions(clips, rng, "global") [1] in ("a1", "b1")
    assert all(not math.isnan(len(c)) for c in t2)
