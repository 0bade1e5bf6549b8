"""Shards from launcher variables, the GPU of each local rank, and audio in flight bounded by seconds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf
import torch

from clsp.errors import ConfigError
from clsp.shards import Shard, parse_shard_name, resolve_shard, shard_from_env
from tests.conftest import tone, write_wav


def test_shard_names_and_output_templates():
    assert Shard(3, 8).name == "0003-of-0008"
    assert Shard(12345, 20000).name == "12345-of-20000"
    assert Shard(3, 8).fill("out/part-{shard}.jsonl") == "out/part-0003-of-0008.jsonl"
    assert parse_shard_name("part-0003-of-0008.jsonl") == Shard(3, 8, "part-0003-of-0008.jsonl")
    assert parse_shard_name("part.jsonl") is None
    owned = [[i for i in range(20) if Shard(k, 3).owns(i)] for k in range(3)]
    assert sorted(itertools.chain(*owned)) == list(range(20))


@pytest.mark.parametrize("env, index, count", [
    ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "2"}, 2, 4),
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"}, 5, 8),
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8"}, 4, 8),
    ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14",
      "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "8"}, 3, 8),
    ({"SLURM_PROCID": "1", "SLURM_NTASKS": "3"}, 1, 3),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, 0, 1),
    # an array task running torchrun with 4 ranks: task 2 of 3 -> shards 8..11 of 12
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "RANK": "1", "WORLD_SIZE": "4"}, 9, 12),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_NTASKS": "1"}, 3, 4),
    # torchrun under srun: RANK already counts the srun tasks, SLURM_PROCID is not used again
    ({"RANK": "5", "WORLD_SIZE": "8", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, 5, 8),
])
def test_shard_from_launcher_variables(env, index, count):
    shard = shard_from_env(env)
    assert (shard.index, shard.count) == (index, count)
    assert any(f"{key}={value}" in shard.source for key, value in env.items())  # the log names its source


@pytest.mark.parametrize("env, named", [
    ({}, ["RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID"]),
    ({"RANK": "1"}, ["WORLD_SIZE"]),
    ({"RANK": "4", "WORLD_SIZE": "4"}, ["RANK=4", "WORLD_SIZE=4"]),
    ({"RANK": "x", "WORLD_SIZE": "4"}, ["RANK='x'"]),
    ({"SLURM_ARRAY_TASK_ID": "3"}, ["SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"]),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
      "SLURM_ARRAY_TASK_MAX": "9"}, ["SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MAX=9"]),
    ({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"}, ["SLURM_ARRAY_TASK_ID=9"]),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "3",
      "SLURM_ARRAY_TASK_MAX": "3"}, ["SLURM_ARRAY_TASK_ID=3", "only task", "--shard I/N"]),  # resubmitted alone
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1", "RANK": "1", "WORLD_SIZE": "2"}, ["only task"]),
])
def test_missing_or_inconsistent_launcher_variables_are_named(env, named):
    with pytest.raises(ConfigError) as err:
        shard_from_env(env)
    for name in named:
        assert name in str(err.value)


def test_shard_option_values():
    assert resolve_shard(None) is None
    assert resolve_shard("1/4") == Shard(1, 4, "--shard 1/4")
    assert resolve_shard("auto", {"RANK": "0", "WORLD_SIZE": "2"}).count == 2
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(ConfigError):
            resolve_shard(bad)


@pytest.mark.parametrize("local_rank, gpus, want", [("0", 4, "cuda:0"), ("3", 4, "cuda:3"), ("3", 2, "cuda:1"), ("2", 1, "cuda:0")])
def test_auto_device_is_the_local_ranks_gpu(monkeypatch, local_rank, gpus, want):
    from clsp.embed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setenv("RANK", local_rank)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert resolve_device("auto") == torch.device(want)
    assert resolve_device("cuda") == torch.device(want)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("sr", [16000, 8000, 22050, 44100, 44101])
def test_segment_plan_predicts_the_decoded_length(tmp_path, sr):
    from clsp.audio import load_audio, segment_plan

    path = tmp_path / f"a{sr}.wav"
    sf.write(path, tone(3.3, sr=sr), sr)
    for start, end in [(None, None), (0.25, 2.9), (1.0, None)]:
        offset, samples = segment_plan(path, start, end)
        assert samples == load_audio(path, start, end).numel()
        assert offset == pytest.approx(start or 0.0, abs=1 / sr)


def _items(path, n):
    from clsp.records import Item

    return [Item(index=i, id=f"r{i}", record={"id": f"r{i}", "audio": str(path), "_path": str(path)}) for i in range(n)]


@pytest.mark.parametrize("policy", ["windows", "chunk-mean", "truncate"])
def test_window_by_window_decoding_matches_whole_file_decoding(tmp_path, policy):
    """Oracle: decode the whole file, cut the policy's windows, embed each window alone."""
    from clsp.audio import load_audio
    from clsp.embed import AudioEmbedder, EmbedConfig, window_bounds
    from clsp.models import tiny_model

    path = write_wav(tmp_path / "long.wav", 7.3, 180)
    model = tiny_model()
    cfg = EmbedConfig(max_seconds=2.0, long_audio=policy, device="cpu", max_inflight_seconds=5.0, workers=1)
    results = list(AudioEmbedder(model, cfg).run(_items(path, 3)))
    wave = load_audio(path)
    bounds = window_bounds(wave.numel(), 2.0, policy)
    with torch.no_grad():
        rows = []
        for s, e in bounds:
            feats = model.prepare_audio(wave[s:e])
            rows.append(model.encode_fbank(feats[None], torch.tensor([feats.shape[0]]))[0].numpy())
    rows = np.stack(rows)
    if policy == "chunk-mean":
        w = np.array([e - s for s, e in bounds], dtype=np.float64)
        mean = (rows * w[:, None]).sum(0) / w.sum()
        rows = (mean / np.linalg.norm(mean))[None]
    assert [r.item.id for r in results] == ["r0", "r1", "r2"]
    for r in results:
        assert r.error is None and r.embeddings.shape == rows.shape
        np.testing.assert_allclose(r.embeddings, rows, atol=1e-5)
        assert r.seconds == pytest.approx(7.3, abs=1e-3)


def test_read_ahead_is_bounded_by_seconds_not_records(tmp_path):
    """Each chunk read ahead holds at most half of --max-inflight-seconds plus one window."""
    from collections import deque

    from clsp.embed import AudioEmbedder, EmbedConfig, _windows
    from clsp.models import tiny_model

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 100, dtype=np.int16), 16000, subtype="PCM_16")  # 100 s
    short = write_wav(tmp_path / "short.wav", 1.0)
    items = _items(path, 6) + _items(short, 300)
    cfg = EmbedConfig(max_seconds=20.0, max_inflight_seconds=60.0, device="cpu", chunk_size=256)
    emb = AudioEmbedder(tiny_model(), cfg)
    units, order = _windows(iter(items), cfg), deque()
    chunks = []
    while chunk := emb._take(units, order):
        chunks.append(chunk)
    secs = [sum((r.bounds[k][1] - r.bounds[k][0]) / 16000 for r, k in c) for c in chunks]
    assert sum(len(c) for c in chunks) == 6 * 5 + 300  # every window of every record, once
    assert max(secs) <= 30.0 + 20.0
    assert len(order) == 306 and len(chunks) >= 11
    assert all(len({id(r) for r, _ in c}) <= 256 for c in chunks)


def test_a_bad_window_fails_its_record_only(tmp_path):
    """NaN samples in the last window of a long file: that record is an error, the others embed."""
    from clsp.embed import AudioEmbedder, EmbedConfig
    from clsp.models import tiny_model

    data = tone(6.0)
    data[-100] = np.nan
    bad = tmp_path / "bad.wav"
    sf.write(bad, data, 16000, subtype="FLOAT")
    good = write_wav(tmp_path / "good.wav", 1.0)
    items = _items(good, 1) + _items(bad, 1) + _items(good, 1)
    items[1].index, items[2].index = 1, 2
    cfg = EmbedConfig(max_seconds=2.0, long_audio="windows", device="cpu", max_inflight_seconds=3.0)
    results = list(AudioEmbedder(tiny_model(), cfg).run(items))
    assert [r.error is None for r in results] == [True, False, True]
    assert "NaN" in str(results[1].error) and "bad.wav" in str(results[1].error)
