"""Embeddings or an index from one model met with another: the error names both models and
what to change on the command that was run (``--model``, ``--add``, or re-embedding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsp.models import save_model
from clsp.models.base import tiny_model
from clsp_cli.app import app


def _invoke(*args: str):
    return CliRunner().invoke(app, [*args, "-q"])


@pytest.fixture
def setup(clips: Path) -> dict:
    """Embeddings of the clips by tiny-random and by another model ('other'), and an index of the first."""
    other = save_model(tiny_model(seed=1), clips / "other")
    for name, model in (("tiny", "tiny-random"), ("other", str(other))):
        res = _invoke("embed", str(clips / "clips.jsonl"), "--model", model, "-o", str(clips / f"{name}.jsonl"))
        assert res.exit_code == 0, res.output
    res = _invoke("search", "build", str(clips / "tiny.jsonl"), "-o", str(clips / "tiny.idx"))
    assert res.exit_code == 0, res.output
    return {"dir": clips, "other": str(other)}


def _first_error(path: Path) -> str:
    return json.loads(path.read_text().splitlines()[0])["error"]["message"]


def test_classify_names_the_model_to_pass_with_model(setup: dict) -> None:
    d = setup["dir"]
    res = _invoke("classify", str(d / "other.jsonl"), "--pack", "gender", "--model", "tiny-random",
                  "-o", str(d / "out.jsonl"))
    assert res.exit_code == 3
    message = _first_error(d / "out.jsonl")
    assert "made by model 'other'" in message and "--model gives model 'tiny-random'" in message
    assert "run it again with --model set to the model that made them, 'other'" in message


def test_search_query_with_another_model_says_which_model_built_the_index(setup: dict) -> None:
    d = setup["dir"]
    res = _invoke("search", "query", str(d / "tiny.idx"), "--text", "a calm voice", "--model", setup["other"])
    assert res.exit_code != 0
    assert "the index was built with model 'tiny-random'" in res.output
    assert "--model set to the model that built the index, 'tiny-random'" in res.output


def test_query_embeddings_from_another_model_say_how_to_embed_them(setup: dict) -> None:
    d = setup["dir"]
    res = _invoke("search", "query", str(d / "tiny.idx"), str(d / "other.jsonl"), "-o", str(d / "hits.jsonl"))
    assert res.exit_code == 3
    assert "clsp embed --model tiny-random" in _first_error(d / "hits.jsonl")


def test_adding_another_models_embeddings_to_an_index_says_what_to_do(setup: dict) -> None:
    d = setup["dir"]
    res = _invoke("search", "build", str(d / "other.jsonl"), "-o", str(d / "tiny.idx"), "--add")
    assert res.exit_code != 0
    assert "made by model 'other'" in res.output and "without --add" in res.output
    assert "clsp embed --model tiny-random" in res.output


def test_an_index_of_a_model_known_only_by_folder_asks_for_model(setup: dict, tmp_path: Path, monkeypatch) -> None:
    d = setup["dir"]
    assert _invoke("search", "build", str(d / "other.jsonl"), "-o", str(d / "other.idx")).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # 'other' is a folder name, not a built-in model
    res = _invoke("search", "query", str(d / "other.idx"), "--text", "a calm voice")
    assert res.exit_code == 2
    assert "the index was built with model 'other'" in res.output and "pass --model" in res.output
    ok = _invoke("search", "query", str(d / "other.idx"), "--text", "a calm voice", "--model", setup["other"])
    assert ok.exit_code == 0, ok.output


def test_a_clsp_models_weights_file_loads_its_model(tmp_path: Path) -> None:
    """--model DIR/model.safetensors (what tab completion gives) is that model, not a
    released checkpoint whose 800 keys all fail to match."""
    from clsp.models import load_model

    folder = save_model(tiny_model(seed=3), tmp_path / "mine")
    a, b = load_model(folder), load_model(folder / "model.safetensors")
    assert a.name == b.name == "mine" and a.provenance() == b.provenance()
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert (x == y).all()


def test_hints_for_a_model_known_by_its_folder_ask_for_its_directory_not_its_name(setup: dict) -> None:
    d = setup["dir"]
    assert _invoke("search", "build", str(d / "other.jsonl"), "-o", str(d / "other.idx")).exit_code == 0
    res = _invoke("search", "query", str(d / "other.idx"), str(d / "tiny.jsonl"), "-o", str(d / "hits.jsonl"))
    assert res.exit_code == 3
    message = _first_error(d / "hits.jsonl")
    assert "clsp embed --model DIR (the directory of model 'other'" in message  # 'other' alone names no model
    res = _invoke("search", "build", str(d / "tiny.jsonl"), "-o", str(d / "other.idx"), "--add")
    assert res.exit_code != 0 and "clsp embed --model DIR (the directory of model 'other'" in res.output
