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
