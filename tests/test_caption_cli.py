"""``clsp caption`` through real pipes with the acoustic backend."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.synth import make_speech, requires_espeak

CLSP = [sys.executable, "-m", "clsp_cli.app"]


@requires_espeak
def test_caption_pipe_bare_paths_errors_and_head(tmp_path):
    a = make_speech(tmp_path / "a.wav", voice="en+f3", pitch=60)
    b = make_speech(tmp_path / "b.wav", rate=100)
    lines = "\n".join([json.dumps({"id": "a", "audio": str(a), "age": 30}), str(b),
                       json.dumps({"id": "gone", "audio": str(tmp_path / "gone.wav")})]) + "\n"
    proc = subprocess.run(CLSP + ["caption", "--num-global", "2", "-"], input=lines,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    recs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["id"] for r in recs] == ["a", str(b), "gone"]
    assert len(recs[0]["global_captions"]) == 2 and len(recs[0]["finegrained_captions"]) == 1
    assert recs[0]["attributes"]["gender"] == "female" and "gender" in recs[0]["inferred"]
    assert recs[0]["provenance"]["backend"] == "acoustic" and "measurements" in recs[0]
    assert recs[1]["attributes"]["rate"] in {"slow", "very slow"}
    assert recs[2]["error"]["type"] == "AudioError"
    shell = f"printf '%s\\n' {a} {b} {a} | {sys.executable} -m clsp_cli.app caption -q | head -1"
    head = subprocess.run(shell, shell=True, capture_output=True, text=True, timeout=120)
    assert head.returncode == 0 and len(head.stdout.splitlines()) == 1 and head.stderr == ""


def test_caption_usage_errors(tmp_path):
    bad = tmp_path / "bins.json"
    bad.write_text("{")
    for args in (["--bins", str(bad)], ["--backend", "model"], ["--num-global", "0", "--num-finegrained", "0"]):
        proc = subprocess.run(CLSP + ["caption", *args, "-"], input="", capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
