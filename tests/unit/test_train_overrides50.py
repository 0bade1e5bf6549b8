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
