"""Model loading and the Python API: empty names, bad config.json files, weights that do not
match (naming the file), a missing tokenizer folder, encode_text / encode_audio input checks,
and a converted or copied tiny-random keeping its identity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from clsp.errors import AudioError, CheckpointError, ConfigError, ModelError
from clsp.models import load_model, save_model, tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_model(tiny_model(), tmp_path_factory.mktemp("m") / "m_tiny")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("name", ["", "  "])
def test_empty_model_name_is_a_config_error(name):
    with pytest.raises(ConfigError, match="model name is empty"):
        load_model(name)


@pytest.mark.parametrize("edit, key", [
    (lambda m: m.update(clsp_format="one"), "clsp_format"),
    (lambda m: m.update(clsp_format=None), "clsp_format"),
    (lambda m: m.pop("model"), "'model'"),
    (lambda m: m.update(model=[1]), "'model'"),
])
def test_invalid_config_json_is_one_config_error(tiny_dir, tmp_path, edit, key):
    d = _copy(tiny_dir, tmp_path / "bad")
    meta = json.loads((d / "config.json").read_text())
    edit(meta)
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as err:
        load_model(d)
    assert f"{d / 'config.json'}:" in str(err.value) and key in str(err.value)


def test_wrongly_typed_model_key_names_the_config_file(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path / "bad")
    meta = json.loads((d / "config.json").read_text())
    meta["model"]["joint_dim"] = "32"
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="config.json: model.joint_dim"):
        load_model(d)


def test_weight_mismatch_names_the_weights_file(tiny_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    d = _copy(tiny_dir, tmp_path / "rm")
    sd = load_file(str(d / "model.safetensors"))
    del sd["audio_projection.2.weight"]
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_model(d)
    assert str(err.value).startswith(f"{d / 'model.safetensors'}: checkpoint does not match the model: 1 missing")


def test_folder_without_clsp_config_says_how_it_was_read(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path / "nocfg")
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(d)
    msg = str(err.value)
    assert msg.startswith(f"{d}: read as the authors'") and "no clsp config.json" in msg
    assert f"{d / 'model.safetensors'}: checkpoint does not match the model" in msg


def test_missing_tokenizer_folder_is_local_and_named(tiny_dir, tmp_path, monkeypatch):
    d = _copy(tiny_dir, tmp_path / "notok")
    shutil.rmtree(d / "tokenizer")
    monkeypatch.chdir(tmp_path)  # no ./tokenizer here either
    model = load_model(d)
    with pytest.raises(ModelError, match=r"notok/tokenizer: no such folder"):
        model.encode_text(["a calm voice"])


def test_encode_text_refuses_one_string_and_embeds_an_empty_list():
    model = tiny_model()
    with pytest.raises(ConfigError, match="not one string"):
        model.encode_text("a calm young woman")
    with torch.no_grad():
        out = model.encode_text([])
    assert tuple(out.shape) == (0, model.config.joint_dim)


def test_encode_audio_checks_its_inputs():
    model = tiny_model()
    wave = torch.randn(2, 16000) * 0.1
    lens = torch.tensor([16000, 16000])
    nan = wave.clone()
    nan[1, 100] = float("nan")
    with torch.no_grad():
        assert torch.isfinite(model.encode_audio(wave, lens)).all()
        with pytest.raises(AudioError, match="clip 1: non-finite"):
            model.encode_audio(nan, lens)
        with pytest.raises(ConfigError, match="floating point"):
            model.encode_audio((wave * 32767).to(torch.int16), lens)
        with pytest.raises(AudioError, match="clip 1: too short"):
            model.encode_audio(wave, torch.tensor([16000, 50]))
        with pytest.raises(AudioError, match="clip 0: too short"):
            model.encode_audio(torch.zeros(1, 0), torch.tensor([0]))
        with pytest.raises(ConfigError, match=r"\(B, S\)"):
            model.encode_audio(wave[0], torch.tensor([16000]))


def test_converted_or_copied_tiny_random_is_tiny_random(tiny_dir, tmp_path):
    ref = tiny_model().provenance()
    assert load_model(tiny_dir).provenance() == ref
    assert load_model(_copy(tiny_dir, tmp_path / "copy")).provenance() == ref
    assert load_model(tiny_dir, with_text=False).provenance() == ref
    other = load_model(save_model(tiny_model(seed=1), tmp_path / "other"))  # other weights: another model
    assert other.name == "other" and other.checksum != ref["checksum"]


def test_the_same_weights_with_other_settings_are_another_model(tiny_dir, tmp_path):
    from clsp.errors import ProvenanceError
    from clsp.index.store import same_provenance

    edited = _copy(tiny_dir, tmp_path / "edited")
    cfg = json.loads((edited / "config.json").read_text())
    cfg["model"]["text_encoder"]["max_length"] = 3
    (edited / "config.json").write_text(json.dumps(cfg))
    ref, other = load_model(tiny_dir), load_model(edited)
    text = "a whispering young woman speaking very slowly and sadly"
    with torch.no_grad():
        assert not np.allclose(ref.encode_texts([text]), other.encode_texts([text]))
    assert other.checksum == ref.checksum and other.provenance()["config"] != ref.provenance()["config"]
    with pytest.raises(ProvenanceError, match="config.json"):
        same_provenance(ref.provenance(), other.provenance(), "record 'x'")
    same_provenance(ref.provenance(), load_model(_copy(tiny_dir, tmp_path / "copy")).provenance(), "record 'x'")
    old = {k: v for k, v in other.provenance().items() if k != "config"}  # written before the digest existed
    same_provenance(ref.provenance(), old, "record 'x'")
