"""Parity with the authors' implementation: fixtures made by running their code on a reduced
(7-stack) random-weight CLSP model, loaded here through the checkpoint loader users call."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from clsp.models import icefall_format
from clsp.models.base import ModelConfig
from tests.helpers.assets import TEST_DATA

DATA = TEST_DATA / "parity"
TOL = 1e-4


def reduced_config() -> ModelConfig:
    meta = json.loads((DATA / "reference_meta.json").read_text())
    text = {"model_type": "roberta", **meta["text"]}
    return ModelConfig(
        speech_encoder={"type": "zipformer", **meta["zipformer"], "embed_channels": meta["embed_channels"]},
        text_encoder={"config": text, "tokenizer": "all-MiniLM-L6-v2", "pooling": "pooler", "max_length": 512},
        joint_dim=meta["joint_dim"],
        head_hidden=meta["joint_dim"],
        name="parity",
    )


@pytest.fixture(scope="module")
def reference():
    from safetensors.torch import load_file

    return load_file(str(DATA / "reference_io.safetensors")), json.loads((DATA / "reference_meta.json").read_text())


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # the loader must overwrite every random initial weight
    return icefall_format.load_authors_checkpoint(DATA / "tiny_icefall.pt", config=reduced_config())


def padded_batch(ref, meta, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    lens = ref[f"batch{b}.lengths"]
    flat = ref[f"batch{b}.feats"].float()
    feats = torch.full((len(lens), int(lens.max()), flat.shape[1]), meta["fbank_pad_value"])
    for i, chunk in enumerate(flat.split(lens.tolist())):
        feats[i, : chunk.shape[0]] = chunk
    return feats, lens


def test_checkpoint_covers_every_tensor_of_the_reference(model, reference):
    _, meta = reference
    assert len(model.state_dict()) == meta["num_tensors"]
    assert sum(p.numel() for p in model.parameters()) == meta["num_params"]


@pytest.mark.parametrize("b", [0, 1])
def test_batched_audio_embeddings_match_the_reference_run_on_each_clip_alone(model, reference, b):
    # batch0 pads clips of 1601, 430 and 101 frames to 3000; each must still give what the
    # reference gives for that clip alone.
    ref, meta = reference
    feats, lens = padded_batch(ref, meta, b)
    with torch.no_grad():
        pooled = model.speech_features(feats, lens)
        emb = model.encode_fbank(feats, lens)
    assert (pooled - ref[f"batch{b}.audio_pooled_one_clip"]).abs().max() <= TOL
    assert (emb - ref[f"batch{b}.audio_embedding_one_clip"]).abs().max() <= TOL


def test_the_unpadded_clip_matches_the_reference_batch_run(model, reference):
    # The reference's own batched run lets padding leak into its shorter clips; its longest
    # clip has no padding, so there the batched and one-clip references agree with ours.
    ref, meta = reference
    feats, lens = padded_batch(ref, meta, 0)
    longest = int(lens.argmax())
    with torch.no_grad():
        pooled = model.speech_features(feats, lens)
    assert (pooled[longest] - ref["batch0.audio_pooled"][longest]).abs().max() <= TOL
    shorter = [i for i in range(len(lens)) if i != longest]
    leak = (ref["batch0.audio_pooled"][shorter] - ref["batch0.audio_pooled_one_clip"][shorter]).abs().max()
    assert leak > 100 * TOL  # the fixture really holds padded-batch values that differ


def test_text_embeddings_match_the_reference(model, reference):
    ref, _ = reference
    ids, mask = ref["text.input_ids"], ref["text.attention_mask"]
    assert int(mask.sum(1).max()) == 512
    with torch.no_grad():
        pooled = model.text_encoder(ids, mask)
        emb = F.normalize(model.text_embed_unnormalized(ids, mask), dim=-1)
    assert (pooled - ref["text.pooler_output"]).abs().max() <= TOL
    assert (emb - ref["text.embedding"]).abs().max() <= TOL
    assert abs(model.logit_scale.exp().item() - ref["logit_scale_exp"].item()) <= TOL
