"""A convert destination inside its source, plots of huge and non-numeric values, embeddings
that are not JSON numbers (or beyond float32), and the SLURM script's rerun of one task of
an array that starts at 1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke

REPO = Path(__file__).resolve().parents[2]


def write_lines(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# ---- 7: clsp convert into the source's own folder ----

def test_convert_refuses_a_destination_inside_the_source(tmp_path):
    ok = invoke("convert", "tiny-random", "c/a", "-q", cwd=tmp_path, text=True)
    assert ok.returncode == 0, ok.stderr
    before = sorted(p.name for p in (tmp_path / "c" / "a").iterdir())
    for dest in ("c/a/inner", "c/a/x/y"):
        res = invoke("convert", "c/a", dest, "-q", cwd=tmp_path, text=True)
        assert res.returncode == 2 and "inside the model being converted" in res.stderr, (res.returncode, res.stderr)
        assert "Traceback" not in res.stderr
    assert sorted(p.name for p in (tmp_path / "c" / "a").iterdir()) == before
    # the source can still be replaced by a fresh conversion, and a sibling folder is fine
    assert invoke("convert", "tiny-random", "c/a", "-q", cwd=tmp_path, text=True).returncode == 0
    assert invoke("convert", "c/a", "c/b", "-q", cwd=tmp_path, text=True).returncode == 0


# ---- 8: huge finite values in figures ----

def test_plot_run_draws_huge_finite_values(tmp_path):
    write_lines(tmp_path / "h.jsonl", [{"step": 1, "loss": 1e308, "lr_encoder": 1e-4},
                                       {"step": 2, "loss": -1e308, "lr_encoder": 1e308}])
    res = invoke("plot", "run", "h.jsonl", "-o", "h.png", cwd=tmp_path, text=True)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "RuntimeWarning" not in res.stderr, res.stderr
    assert (tmp_path / "h.png").stat().st_size > 0
    assert "'loss'" in res.stderr and "log" in res.stderr  # said how it is drawn
    # one huge value alone, and huge steps
    write_lines(tmp_path / "one.jsonl", [{"step": 1, "loss": 1e308}])
    write_lines(tmp_path / "steps.jsonl", [{"step": -10 ** 308, "loss": 1.0}, {"step": 10 ** 308, "loss": 2.0}])
    for name in ("one.jsonl", "steps.jsonl"):
        res = invoke("plot", "run", name, "-o", f"{name}.svg", "-q", cwd=tmp_path, text=True)
        assert res.returncode == 0 and "Traceback" not in res.stderr, (name, res.stderr)


def test_other_figures_draw_huge_finite_values(tmp_path):
    from clsp.plots import map_figure, save_figure, scatter_figure

    save_figure(scatter_figure([0.1, 0.5, 0.9], [1e308, -1e308, 0.0], None, {"all": {}}), tmp_path / "s.png")
    save_figure(scatter_figure([0.1, 0.5], [1e308, 1e308], ["a", "b"], {}), tmp_path / "s2.png")
    save_figure(map_figure(np.array([[1e308, 0.0], [-1e308, 1.0], [0.0, 0.0]]), ["a", "b", "a"], "x"),
                tmp_path / "m.png")
    assert all((tmp_path / n).stat().st_size > 0 for n in ("s.png", "s2.png", "m.png"))


# ---- 9: booleans and strings are no metric values ----

def test_plot_run_warns_about_and_leaves_out_values_that_are_not_numbers(tmp_path):
    write_lines(tmp_path / "s.jsonl", ['{"step":"1","loss":5}', '{"step":2,"loss":"abc"}', '{"step":3,"loss":1.0}',
                                       '{"step":4,"loss":true}', '{"step":5.5,"loss":2.0}', '{"step":6,"loss":null}'])
    res = invoke("plot", "run", "s.jsonl", "-o", "s.png", cwd=tmp_path, text=True)
    assert res.returncode == 0, res.stderr
    err = " ".join(res.stderr.split())
    assert err.count("'loss'") == 1, err  # once per metric
    assert "line 2" in err and "line 4" in err and "string" in err and "boolean" in err, err
    assert "line 1" in err and "line 5" in err and "not an integer" in err, err  # the records left out
    assert "line 6" not in err  # null: no value (the trainer writes NaN so), not a wrong one

    from clsp.plots import read_metrics, training_figure

    seen: list[str] = []
    records = read_metrics(tmp_path / "s.jsonl", on_warning=seen.append)
    assert [r["step"] for r in records] == [2, 3, 4, 6] and len(seen) == 2
    fig = training_figure(records)
    assert list(fig.axes[0].lines[0].get_xdata()) == [3] and list(fig.axes[0].lines[0].get_ydata()) == [1.0]


# ---- 10: embeddings are lists of JSON numbers; finite rows beyond float32 keep their direction ----

BAD_VECTORS = [{"id": "a", "embedding": [True, False, True]}, {"id": "b", "embedding": ["1_0", "\u0661", " 2 "]},
               {"id": "m", "embedding": [0.5, True, 0.25]}, {"id": "c", "embedding": [0.1, 0.9, 0.2]},
               {"id": "d", "embedding": [0.3, 0.1, 0.7]}]


@pytest.mark.parametrize("rec,why", [(BAD_VECTORS[0], "boolean"), (BAD_VECTORS[1], "string"),
                                     (BAD_VECTORS[2], "boolean")])
def test_record_vector_refuses_booleans_and_strings(rec, why):
    from clsp.errors import InputError
    from clsp.index.records import record_vector

    with pytest.raises(InputError, match=rf"record {rec['id']!r}: 'embedding'.*{why}"):
        record_vector(rec)
    assert record_vector({"id": "i", "embedding": [1, 2, 3]}).dtype == np.float32  # integers are numbers


def test_plot_map_and_search_build_skip_embeddings_that_are_not_numbers(tmp_path):
    write_lines(tmp_path / "x.jsonl", BAD_VECTORS)
    res = invoke("plot", "map", "x.jsonl", "-o", "x.png", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    for rid in ("a", "b", "m"):
        assert f"skipped {rid}" in res.stderr, res.stderr
    res = invoke("search", "build", "x.jsonl", "-o", "x.idx", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["added"] == 2 and summary["failed"] == 3, summary


def test_a_finite_row_beyond_float32_is_used_by_its_direction(tmp_path):
    from clsp.errors import InputError
    from clsp.index.records import EmbeddingReader, check_usable, record_vector
    from clsp.records import Item

    rec = {"id": "big", "embedding": [1e39, -2e39, 2e39]}
    vec = record_vector(rec)
    assert vec.dtype == np.float32 and np.isfinite(vec).all()
    np.testing.assert_allclose(vec / np.linalg.norm(vec), [1 / 3, -2 / 3, 2 / 3], rtol=1e-6)
    check_usable(vec, rec, "record 'big'")
    for bad in ([1e39, float("nan"), 1.0], [float("inf"), 1.0, 1.0]):
        with pytest.raises(InputError, match="NaN or infinite"):
            check_usable(record_vector({"id": "n", "embedding": bad}), {"embedding": bad}, "record 'n'")
    # with ip or l2 its magnitude matters: still refused as too large, not silently scaled
    for metric in ("ip", "l2"):
        with pytest.raises(InputError, match="too large"):
            EmbeddingReader(metric=metric).vector(Item(index=0, id="big", record=rec))
    # a float64 --npy matrix row alike
    mat = np.array([[1e39, -2e39, 2e39], [1.0, 0.0, 0.0]])
    row = record_vector({"id": "r", "row": 0}, mat)
    np.testing.assert_allclose(row / np.linalg.norm(row), [1 / 3, -2 / 3, 2 / 3], rtol=1e-6)
    # and a search index built from it finds it with its own direction
    write_lines(tmp_path / "big.jsonl", [rec, {"id": "small", "embedding": [0.0, 1.0, 0.0]}])
    res = invoke("search", "build", "big.jsonl", "-o", "big.idx", cwd=tmp_path, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["added"] == 2


# ---- 11: the SLURM script's rerun of one task ----

def run_sbatch(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "clsp"
    fake.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$CALLED"\n')
    fake.chmod(0o755)
    (tmp_path / "clips.txt").write_text("a.wav\nb.wav\n")
    called = tmp_path / "called.txt"
    called.unlink(missing_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SHARDS", "ARRAY_"))}
    full.update(PATH=f"{bin_dir}:{os.environ['PATH']}", CALLED=str(called), **env)
    res = subprocess.run(["bash", str(REPO / "examples/slurm/embed.sbatch"), "clips.txt", "out"], cwd=tmp_path,
                         env=full, capture_output=True, text=True, timeout=60)
    return res, called


def shard_of(called: Path) -> str:
    args = called.read_text().split("\n")
    return args[args.index("--shard") + 1]


ONE_TASK = {"SLURM_ARRAY_TASK_COUNT": "1", "SHARDS": "2"}


def test_sbatch_reruns_one_task_of_an_array_starting_at_one(tmp_path):
    for task, shard in (("2", "1/2"), ("1", "0/2")):
        res, called = run_sbatch(tmp_path, SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_TASK_MIN=task,
                                 SLURM_ARRAY_TASK_MAX=task, ARRAY_FIRST="1", **ONE_TASK)
        assert res.returncode == 0, res.stderr
        assert shard_of(called) == shard
        assert (tmp_path / "out" / f".done-task-{task}").is_file()
    # a 0-based array (the default) is unchanged
    res, called = run_sbatch(tmp_path, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_MAX="1",
                             **ONE_TASK)
    assert res.returncode == 0 and shard_of(called) == "1/2", res.stderr


@pytest.mark.parametrize("extra", [{}, {"ARRAY_FIRST": "3"}, {"ARRAY_FIRST": "x"}, {"SHARDS": "0"}])
def test_sbatch_refuses_a_shard_outside_the_array_before_touching_the_done_marker(tmp_path, extra):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".done-task-2").write_text("an earlier run")
    res, called = run_sbatch(tmp_path, SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_TASK_MIN="2", SLURM_ARRAY_TASK_MAX="2",
                             **{**ONE_TASK, **extra})
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "ARRAY_FIRST" in res.stderr or "SHARDS" in res.stderr, res.stderr
    assert not called.exists()  # clsp never started
    assert (out / ".done-task-2").read_text() == "an earlier run"
