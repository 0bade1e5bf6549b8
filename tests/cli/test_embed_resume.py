"""``clsp embed --resume`` after SIGKILL at random points gives the uninterrupted output."""

import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import CLSP


def make_corpus(folder, n=240):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        name = f"a{i}.wav"
        sf.write(str(folder / name), (0.1 * rng.standard_normal(int(16000 * (0.2 + 0.3 * (i % 4))))).astype(np.float32), 16000)
        recs.append(json.dumps({"id": f"a{i}", "audio": name}))
    recs.insert(17, json.dumps({"id": "broken", "audio": "missing.wav"}))
    (folder / "m.jsonl").write_text("\n".join(recs) + "\n")


def embed_args(out, *extra):
    return [CLSP, "embed", "m.jsonl", "--model", "tiny-random", "-o", out, "-b", "8", "-q", *extra]


def kill_midway(folder, args, partial, rng):
    proc = subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (folder / partial).exists() and (folder / partial).stat().st_size > 0:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_is_identical(tmp_path):
    make_corpus(tmp_path)
    ref = subprocess.run(embed_args("ref.jsonl"), cwd=tmp_path)
    assert ref.returncode == 3
    expected = (tmp_path / "ref.jsonl").read_bytes()
    rng = random.Random(1)
    for trial, shard in enumerate([None, None, "1/3"]):
        extra = ["--shard", shard] if shard else []
        out = f"out{trial}.jsonl"
        for _ in range(2):
            kill_midway(tmp_path, embed_args(out, "--resume", *extra), out + ".partial", rng)
        done = subprocess.run(embed_args(out, "--resume", *extra), cwd=tmp_path)
        assert done.returncode in (0, 3)
        got = (tmp_path / out).read_bytes()
        if shard:
            want = subprocess.run(embed_args(f"want{trial}.jsonl", *extra), cwd=tmp_path)
            assert want.returncode in (0, 3)
            assert got == (tmp_path / f"want{trial}.jsonl").read_bytes()
        else:
            assert got == expected
        ids = [json.loads(x)["id"] for x in got.decode().splitlines()]
        assert len(ids) == len(set(ids))
        assert not (tmp_path / (out + ".partial")).exists()
