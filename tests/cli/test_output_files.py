"""Output files: atomic publish for regular files, write-through for devices and FIFOs,
symlinks followed, one writer at a time (checked with two real processes)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from clsp.errors import ConfigError, OutputError
from clsp_cli.output import MatrixSink, RecordSink, check_same_run
from clsp_cli.output_files import resolve_target
from tests.helpers.assets import REPO
from tests.helpers.cli import invoke

RECS = [{"id": "a", "x": 1}, {"id": "b", "x": 2}]


def _write(path, recs=RECS) -> None:
    sink = RecordSink(str(path))
    for r in recs:
        sink.write(r)
    sink.commit()


def _read_fifo(path: Path, into: dict) -> threading.Thread:
    def run():
        with open(path, "rb") as fh:
            into["data"] = fh.read()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_regular_file_appears_only_when_committed(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    sink = RecordSink(str(out))
    sink.write(RECS[0])
    sink.flush()
    assert not out.exists() and (tmp_path / "sub" / "out.jsonl.partial").exists()
    assert json.loads((tmp_path / "sub" / "out.jsonl.lock").read_text())["pid"] == os.getpid()
    sink.write(RECS[1])
    sink.commit()
    assert [json.loads(x) for x in out.read_text().splitlines()] == RECS
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.jsonl"]


def test_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "target.jsonl").write_text("old\n")
    (tmp_path / "link.jsonl").symlink_to("target.jsonl")
    _write(tmp_path / "link.jsonl")
    assert (tmp_path / "link.jsonl").is_symlink()
    assert [json.loads(x) for x in (tmp_path / "target.jsonl").read_text().splitlines()] == RECS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "target.jsonl"]


def test_dangling_symlink_publishes_its_target(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "d" / "new.jsonl")
    _write(tmp_path / "link.jsonl")
    assert (tmp_path / "link.jsonl").is_symlink()
    assert len((tmp_path / "d" / "new.jsonl").read_text().splitlines()) == 2


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: dict = {}
    reader = _read_fifo(fifo, got)
    _write(fifo)
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [json.loads(x) for x in got["data"].decode().splitlines()] == RECS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_character_device_is_written_through(tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    _write(node)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]
    assert resolve_target("/dev/stdout").through and resolve_target("/dev/null").through


def test_npy_through_a_fifo_is_a_valid_matrix(tmp_path):
    fifo = tmp_path / "m.npy"
    os.mkfifo(fifo)
    got: dict = {}
    reader = _read_fifo(fifo, got)
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    sink = MatrixSink(str(fifo), 3)
    assert [sink.append(r) for r in rows] == [0, 1, 2, 3]
    sink.commit()
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    np.testing.assert_array_equal(np.load(io.BytesIO(got["data"])), rows)


def test_npy_symlink_is_followed(tmp_path):
    (tmp_path / "link.npy").symlink_to("real.npy")
    sink = MatrixSink(str(tmp_path / "link.npy"), 2)
    sink.append(np.array([1.0, 2.0]))
    sink.commit()
    assert (tmp_path / "link.npy").is_symlink()
    np.testing.assert_array_equal(np.load(tmp_path / "real.npy"), [[1.0, 2.0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npy", "real.npy"]


def test_directory_target_is_an_error(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        RecordSink(str(tmp_path))


def test_resume_needs_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="regular file"):
        RecordSink(str(fifo), resume=True)


def test_run_mismatch_names_each_setting():
    with pytest.raises(ConfigError, match=r"batch_size: 2 there, 3 now.*shard: \[0, 1\] there, \[1, 2\] now"):
        check_same_run("o.jsonl", {"batch_size": 2, "shard": [0, 1]}, {"batch_size": 3, "shard": (1, 2)})
    with pytest.raises(ConfigError, match="no run record"):
        check_same_run("o.jsonl", None, {"batch_size": 2})
    check_same_run("o.jsonl", {"shard": [0, 1]}, {"shard": (0, 1)})


HOLDER = """
import sys
from clsp_cli.output import RecordSink
sink = RecordSink(sys.argv[1])
sink.write({"id": "holder"})
sink.flush()
print("ready", flush=True)
sys.stdin.readline()
sink.commit()
"""


@pytest.mark.slow
def test_second_writer_is_refused_while_the_first_holds_the_output(tmp_path):
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline().strip() == b"ready"
        with pytest.raises(OutputError, match=f"out.jsonl is in use by PID {holder.pid}"):
            RecordSink(str(out))
        assert (tmp_path / "out.jsonl.partial").read_text() == '{"id":"holder"}\n'
    finally:
        holder.communicate(b"\n", timeout=60)
    assert holder.returncode == 0
    assert out.read_text() == '{"id":"holder"}\n'
    _write(out)  # free again once the holder has published
    assert [json.loads(x) for x in out.read_text().splitlines()] == RECS


@pytest.mark.slow
def test_a_crashed_writer_leaves_a_lock_that_does_not_block(tmp_path):
    out = tmp_path / "out.jsonl"
    code = "import os, sys\nfrom clsp_cli.output import RecordSink\ns = RecordSink(sys.argv[1])\ns.write({'id': 1})\ns.flush()\nos._exit(9)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code, str(out)], env=env).returncode == 9
    assert (tmp_path / "out.jsonl.lock").exists() and not out.exists()
    _write(out)
    assert [json.loads(x) for x in out.read_text().splitlines()] == RECS
    assert not (tmp_path / "out.jsonl.lock").exists()


def test_index_folder_behind_a_symlink_is_replaced_in_place(tmp_path):
    import numpy as np

    from clsp.index import build_index, load_index, write_index

    vecs = np.eye(4, dtype=np.float32)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    build_index(vecs[:2], [{"id": "a"}, {"id": "b"}]).save(tmp_path / "link")
    write_index(tmp_path / "link", vecs[2:], [{"id": "c"}, {"id": "d"}], add=True)
    assert (tmp_path / "link").is_symlink()
    assert len(load_index(tmp_path / "real")) == 4


def _invoke(args, cwd):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args)
    finally:
        os.chdir(old)


@pytest.mark.parametrize("args", [
    ["embed", "m.jsonl", "-o", "m.jsonl"],
    ["embed", "./m.jsonl", "--npy", "m.jsonl", "-o", "out.jsonl"],
    ["embed", "*.jsonl", "-o", "m.jsonl"],
    ["embed", "m.jsonl", "-o", "link.jsonl"],  # a symlink to the input
    ["classify", "m.jsonl", "--pack", "gender", "--report", "m.jsonl"],
    ["caption", "m.jsonl", "-o", "m.jsonl"],
    ["similarity", "m.jsonl", "-o", "m.jsonl"],
    ["merge", "m.jsonl", "-o", "m.jsonl"],
    ["embed", "a.wav", "-o", "a.wav"],
])
def test_an_output_onto_an_input_is_refused_and_the_input_kept(tmp_path, args):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": "a.wav", "a": "a.wav", "b": "a.wav"}) + "\n")
    (tmp_path / "link.jsonl").symlink_to(manifest)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    res = _invoke([*args, "--model", "tiny-random", "-q"] if args[0] not in ("merge", "caption") else [*args, "-q"],
                  tmp_path)
    assert res.exit_code == 2, res.output
    assert "this run reads that file" in res.output
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing replaced, no .partial or .lock left


@pytest.mark.parametrize("args", [
    ["embed", "m.jsonl", "-o", "x.out", "--npy", "x.out"],
    ["classify", "m.jsonl", "--pack", "gender", "-o", "r.json", "--report", "./r.json"],
    ["classify", "m.jsonl", "--pack", "gender", "--label-key", "g", "--plot", "p.png", "--report", "p.png"],
])
def test_two_outputs_of_one_run_on_one_file_are_refused_before_any_work(tmp_path, args):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "g": "male"}) + "\n")
    res = _invoke([*args, "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and "both name" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]


def test_two_outputs_on_standard_output_are_refused(tmp_path):
    """Records on stdout (-o -) and the matrix on /dev/stdout, or on the very file stdout is
    redirected to, would interleave JSON lines and binary rows in one stream."""
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    clsp = [sys.executable, "-m", "clsp_cli.app", "--threads", "1", "embed", "a.wav", "--model", "tiny-random", "-q"]
    piped = subprocess.run([*clsp, "--npy", "/dev/stdout"], cwd=tmp_path, capture_output=True, timeout=300)
    assert piped.returncode == 2 and b"--output - and --npy /dev/stdout all write to standard output" in piped.stderr
    assert piped.stdout == b""
    with open(tmp_path / "o.npy", "wb") as out:  # clsp embed ... --npy o.npy > o.npy
        redirected = subprocess.run([*clsp, "--npy", "o.npy"], cwd=tmp_path, stdout=out, stderr=subprocess.PIPE,
                                    timeout=300)
    assert redirected.returncode == 2 and b"--npy o.npy all write to standard output" in redirected.stderr
    ok = subprocess.run([*clsp, "-o", "r.jsonl", "--npy", "/dev/stdout"], cwd=tmp_path, capture_output=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith(b"\x93NUMPY")  # one output on stdout is fine


@pytest.mark.parametrize("args, needs", [
    (["classify", "m.jsonl", "--pack", "gender", "--report", "r.json"], "--label-key"),
    (["similarity", "a.wav", "a.wav", "--report", "r.json"], "--human-key"),
])
def test_a_report_without_what_it_evaluates_against_is_a_usage_error(tmp_path, args, needs):
    """Without gold labels or ratings there is no summary: a --report there was silently never written."""
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    res = _invoke([*args, "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and f"--report needs {needs}" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]


def test_devices_and_separate_files_are_not_refused(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    res = _invoke(["embed", "m.jsonl", "-o", "/dev/null", "--npy", "/dev/null", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0, res.output
    res = _invoke(["embed", "m.jsonl", "-o", "e.jsonl", "--npy", "e.npy", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0 and (tmp_path / "e.npy").exists() and (tmp_path / "e.jsonl").exists()


def test_an_output_over_a_file_read_along_the_way_is_not_published(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    res = _invoke(["embed", "m.jsonl", "-o", "e.jsonl", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0
    assert _invoke(["search", "build", "e.jsonl", "-o", "idx", "-q"], tmp_path).exit_code == 0
    info = (tmp_path / "idx" / "index.json").read_bytes()
    query = ["search", "query", "idx", "--text", "a calm voice", "--model", "tiny-random", "-q"]
    res = _invoke([*query, "-o", "idx/index.json"], tmp_path)  # the index folder is known at once: refused then
    assert res.exit_code == 2 and "lies inside the index folder this run reads (idx)" in res.output, res.output
    assert (tmp_path / "idx" / "index.json").read_bytes() == info
    assert not list((tmp_path / "idx").glob("index.json.*"))  # nothing written beside it
    # what a run meets only on its way is checked when the output is published: kept aside, not over it
    from clsp import runfiles
    from clsp.errors import ConfigError

    runfiles.begin()
    try:
        runfiles.note_folder(tmp_path / "idx")
        runfiles.note_read(tmp_path / "e.jsonl")
        for path, shown in ((tmp_path / "idx" / "index.json", "as "), (tmp_path / "e.jsonl", "this run read")):
            with pytest.raises(ConfigError, match=f"{shown}.*stays in KEPT; give the output another path"):
                runfiles.check_publish(path, str(path), "KEPT")
        runfiles.check_publish(tmp_path / "other.jsonl", "other.jsonl")  # not read: passes
    finally:
        runfiles.end()
    runfiles.check_publish(tmp_path / "e.jsonl", "e.jsonl")  # outside a run nothing is checked


def test_no_output_replaces_an_audio_file_read_or_not(tmp_path):
    """clsp writes no audio: an output path that holds audio (read by the run or not, whatever
    its name) is refused before any work, and nothing is left beside it."""
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "d").mkdir()
    write_wav(tmp_path / "d" / "b.wav", 0.5, freq=300)
    write_wav(tmp_path / "c.wav", 0.5, freq=400)  # indexed, not read by a query
    (tmp_path / "page.html").write_bytes((tmp_path / "c.wav").read_bytes())  # audio under another name
    import soundfile as sf

    sf.write(tmp_path / "d.w64", np.zeros(800, np.float32), 16000, format="W64")  # no RIFF/fLaC/... signature
    sf.write(tmp_path / "voc.jsonl", np.zeros(800, np.float32), 16000, format="VOC")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n"
                                      + json.dumps({"id": "c", "audio": "c.wav"}) + "\n")
    assert _invoke(["embed", "m.jsonl", "-o", "e.jsonl", "--model", "tiny-random", "-q"], tmp_path).exit_code == 0
    assert _invoke(["search", "build", "e.jsonl", "-o", "idx", "-q"], tmp_path).exit_code == 0
    audio = {p: p.read_bytes() for p in (tmp_path / "a.wav", tmp_path / "d" / "b.wav", tmp_path / "c.wav",
                                         tmp_path / "page.html", tmp_path / "d.w64", tmp_path / "voc.jsonl")}
    query = ["search", "query", "idx", "--text", "a calm voice", "--model", "tiny-random"]
    for args, shown in ((["embed", "m.jsonl", "-o", "a.wav", "--model", "tiny-random"], "a.wav"),  # read by the run
                        (["embed", "d", "-o", "d/b.wav", "--model", "tiny-random"], "d/b.wav"),  # found in a folder
                        (["embed", "m.jsonl", "-o", "x.jsonl", "--npy", "c.wav", "--model", "tiny-random"], "c.wav"),
                        ([*query, "-o", "c.wav"], "c.wav"),  # a clip the index names, not read by the query
                        ([*query, "-o", "q.jsonl", "--html", "page.html"], "page.html"),
                        (["caption", "m.jsonl", "-o", "c.wav"], "c.wav"),
                        (["embed", "m.jsonl", "-o", "d.w64", "--model", "tiny-random"], "d.w64"),
                        ([*query, "-o", "voc.jsonl"], "voc.jsonl")):
        res = _invoke([*args, "-q"], tmp_path)
        assert res.exit_code == 2 and f"{shown}: an audio file" in res.output, (args, res.output)
    assert all(p.read_bytes() == data for p, data in audio.items())
    left = sorted(p.name for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".lock")) and p.name != ".lock"
                  or p.name in ("x.jsonl", "q.jsonl"))  # (an index's own lock is idx/.lock)
    assert left == [], left
    from clsp.outfile import write_bytes_atomic

    with pytest.raises(ConfigError, match="an audio file"):  # the library's own writer too
        write_bytes_atomic(tmp_path / "c.wav", b"<html></html>")
    assert (tmp_path / "c.wav").read_bytes() == audio[tmp_path / "c.wav"]


@pytest.mark.parametrize("args", [
    ["embed", "u.jsonl.partial", "-o", "u.jsonl"],
    ["embed", "m.jsonl", "-o", "r.jsonl", "--npy", "r.jsonl.partial"],
    ["embed", "m.jsonl", "-o", "s.jsonl", "--npy", "s.jsonl.lock"],
])
def test_an_outputs_partial_and_lock_files_are_outputs_too(tmp_path, args):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    line = json.dumps({"id": "a", "audio": "a.wav"}) + "\n"
    (tmp_path / "m.jsonl").write_text(line)
    (tmp_path / "u.jsonl.partial").write_text(line)
    res = _invoke([*args, "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2, res.output
    assert (tmp_path / "u.jsonl.partial").read_text() == line


def test_shard_outputs_are_checked_with_their_names_filled_in(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    res = _invoke(["embed", "m.jsonl", "--shard", "0/2", "-o", "q-{shard}.x", "--npy", "q-0000-of-0002.x",
                   "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and "both name q-0000-of-0002.x" in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]


@pytest.mark.slow
def test_a_report_or_plot_another_run_is_writing_stops_the_second_run_at_once(tmp_path):
    """Reports, figures and pages are written when a command ends; their lock is taken when it
    starts, so a second run onto the same file stops at once (exit 1, naming the PID) and
    writes nothing, and a finished run leaves no lock file beside them."""
    from tests.helpers.cli import invoke

    clips = REPO / "examples" / "data" / "clips.jsonl"
    emb = tmp_path / "e.jsonl"
    assert invoke("embed", clips, "-m", "tiny-random", "-o", emb).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "r.json")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline().strip() == b"ready"
        proc = invoke("classify", emb, "-m", "tiny-random", "--pack", "gender", "--label-key", "gender",
                      "--report", tmp_path / "r.json", "-o", tmp_path / "out.jsonl")
        assert proc.returncode == 1 and f"in use by PID {holder.pid}" in proc.stderr.decode()
        assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.partial").exists()
    finally:
        holder.communicate(b"\n", timeout=60)
    proc = invoke("classify", emb, "-m", "tiny-random", "--pack", "gender", "--label-key", "gender",
                  "--report", tmp_path / "r.json", "--plot", tmp_path / "p.png", "-o", tmp_path / "out.jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads((tmp_path / "r.json").read_text())["n"] > 0 and (tmp_path / "p.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.lock"))


def test_a_users_file_named_like_an_outputs_lock_or_partial_is_never_taken(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    (tmp_path / "poetry.lock").write_text('[[package]]\nname = "numpy"\n')
    (tmp_path / "report.partial").write_text("my notes\n")
    (tmp_path / "results.lock").write_text("")  # an empty lock file of the user's own (made for flock)
    for out, kept in (("poetry", "poetry.lock"), ("report", "report.partial"), ("results", "results.lock")):
        res = _invoke(["embed", "m.jsonl", "-o", out, "--model", "tiny-random", "-q"], tmp_path)
        assert res.exit_code == 2 and f"{kept}: exists" in res.output, res.output
        assert not (tmp_path / out).exists()
    assert (tmp_path / "poetry.lock").read_text().startswith("[[package]]")
    assert (tmp_path / "results.lock").exists() and (tmp_path / "results.lock").read_text() == ""
    assert (tmp_path / "report.partial").read_text() == "my notes\n" and not (tmp_path / "report.lock").exists()
    res = _invoke(["embed", "m.jsonl", "-o", "e.jsonl", "--report", "poetry", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and not (tmp_path / "e.jsonl").exists()
    # whatever the user's FILE.partial holds: JSON lines like clsp's own records, an empty file, npy rows
    mine = {"q.jsonl.partial": '{"id":"mine","note":"keep me"}\n{"id":"mine2"}\n', "r.jsonl.partial": "",
            "v.npy.partial": "\x93NUMPY"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    for args in (["embed", "m.jsonl", "-o", "q.jsonl"], ["classify", "m.jsonl", "--pack", "gender", "-o", "q.jsonl"],
                 ["caption", "m.jsonl", "-o", "q.jsonl"], ["similarity", "a.wav", "a.wav", "-o", "r.jsonl"],
                 ["embed", "m.jsonl", "-o", "e.jsonl", "--npy", "v.npy"]):
        model = [] if args[0] == "caption" else ["--model", "tiny-random"]
        res = _invoke([*args, *model, "-q"], tmp_path)
        assert res.exit_code == 2 and ".partial: exists, with no clsp run record" in res.output, (args, res.output)
    assert {name: (tmp_path / name).read_text() for name in mine} == mine
    assert not any((tmp_path / out).exists() for out in ("q.jsonl", "r.jsonl", "v.npy", "e.jsonl"))


@pytest.mark.parametrize("args", [
    ["embed", "a.wav", "-o", "newdir/"], ["embed", "a.wav", "-o", "existing"],
    ["embed", "a.wav", "--npy", "existing", "-o", "e.jsonl"], ["classify", "a.wav", "--report", "reports/"],
    ["plot", "map", "e.jsonl", "-o", "figs/"],
])
def test_an_output_file_named_as_a_folder_is_a_usage_error(tmp_path, args):
    """`-o results/` wrote a file called 'results'; an existing folder failed late with exit 1."""
    from typer.testing import CliRunner

    from clsp_cli.app import app
    from tests.helpers.assets import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "existing").mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = CliRunner().invoke(app, [*args, "--model", "tiny-random"] if args[0] != "plot" else args)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 2, res.output
    assert "names a folder" in res.output and "give a file path" in res.output
    assert (".png" in res.output) == (args[0] == "plot")  # the example file is of the kind written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "existing"]


def test_a_run_refused_before_writing_leaves_no_files_of_its_own(tmp_path):
    """A second embed onto an --npy another run writes stops at once; its own -o output was
    left as an empty FILE.partial with its FILE.lock."""
    import fcntl

    from typer.testing import CliRunner

    from clsp_cli.app import app
    from tests.helpers.assets import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    with open(tmp_path / "shared.npy.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = CliRunner().invoke(app, ["embed", str(tmp_path / "a.wav"), "--model", "tiny-random", "-q",
                                       "-o", str(tmp_path / "c2.jsonl"), "--npy", str(tmp_path / "shared.npy")])
    assert res.exit_code == 1 and "is in use by PID" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "shared.npy.lock"]


def test_an_output_through_a_missing_folder_and_back_is_refused_before_any_work(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    before = (tmp_path / "m.jsonl").read_bytes()
    res = _invoke(["embed", "m.jsonl", "-o", "./new/../m.jsonl", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and "this run reads that file" in res.output, res.output
    assert (tmp_path / "m.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]  # nothing made, no .partial


def test_an_output_named_as_compressed_is_refused_before_any_work(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    for args in (["embed", "a.wav", "-o", "e.jsonl.gz"], ["caption", "a.wav", "--as-cuts", "-o", "c.jsonl.xz"],
                 ["embed", "a.wav", "-o", "e.jsonl"]):
        model = [] if args[0] == "caption" else ["--model", "tiny-random"]
        res = _invoke([*args, *model, "-q"], tmp_path)
        if args[-1] == "e.jsonl":
            assert res.exit_code == 0 and (tmp_path / "e.jsonl").exists(), res.output  # a plain name: written
            continue
        assert res.exit_code == 2 and "plain JSON Lines, not compressed" in res.output, res.output
        assert not list(tmp_path.glob(args[args.index("-o") + 1] + "*"))


def test_a_matrix_or_zstd_output_named_as_compressed_is_refused_before_any_work(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    for args, says in ((["-o", "e.jsonl", "--npy", "m.npy.gz"], "plain .npy matrix, not compressed"),
                       (["-o", "e.jsonl", "--npy", "m.npy.ZST"], "plain .npy matrix, not compressed"),
                       (["-o", "e.jsonl.zstd"], "plain JSON Lines, not compressed"),
                       (["-o", "e.jsonl.lz4"], "plain JSON Lines, not compressed"),
                       (["-o", "e.jsonl", "--npy", "m.npy.zip"], "plain .npy matrix, not compressed")):
        res = _invoke(["embed", "a.wav", *args, "--model", "tiny-random", "-q"], tmp_path)
        assert res.exit_code == 2 and says in res.output, (args, res.output)
        assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob("e.*"))


def test_every_record_writing_command_refuses_a_compressed_output_before_loading_anything(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    for args in (["classify", "m.jsonl", "--pack", "gender", "--model", "tiny-random", "-o", "c.jsonl.gz"],
                 ["similarity", "a.wav", "a calm voice", "--model", "tiny-random", "-o", "s.jsonl.zip"],
                 ["merge", "m.jsonl", "-o", "x.jsonl.XZ"], ["search", "eval", "--speech", "m.jsonl", "--captions",
                                                            "m.jsonl", "-o", "r.json.bz2"],
                 ["embed", "a.wav", "--model", "tiny-random", "-o", ".gz"]):
        res = _invoke(args, tmp_path)  # not quiet: a log line of work done before the refusal would show
        assert res.exit_code == 2 and "plain JSON Lines, not compressed" in res.output, (args, res.output)
        assert "softmax scale" not in res.output and "merging" not in res.output and "-o  and" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]
    ok = _invoke(["search", "build", "m.jsonl", "-o", "idx.gz"], tmp_path)  # a folder, not records: not this rule
    assert "not compressed" not in ok.output


def test_a_report_or_errors_file_named_as_compressed_is_refused_before_any_work(tmp_path):
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "gender": "male"}) + "\n")
    for args, flag in ((["classify", "m.jsonl", "--pack", "gender", "--label-key", "gender", "--model", "tiny-random",
                         "--report", "r.json.zip"], "--report r.json.zip"),
                       (["caption", "m.jsonl", "-o", "c.jsonl", "--errors", "e.jsonl.BZ2"], "--errors e.jsonl.BZ2")):
        res = _invoke([*args, "-q"], tmp_path)
        assert res.exit_code == 2 and f"{flag}: clsp writes" in res.output, (args, res.output)
        assert "-o r.json" not in res.output and "-o e.jsonl" not in res.output, res.output  # names its own option
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"], res.output  # no work, no output


def _under_size_limit(limit: int, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``clsp ARGS`` in a child process whose files may grow to ``limit`` bytes (EFBIG beyond)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "clsp_cli.app", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600, preexec_fn=cap)


@pytest.mark.slow
def test_a_run_whose_records_cannot_be_published_replaces_none_of_its_other_outputs(tmp_path):
    """-o failed on a file-size limit after --errors (caption) or --report (classify) had
    already replaced the earlier file (--errors left empty); now every output is written out
    before any is published, the records first."""
    clips = REPO / "examples" / "data" / "clips.jsonl"
    old_errors, old_cuts = '{"id":"old","error":{"type":"X","message":"earlier"}}\n', '{"old":"cuts"}\n'
    (tmp_path / "err.jsonl").write_text(old_errors)
    (tmp_path / "cap.jsonl").write_text(old_cuts)
    proc = _under_size_limit(2048, "caption", clips, "--as-cuts", "-o", "cap.jsonl", "--errors", "err.jsonl", "-q",
                             cwd=tmp_path)
    assert proc.returncode == 1 and "cannot write cap.jsonl: File too large" in proc.stderr, proc.stderr
    assert (tmp_path / "cap.jsonl").read_text() == old_cuts and (tmp_path / "err.jsonl").read_text() == old_errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cap.jsonl", "err.jsonl"]

    from tests.helpers.cli import invoke

    assert invoke("embed", clips, "-m", "tiny-random", "-o", tmp_path / "e.jsonl", "-q").returncode == 0
    (tmp_path / "o.jsonl").write_text('{"old":"records"}\n')
    (tmp_path / "r.json").write_text('{"old":"report"}\n')
    proc = _under_size_limit(1024, "classify", "e.jsonl", "-m", "tiny-random", "--pack", "gender", "--label-key",
                             "gender", "-o", "o.jsonl", "--report", "r.json", "-q", cwd=tmp_path)
    assert proc.returncode == 1 and "cannot write o.jsonl: File too large" in proc.stderr, proc.stderr
    assert (tmp_path / "o.jsonl").read_text() == '{"old":"records"}\n'
    assert (tmp_path / "r.json").read_text() == '{"old":"report"}\n'
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".lock"))]


def test_publication_writes_every_output_out_before_replacing_any(tmp_path, monkeypatch):
    """``publish`` (merge: -o and --npy; embed should call it too): records that cannot be
    written out leave an earlier --npy as it was, with no temporary matrix left."""
    from clsp_cli import output

    npy = tmp_path / "m.npy"
    np.save(npy, np.ones((1, 2), "<f4"))
    before = npy.read_bytes()
    sink = RecordSink(str(tmp_path / "r.jsonl"))
    matrix = MatrixSink(str(npy), 2)
    sink.write({"id": "a", "row": matrix.append(np.zeros(2))})

    def too_large() -> None:
        raise OutputError(f"cannot write {sink.output}: File too large")

    monkeypatch.setattr(sink, "flush", too_large)
    with pytest.raises(OutputError, match="File too large"):
        output.publish(sink, matrix)
    assert npy.read_bytes() == before and not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "m.npy.tmp.npy").exists()
    sink.discard()
    matrix.discard()


def test_embed_whose_records_cannot_be_published_keeps_the_earlier_npy(tmp_path, monkeypatch):
    """clsp embed published --npy before its records: a failed -o left a new matrix beside
    the earlier records."""
    from clsp_cli import output
    from tests.helpers.cli import invoke

    clips = REPO / "examples" / "data" / "clips.jsonl"
    npy = tmp_path / "e.npy"
    np.save(npy, np.ones((1, 2), "<f4"))
    (tmp_path / "e.jsonl").write_text('{"old":"records"}\n')
    before = npy.read_bytes()

    def too_large(self) -> None:
        raise OutputError(f"cannot write {self.output}: File too large")

    monkeypatch.setattr(output.RecordSink, "prepare", too_large)
    res = invoke("embed", clips, "-m", "tiny-random", "-o", tmp_path / "e.jsonl", "--npy", npy, "-q")
    assert res.returncode == 1 and b"File too large" in res.stderr, res.stderr
    assert npy.read_bytes() == before and (tmp_path / "e.jsonl").read_text() == '{"old":"records"}\n'
    assert not (tmp_path / "e.npy.tmp.npy").exists()  # the partial outputs stay for --resume, as after any failure


def _hold_lock(path: Path):
    """Hold the one-writer lock of the output ``path`` as a clsp run would (``FILE.lock``
    with this process's PID); flock conflicts between two open files of one process too."""
    import fcntl

    fh = open(f"{path}.lock", "w")
    fh.write(json.dumps({"pid": os.getpid(), "run": None}))
    fh.flush()
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


@pytest.mark.parametrize("args", [
    ["plot", "map", "e.jsonl", "-c", "emotion", "-o", "OUT.png"],
    ["plot", "run", "e.jsonl", "-o", "OUT.png"],
    ["caption", "e.jsonl", "--errors", "OUT.jsonl"],
    ["caption", "e.jsonl", "-o", "OUT.jsonl"],
    ["similarity", "e.jsonl", "-o", "OUT.jsonl"],
    ["search", "eval", "--speech", "e.jsonl", "--captions", "e.jsonl", "-o", "OUT.jsonl"],
    ["merge", "e.jsonl", "-o", "OUT.jsonl"],
    ["merge", "e.jsonl", "--npy", "OUT.npy"],
    ["classify", "e.jsonl", "-o", "OUT.jsonl"],
])
def test_every_output_of_every_command_is_locked_from_the_start(tmp_path, args):
    """`plot map -o` and `plot run -o` took no lock: two runs onto one figure both succeeded
    and the later replaced the other's. Every output is locked when the command starts."""
    from tests.helpers.cli import invoke

    (tmp_path / "e.jsonl").write_text('{"id": "x"}\n')
    out = tmp_path / next(a for a in args if a.startswith("OUT"))
    with _hold_lock(out):
        proc = invoke(*[str(tmp_path / a) if a.startswith(("OUT", "e.jsonl")) else a for a in args], "-q")
    assert proc.returncode == 1 and f"is in use by PID {os.getpid()}" in proc.stderr.decode(), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["e.jsonl", out.name + ".lock"])


def test_a_run_refused_at_its_start_removes_the_folder_made_for_its_output(tmp_path):
    from tests.helpers.cli import invoke

    (tmp_path / "e.jsonl").write_text('{"id": "x"}\n')
    proc = invoke("plot", "map", tmp_path / "e.jsonl", "-o", tmp_path / "new" / "deeper" / "m.gif")
    assert proc.returncode == 2 and not (tmp_path / "new").exists(), proc.stderr


def test_embed_and_train_refused_at_their_start_remove_the_folders_made_for_their_outputs(tmp_path):
    """embed made the folders of -o and --npy itself, outside the command's record of made
    folders, and train removed only the output folder, not the missing folders above it."""
    from tests.conftest import write_wav

    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    for args in (["embed", "m.jsonl", "-o", "new1/deeper/e.jsonl", "--model", "nosuchmodel"],
                 ["embed", "m.jsonl", "-o", "new2/e.jsonl", "--npy", "new3/deeper/e.npy", "--model", "nosuchmodel"],
                 ["embed", "m.jsonl", "-o", "new4/e.jsonl", "--dtype", "float16"],
                 ["train", "init_from=tiny-random", "data.train=nowhere.jsonl", "--output-dir", "new5/deeper/exp"],
                 ["search", "build", "m.jsonl", "-o", "new7/deeper/i.idx", "--factory", "Bogus"]):  # no embeddings: 1
        res = _invoke([*args, "-q"], tmp_path)
        assert res.exit_code == (1 if args[0] == "search" else 2), (args, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "m.jsonl"]
    # a run that writes keeps its folders, and a resumable one keeps its partial output's
    res = _invoke(["embed", "m.jsonl", "-o", "new6/deeper/e.jsonl", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0 and (tmp_path / "new6" / "deeper" / "e.jsonl").exists()


def test_convert_locks_its_destination_folder(tmp_path):
    """Two `clsp convert` runs onto one folder both exited 0, the later replacing the other's."""
    from tests.helpers.cli import invoke

    with _hold_lock(tmp_path / "m"):
        proc = invoke("convert", "tiny-random", tmp_path / "m")
    assert proc.returncode == 1 and f"m is in use by PID {os.getpid()}" in proc.stderr.decode(), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]
    (tmp_path / "m.lock").unlink()
    assert invoke("convert", "tiny-random", tmp_path / "m", "-q").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # a destination named as the lock of another one's would stand in that run's lock
    proc = invoke("convert", "tiny-random", tmp_path / "x.lock", "-q")
    assert proc.returncode == 2 and "working files" in proc.stderr.decode(), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.slow
def test_convert_under_a_file_size_limit_is_one_line_naming_the_destination(tmp_path):
    """It was a 43-line traceback ending in safetensors' SafetensorError (or the tokenizer's
    "Exception: File too large")."""
    proc = _under_size_limit(65536, "convert", "tiny-random", "dest", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "error: cannot write dest: File too large (EFBIG)", proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_convert_refused_by_the_system_names_the_destination_not_its_temporary_folder(tmp_path, monkeypatch):
    """An immutable folder said "/.../ro/.m.krn6oh58: Operation not permitted"."""
    import errno
    import tempfile

    from tests.helpers.cli import invoke

    def refused(prefix="", dir=None, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted", os.path.join(dir, prefix + "krn6oh58"))

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    proc = invoke("convert", "tiny-random", tmp_path / "ro" / "m")
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == f"error: cannot write {tmp_path / 'ro' / 'm'}: Operation not permitted (EPERM)"
    assert list(tmp_path.iterdir()) == []  # nor its lock, nor the folder made for it


STOP_AFTER_PUBLISH = """import os, signal, sys
from clsp_cli.errors import Terminated, _catch_sigterm
from clsp_cli.output import RecordSink
_catch_sigterm()
sink = RecordSink(sys.argv[1])
sink.write({"id": "a"})
if sys.argv[2] == "before":
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except Terminated:
        print("stopped")
        sys.exit(0)
sink.commit()
os.kill(os.getpid(), signal.SIGTERM)  # as SLURM's time limit, a moment after the run published its records
print("finished")
"""


def test_a_stop_signal_after_the_records_are_published_lets_the_run_finish(tmp_path):
    """A SIGTERM just after a run published its outputs ended it with 143, so a batch script
    took a complete output for an unfinished one and computed it again."""
    for when, says in (("before", "stopped"), ("after", "finished")):
        p = subprocess.run([sys.executable, "-c", STOP_AFTER_PUBLISH, str(tmp_path / f"{when}.jsonl"), when],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert p.returncode == 0 and p.stdout.strip() == says, (when, p.returncode, p.stdout, p.stderr)
    assert (tmp_path / "after.jsonl").read_text() == '{"id":"a"}\n' and not (tmp_path / "before.jsonl").exists()


BROKEN_MATRIX_PIPE = """import sys
import numpy as np
from clsp.errors import ClspError
from clsp_cli.output import MatrixSink, RecordSink
records, matrix = RecordSink(sys.argv[1]), MatrixSink(sys.argv[2], 64)
for i in range(2000):  # 512 kB: more than a pipe holds
    records.write({"id": i, "row": matrix.append(np.ones(64, np.float32))})
try:
    records.commit(matrix)
except (ClspError, BrokenPipeError) as exc:
    print("refused:", exc)
"""


def test_a_matrix_fifo_whose_reader_closed_leaves_the_records_unpublished(tmp_path):
    """Records pointing into a matrix that never reached its reader were published."""
    fifo = tmp_path / "m.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'rb').read(100)"])
    try:
        p = subprocess.run([sys.executable, "-c", BROKEN_MATRIX_PIPE, str(tmp_path / "e.jsonl"), str(fifo)],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        reader.wait(timeout=60)
    assert p.stdout.startswith("refused:") and "m.fifo" in p.stdout, (p.stdout, p.stderr)
    assert not (tmp_path / "e.jsonl").exists()


@pytest.mark.parametrize("argv, flag", [
    (["embed", "e.jsonl", "-m", "tiny-random", "-o", ""], "--output"),
    (["embed", "e.jsonl", "-m", "tiny-random", "--npy", " "], "--npy"),
    (["classify", "e.jsonl", "--report", ""], "--report"),
    (["classify", "e.jsonl", "--html", ""], "--html"),
    (["search", "build", "e.jsonl", "-o", ""], "--output"),
    (["search", "query", "", "--text", "a calm voice"], "INDEX"),
    (["search", "eval", "--speech", "", "--captions", "e.jsonl"], "--speech"),
    (["embed", ""], "INPUT"),
    (["merge", ""], "SHARDS"),
    (["convert", "tiny-random", ""], "DESTINATION"),
])
def test_an_empty_file_name_is_a_usage_error_naming_its_option(tmp_path, argv, flag):
    """An empty -o/--npy/--report/--html/INDEX... (an unset shell variable) was taken as the
    working directory, skipped silently, or failed after the work with the OS's words."""
    (tmp_path / "e.jsonl").write_text(json.dumps({"id": "x", "embedding": [1.0, 0.0]}) + "\n")
    p = invoke(*argv, "-q", cwd=tmp_path, text=True)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"{flag} is empty" in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["e.jsonl"]


@pytest.mark.parametrize("argv, flag", [
    (["train", "c.yaml", "--resume", ""], "--resume"),
    (["search", "query", "x.idx", "e.jsonl", "-m", ""], "--model"),
    (["search", "eval", "--speech", "e.jsonl", "--captions", "e.jsonl", "--group-key", " "], "--group-key"),
    (["classify", "e.jsonl", "-p", ""], "--pack"),
    (["plot", "map", "e.jsonl", "-c", ""], "--color-by"),
    (["similarity", "e.jsonl", "--audio-root", ""], "--audio-root"),
    (["search", "query", "x.idx", "--text", ""], "--text"),
])
def test_an_empty_value_is_a_usage_error_not_taken_as_not_given(tmp_path, argv, flag):
    """``-m "$MODEL"``, ``--resume "$CKPT"`` with the variable unset ran on the default model,
    started training afresh, or grouped nothing, without a word."""
    (tmp_path / "e.jsonl").write_text(json.dumps({"id": "x", "embedding": [1.0, 0.0]}) + "\n")
    p = invoke(*argv, "-q", cwd=tmp_path, text=True)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert f"{flag} is empty: give " in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["e.jsonl"]


def test_skipped_records_are_listed_up_to_ten_then_counted(tmp_path):
    """A fault every record shares (a wrong --npy, a field of the wrong type) gave one warning
    line per record: the first ten are listed, one line says the rest are counted."""
    rows = [{"id": "ok0", "embedding": [1.0, 0.0, 0.0]}, {"id": "ok1", "embedding": [0.0, 1.0, 0.0]}]
    rows += [{"id": f"b{i}", "embedding": "x"} for i in range(15)]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = invoke("search", "build", "bad.jsonl", "-o", "bad.idx", cwd=tmp_path, text=True)
    assert p.returncode == 3, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(lines) == 11 and "b10 too" in lines[-1] and "only counted in the summary" in lines[-1]
    assert "15 failed" in p.stderr
