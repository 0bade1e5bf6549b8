"""``loss.channel_consistency``: each clip's embedding is pulled towards that of its
narrow-band copy (``clsp.audio.narrowband_copy``), computed in the same forward."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from clsp.audio import consistency_copy, narrowband_copy
from clsp.errors import ConfigError
from clsp.models import tiny_config
from clsp.train import load_config
from clsp.train.loop import Trainer
from clsp.train.toy_corpus import write_toy_corpus


def test_narrowband_copy_keeps_the_telephone_band_and_drops_the_rest():
    sr, n = 16000, 16000
    t = torch.arange(n) / sr
    low, high = torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 6000 * t)
    waves = torch.stack([low + high, torch.cat([low[: n // 2], torch.zeros(n // 2)])])
    copy = narrowband_copy(waves, torch.tensor([n, n // 2]))
    assert copy.shape == waves.shape
    mid = slice(2000, 14000)
    spec = torch.fft.rfft(copy[0, mid]).abs()
    freqs = torch.fft.rfftfreq(mid.stop - mid.start, 1 / sr)
    near = lambda f: spec[(freqs - f).abs() < 20].max()  # noqa: E731
    assert near(6000) < 0.01 * near(1000)  # above 4 kHz: gone
    assert torch.allclose(copy[0, mid], low[mid], atol=0.02)  # the 1 kHz tone: kept
    assert (copy[1, n // 2:] == 0).all()  # nothing past a clip's length
    alone = narrowband_copy(waves[1:, : n // 2], torch.tensor([n // 2]))
    assert torch.allclose(alone[0], copy[1, : n // 2], atol=1e-5)  # a clip's copy does not depend on the batch
    with pytest.raises(ValueError, match="rate"):
        narrowband_copy(waves, torch.tensor([n, n]), rate=16000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return str(write_toy_corpus(tmp_path_factory.mktemp("toy"), clips_per_style=2, min_seconds=0.6, max_seconds=1.0))


def _config(tmp_path: Path, corpus: str, tower: dict, *overrides: str):
    model = {**tiny_config().to_dict(), "speech_encoder": tower}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "train.json").write_text(json.dumps({"model": model}))
    return load_config(tmp_path / "train.json", [
        f"data.train={corpus}", "device=cpu", "data.num_workers=0", "data.min_duration=0.1", "data.max_duration=2",
        "data.max_batch_seconds=6", "log_every=1", "checkpoint_every=0", "seed=0", "optim.lr_heads=0.01",
        "optim.lr_encoder=0.01", "optim.warmup_steps=1", f"output_dir={tmp_path / 'exp'}", *overrides])


def _gap(model, batch) -> float:
    """Mean 1 - cosine between the batch's clips and their 8 kHz copies."""
    with torch.no_grad():
        a = model.encode_fbank(batch["feats"], batch["feat_lens"])
        b = model.encode_fbank(narrowband_copy(batch["feats"], batch["feat_lens"]), batch["feat_lens"])
    return float((1 - (a * b).sum(-1)).mean())


def test_consistency_term_is_logged_cached_and_narrows_the_gap(tmp_path: Path, corpus: str, monkeypatch):
    # float32 speaker encoders: the gaps compared are about 1e-5, under bfloat16's rounding of the d-vectors
    monkeypatch.setenv("CLSP_CPU_LSTM", "float32")
    tower = {"type": "speaker_fusion", "speakers": ["ge2e"], "max_partials": 1, "stats": True, "stats_dim": 8}
    runs = {}
    for weight in (0, 20):
        cfg = _config(tmp_path / str(weight), corpus, tower, "max_steps=30", f"loss.channel_consistency={weight}")
        trainer = Trainer(cfg)
        trainer.run()
        records = [json.loads(line) for line in (tmp_path / str(weight) / "exp" / "metrics.jsonl").read_text().splitlines()]
        assert ("channel_gap" in records[-1]) == (weight > 0)
        runs[weight] = (trainer, records)
    trainer, records = runs[20]
    # the copies' frozen features are cached under their own keys, next to the originals'
    keys = list(trainer.speech_cache.items)
    copies = [k for k in keys if k[-1] == "narrowband-8000"]
    assert copies and len(copies) == len(keys) - len(copies)
    trainer.batch_in_epoch = 0
    batch = next(trainer._epoch_loader())
    assert len(batch["clips"]) >= 2
    assert _gap(trainer.model, batch) < _gap(runs[0][0].model, batch)
    assert records[-1]["channel_gap"] < 0.1 * records[0]["channel_gap"]


def test_consistency_needs_a_waveform_tower_and_a_rate_below_the_model_rate(tmp_path: Path, corpus: str):
    compact = {"type": "compact", "dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "conv_channels": 4, "dropout": 0.0}
    with pytest.raises(ConfigError, match="reads fbank"):
        Trainer(_config(tmp_path / "a", corpus, compact, "max_steps=1", "loss.channel_consistency=1"))
    fusion = {"type": "speaker_fusion", "speakers": [], "stats": True, "stats_dim": 8}
    with pytest.raises(ConfigError, match="channel_rate"):
        Trainer(_config(tmp_path / "b", corpus, fusion, "max_steps=1", "loss.channel_consistency=1",
                        "loss.channel_rate=16000"))


def test_consistency_copies_are_fixed_per_clip_and_of_every_listed_kind():
    wave = 0.3 * torch.sin(2 * torch.pi * 200 * torch.arange(8000) / 16000)
    kinds = ["narrowband", "padded", "offset", "gain", "noise"]
    seen = {}
    for i in range(100):
        copy, tag = consistency_copy(wave, kinds, f"clip-{i}")
        again, tag2 = consistency_copy(wave, kinds, f"clip-{i}")
        assert tag == tag2 and torch.equal(copy, again)  # the same clip always gets the same copy
        kind = tag.split("-")[0]
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "padded":
            before, after = (int(x) for x in tag.split("-")[1:])
            assert 3200 <= before <= 16000 and 3200 <= after <= 16000
            assert copy.numel() == wave.numel() + before + after
            assert torch.equal(copy[before : before + wave.numel()], wave)
            assert (copy[:before] == 0).all() and (copy[before + wave.numel():] == 0).all()
        elif kind == "offset":
            dc = float(tag.removeprefix("offset-"))
            assert 0.02 <= abs(dc) <= 0.1 and torch.allclose(copy - wave, torch.full_like(wave, dc), atol=1e-5)
        elif kind == "gain":
            db = float(tag.removeprefix("gain-"))
            assert 6 <= db <= 26 and torch.allclose(copy, wave * 10 ** (-db / 20), rtol=1e-3, atol=1e-6)
        elif kind == "noise":
            dbfs = float(tag.removeprefix("noise-"))
            rms = float((copy - wave).pow(2).mean().sqrt())
            assert -60 <= dbfs <= -40 and abs(20 * math.log10(rms) - dbfs) < 0.5
        else:
            assert tag == "narrowband-8000" and torch.allclose(copy, narrowband_copy(wave[None], torch.tensor([8000]))[0])
    assert set(seen) == set(kinds) and min(seen.values()) >= 10, seen
    assert consistency_copy(wave, ["offset"], "clip-0")[1].startswith("offset")
    with pytest.raises(ValueError, match="copy kinds"):
        consistency_copy(wave, ["reverb"], "clip-0")


def test_padded_and_offset_copies_train_and_are_cached_under_their_tags(tmp_path: Path, corpus: str):
    tower = {"type": "speaker_fusion", "speakers": ["ge2e"], "max_partials": 1, "stats": True, "stats_dim": 8}
    cfg = _config(tmp_path, corpus, tower, "max_steps=4", "loss.channel_consistency=5",
                  "loss.channel_copies=[padded, offset]")
    trainer = Trainer(cfg)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["channel_gap"] == r["channel_gap"] for r in records if "channel_gap" in r)  # finite, logged
    copies = [k for k in trainer.speech_cache.items if isinstance(k[-1], str)]
    tags = {k[-1].split("-")[0] for k in copies}
    # each clip's kind follows from its cache key (which holds its path): the kinds these clips were due
    due = {consistency_copy(torch.zeros(1600), ["padded", "offset"], repr(tuple(k[:-1])))[1].split("-")[0] for k in copies}
    assert copies and tags == due and tags <= {"padded", "offset"}
    for k in copies:  # a copy is cached under the tag its own clip's key chooses, with the settings drawn from it
        assert k[-1] == consistency_copy(torch.zeros(1600), ["padded", "offset"], repr(tuple(k[:-1])))[1]
    with pytest.raises(ConfigError, match="channel_copies"):
        _config(tmp_path / "bad", corpus, tower, "loss.channel_copies=[]")


def test_copies_without_a_consistency_weight_are_named_as_unused(tmp_path: Path, corpus: str, caplog):
    import logging

    tower = {"type": "speaker_fusion", "speakers": [], "stats": True, "stats_dim": 8}
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        Trainer(_config(tmp_path / "a", corpus, tower, "max_steps=1", "loss.channel_copies=[padded]"))
    assert "loss.channel_copies=['padded'] has no effect: loss.channel_consistency is 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clsp.train"):
        Trainer(_config(tmp_path / "b", corpus, tower, "max_steps=1"))
    assert "channel_copies" not in caplog.text
