"""Paths and manifests as users have them: ``..`` after a symlinked folder, byte-order marks
of joined files, Lhotse cuts over MP3 data whatever the file is named."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from clsp.records import absolute_path, resolve_path
from clsp.streams import raw_lines
from tests.helpers.assets import write_wav
from tests.helpers.cli import invoke, jsonl


def _linked_tree(tmp_path: Path) -> Path:
    """store/corpus/{lists,wavs}, and proj/data -> ../store/corpus/lists; returns proj."""
    lists, wavs = tmp_path / "store" / "corpus" / "lists", tmp_path / "store" / "corpus" / "wavs"
    lists.mkdir(parents=True)
    wavs.mkdir()
    write_wav(wavs / "a.wav", 0.5)
    (lists / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "../wavs/a.wav"}) + "\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "data").symlink_to(Path("..") / "store" / "corpus" / "lists")
    return proj


def test_dotdot_after_a_symlinked_folder_goes_where_the_system_goes(tmp_path: Path, monkeypatch) -> None:
    proj = _linked_tree(tmp_path)
    wav = tmp_path / "store" / "corpus" / "wavs" / "a.wav"
    monkeypatch.chdir(proj)
    assert os.path.isfile("data/../wavs/a.wav")  # what ls and open() see
    for got in (absolute_path("data/../wavs/a.wav"), resolve_path("../wavs/a.wav", proj / "data"),
                resolve_path("data/../wavs/a.wav", proj)):
        assert os.path.isfile(got) and os.path.samefile(got, wav), got
    # without "..", paths stay as written (links kept), only made absolute and tidied
    assert absolute_path("data/./m.jsonl") == str(proj / "data" / "m.jsonl")
    assert absolute_path(str(proj) + "//data/") == str(proj / "data")
    assert resolve_path("b/../c.wav", Path("/no/such/dir")) == "/no/such/dir/c.wav"  # nothing on disk: lexical
    assert resolve_path("http://h/x/../y.wav", proj) == "http://h/x/../y.wav"


def test_commands_read_a_manifest_through_a_symlinked_folder(tmp_path: Path) -> None:
    proj = _linked_tree(tmp_path)
    for args in (("embed", "data/m.jsonl"), ("embed", "data/../wavs/a.wav")):
        res = invoke(*args, "--model", "tiny-random", "-q", cwd=proj)
        [rec] = jsonl(res.stdout)
        assert res.returncode == 0 and "embedding" in rec, rec
        assert os.path.samefile(rec["audio"], tmp_path / "store" / "corpus" / "wavs" / "a.wav")


def test_a_bom_at_the_start_of_any_line_is_dropped() -> None:
    """Two files that each start with a UTF-8 BOM, joined by cat: the second BOM opens a line."""
    one = b'\xef\xbb\xbf{"id": "a"}\n'
    got = list(raw_lines(io.BytesIO(one + one.replace(b'"a"', b'"b"'))))
    assert [json.loads(line.decode("utf-8")) for line in got] == [{"id": "a"}, {"id": "b"}]  # str: no BOM allowed


def test_bom_of_a_joined_manifest_in_embed(tmp_path: Path) -> None:
    write_wav(tmp_path / "v.wav", 0.5)
    rec = b'\xef\xbb\xbf{"id": "ID", "audio": "v.wav"}\n'
    res = invoke("embed", "-", "--model", "tiny-random", "-q", stdin=rec.replace(b"ID", b"a") + rec.replace(b"ID", b"b"),
                 cwd=tmp_path)
    assert res.returncode == 0 and [r["id"] for r in jsonl(res.stdout)] == ["a", "b"]


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox with MP3 support")
@pytest.mark.parametrize("name", ["x.wav", "x.mpga", "x"])
def test_a_cut_of_mp3_data_is_a_mix_whatever_the_file_is_named(tmp_path: Path, name: str) -> None:
    lhotse = pytest.importorskip("lhotse")
    write_wav(tmp_path / "v.wav", 1.6)
    made = subprocess.run(["sox", "-V1", str(tmp_path / "v.wav"), "-t", "mp3", str(tmp_path / name)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("sox cannot write MP3 here")
    rec = lhotse.Recording.from_file(tmp_path / name, recording_id="x")
    cuts = lhotse.CutSet.from_cuts([rec.to_cut().truncate(offset=0.3, duration=1.0)])
    cuts.to_file(tmp_path / "cuts.jsonl")
    res = invoke("embed", "cuts.jsonl", "--model", "tiny-random", "-q", cwd=tmp_path)
    [out] = jsonl(res.stdout)
    assert res.returncode == 0 and out["audio"] == "mix:" + out["id"] and "start" not in out, out
    assert [Path(f).name for f in out["audio_files"]] == [name]


def test_a_yaml_manifest_is_a_usage_error_with_the_conversion(tmp_path: Path) -> None:
    """Lhotse writes YAML cut manifests too; read line by line, one cut became 18 error records."""
    lhotse = pytest.importorskip("lhotse")
    write_wav(tmp_path / "v.wav", 0.5)
    rec = lhotse.Recording.from_file(tmp_path / "v.wav", recording_id="v")
    lhotse.CutSet.from_cuts([rec.to_cut()]).to_file(tmp_path / "cuts.yaml")
    for args in (("embed", "cuts.yaml", "--model", "tiny-random"), ("caption", "cuts.yaml")):
        res = invoke(*args, cwd=tmp_path)
        assert res.returncode == 2 and b"cuts.yaml: a YAML manifest" in res.stderr and not res.stdout, res.stderr
        assert b"to_file('cuts.jsonl.gz')" in res.stderr
    yaml = (tmp_path / "cuts.yaml").read_bytes()
    (tmp_path / "cuts.txt").write_bytes(yaml)
    for args, stdin in ((("embed", "-", "--model", "tiny-random"), yaml), (("caption", "cuts.txt"), None)):
        res = invoke(*args, cwd=tmp_path, stdin=stdin)  # piped, or under another name: known by its first line
        assert res.returncode == 2 and b": a YAML manifest (its first line: '" in res.stderr and not res.stdout, res.stderr
    assert invoke("embed", "-", "--model", "tiny-random", "-q", cwd=tmp_path, stdin=b"v.wav\n").returncode == 0
    (tmp_path / "part-0000-of-0001.yml").write_text("- id: a\n  duration: 1.0\n")
    res = invoke("merge", "part-0000-of-0001.yml", "-o", "m.jsonl", cwd=tmp_path)  # merge's own reader too
    assert res.returncode == 2 and b"a YAML manifest" in res.stderr and not (tmp_path / "m.jsonl").exists()


def test_a_kaldi_wav_scp_is_read_as_utterance_ids_and_paths(tmp_path: Path, monkeypatch) -> None:
    """`clsp embed data/train/wav.scp` read each 'UTT PATH' line as one file name, so every
    utterance was "no such file" under an id made of both."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wavs").mkdir()
    write_wav(tmp_path / "wavs" / "a.wav", 0.5)
    write_wav(tmp_path / "wavs" / "b c.wav", 0.6, 220)
    (tmp_path / "data" / "train").mkdir(parents=True)
    lines = ["spk1-utt1 wavs/a.wav", f"spk1-utt2\t{tmp_path}/wavs/b c.wav", "spk1-utt3 sox wavs/a.wav -t wav - |",
             "spk1-utt4 raw.ark:1234", "spk1-utt5", "spk1-utt6 wavs/missing.wav"]
    (tmp_path / "data" / "train" / "wav.scp").write_text("\n".join(lines) + "\n")
    p = invoke("embed", "data/train/wav.scp", "-m", "tiny-random", cwd=tmp_path, text=True)
    recs = jsonl(p.stdout)
    assert p.returncode == 3 and [r["id"] for r in recs] == [f"spk1-utt{i}" for i in range(1, 7)], p.stderr
    assert recs[0]["audio"] == str(tmp_path / "wavs" / "a.wav") and "embedding" in recs[0]  # from the working dir
    assert recs[1]["audio"] == str(tmp_path / "wavs" / "b c.wav") and "embedding" in recs[1]
    assert "clsp runs no command from a manifest" in recs[2]["error"]["message"]
    assert "offset in a Kaldi archive" in recs[3]["error"]["message"]
    assert "has no path" in recs[4]["error"]["message"]
    assert "missing.wav" in recs[5]["error"]["message"] and "no such file" in recs[5]["error"]["message"]
    (tmp_path / "list.txt").write_text("wavs/a.wav\n")  # any other list keeps a line as one path
    assert "embedding" in jsonl(invoke("embed", "list.txt", "-m", "tiny-random", cwd=tmp_path, text=True).stdout)[0]
