"""Lhotse cut sources get the checks plain records get before Lhotse opens them (a FIFO, a
device, a dangling link, a link loop, a folder, a missing file: one short error record each,
never a hang), and a cut's string ``start``/``duration`` follow the plain records' rules (one
error record naming the cut and the field, the other records kept)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.assets import write_wav
from tests.helpers.cli import invoke, jsonl, run_clsp

SR = 16000
TINY = ["--model", "tiny-random", "--workers", "1", "--quiet"]


def mono_cut(cid: str, source: str, start=0.0, duration=0.5) -> dict:
    rec = {"id": f"rec-{cid}", "sources": [{"type": "file", "channels": [0], "source": source}],
           "sampling_rate": SR, "num_samples": SR, "duration": 1.0, "channel_ids": [0]}
    return {"id": cid, "start": start, "duration": duration, "channel": 0, "supervisions": [],
            "recording": rec, "type": "MonoCut"}


def write_cuts(path: Path, cuts: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cuts))
    return path


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "ok.wav"
    write_wav(path, 1.0)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="POSIX only")
@pytest.mark.parametrize("command", [["embed", *TINY],
                                     pytest.param(["caption", "--quiet"], marks=pytest.mark.slow)])
def test_cut_sources_that_are_no_regular_file_are_error_records_not_a_hang(tmp_path, clip, command):
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "folder.wav").mkdir()
    cuts = [mono_cut("good", "ok.wav"),
            mono_cut("fifo", str(tmp_path / "pipe.wav")),
            mono_cut("fifo2", "pipe.wav"),  # several FIFOs: none may block a thread
            mono_cut("zero", "/dev/zero"),
            mono_cut("dangling", "dangling.wav"),
            mono_cut("loop", "loop.wav"),
            mono_cut("folder", "folder.wav"),
            mono_cut("missing", str(tmp_path / "absent.wav")),
            mono_cut("good2", str(clip))]
    write_cuts(tmp_path / "cuts.jsonl", cuts)
    proc = run_clsp(command[0], "cuts.jsonl", *command[1:], "-o", "out.jsonl", cwd=tmp_path, timeout=90)
    assert proc.returncode == 3, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    out = by_id(jsonl((tmp_path / "out.jsonl").read_bytes()))
    assert set(out) == {c["id"] for c in cuts}
    assert "error" not in out["good"] and "error" not in out["good2"]
    messages = {cid: out[cid]["error"]["message"] for cid in out if "error" in out[cid]}
    expected = {"fifo": f"cut 'fifo': not a regular file (a FIFO): {tmp_path / 'pipe.wav'}",
                "fifo2": "cut 'fifo2': not a regular file (a FIFO): pipe.wav",
                "zero": "cut 'zero': not a regular file (a character device): /dev/zero",
                "dangling": f"cut 'dangling': no such file (a dangling symbolic link to {tmp_path / 'nowhere.wav'}): "
                            "dangling.wav",
                "loop": "cut 'loop': a symbolic link loop (too many levels of symbolic links): loop.wav",
                "folder": "cut 'folder': is a directory: folder.wav",
                "missing": f"cut 'missing': no such file: {tmp_path / 'absent.wav'}"}
    assert messages == expected


def test_a_missing_relative_cut_source_is_named_shortly(tmp_path, clip):
    write_cuts(tmp_path / "cuts.jsonl", [mono_cut("good", "ok.wav"), mono_cut("relcut", "ref.flac")])
    res = invoke("embed", "cuts.jsonl", *TINY, "-o", "out.jsonl", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    out = by_id(jsonl((tmp_path / "out.jsonl").read_text()))
    assert "embedding" in out["good"]
    assert out["relcut"]["error"]["message"] == "cut 'relcut': no such file: ref.flac"
    assert "Exception #" not in res.stderr and "LibsndfileError" not in res.stderr
    # relative cut sources still resolve against the working directory, as in Lhotse
    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "sub" / "ref.flac", 1.0, 330.0)
    res = invoke("embed", str(tmp_path / "cuts.jsonl"), *TINY, "-o", str(tmp_path / "out2.jsonl"),
                 cwd=tmp_path / "sub", text=True)
    assert res.returncode == 3, res.stderr  # ok.wav is not in sub/
    out = by_id(jsonl((tmp_path / "out2.jsonl").read_text()))
    assert "embedding" in out["relcut"] and out["good"]["error"]["message"] == "cut 'good': no such file: ok.wav"


def test_cut_start_and_duration_follow_the_plain_record_rules(tmp_path, clip):
    cuts = [mono_cut("good", "ok.wav"),
            mono_cut("s1_0", "ok.wav", start="1_0"),
            mono_cut("s0.1", "ok.wav", start="0.1"),
            mono_cut("s0_1", "ok.wav", start="0_1"),
            mono_cut("both", "ok.wav", start="0_1", duration="0_5"),
            mono_cut("d0_5", "ok.wav", start=0.1, duration="0_5"),
            mono_cut("d0.2", "ok.wav", start=0.1, duration="0.2"),
            mono_cut("sbool", "ok.wav", start=True),
            mono_cut("dinf", "ok.wav", duration="inf"),
            mono_cut("sneg", "ok.wav", start="-0.5"),
            mono_cut("good2", "ok.wav", start=0.2, duration=0.3)]
    write_cuts(tmp_path / "cuts.jsonl", cuts)
    res = invoke("embed", "cuts.jsonl", *TINY, "-o", "out.jsonl", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    out = by_id(jsonl((tmp_path / "out.jsonl").read_text()))
    assert set(out) == {c["id"] for c in cuts}
    for good in ("good", "s0.1", "d0.2", "good2"):
        assert "embedding" in out[good], out[good]
    assert (out["s0.1"]["start"], out["s0.1"]["end"]) == pytest.approx((0.1, 0.6))
    assert (out["d0.2"]["start"], out["d0.2"]["end"]) == pytest.approx((0.1, 0.3))
    messages = {cid: out[cid]["error"]["message"] for cid in out if "error" in out[cid]}
    assert messages == {
        "s1_0": "line 2: cut 's1_0': invalid start '1_0' (expected seconds >= 0)",
        "s0_1": "line 4: cut 's0_1': invalid start '0_1' (expected seconds >= 0)",
        "both": "line 5: cut 'both': invalid start '0_1' (expected seconds >= 0)",
        "d0_5": "line 6: cut 'd0_5': invalid duration '0_5' (expected seconds >= 0)",
        "sbool": "line 8: cut 'sbool': invalid start true (expected seconds >= 0)",
        "dinf": "line 9: cut 'dinf': invalid duration 'inf' (expected seconds >= 0)",
        "sneg": "line 10: cut 'sneg': invalid start '-0.5' (expected seconds >= 0)",
    }


def test_a_boolean_start_of_a_plain_record_is_spelled_as_json(tmp_path, clip):
    (tmp_path / "recs.jsonl").write_text(json.dumps({"id": "b", "audio": "ok.wav", "start": True}) + "\n"
                                         + json.dumps({"id": "f", "audio": "ok.wav", "end": False}) + "\n")
    res = invoke("embed", "recs.jsonl", *TINY, "-o", "out.jsonl", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    out = by_id(jsonl((tmp_path / "out.jsonl").read_text()))
    assert out["b"]["error"]["message"] == f"{clip}: invalid start true (expected seconds >= 0)"
    assert out["f"]["error"]["message"] == f"{clip}: invalid end false (expected seconds >= 0)"
