"""The README's main job, examples/quickstart.sh, runs end to end on the default model."""

import json
import os
import subprocess

import pytest

from tests.helpers.assets import REPO

ROOT = REPO


@pytest.mark.slow
def test_quickstart_runs_on_the_default_model(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "qs"))
    res = subprocess.run([str(ROOT / "examples/quickstart.sh")], cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert b"Traceback" not in res.stderr
    out = res.stdout.decode().splitlines()
    hits = [json.loads(x) for x in out if x.startswith('{"id":"an angry')]
    assert len(hits) == 1 and len(hits[0]["hits"]) == 3
    sims = [json.loads(x) for x in out if x.startswith('{"id":"pair"')]
    assert [s["pair"] for s in sims] == ["audio-audio", "audio-text"]
    assert all(-1.0 <= s["score"] <= 1.0 for s in sims)
    emb = [json.loads(x) for x in (tmp_path / "qs/clips.emb.jsonl").read_text().splitlines()]
    assert len(emb) == 6 and emb[0]["provenance"]["model"] == "clsp-default"
