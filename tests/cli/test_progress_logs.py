"""Progress where the user looks: plain periodic lines when stderr is a log file, bootstrap
progress in the logs, ``-q`` silences everything (the ``search eval`` table too), and
``clsp --help`` lists every exit code."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
from typer.testing import CliRunner

from clsp.metrics.bootstrap import bootstrap_ci
from clsp_cli import console
from clsp_cli.app import app


def test_periodic_plain_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("CLSP_PROGRESS_SECONDS", "0.05")
    console.set_quiet(False)
    with console.Throughput("embed", "clips", "windows") as progress:
        progress.update(3, audio_seconds=6.0)
        progress.work(7)
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    periodic = [x for x in lines if x.startswith("embed: 3 clips (0 failed)") and " after " in x]
    assert len(periodic) >= 2, lines
    assert "audio-s/s; 7 windows embedded after" in periodic[0]
    assert lines[-1].startswith("embed: 3 clips (0 failed)") and lines[-1].endswith(" s") and " in " in lines[-1]


def test_quiet_and_zero_interval_print_no_periodic_lines(capsys, monkeypatch):
    monkeypatch.setenv("CLSP_PROGRESS_SECONDS", "0")
    console.set_quiet(False)
    with console.Throughput("embed") as progress:
        progress.update(1)
        time.sleep(0.1)
    assert " after " not in capsys.readouterr().err
    monkeypatch.setenv("CLSP_PROGRESS_SECONDS", "0.02")
    console.set_quiet(True)
    try:
        with console.Throughput("embed") as progress:
            progress.update(1)
            time.sleep(0.1)
    finally:
        console.set_quiet(False)
    assert capsys.readouterr().err == ""


def test_bootstrap_reports_its_resamples(caplog, monkeypatch):
    monkeypatch.setenv("CLSP_PROGRESS_SECONDS", "1e-9")
    values = np.arange(20, dtype=float)
    with caplog.at_level(logging.INFO, logger="clsp.metrics"):
        lo, hi = bootstrap_ci(np.mean, [values], n_boot=5)
    msgs = [r.getMessage() for r in caplog.records if r.name == "clsp.metrics"]
    assert [m.split(" resamples")[0] for m in msgs] == [f"bootstrap: {k}/5" for k in range(1, 6)]
    assert "of 20 items" in msgs[0] and lo <= values.mean() <= hi


def test_help_lists_the_exit_codes_of_interrupted_runs():
    res = CliRunner().invoke(app, ["--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "75 training interrupted and resumable" in text
    assert "130 Ctrl-C, 143 SIGTERM" in text


def _pool(tmp_path):
    # 12 clips: more than 10 candidates, so that every R@k is measured (and no warning says otherwise)
    prov = {"model": "vec-model", "checksum": "c1", "dim": 12, "normalized": True}
    vecs = np.eye(12, dtype=np.float32)
    speech = [{"id": f"v{i}", "embedding": vecs[i].tolist(), "provenance": prov} for i in range(12)]
    caps = [{"id": f"t{i}", "embedding": vecs[i].tolist(), "audio_id": f"v{i}", "provenance": prov} for i in range(12)]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in speech))
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in caps))
    return ["search", "eval", "--speech", str(tmp_path / "s.jsonl"), "--captions", str(tmp_path / "c.jsonl"), "--n-boot", "0"]


def test_quiet_search_eval_prints_no_table(tmp_path):
    args = _pool(tmp_path)
    loud = CliRunner().invoke(app, args)
    assert loud.exit_code == 0 and "bootstrap CI" in loud.stderr
    quiet = CliRunner().invoke(app, [*args, "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["metrics"]["s2t_R@1"] == 1.0


def test_a_count_of_one_takes_the_singular_unit():
    from clsp_cli.console import Throughput, singular

    assert [singular(u) for u in ("clips", "queries", "pairs", "captions")] == ["clip", "query", "pair", "caption"]
    t = Throughput("search", "queries")
    t.update()
    assert t.summary().startswith("1 query (0 failed), ") and "queries/s" in t.summary()


def test_tables_in_a_log_file_are_not_cut_at_80_columns(monkeypatch):
    import io

    import clsp_cli.console as con

    monkeypatch.setattr(con, "_console", None)
    monkeypatch.setattr(con.sys, "stderr", io.StringIO())
    monkeypatch.delenv("COLUMNS", raising=False)
    assert con.get_console().width == con.LOG_WIDTH > 80
    from rich.table import Table

    table = Table(*[f"a long column header {i}" for i in range(5)])
    table.add_row(*["x"] * 5)
    con.get_console().print(table)
    assert "a long column header 4" in con.sys.stderr.getvalue()
    monkeypatch.setattr(con, "_console", None)
    monkeypatch.setenv("COLUMNS", "100")
    assert con.get_console().width == 100
    monkeypatch.setattr(con, "_console", None)


def test_progress_interval_from_the_environment(monkeypatch):
    from clsp.progress import DEFAULT_PROGRESS_SECONDS, PROGRESS_ENV, progress_seconds

    for raw, want in (("5", 5.0), ("0", 0.0), ("-3", 0.0), ("inf", 0.0), ("nan", DEFAULT_PROGRESS_SECONDS),
                      ("soon", DEFAULT_PROGRESS_SECONDS)):
        monkeypatch.setenv(PROGRESS_ENV, raw)
        assert progress_seconds() == want, raw


def test_quiet_before_the_command_is_the_commands_quiet(tmp_path):
    """`clsp -q embed ...` was "No such option: -q": only the command took it."""
    from tests.helpers.assets import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    write_wav(tmp_path / "b.wav", 0.6, 220)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": n, "audio": str(tmp_path / f"{n}.wav"), "g": g}) + "\n"
                                              for n, g in (("a", "male"), ("b", "female"))))
    runner = CliRunner()
    loud = runner.invoke(app, ["classify", str(tmp_path / "e.jsonl"), "-m", "tiny-random", "--pack", "gender",
                               "--label-key", "g", "--n-boot", "0"])
    assert loud.exit_code == 0 and "classify:" in loud.stderr and "WA" in loud.stderr, loud.output
    quiet = runner.invoke(app, ["-q", "classify", str(tmp_path / "e.jsonl"), "-m", "tiny-random", "--pack", "gender",
                                "--label-key", "g", "--n-boot", "0"])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout == loud.stdout
    again = runner.invoke(app, ["classify", str(tmp_path / "e.jsonl"), "-m", "tiny-random", "--pack", "gender"])
    assert again.exit_code == 0 and "classify:" in again.stderr  # the next run is not quiet
