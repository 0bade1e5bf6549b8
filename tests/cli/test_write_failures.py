"""Writes that fail (read-only target, full disk, full stdout) give a clear error and a
non-zero exit, and never publish a truncated file under the final name; shards writing to
one folder keep their own files."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLSP, invoke, jsonl, run_clsp, write_wav

TIMEOUT = 240


@contextlib.contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A tmpfs at ``path`` (needs root; the test is skipped otherwise)."""
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _corpus(folder: Path, n: int = 40) -> Path:
    for i in range(3):
        write_wav(folder / f"w{i}.wav", 0.5 + 0.3 * i, 150 + 40 * i, seed=i)
    lines = [f'{{"id": "r{k}", "audio": "w{k % 3}.wav", "gender": "male", "pad": "{"x" * 2000}"}}' for k in range(n)]
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def _check_failed(proc, target: Path) -> None:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode not in (0, 3), err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert "error:" in err and str(target.name) in err, err[-2000:]
    assert not target.exists(), "a failed write must not publish the final file"


@pytest.mark.slow
def test_full_disk_publishes_nothing(tmp_path):
    manifest = _corpus(tmp_path)
    with mounted_tmpfs(tmp_path / "small", "size=48k") as small:
        target = small / "out.jsonl"
        proc = run_clsp("embed", str(manifest), "--model", "tiny-random", "-q", "-o", str(target), timeout=TIMEOUT)
        _check_failed(proc, target)
        _fill(small)
        npy_target = small / "out.npy"
        proc = run_clsp("embed", str(manifest), "--model", "tiny-random", "-q", "-o", str(tmp_path / "rows.jsonl"),
                        "--npy", str(npy_target), timeout=TIMEOUT)
        _check_failed(proc, npy_target)
        assert not (tmp_path / "rows.jsonl").exists()


@pytest.mark.slow
def test_full_disk_leaves_nothing_of_a_run_that_cannot_resume(tmp_path):
    """classify, caption, search build and --report outputs that fail on a full disk say so in
    one line and leave no FILE.partial, FILE.lock or half-made index folder (only embed,
    which --resume continues, keeps its partial output)."""
    manifest = _corpus(tmp_path, n=12)
    with mounted_tmpfs(tmp_path / "small", "size=24k") as small:
        for args in (["classify", str(manifest), "--model", "tiny-random", "-o", str(small / "c.jsonl")],
                     ["similarity", str(tmp_path / "w0.wav"), str(tmp_path / "w1.wav"), "--model", "tiny-random",
                      "-o", str(small / "s.jsonl")]):
            _fill(small)
            proc = run_clsp(*args, "-q", timeout=TIMEOUT)
            err = proc.stderr.decode(errors="replace")
            assert proc.returncode == 1 and "No space left on device" in err and "Traceback" not in err, err[-2000:]
            assert sorted(p.name for p in small.iterdir()) == ["filler"]
            (small / "filler").unlink()
        emb = tmp_path / "e.jsonl"
        assert run_clsp("embed", str(manifest), "--model", "tiny-random", "-q", "-o", str(emb)).returncode == 0
        _fill(small)
        proc = run_clsp("search", "build", str(emb), "-o", str(small / "x.idx"), "-q", timeout=TIMEOUT)
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == 1 and "No space left on device" in err and "Traceback" not in err, err[-2000:]
        assert sorted(p.name for p in small.iterdir()) == ["filler"]


def _fill(folder: Path) -> None:
    """Use up every free byte of the file system holding ``folder``."""
    try:
        with open(folder / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        pass


def test_read_only_target(tmp_path):
    manifest = _corpus(tmp_path, n=4)
    if os.geteuid() == 0:
        ctx = mounted_tmpfs(tmp_path / "ro", "size=1m,ro")
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        target = ro / "out.jsonl"
        proc = invoke("embed", str(manifest), "--model", "tiny-random", "-q", "-o", str(target))
        _check_failed(proc, target)
        proc = invoke("caption", str(manifest), "-q", "-o", str(target))
        _check_failed(proc, target)


def test_output_under_a_file_is_a_clear_error(tmp_path):
    manifest = _corpus(tmp_path, n=2)
    (tmp_path / "plainfile").write_text("x")
    target = tmp_path / "plainfile" / "out.jsonl"
    proc = invoke("embed", str(manifest), "--model", "tiny-random", "-q", "-o", str(target))
    err = proc.stderr.decode()
    assert proc.returncode not in (0, 3) and "Traceback" not in err and "plainfile" in err, err[-2000:]


@pytest.mark.slow
def test_stdout_to_dev_full(tmp_path):
    manifest = _corpus(tmp_path, n=200)
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([CLSP, "embed", str(manifest), "--model", "tiny-random", "-q"], stdout=full,
                              stderr=subprocess.PIPE, timeout=TIMEOUT)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode not in (0, 3), err[-2000:]
    assert "Traceback" not in err and "error:" in err, err[-3000:]


@pytest.mark.slow
def test_two_shards_share_a_folder(tmp_path):
    manifest = _corpus(tmp_path, n=30)
    out = tmp_path / "out"
    procs = [subprocess.Popen([CLSP, "embed", str(manifest), "--model", "tiny-random", "-q", "--shard", f"{i}/2",
                               "-o", str(out / f"part-{i}.jsonl"), "--npy", str(out / f"part-{i}.npy")],
                              stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err.decode()[-2000:]
    import numpy as np

    got = {}
    for i in range(2):
        recs = jsonl((out / f"part-{i}.jsonl").read_bytes())
        mat = np.load(out / f"part-{i}.npy")
        assert [r["id"] for r in recs] == [f"r{k}" for k in range(i, 30, 2)]
        assert [r["row"] for r in recs] == list(range(len(recs))) and mat.shape == (len(recs), 32)
        got.update({r["id"]: mat[r["row"]] for r in recs})
    whole = run_clsp("embed", str(manifest), "--model", "tiny-random", "-q", timeout=TIMEOUT)
    for rec in jsonl(whole.stdout):
        np.testing.assert_allclose(got[rec["id"]], rec["embedding"], atol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == ["part-0.jsonl", "part-0.npy", "part-1.jsonl", "part-1.npy"]


@pytest.mark.slow
def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """`timeout`, `kill` and SLURM send SIGTERM: classify left FILE.partial and locks (exit 143
    now, nothing left); embed keeps its partial output for --resume, as on Ctrl-C."""
    import signal
    import sys
    import time

    manifest = _corpus(tmp_path, n=3000)
    for cmd, keep in ((["classify", str(manifest), "--pack", "gender", "--label-key", "gender", "-o", "c.jsonl", "--report", "r.json"], False),
                      (["embed", str(manifest), "-o", "e.jsonl"], True)):
        out = tmp_path / cmd[cmd.index("-o") + 1]
        proc = subprocess.Popen([sys.executable, "-m", "clsp_cli.app", *cmd, "--model", "tiny-random", "-q"],
                                cwd=tmp_path, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not Path(str(out) + ".partial").exists() or Path(str(out) + ".partial").stat().st_size == 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert b"terminated (SIGTERM)" in proc.stderr.read()
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((out.name, "r.json")))
        assert left == ([out.name + ".lock", out.name + ".partial"] if keep else []), left


def test_an_index_under_a_file_size_limit_names_the_os_reason(tmp_path):
    """faiss's own writer said "'ret == (size * 4)' failed: write error in ..."; the index is
    written through Python now, so the limit is named as the system names it."""
    import json
    import resource
    import sys

    import numpy as np

    vecs = np.random.default_rng(0).standard_normal((200, 64)).astype(np.float32)
    emb = tmp_path / "e.jsonl"
    emb.write_text("".join(json.dumps({"id": f"v{i}", "embedding": v.tolist()}) + "\n" for i, v in enumerate(vecs)))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    proc = subprocess.run([sys.executable, "-m", "clsp_cli.app", "search", "build", str(emb), "-o", str(tmp_path / "x.idx"),
                           "-q"], capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=limit)
    assert proc.returncode == 1 and "cannot write index.faiss (File too large (EFBIG))" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.idx").exists()
    ok = run_clsp("search", "build", str(emb), "-o", str(tmp_path / "y.idx"), "-q", timeout=TIMEOUT)
    assert ok.returncode == 0 and json.loads(ok.stdout)["count"] == 200
