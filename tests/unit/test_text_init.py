"""Whitened text-head start: the first projection layer maps the sampled captions' pooled
features to zero mean and (without shrinkage) identity covariance; resumed runs keep
their trained heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clsp.errors import ConfigError
from clsp.train import load_config
from clsp.train.loop import Trainer
from clsp.train.text_init import pooled_features, sample_captions, whitening
from clsp.train.toy_corpus import write_toy_corpus


def _cfg(tmp_path: Path, *extra: str):
    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    return manifest, load_config(None, [f"data.train={manifest}", "init_from=tiny-random", "device=cpu",
                                        "data.num_workers=0", "data.min_duration=0.1", "data.max_duration=1",
                                        "data.max_batch_seconds=10", f"output_dir={tmp_path / 'exp'}", "seed=0",
                                        "freeze=[text]", *extra])


def test_whitening_is_exact_on_its_sample() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(500, 6, generator=gen, dtype=torch.float64) @ torch.randn(6, 6, generator=gen, dtype=torch.float64) + 3.0
    weight, bias = whitening(feats, rows=4, shrink=0.0)
    out = feats @ weight.T + bias
    assert weight.shape == (4, 6)
    assert torch.allclose(out.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(torch.cov(out.T), torch.eye(4, dtype=torch.float64), atol=1e-6)
    shrunk, _ = whitening(feats, rows=4, shrink=1.0)
    assert (shrunk.norm(dim=1) < weight.norm(dim=1)).all()  # shrinkage damps every direction


def test_trainer_whitens_fresh_runs_only(tmp_path: Path) -> None:
    manifest, cfg = _cfg(tmp_path, "text_head_init=whiten", "text_whiten_shrink=0", "max_steps=1", "data.text_cache=true",
                         "checkpoint_every=1", "log_every=1", "valid_every=0", "tensorboard=false")
    plain = Trainer(_cfg(tmp_path / "plain")[1]).model.text_projection[0]
    trainer = Trainer(cfg)
    layer = trainer.model.text_projection[0]
    captions = sample_captions(manifest, cfg.text_whiten_captions, cfg.seed)
    assert set(captions) <= set(trainer.cache.items)  # encoded once, kept for training
    feats = pooled_features(trainer.model, captions)
    k = whitening(feats, layer.out_features, 0.0)[0].shape[0]
    assert 4 <= k <= min(layer.out_features, feats.shape[1], len(set(map(tuple, feats.tolist()))) - 1)
    out = (feats.float() @ layer.weight[:k].T + layer.bias[:k]).double()
    assert torch.allclose(out.mean(0), torch.zeros(k, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(out.var(0), torch.ones(k, dtype=torch.float64), atol=2e-2)
    assert not torch.allclose(layer.weight, plain.weight)

    trainer.run()
    trained = trainer.model.text_projection[0].weight.detach().clone()
    resumed = Trainer(load_config(None, [*_overrides(cfg), "max_steps=1"]), resume="latest")
    assert torch.equal(resumed.model.text_projection[0].weight, trained)


def _overrides(cfg) -> list[str]:
    return [f"data.train={cfg.data.train}", "init_from=tiny-random", "device=cpu", "data.num_workers=0",
            "data.min_duration=0.1", "data.max_duration=1", "data.max_batch_seconds=10",
            f"output_dir={cfg.output_dir}", "seed=0", "freeze=[text]", "text_head_init=whiten",
            "tensorboard=false"]


def test_bad_whitening_settings_are_config_errors(tmp_path: Path) -> None:
    for bad in ("text_head_init=pca", "text_whiten_captions=1", "text_whiten_shrink=-1"):
        with pytest.raises(ConfigError):
            _cfg(tmp_path, bad)[1].validate()


def test_centred_start_zeroes_the_mean_head_output_and_spreads_captions(tmp_path: Path) -> None:
    import torch.nn.functional as F

    manifest, cfg = _cfg(tmp_path, "text_head_init=whiten", "text_whiten_centre=true", "data.text_cache=true")
    centred = Trainer(cfg).model
    plain = Trainer(_cfg(tmp_path / "plain", "text_head_init=whiten", "data.text_cache=true")[1]).model
    captions = sample_captions(manifest, cfg.text_whiten_captions, cfg.seed)
    distinct = list(dict.fromkeys(captions))

    def heads(model, texts):
        with torch.no_grad():
            model.eval()
            return model.text_transform(model.text_projection(pooled_features(model, texts).float()))

    out = heads(centred, captions)
    assert out.mean(0).abs().max() < 1e-4 * out.abs().mean()
    # the centred heads differ from the plain whitened ones only by the last bias
    assert torch.equal(centred.text_projection[0].weight, plain.text_projection[0].weight)

    def mean_cos(model):
        e = F.normalize(heads(model, distinct), dim=-1)
        n = len(distinct)
        return float(((e @ e.T).sum() - n) / (n * n - n))

    assert mean_cos(centred) < mean_cos(plain) - 0.2


def _nearest_is_same_style(model, manifest: Path) -> float:
    """Share of distinct captions whose nearest other caption (cosine of the text
    embeddings) belongs to the same toy style."""
    import json

    import torch.nn.functional as F

    style = {}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        for c in row["global_captions"] + row["finegrained_captions"]:
            style[c] = row["style"]
    texts = list(style)
    with torch.no_grad():
        model.eval()
        e = F.normalize(model.text_transform(model.text_projection(pooled_features(model, texts).float())), dim=-1)
    sims = e @ e.T - 3 * torch.eye(len(texts))
    nearest = sims.argmax(1).tolist()
    return sum(style[texts[i]] == style[texts[j]] for i, j in enumerate(nearest)) / len(texts)


def test_paraphrase_start_groups_the_captions_of_a_clip(tmp_path: Path) -> None:
    manifest, cfg = _cfg(tmp_path, "text_head_init=paraphrase", "text_paraphrase_steps=150", "data.text_cache=true",
                         "freeze=[text,text_projection,text_transform]")
    plain = Trainer(_cfg(tmp_path / "plain", "data.text_cache=true")[1]).model
    trainer = Trainer(cfg)
    # 8 styles x 4 captions: a random head rarely puts a caption next to its own style's
    assert _nearest_is_same_style(plain, manifest) < 0.7
    assert _nearest_is_same_style(trainer.model, manifest) == 1.0
    # the run's freezing is kept: the heads trained here stay frozen for the run
    assert not any(p.requires_grad for p in trainer.model.text_projection.parameters())
    assert all(p.requires_grad for p in trainer.model.speech_encoder.parameters())


def test_paraphrase_start_keeps_the_heads_modes(tmp_path: Path) -> None:
    from clsp.train.text_init import paraphrase_text_head

    manifest, cfg = _cfg(tmp_path, "data.text_cache=true")
    model = Trainer(cfg).model
    model.eval()
    before = [p.detach().clone() for p in model.text_projection.parameters()]
    loss = paraphrase_text_head(model, str(manifest), steps=20, batch_size=8)
    assert loss > 0
    assert not model.text_projection.training and not model.text_transform.training
    assert any(not torch.equal(b, p) for b, p in zip(before, model.text_projection.parameters()))


def test_paraphrase_start_needs_clips_with_two_captions(tmp_path: Path) -> None:
    import json

    manifest = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        row["finegrained_captions"] = []
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(None, [f"data.train={manifest}", "init_from=tiny-random", "device=cpu", "data.num_workers=0",
                             f"output_dir={tmp_path / 'exp'}", "freeze=[text]", "text_head_init=paraphrase"])
    with pytest.raises(ConfigError, match="two or more distinct captions"):
        Trainer(cfg)
    for bad in ("text_paraphrase_steps=0", "text_paraphrase_clips=1"):
        with pytest.raises(ConfigError):
            _cfg(tmp_path, bad)[1].validate()
