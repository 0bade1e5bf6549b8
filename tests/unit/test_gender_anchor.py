"""The gender anchor (clsp.models.anchor): caption gender swaps, the fitted subspace, the
embedding's gender component set by the gender head alone, and a model that trains with it,
saves and embeds the same after loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clsp.errors import ConfigError
from clsp.models import build_model, tiny_config
from clsp.models.anchor import GenderAnchor, swap_gender


@pytest.mark.parametrize("caption, expected", [
    ("A man speaks.", ("A woman speaks.", False)),
    ("A female speaker in her thirties speaks.", ("A male speaker in his thirties speaks.", True)),
    ("She talks while he listens.", None),  # both genders: no pair
    ("Woman, angry.", ("Man, angry.", True)),
    ("A calm voice speaking slowly.", None),
    ("The manager of a human resources team.", None),  # whole words only
])
def test_swap_gender(caption, expected):
    assert swap_gender(caption) == expected


def test_fit_spans_the_pair_differences_with_the_mean_first():
    gen = torch.Generator().manual_seed(0)
    dim, pairs = 32, 40
    u = F.normalize(torch.randn(dim, generator=gen), dim=0)
    v = F.normalize(torch.randn(dim, generator=gen) - u * 0.0, dim=0)
    male = F.normalize(torch.randn(pairs, dim, generator=gen), dim=-1)
    female = male + 0.5 * u + 0.1 * torch.randn(pairs, 1, generator=gen) * v
    anchor = GenderAnchor(dim, rank=3)
    energy = anchor.fit(female, male)
    b = anchor.basis.double()
    assert torch.allclose(b[:2] @ b[:2].T, torch.eye(2, dtype=torch.float64), atol=1e-5)
    assert torch.equal(anchor.basis[2], torch.zeros(dim))  # the differences span two directions only
    assert torch.allclose(anchor.direction, anchor.basis[0])
    assert float(anchor.direction @ u) > 0.99
    assert 0.99 < energy <= 1.0 + 1e-6  # two directions hold every difference


def test_fit_spans_the_exact_pairs_whatever_the_rest():
    gen = torch.Generator().manual_seed(1)
    dim, rank, exact = 64, 8, 3
    male = F.normalize(torch.randn(200, dim, generator=gen), dim=-1)
    female = male + 0.3 * torch.randn(200, dim, generator=gen)  # differences spread over many directions
    female[exact:] += 5.0 * torch.randn(1, dim, generator=gen)  # the rest dominated by one other direction
    anchor = GenderAnchor(dim, rank=rank)
    anchor.fit(female, male, exact=exact)
    b = anchor.basis.double()
    assert torch.allclose(b @ b.T, torch.eye(rank, dtype=torch.float64), atol=1e-5)
    diff = (female - male).double()
    residual = diff - (diff @ b.T) @ b
    assert float(residual[:exact].norm(dim=1).max()) < 1e-5 * float(diff[:exact].norm(dim=1).min())
    plain = GenderAnchor(dim, rank=rank)
    plain.fit(female, male)  # without exact rows, the principal directions of the rest win
    bp = plain.basis.double()
    assert float((diff[:exact] - (diff[:exact] @ bp.T) @ bp).norm(dim=1).min()) > 0.1 * float(diff[:exact].norm(dim=1).min())


def test_exact_captions_are_gender_only_and_hold_the_gender_pack():
    from clsp.models.anchor import exact_captions
    from clsp.prompts import load_pack

    captions = exact_captions()
    assert all(swap_gender(c) is not None for c in captions)
    pack = load_pack("gender").get("gender")
    assert {p for c in pack.classes for p in c.prompts} <= set(captions) | {swap_gender(c)[0] for c in captions}


def test_gender_component_follows_the_head_not_the_input():
    anchor = GenderAnchor(16, rank=2)
    anchor.fit(torch.eye(16)[:4] + torch.eye(16)[4:8] * 0.2, torch.zeros(4, 16))
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    logodds = torch.tensor([[-4.0], [-1.0], [0.0], [1.0], [4.0]])
    out = anchor(x, logodds)
    shifted = anchor(x + 7.0 * anchor.basis[0] - 3.0 * anchor.basis[1], logodds)
    assert torch.allclose(out, shifted, atol=1e-5)  # what the head's input says about gender is ignored
    along = out @ anchor.direction
    assert (torch.diff(along) > 0).all() and along[0] < 0 < along[-1]
    assert torch.allclose(out @ anchor.basis[1], torch.zeros(5), atol=1e-5)


def test_anchor_needs_a_gender_head():
    cfg = tiny_config()
    cfg.gender_anchor = 2
    with pytest.raises(ConfigError, match="gender_anchor needs"):
        build_model(cfg)


def test_trains_saves_and_embeds_the_same(tmp_path: Path):
    from clsp.audio import load_audio
    from clsp.models import load_model
    from clsp.train import load_config
    from clsp.train.loop import Trainer
    from clsp.train.toy_corpus import write_toy_corpus

    corpus = write_toy_corpus(tmp_path / "toy", clips_per_style=1, min_seconds=0.6, max_seconds=1.0)
    model = {**tiny_config().to_dict(), "gender_anchor": 12,
             "speech_encoder": {"type": "speaker_fusion", "speakers": ["ge2e"], "gender_head": True, "gender_dim": 4,
                                "speaker_proj_dim": 8, "stats_dim": 8}}
    (tmp_path / "train.json").write_text(json.dumps({"model": model}))
    cfg = load_config(tmp_path / "train.json", [
        f"data.train={corpus}", "device=cpu", "data.num_workers=0", "data.min_duration=0.1", "data.max_duration=2",
        "data.max_batch_seconds=6", "max_steps=2", "checkpoint_every=0", "seed=0", f"output_dir={tmp_path / 'exp'}"])
    trainer = Trainer(cfg)
    fitted = trainer.model.gender_anchor.basis.clone()
    # fitted when training starts; the toy captions name no gender, so only the built-in
    # pairs count (exact_captions: more than the rank), spanned by 12 orthonormal rows
    from clsp.models.anchor import exact_captions

    assert len(exact_captions()) > 12
    rows = fitted[fitted.abs().sum(1) > 0]
    assert len(rows) == 12 and torch.allclose(rows @ rows.T, torch.eye(12), atol=1e-4)
    result = trainer.run()
    assert result.status == "finished"
    loaded = load_model(str(result.checkpoint / "model"))
    assert torch.allclose(loaded.gender_anchor.basis, fitted)
    wav = sorted(Path(corpus).parent.rglob("*.wav"))[0]
    wave = load_audio(str(wav))
    a = trainer.model.eval().encode_audio(wave[None], torch.tensor([wave.numel()]))
    b = loaded.encode_audio(wave[None], torch.tensor([wave.numel()]))
    assert np.allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    frozen = loaded.speech_encoder.frozen_features(wave[None], torch.tensor([wave.numel()]))
    gate = torch.tanh(loaded.gender_anchor.slope * loaded.speech_encoder.gender_logodds(frozen))
    assert float(torch.sign(b.detach() @ loaded.gender_anchor.direction)) == float(torch.sign(gate.detach()))

    # fine-tuning keeps the parent's anchor rather than fitting a new one
    tuned = load_config(tmp_path / "train.json", [
        f"data.train={corpus}", "device=cpu", "data.num_workers=0", "data.min_duration=0.1", "data.max_duration=2",
        "data.max_batch_seconds=6", "max_steps=1", "checkpoint_every=0", "seed=1", f"output_dir={tmp_path / 'ft'}",
        f"init_from={result.checkpoint / 'model'}", "name=tuned"])
    assert torch.equal(Trainer(tuned).model.gender_anchor.basis, loaded.gender_anchor.basis)
