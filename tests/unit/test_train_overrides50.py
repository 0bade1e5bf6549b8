"""A key set twice to a boolean and a number (``max_steps=true --max-steps 1``, ``seed=false
seed=0``) is a conflict, refused before any work; the same number twice is taken."""

from __future__ import annotations

import pytest

from clsp.errors import ConfigError
from clsp.train.config import check_repeated_overrides


@pytest.mark.parametrize("pair", [("max_steps=true", "max_steps=1"), ("seed=false", "seed=0"),
                                  ("seed=0", "seed=false"), ("optim.lr_heads=true", "optim.lr_heads=1.0")])
def test_a_boolean_and_an_equal_number_are_two_values(pair):
    with pytest.raises(ConfigError, match="set twice"):
        check_repeated_overrides(list(pair))


@pytest.mark.parametrize("pair", [("seed=1", "seed=1"), ("optim.lr_heads=1e-4", "optim.lr_heads=0.0001"),
                                  ("loss.local_loss=true", "loss.local_loss=true")])
def test_the_same_value_twice_is_taken(pair):
    check_repeated_overrides(list(pair))


def test_an_override_into_a_section_left_null_sets_it_and_a_scalar_is_still_no_section():
    """Resumed, a run built from init_from has `model: null`: `model.joint_dim=64` said "model
    is not a section" instead of the message about model settings under init_from."""
    from clsp.train.config import apply_overrides

    assert apply_overrides({"model": None, "seed": 1}, ["model.joint_dim=64"]) == {"model": {"joint_dim": 64}, "seed": 1}
    with pytest.raises(ConfigError, match="seed is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])
