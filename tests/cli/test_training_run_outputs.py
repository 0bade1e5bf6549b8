"""No output of any command replaces a file of a training run: a checkpoint's optimizer state,
anything under its checkpoints/ folder, the run's config.json or metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.assets import write_wav
from tests.helpers.cli import invoke


def _run_folder(root: Path) -> Path:
    """The layout clsp train writes: RUN/{config.json, metrics.jsonl, checkpoints/step-N/...}."""
    run = root / "run"
    step = run / "checkpoints" / "step-00000004"
    (step / "model").mkdir(parents=True)
    (run / "config.json").write_text("{}\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (step / "trainer_state.pt").write_bytes(b"state")
    (step / "COMPLETE").write_text("")
    return run


def test_outputs_onto_a_training_runs_files_are_refused(tmp_path: Path) -> None:
    run = _run_folder(tmp_path)
    write_wav(tmp_path / "a.wav", 0.5)
    step = run / "checkpoints" / "step-00000004"
    kept = {p: p.read_bytes() for p in (run / "config.json", run / "metrics.jsonl", step / "trainer_state.pt")}
    for target, says in ((step / "trainer_state.pt", "inside the training checkpoint"),
                         (step / "new.jsonl", "inside the training checkpoint"),
                         (run / "checkpoints" / "x.jsonl", "inside the checkpoints folder"),
                         (run / "config.json", "is the config.json of the training run"),
                         (run / "metrics.jsonl", "is the metrics.jsonl of the training run")):
        res = invoke("embed", "a.wav", "--model", "tiny-random", "-o", str(target), cwd=tmp_path)
        assert res.returncode == 2 and says.encode() in res.stderr, (target, res.stderr)
    assert {p: p.read_bytes() for p in kept} == kept and not (step / "new.jsonl").exists()
    res = invoke("embed", "a.wav", "--model", "tiny-random", "-q", "-o", str(run / "a.emb.jsonl"), cwd=tmp_path)
    assert res.returncode == 0 and json.loads((run / "a.emb.jsonl").read_text())["id"] == "a.wav"  # beside: fine


def test_a_running_run_without_checkpoints_and_an_index_inside_a_run_are_protected(tmp_path: Path) -> None:
    """A run training now (train.lock) or one that logged before its first checkpoint keeps its
    config.json and metrics.jsonl; search build's index folder is refused inside a run too."""
    write_wav(tmp_path / "a.wav", 0.5)
    young = tmp_path / "young"
    young.mkdir()
    (young / "config.json").write_text("{}\n")
    (young / "metrics.jsonl").write_text('{"step": 1}\n')
    running = tmp_path / "running"
    running.mkdir()
    (running / "config.json").write_text("{}\n")
    (running / "train.lock").write_text("123\n")
    for target in (young / "config.json", young / "metrics.jsonl", running / "config.json"):
        res = invoke("embed", "a.wav", "--model", "tiny-random", "-o", str(target), cwd=tmp_path)
        assert res.returncode == 2 and b"of the training run" in res.stderr, (target, res.stderr)
        assert target.read_text() == "{}\n" or target.name == "metrics.jsonl"
    res = invoke("embed", "a.wav", "--model", "tiny-random", "-q", "-o", "a.emb.jsonl", cwd=tmp_path)
    assert res.returncode == 0
    run = _run_folder(tmp_path)
    for index in (run / "checkpoints" / "step-00000004", run / "checkpoints" / "i.idx", run / "train.lock"):
        res = invoke("search", "build", "a.emb.jsonl", "-o", str(index), cwd=tmp_path)
        assert res.returncode == 2 and b"training" in res.stderr, (index, res.stderr)
    assert not (run / "train.lock").exists() and not (run / "checkpoints" / "i.idx").exists()
    assert (run / "checkpoints" / "step-00000004" / "trainer_state.pt").read_bytes() == b"state"
