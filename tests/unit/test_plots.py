"""Figures of ``clsp.plots``: formats, contents, PCA against an eigen-decomposition, R@k curves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clsp.errors import ConfigError, InputError
from clsp.plots import (
    confusion_figure,
    map_figure,
    pca_2d,
    read_metrics,
    recall_curve_figure,
    save_figure,
    scatter_figure,
    training_figure,
)
from clsp.metrics.retrieval import pool_recall_curves, recall_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def svg_texts(path) -> str:
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    return text


def test_extension_chooses_the_format_and_others_are_refused(tmp_path):
    fig = recall_curve_figure({"a": {1: 0.5, 2: 1.0}})
    save_figure(fig, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)
    save_figure(recall_curve_figure({"a": {1: 0.5, 2: 1.0}}), tmp_path / "r.SVG")
    svg_texts(tmp_path / "r.SVG")
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        save_figure(recall_curve_figure({"a": {1: 0.5}}), tmp_path / "r.jpg")
    assert not (tmp_path / "r.jpg").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_same_figure_same_bytes(tmp_path):
    for name in ("a.png", "b.png", "a.svg", "b.svg"):
        save_figure(recall_curve_figure({"x": {1: 0.2, 5: 0.7}}, "t"), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_confusion_matrix_shows_full_names_counts_and_recall(tmp_path):
    labels = ["neutral", "happiness", "sadness", "never seen"]
    m = [[3, 1, 0, 0], [0, 2, 2, 0], [0, 0, 4, 0], [0, 0, 0, 0]]
    save_figure(confusion_figure(labels, m, "emotion: WA 75.0%, UA 75.0%"), tmp_path / "cm.svg")
    svg = svg_texts(tmp_path / "cm.svg")
    for name, n in (("neutral", 4), ("happiness", 4), ("sadness", 4)):
        assert f"{name} (n={n})" in svg
    assert "never seen" not in svg  # neither gold nor predicted
    assert "WA 75.0%, UA 75.0%" in svg
    assert "75%" in svg and "50%" in svg and "100%" in svg  # row-normalised: 3/4, 2/4, 4/4
    with pytest.raises(ValueError):
        confusion_figure(["a", "b"], [[1]])


def test_scatter_legend_holds_each_groups_correlations(tmp_path):
    from clsp.metrics.correlation import correlation_report

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 40)
    y = 2 * x + rng.normal(0, 0.3, 40)
    groups = ["fine" if i % 2 else "global" for i in range(40)]
    reports = {g: correlation_report(x[[k == g for k in groups]], y[[k == g for k in groups]], n_boot=0)
               for g in ("fine", "global")}
    save_figure(scatter_figure(x, y, groups, reports, "rating"), tmp_path / "s.svg")
    svg = svg_texts(tmp_path / "s.svg")
    for g, rep in reports.items():
        assert f"{g} (n=20): r={rep['pearson']:.2f}" in svg
        assert f"τ={rep['kendall']:.2f}" in svg
    assert "rating" in svg


def test_recall_curve_matches_the_direct_formula():
    ranks = np.array([0, 3, 9, 12, 1, np.iinfo(np.int64).max])
    curve = recall_curve(ranks, 10)
    assert list(curve) == list(range(1, 11))
    for k, v in curve.items():
        assert v == pytest.approx(np.mean(ranks < k))


def test_pool_curves_have_both_directions_and_never_fall():
    from clsp.metrics.retrieval import speech_text_retrieval

    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 8))
    t = a + rng.standard_normal((30, 8))
    curves = pool_recall_curves(speech_text_retrieval(a, t, ks=range(1, 21), n_boot=0))
    assert set(curves) == {"speech to text", "text to speech"}
    for c in curves.values():
        vals = [c[k] for k in sorted(c)]
        assert sorted(c) == list(range(1, 21)) and vals == sorted(vals)


def test_pca_matches_the_covariance_eigendecomposition():
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((200, 2)) * [5.0, 2.0]
    x = latent @ rng.standard_normal((2, 16)) + 0.01 * rng.standard_normal((200, 16))
    coords, var = pca_2d(x)
    evals = np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1]
    assert coords.var(axis=0, ddof=1) == pytest.approx(evals[:2], rel=1e-6)
    assert var == pytest.approx(evals[:2] / evals.sum(), rel=1e-6)
    assert np.allclose(pca_2d(x[::-1])[0], coords[::-1])  # order does not change the map
    with pytest.raises(InputError):
        pca_2d(x[:1])


def test_map_colours_every_value_and_lumps_the_rare_ones(tmp_path):
    coords = np.random.default_rng(0).standard_normal((12, 2))
    labels = ["anger"] * 5 + ["sadness"] * 4 + ["x", "y", None]
    save_figure(map_figure(coords, labels, "emotion", [0.4, 0.2], max_classes=3), tmp_path / "m.svg")
    svg = svg_texts(tmp_path / "m.svg")
    assert "anger (5)" in svg and "sadness (4)" in svg and "other (2)" in svg
    assert "PC1 (40.0% of variance)" in svg


def test_training_curves_from_metrics_jsonl(tmp_path):
    recs = [{"step": s, "epoch": 0, "loss": 3.0 / s, "lr_encoder": 1e-4 * s, "lr_heads": 1e-3 * s} for s in (1, 2, 3)]
    recs.append({"step": 3, "epoch": 0, "valid/global/s2t_R@1": 0.25, "valid/global/t2s_R@1": 0.5, "valid/clips": 8.0})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = read_metrics(tmp_path)
    assert len(got) == 4
    save_figure(training_figure(got, "run"), tmp_path / "c.svg")
    svg = svg_texts(tmp_path / "c.svg")
    for text in ("training loss", "global/s2t_R@1", "global/t2s_R@1", "encoder", "heads", "learning rate"):
        assert text in svg
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"step": 1}\n{oops\n')
    with pytest.raises(InputError, match="line 2"):
        read_metrics(tmp_path / "bad")
    with pytest.raises(ConfigError, match="no such file"):
        read_metrics(tmp_path / "nowhere")


def test_matplotlib_is_not_imported_by_the_cli_help():
    import subprocess
    import sys

    code = "import sys, clsp_cli.app; print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\[\]", out.stdout), out.stdout


def test_a_symlinked_target_is_written_through(tmp_path):
    real = tmp_path / "real.svg"
    real.write_text("old")
    (tmp_path / "link.svg").symlink_to(real)
    save_figure(recall_curve_figure({"a": {1: 0.5, 2: 1.0}}), tmp_path / "link.svg")
    assert (tmp_path / "link.svg").is_symlink()
    assert "R@k" in real.read_text()


def test_training_curves_run_by_step_and_a_boolean_is_no_step(tmp_path):
    from clsp.plots import read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"step": 3, "loss": 1.0}, {"step": 1, "loss": 3.0}, {"step": True, "loss": 9.0},
        {"step": 2, "loss": 2.0}]) + "\n")
    records = read_metrics(path)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(not isinstance(r["step"], bool) for r in records)


def test_map_and_scatter_order_numeric_values_by_value():
    from clsp.plots import _value_order

    assert sorted(["1000.0", "101.0", "20", "b", "a"], key=_value_order) == ["20", "101.0", "1000.0", "a", "b"]


def test_similarity_groups_are_named_as_the_summary_names_them():
    from clsp.results import group_name
    from clsp.similarity_eval import RatingTally

    tally = RatingTally(human_key="r", group_key="g")
    tally.ratings = [(0.1, 1.0, None), (0.2, 2.0, None), (0.3, 3.0, ["a"]), (0.4, 4.0, ["a"])]
    groups = tally.summary({}, n_boot=0)["groups"]
    assert set(groups) == {"null", '["a"]'} == {group_name(None), group_name(["a"])}


def test_a_scatter_of_no_points_says_so_without_a_warning(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found" would raise here
        save_figure(scatter_figure([], [], None, {}, "rating"), tmp_path / "empty.svg")
    assert "no rated pair was scored" in (tmp_path / "empty.svg").read_text()


def test_metrics_of_a_running_trainer_leave_out_a_half_written_last_line(tmp_path):
    from clsp.plots import read_metrics

    lines = [json.dumps({"step": s, "loss": 2.0 - 0.1 * s}) for s in range(1, 4)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(lines) + '\n{"step": 4, "loss": 1.2')
    notes: list[str] = []
    records = read_metrics(tmp_path, on_warning=notes.append)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert len(notes) == 1 and "line 4 is not complete" in notes[0]
    # a broken line that is not the last (it has its newline) is still an error naming it
    path.write_text(lines[0] + '\n{"step": 2, "loss"\n' + lines[2] + "\n")
    with pytest.raises(InputError, match="line 2"):
        read_metrics(tmp_path)
    path.write_text("")
    assert read_metrics(tmp_path) == []
