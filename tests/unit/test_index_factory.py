"""Index structure choice, memory budgets, knobs and thread resolution."""

from __future__ import annotations

import pytest

from clsp.errors import ConfigError
from clsp.index.factory import (
    choose_factory,
    default_knobs,
    is_lossy,
    parse_memory,
    resolve_threads,
    train_size,
)


def test_choose_exact_below_limit_and_ivf_above():
    assert choose_factory(50_000, 512) == "Flat"
    assert choose_factory(1_000_000, 512) == "IVF4096,Flat"
    assert choose_factory(200_000, 512).startswith("IVF")


def test_memory_budget_switches_to_pq():
    # 1M x 512 floats need ~2 GiB; a 200 MiB budget forces compressed codes
    factory = choose_factory(1_000_000, 512, parse_memory("200M"))
    assert factory.startswith("IVF") and "PQ" in factory
    m = int(factory.split("PQ")[1])
    assert 1_000_000 * m < 200 * 2**20 and 512 % m == 0
    assert "PQ" in choose_factory(50_000, 512, parse_memory("50M"))
    with pytest.raises(ConfigError, match="too small"):
        choose_factory(1_000_000, 512, parse_memory("1M"))


def test_parse_memory():
    assert parse_memory("4G") == 4 * 2**30
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("1000") == 1000
    assert parse_memory(None) is None
    with pytest.raises(ConfigError):
        parse_memory("lots")


def test_lossy_training_and_knobs():
    assert is_lossy("IVF64,PQ16") and is_lossy("SQ8") and not is_lossy("IVF64,Flat")
    assert train_size("IVF64,Flat", 1_000_000) == 64 * 40
    assert train_size("IVF64,Flat", 100) == 100
    assert default_knobs("IVF4096,Flat") == {"nprobe": 16}
    assert default_knobs("HNSW32")["ef"] >= 64


def test_threads_from_argument_then_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "7")
    assert resolve_threads(3) == 3
    assert resolve_threads() == 7
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert resolve_threads() >= 1
    with pytest.raises(ConfigError):
        resolve_threads(0)
