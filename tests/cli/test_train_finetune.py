"""Fine-tuning ergonomics: a fine-tuned model has its own name and records its parent, a run
resumes from its output dir alone, and a run that fails at the start leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.assets import REPO
from clsp.train.toy_corpus import write_toy_corpus
from clsp_cli.app import app

TINY = REPO / "examples" / "configs" / "tiny.yaml"


def _corpus(tmp_path: Path) -> Path:
    return write_toy_corpus(tmp_path / "data", clips_per_style=1, min_seconds=0.3, max_seconds=0.5)


def _train(*args: str):
    return CliRunner().invoke(app, ["train", *args, "-q"])


def _base(manifest: Path, *extra: str) -> list[str]:
    return [str(TINY), f"data.train={manifest}", "data.valid=null", "tensorboard=false", "checkpoint_every=1",
            "data.max_batch_seconds=10", *extra]


def _model_meta(out: Path, step: int) -> dict:
    return json.loads((out / "checkpoints" / f"step-{step:08d}" / "model" / "config.json").read_text())


def test_resume_latest_without_a_config_uses_the_runs_saved_config(tmp_path: Path) -> None:
    manifest, out = _corpus(tmp_path), tmp_path / "run"
    first = _train(*_base(manifest, "optim.lr_heads=0.0123", "seed=7"), "-o", str(out), "--max-steps", "1")
    assert first.exit_code == 0, first.output
    # no config file: the run's own config.json (data.train, seed, lr...) is used, plus the overrides given
    again = _train("--resume", "latest", "--output-dir", str(out), "max_steps=2")
    assert again.exit_code == 0, again.output
    assert (out / "checkpoints" / "step-00000002" / "COMPLETE").exists()
    saved = json.loads((out / "config.json").read_text())
    assert saved["optim"]["lr_heads"] == 0.0123 and saved["seed"] == 7 and saved["max_steps"] == 2
    assert saved["data"]["train"] == str(manifest)


def test_resume_without_a_config_needs_a_run_folder(tmp_path: Path) -> None:
    no_dir = _train("--resume", "latest")
    assert no_dir.exit_code == 2 and "--output-dir" in no_dir.output
    (tmp_path / "empty").mkdir()
    empty = _train("--resume", "latest", "-o", str(tmp_path / "empty"))
    assert empty.exit_code == 2 and "no training run here" in empty.output


def test_fine_tuned_checkpoint_has_its_own_name_and_records_its_parent(tmp_path: Path) -> None:
    from clsp.models import load_model

    manifest, out = _corpus(tmp_path), tmp_path / "ft-toy"
    res = _train(*_base(manifest), "-o", str(out), "--max-steps", "1")  # tiny.yaml: init_from tiny-random
    assert res.exit_code == 0, res.output
    meta = _model_meta(out, 1)
    assert meta["model"]["name"] == "ft-toy"
    assert meta["init_from"] == {"model": "tiny-random", "checksum": "seed:0"}
    model = load_model(out / "checkpoints" / "step-00000001" / "model")
    prov = model.provenance()
    assert prov["model"] == "ft-toy" and prov["init_from"]["model"] == "tiny-random"
    assert prov["checksum"].startswith("sha256:")

    named = _train(*_base(manifest), "-o", str(tmp_path / "other"), "--max-steps", "1", "--name", "my-voices")
    assert named.exit_code == 0, named.output
    assert _model_meta(tmp_path / "other", 1)["model"]["name"] == "my-voices"


@pytest.mark.parametrize("name", ["clsp-default", "default", "tiny-random"])
def test_a_fine_tuned_model_cannot_take_a_built_in_name(tmp_path: Path, name: str) -> None:
    res = _train(*_base(_corpus(tmp_path)), "-o", str(tmp_path / "exp"), "--max-steps", "1", "--name", name)
    assert res.exit_code == 2 and "built-in" in res.output
    assert not (tmp_path / "exp").exists()


def test_embed_after_fine_tuning_the_default_model_is_not_taken_for_it(tmp_path: Path) -> None:
    """`init_from: default`: what the fine-tuned model embeds names it, not `clsp-default`, and
    an index of the default model's embeddings refuses its queries."""
    manifest, out = _corpus(tmp_path), tmp_path / "ft-default"
    res = _train(*_base(manifest, "init_from=default"), "-o", str(out), "--max-steps", "1")
    assert res.exit_code == 0, res.output
    model_dir = out / "checkpoints" / "step-00000001" / "model"
    runner = CliRunner()
    fine = runner.invoke(app, ["embed", str(manifest), "--model", str(model_dir), "-q", "-o", str(tmp_path / "ft.jsonl")])
    base = runner.invoke(app, ["embed", str(manifest), "-q", "-o", str(tmp_path / "base.jsonl")])
    assert fine.exit_code == 0 and base.exit_code == 0, fine.output + base.output
    prov = json.loads((tmp_path / "ft.jsonl").read_text().splitlines()[0])["provenance"]
    default = json.loads((tmp_path / "base.jsonl").read_text().splitlines()[0])["provenance"]
    assert default["model"] == "clsp-default" and "init_from" not in default
    assert prov["model"] == "ft-default"
    assert prov["init_from"] == {"model": "clsp-default", "checksum": default["checksum"]}
    assert prov["checksum"] != default["checksum"]

    idx = tmp_path / "base.idx"
    assert runner.invoke(app, ["search", "build", str(tmp_path / "base.jsonl"), "-o", str(idx), "-q"]).exit_code == 0
    added = runner.invoke(app, ["search", "build", str(tmp_path / "ft.jsonl"), "-o", str(idx), "--add", "-q"])
    assert added.exit_code != 0 and "'ft-default'" in added.output and "'clsp-default'" in added.output


def test_a_run_that_fails_at_the_start_leaves_no_run_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"audio": "missing.wav", "global_captions": ["a calm voice"]}) + "\n")
    out = tmp_path / "exp"
    res = _train(*_base(bad), "-o", str(out), "--max-steps", "2")
    assert res.exit_code == 1 and "no usable training batch" in res.output
    assert not out.exists()
    # nothing a later --resume could take for a run
    later = _train("--resume", "latest", "-o", str(out))
    assert later.exit_code == 2 and "no training run here" in later.output
    taken = tmp_path / "a-file"
    taken.write_text("mine")
    res = _train(*_base(_corpus(tmp_path)), "-o", str(taken), "--max-steps", "1")
    assert res.exit_code == 2 and "exists and is not a folder" in res.output and taken.read_text() == "mine"


def test_a_failed_start_in_an_existing_folder_restores_it(tmp_path: Path) -> None:
    manifest, out = _corpus(tmp_path), tmp_path / "exp"
    assert _train(*_base(manifest), "-o", str(out), "--max-steps", "1").exit_code == 0
    before = (out / "config.json").read_text()
    entries = sorted(p.name for p in out.iterdir())
    res = _train(*_base(manifest, "data.max_duration=0.2", "data.min_duration=0.1"), "-o", str(out),
                 "--max-steps", "3", "--resume", "latest")  # resumes, then finds no clip in the window
    assert res.exit_code == 1, res.output
    assert (out / "config.json").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == entries
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000001"]


ROOT = REPO


def test_the_configs_in_train_help_keep_real_speech_clips() -> None:
    """The configs `clsp train --help` shows take utterances up to 15 s at least, and the
    fine-tuning one takes every real example clip (EmoDB, 1.7-2.4 s); the help says what
    the duration window means."""
    import re

    import soundfile as sf

    from clsp.train import load_config
    from clsp.train.data import BatchPlan

    text = " ".join(CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output.split())
    shown = sorted(set(re.findall(r"examples/configs/[\w.-]+\.yaml", text)))
    assert shown and "data.max_duration" in text and "data.min_duration" in text
    real = [sf.info(str(p)).duration for p in sorted((ROOT / "examples" / "data").glob("*.flac"))]
    for name in shown:
        cfg = load_config(ROOT / name, ["data.train=examples/data/captions.jsonl"])
        d = cfg.data
        assert d.max_duration >= 15.0, (name, d.max_duration)  # typical utterances fit
        if cfg.init_from != "default":
            continue  # the paper's recipes choose their window for their corpus
        assert all(d.min_duration <= s for s in real), (name, d.min_duration)
        plan = BatchPlan(str(ROOT / "examples" / "data" / "captions.jsonl"), d, seed=0, epoch=0)
        assert sum(len(b) for b in plan) == len(real) and plan.skips.total == 0, name


def test_the_fine_tuning_recipe_runs(tmp_path: Path) -> None:
    """examples/finetune.sh (the README recipe): fine-tune the default model on the captioned
    example clips, then embed them with the checkpoint, whose provenance names it."""
    import os
    import subprocess

    env = dict(os.environ, OUT=str(tmp_path / "ft"), STEPS="2", OMP_NUM_THREADS="1")
    res = subprocess.run([str(ROOT / "examples" / "finetune.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    prov = json.loads(res.stdout.strip().splitlines()[-1])
    assert prov["model"] == "my-voices" and prov["init_from"]["model"] == "clsp-default"
    rows = (tmp_path / "ft" / "clips.emb.jsonl").read_text().splitlines()
    assert len(rows) == 6 and all("embedding" in json.loads(r) for r in rows)
    readme = (ROOT / "README.md").read_text()
    assert "clsp train examples/configs/finetune.yaml data.train=examples/data/captions.jsonl" in readme
