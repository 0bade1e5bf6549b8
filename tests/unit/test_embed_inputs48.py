"""Inputs that are no regular file (devices, FIFOs found by a walk, dangling links, loops, URLs),
--audio-root, silent windows, untagged MP3s behind an ID3v2 picture, strict start/end strings."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from clsp.errors import AudioError, ConfigError
from tests.conftest import invoke, jsonl, tone, write_wav

SR = 16000


def _guarded(code: str, timeout: float = 60, memory: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python with at most ``timeout`` seconds (and with ``memory`` 2 GB
    of address space: no torch then): a reader that never ends (a device, a FIFO without a
    writer) fails the test, never hangs it."""
    prelude = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n" if memory else ""
    try:
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        pytest.fail(f"still reading after {timeout} s: {code.strip().splitlines()[-1]}")


# ---- 1. devices as arguments: a usage error, never read ------------------------------------------

@pytest.mark.parametrize("reader", ["plan", "records"])
def test_a_device_argument_is_a_usage_error_not_read(reader):
    call = ("from clsp.inputs import plan_sources as f; f(['/dev/zero'], 'any')" if reader == "plan"
            else "from clsp.records import iter_items; f = lambda: next(iter_items('/dev/zero', 'embeddings')); f()")
    res = _guarded(f"""
        from clsp.errors import ConfigError
        try:
            {call}
        except ConfigError as exc:
            print('ConfigError', exc)
        """)
    assert res.stdout.strip() == "ConfigError /dev/zero: not a regular file (a character device)", res.stderr[-800:]


def test_a_device_or_fifo_as_a_records_audio_is_not_a_regular_file(tmp_path):
    from clsp.record_audio import load_record_audio
    from clsp.records import iter_items

    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"id": k, "audio": a}) + "\n" for k, a in
                                              [("z", "/dev/zero"), ("r", "/dev/urandom"), ("p", "pipe.wav")]))
    for item in iter_items(tmp_path / "m.jsonl"):
        with pytest.raises(AudioError) as exc:
            load_record_audio(item.record)
        assert str(exc.value).startswith(f"{item.record['audio']}: not a regular file (a "), str(exc.value)


# ---- 2. and 7. what a folder walk or a glob finds: one error record each, the rest read -------------

def test_a_fifo_found_by_a_walk_or_a_glob_is_one_error_record(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    write_wav(tree / "a.wav", 0.5)
    os.mkfifo(tree / "pipe.wav")
    res = _guarded(f"""
        from clsp.audio import load_audio
        from clsp.errors import AudioError
        from clsp.inputs import iter_source_items, plan_sources
        for arg in ({str(tree)!r}, {str(tree / '*.wav')!r}):
            for item in iter_source_items(plan_sources([arg])):
                try:
                    print(item.id, load_audio(item.record['audio']).numel())
                except AudioError as exc:
                    print(item.id, exc)
        """, memory=False)  # a FIFO without a writer blocks at its opening: only time is at stake
    fifo = f"{tree}/pipe.wav"
    assert res.stdout.splitlines() == [f"{tree}/a.wav 8000", f"{fifo} {fifo}: not a regular file (a FIFO)"] * 2, \
        res.stderr[-800:]


def test_a_dangling_link_or_a_loop_in_a_folder_is_one_error_record(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    write_wav(tree / "a.wav", 0.5)
    os.symlink("nowhere.wav", tree / "dangling.wav")
    os.symlink("loop2.wav", tree / "loop1.wav")
    os.symlink("loop1.wav", tree / "loop2.wav")
    res = invoke("embed", "tree", "--model", "tiny-random", "-q", cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    recs = jsonl(res.stdout)
    assert [r["id"] for r in recs] == ["tree/a.wav", "tree/dangling.wav", "tree/loop1.wav", "tree/loop2.wav"]
    assert "embedding" in recs[0]
    assert recs[1]["error"]["message"] == f"{tree}/dangling.wav: no such file (a dangling symbolic link to nowhere.wav)"
    assert recs[2]["error"]["message"] == f"{tree}/loop1.wav: a symbolic link loop (too many levels of symbolic links)"
    with pytest.raises(ConfigError, match="symbolic link loop"):  # named directly: a usage error, as a missing file
        from clsp.inputs import plan_sources

        plan_sources([str(tree / "loop1.wav")])


# ---- 3. URLs: named as given, refused as URLs ----------------------------------------------------------

def test_urls_are_named_as_given_and_refused(tmp_path):
    from clsp.record_audio import load_record_audio
    from clsp.records import iter_items

    write_wav(tmp_path / "a.wav", 0.5)
    urls = ["http://127.0.0.1:9/a.wav", "s3://bucket/a.wav", f"file://{tmp_path}/a.wav"]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"audio": u}) + "\n" for u in urls))
    for url, item in zip(urls, iter_items(tmp_path / "m.jsonl")):
        with pytest.raises(AudioError) as exc:
            load_record_audio(item.record)
        assert str(exc.value).startswith(f"{url}: a "), str(exc.value)
        assert "local path" in str(exc.value)
    assert f"give the local path ({tmp_path}/a.wav)" in str(exc.value)
    from clsp.inputs import plan_sources

    with pytest.raises(ConfigError, match=r"^http://127\.0\.0\.1:9/a\.wav: a URL"):
        plan_sources(["http://127.0.0.1:9/a.wav"])


# ---- 4. silent windows ---------------------------------------------------------------------------------

def test_a_silent_window_is_an_error_record_and_left_out_of_the_mean(tmp_path):
    sf.write(str(tmp_path / "sil.wav"), np.concatenate([tone(2.0), np.zeros(7 * SR, np.float32)]), SR)
    res = invoke("embed", "sil.wav", "--model", "tiny-random", "-q", "--max-seconds", "3", "--long-audio", "windows",
                 cwd=tmp_path, text=True)
    assert res.returncode == 3, res.stderr
    recs = jsonl(res.stdout)
    assert [r["id"] for r in recs] == ["sil.wav@0", "sil.wav@1", "sil.wav@2"]
    assert "embedding" in recs[0]
    for k in (1, 2):
        assert recs[k]["error"]["message"].endswith("silent (peak 0, below one 16-bit step): no voice to embed")
        assert (recs[k]["source_id"], recs[k]["window"], recs[k]["windows"]) == ("sil.wav", k, 3)
    again = invoke("embed", "-", "--model", "tiny-random", "-q", cwd=tmp_path, text=True,
                   stdin=json.dumps({"id": "w1", "audio": "sil.wav", "start": 3.0, "end": 6.0}) + "\n")
    assert again.returncode == 3 and "silent" in jsonl(again.stdout)[0]["error"]["message"]
    mean = invoke("embed", "sil.wav", "--model", "tiny-random", "-q", "--max-seconds", "3", cwd=tmp_path, text=True)
    assert mean.returncode == 0, mean.stderr
    cos = float(np.dot(jsonl(mean.stdout)[0]["embedding"], recs[0]["embedding"]))
    assert cos > 0.9999  # the mean of the one window with a voice


# ---- 5. an untagged MP3 behind an ID3v2 picture ---------------------------------------------------------

def _id3v2_with_picture(size: int = 20000) -> bytes:
    picture = b"\xff\xd8\xff\xe0" + bytes(range(256)) * (size // 256)
    body = b"\x00image/jpeg\x00\x03\x00" + picture
    frame = b"APIC" + len(body).to_bytes(4, "big") + b"\x00\x00" + body
    n = len(frame)
    syncsafe = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def test_an_untagged_mp3_behind_an_id3v2_picture_decodes_as_without_it(tmp_path):
    if shutil.which("lame") is None:
        pytest.skip("lame not installed")
    from clsp.audio import audio_duration, load_audio

    write_wav(tmp_path / "a.wav", 1.9)
    plain = tmp_path / "notag.mp3"
    subprocess.run(["lame", "--quiet", "-t", "-b", "64", str(tmp_path / "a.wav"), str(plain)], check=True)
    cover = tmp_path / "cover.mp3"
    cover.write_bytes(_id3v2_with_picture() + plain.read_bytes())
    ref = load_audio(plain).numpy()
    got = load_audio(cover).numpy()  # was: truncated: the header promises 70309 frames ..., the file holds 30575
    assert got.shape == ref.shape and np.array_equal(got, ref)
    assert audio_duration(cover) == audio_duration(plain)
    assert np.array_equal(load_audio(cover, 0.5, 1.5).numpy(), load_audio(plain, 0.5, 1.5).numpy())


# ---- 6. --audio-root -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("root,reason", [("nosuch", "--audio-root nosuch: no such folder"),
                                         ("a.wav", "--audio-root a.wav: not a folder"),
                                         ("", "--audio-root is empty")])
@pytest.mark.parametrize("command", ["embed", "classify"])
def test_an_unusable_audio_root_is_a_usage_error(tmp_path, root, reason, command):
    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    more = ["--pack", "gender"] if command == "classify" else []
    res = invoke(command, "m.jsonl", "--model", "tiny-random", "-q", "--audio-root", root, *more, cwd=tmp_path, text=True)
    assert res.returncode == 2 and reason in res.stderr and not res.stdout.strip(), (res.returncode, res.stderr)


# ---- 8. start/end/duration strings: plain ASCII decimal numbers only ---------------------------------------

def test_start_end_strings_must_be_plain_numbers(tmp_path):
    from clsp.audio import _seconds
    from clsp.record_audio import load_record_audio

    path = str(write_wav(tmp_path / "a.wav", 12.0))
    for field, value in [("start", "1_0"), ("start", "\u0661\u0660"), ("end", "1_0"), ("start", " 1"),
                         ("duration", "1_0"), ("end", "\uff11")]:
        with pytest.raises(AudioError, match=f"invalid {field} "):
            load_record_audio({"audio": path, "_path": path, field: value})
    assert [_seconds("a.wav", "start", v) for v in ("1", "+1.5", "2.", ".5", "1e1", "2.5E-1", 3)] == \
        [1.0, 1.5, 2.0, 0.5, 10.0, 0.25, 3.0]
    assert load_record_audio({"audio": path, "_path": path, "start": "10", "end": "1.1e1"}).numel() == SR


def test_similarity_sides_take_only_plain_numbers_for_start_and_end():
    from clsp.errors import InputError
    from clsp.similarity import audio_side

    assert audio_side("a.wav", "side a", "1.5", "2e0").start == 1.5
    for bad in ("1_0", "\u0661\u0660", " 1"):
        with pytest.raises(InputError, match="start/end must be numbers"):
            audio_side("a.wav", "side a", bad, None)


def test_search_query_names_why_an_audio_argument_cannot_be_read(tmp_path):
    from typer.testing import CliRunner

    from clsp_cli.app import app

    (tmp_path / "loop1.wav").symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(tmp_path / "loop1.wav")
    for audio, why in (("/dev/zero", "not a regular file"), (str(tmp_path / "loop1.wav"), "symbolic link loop")):
        res = CliRunner().invoke(app, ["search", "query", str(tmp_path / "none.idx"), "--audio", audio])
        assert res.exit_code == 2 and why in res.output, res.output
