"""``model.encode_audio_files`` / ``model.encode_texts``: matrices of unit rows in input order,
the same rows ``clsp embed`` writes, and errors that name the file or caption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clsp.errors import AudioError, ConfigError, InputError
from clsp.models import load_model
from clsp_cli.app import app

from tests.helpers.assets import REPO, write_wav

ROOT = REPO


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-random")


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    # lengths around a 1 s window so that --max-seconds 1 averages the longer ones
    return [write_wav(tmp_path / f"c{i}.wav", s, freq=f, seed=i)
            for i, (s, f) in enumerate([(0.7, 180.0), (1.6, 240.0), (0.4, 300.0), (2.3, 120.0)])]


def test_audio_rows_are_the_rows_clsp_embed_writes(model, clips: list[Path], tmp_path: Path) -> None:
    got = model.encode_audio_files([str(p) for p in clips], batch_size=3, max_seconds=1.0)
    assert got.shape == (len(clips), 32) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    out = tmp_path / "emb.jsonl"
    res = CliRunner().invoke(app, ["embed", *map(str, clips), "--model", "tiny-random", "--max-seconds", "1",
                                   "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    cli = np.array([json.loads(line)["embedding"] for line in out.read_text().splitlines()], dtype=np.float32)
    np.testing.assert_allclose(got, cli, atol=1e-5)


def test_audio_rows_follow_the_input_order_whatever_the_batch(model, clips: list[Path]) -> None:
    one = model.encode_audio_files(clips, batch_size=1)
    backwards = model.encode_audio_files(clips[::-1], batch_size=4)
    np.testing.assert_allclose(backwards[::-1], one, atol=1e-5)
    assert not np.allclose(one[0], one[1], atol=1e-3)  # distinct clips, distinct rows


def test_relative_paths_open_from_the_working_directory(model, clips: list[Path], monkeypatch) -> None:
    monkeypatch.chdir(clips[0].parent)
    np.testing.assert_allclose(model.encode_audio_files([clips[0].name]), model.encode_audio_files([clips[0]]))


def test_text_rows_are_the_models_caption_embeddings(model) -> None:
    texts = ["a calm young woman", "an angry man shouting loudly", "whispering"]
    got = model.encode_texts(texts, batch_size=2)
    assert got.shape == (3, 32) and got.dtype == np.float32
    with torch.no_grad():
        direct = model.encode_text(texts).numpy()
    np.testing.assert_allclose(got, direct, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_errors_name_the_file_or_caption(model, clips: list[Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=re.escape(str(missing))):
        model.encode_audio_files([clips[0], missing])
    with pytest.raises(InputError, match="text 1.*empty"):
        model.encode_texts(["a calm voice", "  "])
    with pytest.raises(ConfigError, match="list"):
        model.encode_texts("one caption")
    with pytest.raises(ConfigError, match="windows"):
        model.encode_audio_files(clips, long_audio="windows")
    assert model.encode_audio_files([]).shape == (0, 32)


def test_readme_snippet_runs(monkeypatch) -> None:
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "encode_audio_files" in b)
    monkeypatch.chdir(ROOT)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    audio, text = scope["audio"], scope["text"]
    assert audio.shape == (2, 256) and text.shape == (2, 256) and audio.dtype == np.float32
    sims = audio @ text.T
    assert np.all(np.abs(sims) <= 1.0 + 1e-5)


@pytest.mark.parametrize(("option", "value", "says"), [("batch_size", 0, r"--batch-size \(batch_size=\) must be a whole number >= 1, got 0"),
                                                      ("max_seconds", 0.0, r"--max-seconds \(max_seconds=\) must be a positive"),
                                                      ("max_seconds", float("nan"), r"max_seconds=\) .* got nan")])
def test_a_bad_batch_setting_is_named_as_the_call_spells_it(model, clips: list[Path], option, value, says) -> None:
    """encode_audio_files(batch_size=0) said "batch size, --max-seconds, --max-batch-seconds and
    --max-inflight-seconds must be positive finite numbers": four command-line options, none
    of them what was wrong."""
    with pytest.raises(ConfigError, match=says):
        model.encode_audio_files(clips[:1], **{option: value})
