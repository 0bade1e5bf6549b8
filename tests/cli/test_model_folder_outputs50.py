"""No output lands inside the model folder a run loads (it would replace the model's weights,
config or tokenizer: the next load fails), and no training run is written inside another run's
folder or a model folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsp.models.checkpoint import save_model, tiny_model
from clsp.train.toy_corpus import write_toy_corpus
from clsp_cli.app import app
from tests.conftest import write_wav
from tests.helpers.assets import REPO

CONFIG = REPO / "examples" / "configs" / "tiny.yaml"


def clsp(*args: str, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return res


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def model(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "a.wav", 0.8, 140, seed=1)
    write_wav(tmp_path / "b.wav", 0.8, 220, seed=2)
    folder = tmp_path / "m"
    save_model(tiny_model(), folder)
    return folder


@pytest.mark.parametrize("args", [
    ["embed", "a.wav", "-o", "{m}/model.safetensors"],
    ["embed", "a.wav", "-o", "{m}/config.json"],
    ["embed", "a.wav", "-o", "out.jsonl", "--npy", "{m}/model.safetensors"],
    ["embed", "a.wav", "-o", "{m}/new.jsonl"],
    ["classify", "a.wav", "--pack", "gender", "-o", "{m}/model.safetensors"],
    ["similarity", "a.wav", "b.wav", "-o", "{m}/config.json"],
])
@pytest.mark.parametrize("given", ["{m}", "{m}/model.safetensors"])
def test_an_output_inside_the_loaded_model_folder_is_refused_before_any_work(model, args, given):
    before = _digest(model)
    m = str(model)
    res = clsp(*[a.format(m=m) for a in args], "--model", given.format(m=m), "-q", code=2)
    assert "model" in res.output and str(model) in res.output, res.output
    assert _digest(model) == before
    assert not list(model.glob("*.partial")) and not list(model.glob("*.lock"))


def test_an_output_beside_the_model_folder_is_fine(model):
    clsp("embed", "a.wav", "--model", str(model), "-q", "-o", "m-out.jsonl")
    assert Path("m-out.jsonl").stat().st_size > 0


def test_the_default_models_folder_is_protected_too():
    """Checked on the parameters alone (as before any work): a regression must not write into
    the installed package."""
    from clsp.errors import ConfigError
    from clsp.models.checkpoint import DEFAULT_MODEL_DIR
    from clsp_cli.output_files import check_run_files

    for name in ("default", "clsp-default"):
        with pytest.raises(ConfigError, match="inside the folder of the model"):
            check_run_files({"model": name, "output": str(DEFAULT_MODEL_DIR / "config.json")})
    check_run_files({"model": "default", "output": "elsewhere.jsonl"})


def test_training_inside_another_runs_folder_or_a_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)
    base = [CONFIG, f"data.train={data}", "data.valid=null", "valid_every=0", "--max-steps", "1", "-q"]
    clsp("train", *base, "-o", "exp/x")
    before = _digest(tmp_path / "exp" / "x")
    for inside in ("exp/x/checkpoints", "exp/x/checkpoints/step-00000001/model/sub", "exp/x/other"):
        res = clsp("train", *base, "-o", inside, code=2)
        assert "exp/x" in res.output and "inside" in res.output, res.output
    assert _digest(tmp_path / "exp" / "x") == before
    clsp("train", *base, "-o", "exp/y")  # a sibling run is fine
