"""Usage errors that must come before any model is loaded, and outputs that must not overwrite
a run's own working files."""

import json

import pytest

from tests.conftest import invoke, write_wav


@pytest.mark.parametrize("command", ["classify", "similarity"])
def test_an_unusable_audio_root_is_named_before_the_model_is_loaded(tmp_path, command):
    write_wav(tmp_path / "a.wav", 0.5)
    rec = {"id": "a", "audio": "a.wav"} if command == "classify" else {"id": "p", "a": "a.wav", "b": "a.wav"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    more = ["--pack", "gender"] if command == "classify" else []
    # a model that does not exist: had it been loaded first, its error would be the one reported
    res = invoke(command, "m.jsonl", "--model", str(tmp_path / "no-model"), "-q", "--audio-root", "nosuch", *more,
                 cwd=tmp_path, text=True)
    assert res.returncode == 2 and "--audio-root nosuch: no such folder" in res.stderr, (res.returncode, res.stderr)
    assert "no-model" not in res.stderr and not res.stdout.strip()


@pytest.mark.parametrize("flag,name", [("-o", "out.jsonl.lock"), ("--npy", "m.npy.tmp.npy"), ("-o", "x.tmp.npy")])
def test_an_output_named_as_a_runs_working_file_is_refused(tmp_path, flag, name):
    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / name).write_text("another run's\n")  # e.g. the lock of a run writing out.jsonl
    more = ["-o", "out.jsonl"] if flag == "--npy" else []
    res = invoke("embed", "a.wav", "--model", "tiny-random", "-q", flag, name, *more, cwd=tmp_path, text=True)
    assert res.returncode == 2 and "working files" in res.stderr, (res.returncode, res.stderr)
    assert (tmp_path / name).read_text() == "another run's\n"
    # a plain name still works
    ok = invoke("embed", "a.wav", "--model", "tiny-random", "-q", "-o", "fine.jsonl", cwd=tmp_path, text=True)
    assert ok.returncode == 0 and (tmp_path / "fine.jsonl").read_text().count("\n") == 1


def test_sharded_windows_whose_first_window_is_silent_merge_to_the_unsharded_output(tmp_path):
    import numpy as np
    import soundfile as sf

    from tests.conftest import jsonl, tone

    sr = 16000
    sf.write(str(tmp_path / "late.wav"), np.concatenate([np.zeros(3 * sr, np.float32), tone(5.0)]), sr)
    write_wav(tmp_path / "b.wav", 1.0)
    write_wav(tmp_path / "c.wav", 1.5)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": n, "audio": f"{n}.wav"}) + "\n"
                                              for n in ("b", "late", "c")))
    args = ["m.jsonl", "--model", "tiny-random", "-q", "--max-seconds", "3", "--long-audio", "windows"]
    whole = invoke("embed", *args, cwd=tmp_path, text=True)
    assert whole.returncode == 3, whole.stderr  # the silent first window is an error record
    for k in range(2):
        res = invoke("embed", *args, "--shard", f"{k}/2", "-o", f"part-{k}.jsonl", cwd=tmp_path, text=True)
        assert res.returncode in (0, 3), res.stderr
    merged = invoke("merge", "part-0.jsonl", "part-1.jsonl", cwd=tmp_path, text=True)
    assert merged.returncode == 3, merged.stderr

    def shown(recs):
        return [(r["id"], "error" in r, r.get("window"), r.get("windows")) for r in recs]

    assert shown(jsonl(merged.stdout)) == shown(jsonl(whole.stdout))
    out = jsonl(whole.stdout)  # a clip no longer than --max-seconds keeps its id and has no window fields
    assert [r["id"] for r in out] == ["b", "late@0", "late@1", "late@2", "c"]
    assert [r.get("source_id") for r in out] == [None, "late", "late", "late", None]
