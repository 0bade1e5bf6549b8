"""Loading the authors' checkpoint formats: key mapping, format detection, safety, errors by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import clsp
from clsp.errors import CheckpointError, ModelError
from clsp.models import icefall_format
from clsp.models.base import build_model
from tests.unit.test_zipformer_parity import DATA, reduced_config

PT = DATA / "tiny_icefall.pt"


class NotATensor:
    """A class a pickle would have to import: such files must be refused."""


@pytest.fixture(scope="module")
def authors_sd() -> dict[str, torch.Tensor]:
    return torch.load(PT, weights_only=True)["model"]


def test_map_strips_the_hf_prefix_and_moves_towers():
    sd = {"model.encoder_embed.out.weight": torch.zeros(1), "model.encoder.encoders.0.layers.0.norm.bias": torch.zeros(1),
          "model.text_encoder.pooler.dense.bias": torch.zeros(1), "model.text_encoder.embeddings.position_ids": torch.zeros(1),
          "model.audio_transform.sequential.3.bias": torch.zeros(1), "model.logit_scale": torch.zeros(())}
    assert sorted(icefall_format.map_icefall_state_dict(sd)) == [
        "audio_transform.sequential.3.bias", "logit_scale", "speech_encoder.encoder.encoders.0.layers.0.norm.bias",
        "speech_encoder.encoder_embed.out.weight", "text_encoder.model.pooler.dense.bias"]


def test_full_config_counts_the_released_parameters():
    with torch.device("meta"):
        model = build_model(icefall_format.clsp_full_config(tokenizer="all-MiniLM-L6-v2"), load_text_weights=False)
    assert sum(p.numel() for p in model.parameters()) == 724_244_405
    assert sum(p.numel() for p in model.text_encoder.parameters()) == 124_645_632


def test_hf_directory_and_pt_file_load_the_same_weights(tmp_path, authors_sd):
    from safetensors.torch import save_file

    hf = tmp_path / "CLSP"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "clsp"}))
    save_file({"model." + k: v.contiguous() for k, v in authors_sd.items()}, str(hf / "model.safetensors"))
    assert icefall_format.detect_format(hf) == "hf" and icefall_format.detect_format(PT) == "icefall"
    a = icefall_format.load_authors_checkpoint(hf, config=reduced_config()).state_dict()
    b = icefall_format.load_authors_checkpoint(PT, config=reduced_config()).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change, expected", [
    ("drop", "1 missing: speech_encoder.encoder.encoders.3.encoder.layers.2.conv_module1.depthwise_conv.weight"),
    ("extra", "1 unexpected: speech_encoder.encoder.encoders.9.bogus"),
    ("reshape", "1 mis-shaped: audio_projection.0.weight (checkpoint (3, 3), model (16, 64))"),
])
def test_mismatched_tensors_are_named(tmp_path, authors_sd, change, expected):
    sd = dict(authors_sd)
    if change == "drop":
        del sd["encoder.encoders.3.encoder.layers.2.conv_module1.depthwise_conv.weight"]
    elif change == "extra":
        sd["encoder.encoders.9.bogus"] = torch.zeros(2)
    else:
        sd["audio_projection.0.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pt"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError) as err:
        icefall_format.load_authors_checkpoint(path, config=reduced_config())
    assert expected in str(err.value)


def test_the_released_config_rejects_a_smaller_checkpoint_by_name_without_building_it(monkeypatch):
    # the released config's tokenizer (roberta-base) may not be cached offline; any local one will do here
    monkeypatch.setattr(icefall_format, "_tokenizer_source", lambda path: "all-MiniLM-L6-v2")
    with pytest.raises(CheckpointError, match=r"mis-shaped: .*speech_encoder\.encoder"):
        clsp.load_model(str(PT))


def test_pickles_that_are_not_plain_state_dicts_are_refused(tmp_path, authors_sd):
    path = tmp_path / "epoch-1.pt"
    torch.save({"model": authors_sd, "params": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        icefall_format.load_authors_checkpoint(path, config=reduced_config())
    torch.save({"model": {"encoder.x": 3}}, path)
    with pytest.raises(CheckpointError, match="non-tensor entries encoder.x"):
        icefall_format.read_authors_state_dict(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        icefall_format.read_authors_state_dict(path)


def test_missing_paths_and_unknown_directories_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        icefall_format.detect_format(tmp_path / "nope")
    with pytest.raises(ModelError, match="no model.safetensors"):
        icefall_format.detect_format(tmp_path)
