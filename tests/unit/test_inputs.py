"""Inputs as users have them: BOM, bare path lists, compression, audio files/folders/globs, paths."""

import gzip
import io
import json
import os
import sys

import pytest

from clsp.errors import ConfigError, InputError
from clsp.inputs import audio_signature, iter_source_items, plan_sources
from clsp.records import iter_items, read_jsonl
from clsp.streams import TruncatedInputError
from tests.conftest import write_wav

BOM = b"\xef\xbb\xbf"


def _items(path, modality="audio", **kw):
    return list(iter_items(path, modality, **kw))


# ---- byte-order mark ---------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_bom_is_dropped_from_jsonl_lists_and_text(tmp_path, compress):
    def write(name, data):
        p = tmp_path / name
        p.write_bytes(gzip.compress(data) if compress else data)
        return p

    (item,) = _items(write("a.jsonl", BOM + b'{"id":"s","audio":"s.wav"}\n'))
    assert item.ok and item.id == "s" and item.record["audio"] == str(tmp_path / "s.wav")
    (item,) = _items(write("a.txt", BOM + b"s.wav\n"))
    assert item.ok and item.id == "s.wav" and item.record["audio"] == str(tmp_path / "s.wav")
    first, second = _items(write("t.jsonl", BOM + b'{"id":"a","text":"a calm young woman"}\n{"id":"b","text":"x"}\n'), "text")
    assert first.record["id"] == "a" and first.record["text"] == "a calm young woman"
    (item,) = _items(write("t.txt", BOM + b"a calm voice\n"), "text")
    assert item.record["text"] == "a calm voice"
    assert read_jsonl(write("r.jsonl", BOM + b'{"id": 1}\n')) == [{"id": 1}]


def test_bom_is_dropped_from_configs_and_prompt_packs(tmp_path):
    from clsp.prompts import load_pack
    from clsp.train.config import read_config_file

    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(BOM + b"max_steps: 7\n")
    assert read_config_file(cfg)["max_steps"] == 7
    pack = tmp_path / "p.json"
    pack.write_bytes(BOM + json.dumps({"name": "p", "attribute": "mood", "templates": ["A {label} voice."],
                                       "classes": {"calm": "calm", "angry": "angry"}}).encode())
    assert sorted(load_pack(pack).get(None).output_classes) == ["angry", "calm"]
    from clsp.caption.bins import DEFAULT_BINS_PATH, load_bins

    bins = tmp_path / "bins.json"
    bins.write_bytes(BOM + DEFAULT_BINS_PATH.read_bytes())
    assert load_bins(bins).spec == load_bins(None).spec


def test_bom_on_stdin(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(BOM + b"x.wav\n"))))
    (item,) = _items("-")
    assert item.id == "x.wav" and item.record["audio"] == str(tmp_path / "x.wav")


# ---- bare path lists ---------------------------------------------------------------------------

def test_bare_lines_are_paths_kept_byte_for_byte(tmp_path):
    names = ["[take1] hello.wav", "{draft}.wav", " lead.wav", "trail.wav ", "(final).wav"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    data = "".join(n + "\n" for n in names[:3]) + names[3] + "\r\n" + names[4]  # CRLF, no final newline
    p = tmp_path / "list.txt"
    p.write_text(data)
    items = _items(p)
    assert [it.ok for it in items] == [True] * 5
    assert [it.id for it in items] == names
    assert [it.record["audio"] for it in items] == [str(tmp_path / n) for n in names]


def test_broken_json_that_names_no_file_is_still_an_error(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "a", "audio": \n[1, 2]\n{"id": "b", "audio": "b.wav"}\n')
    bad1, bad2, good = _items(p)
    assert "invalid JSON" in str(bad1.error) and "no file of that name" in str(bad1.error)
    assert "a JSON array, not a record" in str(bad2.error)
    assert good.ok and good.id == "b"


def test_text_lines_starting_with_a_bracket_are_captions(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text('[laughs] a cheerful voice\n{"id": "x", "text": \n')
    caption, broken = _items(p, "text")
    assert caption.record["text"] == "[laughs] a cheerful voice"
    assert not broken.ok and "invalid JSON" in str(broken.error)


# ---- compressed streams ------------------------------------------------------------------------

def _lines(n):
    return "".join(json.dumps({"id": f"t{i}", "text": f"caption number {i} spoken slowly"}) + "\n" for i in range(n)).encode()


def test_gzip_and_zstd_are_recognised_by_content(tmp_path):
    zstd = pytest.importorskip("zstandard")
    data = _lines(50)
    (tmp_path / "noext").write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))  # two members
    (tmp_path / "m.zst").write_bytes(zstd.ZstdCompressor().compress(data))
    for name in ("noext", "m.zst"):
        items = _items(tmp_path / name, "text")
        assert [it.id for it in items] == [f"t{i}" for i in range(50)], name


def test_gzip_on_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(_lines(3))))))
    assert [it.id for it in _items("-", "text")] == ["t0", "t1", "t2"]


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_truncated_stream_keeps_the_records_before_the_cut_and_names_the_file(tmp_path, kind):
    data = _lines(1200)
    if kind == "gzip":
        blob = gzip.compress(data)
    else:  # small blocks, as a streaming writer makes them
        zstd = pytest.importorskip("zstandard")
        cobj = zstd.ZstdCompressor().compressobj()
        blob = b"".join(cobj.compress(data[i:i + 4096]) + cobj.flush(zstd.COMPRESSOBJ_FLUSH_BLOCK)
                        for i in range(0, len(data), 4096)) + cobj.flush()
    p = tmp_path / "cut.jsonl.x"
    p.write_bytes(blob[: len(blob) // 2])
    items = _items(p, "text")
    *good, last = items
    assert good and all(it.ok for it in good)
    assert [it.id for it in good] == [f"t{i}" for i in range(len(good))]  # complete lines only, in order
    assert isinstance(last.error, TruncatedInputError)
    assert str(last.error).startswith(f"{p}: truncated after {len(good)} records")
    assert last.index == len(good)


def test_corrupt_gzip_is_named(tmp_path):
    blob = bytearray(gzip.compress(_lines(200)))
    blob[len(blob) // 2] ^= 0xFF
    p = tmp_path / "bad.gz"
    p.write_bytes(bytes(blob))
    last = _items(p, "text")[-1]
    assert isinstance(last.error, TruncatedInputError) and str(p) in str(last.error)


def test_training_refuses_a_truncated_manifest(tmp_path):
    from clsp.train.data import iter_clips

    rows = "".join(json.dumps({"id": f"c{i}", "audio": "a.wav", "duration": 1.0, "caption": "calm"}) + "\n"
                   for i in range(500)).encode()
    blob = gzip.compress(rows)
    p = tmp_path / "train.jsonl.gz"
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(TruncatedInputError, match="train.jsonl.gz: truncated after"):
        list(iter_clips(str(p)))


# ---- audio files, folders, globs ---------------------------------------------------------------

def test_audio_is_detected_by_content_unless_its_name_says_audio(tmp_path, monkeypatch):
    from clsp.audio import load_audio
    from clsp.errors import AudioError

    write_wav(tmp_path / "clip.wav", 0.5)
    os.replace(tmp_path / "clip.wav", tmp_path / "clip.dat")
    (tmp_path / "list.txt").write_text("clip.dat\n")
    # text under an audio name (a Git LFS pointer, a path list saved as .wav): one clip that does
    # not decode, never a list whose lines become records
    (tmp_path / "lfs.wav").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12345\n")
    (tmp_path / "list.wav").write_text(str(tmp_path / "clip.dat") + "\n")
    names = ["clip.dat", "list.txt", "lfs.wav", "list.wav"]
    sources = plan_sources([str(tmp_path / n) for n in names])
    assert [s.kind for s in sources] == ["audio", "manifest", "audio", "audio"]
    items = list(iter_source_items(sources))
    assert [it.index for it in items] == [0, 1, 2, 3]
    assert items[0].record["audio"] == items[1].record["audio"] == str(tmp_path / "clip.dat")
    assert [it.record["audio"] for it in items[2:]] == [str(tmp_path / "lfs.wav"), str(tmp_path / "list.wav")]
    for it in items[2:]:
        with pytest.raises(AudioError, match="cannot decode"):
            load_audio(it.record["audio"])
    monkeypatch.chdir(tmp_path)  # the same in a folder and through a glob
    folder = [it.record["audio"] for it in iter_source_items(plan_sources(["."]))]
    assert folder == [str(tmp_path / "lfs.wav"), str(tmp_path / "list.wav")]
    assert [s.kind for s in plan_sources(["*.wav"])] == ["audio", "audio"]
    with pytest.raises(ConfigError, match="audio file"):
        plan_sources(["list.wav"], modality="text")


def test_folders_recursive_sorted_and_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ["d/b.wav", "d/a.flac", "d/sub/c.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_wav(tmp_path / rel, 0.3)
    (tmp_path / "d/notes.txt").write_text("not audio\n")
    ids = [it.id for it in iter_source_items(plan_sources(["d"]))]
    assert ids == [os.path.join("d", "a.flac"), os.path.join("d", "b.wav"), os.path.join("d", "sub", "c.wav")]
    ids = [it.id for it in iter_source_items(plan_sources(["d/*.wav", "d/**/c.wav"]))]
    assert ids == [os.path.join("d", "b.wav"), os.path.join("d", "sub", "c.wav")]


@pytest.mark.parametrize("args, message", [
    (["blob.bin"], "neither an audio file nor a text list"),
    (["empty_dir"], "holds no audio files"),
    (["nothing*.wav"], "no files match"),
])
def test_unusable_arguments_are_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ConfigError, match=message):
        plan_sources(args)


def test_audio_given_to_text_or_pairs_readers_is_refused(tmp_path):
    write_wav(tmp_path / "a.wav", 0.3)
    with pytest.raises(ConfigError, match="a.wav is an audio file"):
        plan_sources([str(tmp_path / "a.wav")], "text")
    with pytest.raises(ConfigError, match="a.wav is an audio file"):
        plan_sources([str(tmp_path / "a.wav")], "pairs")
    with pytest.raises(ConfigError, match="no such file"):  # a usage error: the argument names nothing
        plan_sources([str(tmp_path / "missing.jsonl")])


def test_audio_signatures():
    assert audio_signature(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert audio_signature(b"fLaC\x00") and audio_signature(b"OggS") and audio_signature(b"ID3\x04")
    assert audio_signature(b"\xff\xfb\x90\x00")  # MPEG-1 Layer III frame sync
    assert not audio_signature(b'{"id": 1}') and not audio_signature(b"RIFF\x00\x00\x00\x00AVI ")


# ---- paths that resolve ------------------------------------------------------------------------

def test_paths_resolve_against_manifest_folder_cwd_or_audio_root(tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/m.txt").write_text("a.wav\n../b.wav\n/abs/c.wav\n")
    got = [it.record["audio"] for it in _items(tmp_path / "lists/m.txt")]
    assert got == [str(tmp_path / "lists/a.wav"), str(tmp_path / "b.wav"), "/abs/c.wav"]
    got = [it.record["audio"] for it in _items(tmp_path / "lists/m.txt", audio_root=tmp_path / "root")]
    assert got == [str(tmp_path / "root/a.wav"), str(tmp_path / "b.wav"), "/abs/c.wav"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(b"a.wav\n"))))
    assert _items("-")[0].record["audio"] == str(tmp_path / "a.wav")
    # the same list as a relative file argument resolves like the absolute one
    assert _items("lists/m.txt")[0].record["audio"] == str(tmp_path / "lists/a.wav")


def test_utf16_text_is_named_as_such_not_taken_for_mp3(tmp_path):
    import pytest

    from clsp.errors import ConfigError
    from clsp.inputs import sniff_file
    from clsp.records import iter_items

    text = '{"id": "a", "audio": "a.wav"}\r\n'
    for enc in ("utf-16", "utf-16-be"):
        path = tmp_path / f"{enc}.jsonl"
        path.write_bytes((b"\xfe\xff" if enc.endswith("be") else b"") + text.encode(enc))
        for read in (lambda: sniff_file(str(path)), lambda: list(iter_items(str(path), "audio"))):
            with pytest.raises(ConfigError, match="UTF-16 text; clsp reads UTF-8"):
                read()
    for enc, name in (("utf-32", "UTF-32"), ("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):  # BOM-less too
        path = tmp_path / f"{enc}.jsonl"
        path.write_bytes(text.encode(enc))
        with pytest.raises(ConfigError, match=f"{name} text; clsp reads UTF-8"):
            sniff_file(str(path))
    mp3ish = tmp_path / "frame.mp3"
    mp3ish.write_bytes(b"\xff\xfb\x90\x64" + bytes(400))  # an MPEG frame header, not text
    assert sniff_file(str(mp3ish)) == "audio"


def test_xz_and_bzip2_lists_are_read_and_wide_text_inside_any_compression_is_named(tmp_path):
    import bz2
    import lzma

    from clsp.streams import compression_of

    write_wav(tmp_path / "a.wav", 0.5)
    lines = b"a.wav\n" + json.dumps({"id": "j", "audio": "a.wav"}).encode() + b"\n"
    (tmp_path / "l.xz").write_bytes(lzma.compress(lines))
    (tmp_path / "l.bz2").write_bytes(bz2.compress(lines))
    for name in ("l.xz", "l.bz2"):
        assert [it.id for it in iter_items(str(tmp_path / name), "audio")] == ["a.wav", "j"], name
    (tmp_path / "cut.xz").write_bytes(lzma.compress(lines)[:30])
    *_, last = iter_items(str(tmp_path / "cut.xz"), "audio")
    assert isinstance(last.error, TruncatedInputError) and "xz stream ends before its end marker" in str(last.error)
    assert compression_of(b"BZh1.wav\n") is None  # a file name that starts like bzip2 is still a name
    wide = '{"id": "a", "audio": "a.wav"}\r\n'.encode("utf-16")
    for name, data, tool in (("w.gz", gzip.compress(wide), "gzip -dc"), ("w.xz", lzma.compress(wide), "xz -dc"),
                             ("w.bz2", bz2.compress(wide), "bzip2 -dc")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=f"UTF-16 text .*-compressed.*{tool} .*{name} \\| iconv -f UTF-16"):
            list(iter_items(str(tmp_path / name), "audio"))


def test_a_path_too_long_for_the_filesystem_is_one_error_record(tmp_path):
    from clsp.audio import load_audio
    from clsp.errors import AudioError

    long = str(tmp_path / ("x" * 5000 + ".wav"))
    with pytest.raises(AudioError, match="cannot open"):
        load_audio(long)


def test_an_upstream_error_record_read_for_audio_passes_its_reason_on(tmp_path):
    """clsp caption's error records, left in a manifest for embed or train, say what they are."""
    lines = [{"id": "gone", "error": {"type": "AudioError", "message": "nothere.flac: no such file"}},
             {"id": "odd", "error": "plain reason"}, {"id": "x"}]
    (tmp_path / "caps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    gone, odd, x = _items(tmp_path / "caps.jsonl")
    assert str(gone.error) == "line 1: an upstream error record, no audio: nothere.flac: no such file"
    assert str(odd.error) == "line 2: an upstream error record, no audio: plain reason"
    assert str(x.error) == "line 3: record has no 'audio' field"


def test_audio_or_a_matrix_on_stdin_is_refused_by_every_record_reader(monkeypatch, tmp_path):
    """Read as text, audio on stdin gave one 'not valid UTF-8' error per binary line and an
    .npy matrix its rows as text lines; plan_sources (embed, classify) already refused audio."""
    import numpy as np

    from clsp.index.query import query_items
    from clsp.index.records import EmbeddingReader

    write_wav(tmp_path / "a.wav", 0.3)
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), np.float32))
    cases = {"audio data": (tmp_path / "a.wav").read_bytes(), "NumPy .npy matrix": buf.getvalue(),
             "binary data": b"\x7fELF\x02\x01\x01\x00" + bytes(600)}
    readers = {"iter_items": lambda: _items("-", "embeddings"),
               "EmbeddingReader": lambda: list(EmbeddingReader().read("-")),
               "query_items": lambda: list(query_items("-")[0]),
               "plan_sources": lambda: plan_sources(["-"], "text")}
    for what, data in cases.items():
        for name, read in readers.items():
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
            with pytest.raises(ConfigError, match=f"^stdin.*{what}"):
                read()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(b"x.wav\n")))))
    assert [it.id for it in _items("-")] == ["x.wav"]  # compressed text passes


def test_npy_inputs_are_recognised_whatever_the_case_of_their_suffix(tmp_path):
    """E.NPY was refused as binary ("give audio files, folders...") although it is a matrix."""
    import numpy as np

    from clsp.index.query import query_items
    from clsp.index.records import EmbeddingReader, is_npy_name

    np.save(tmp_path / "e.npy", np.eye(3, 4, dtype=np.float32))
    (tmp_path / "e.npy").rename(tmp_path / "E.NPY")
    assert is_npy_name("E.NPY") and is_npy_name("x.Npy") and not is_npy_name("x.npy.jsonl")
    got = list(EmbeddingReader().read(str(tmp_path / "E.NPY")))
    assert [item.id for item, _ in got] == ["row-0", "row-1", "row-2"] and all(v is not None for _, v in got)
    items, matrix, _ = query_items(str(tmp_path / "E.NPY"))
    assert [it.id for it in items] == ["row-0", "row-1", "row-2"] and matrix.shape == (3, 4)


def test_audio_through_a_pipe_is_refused_where_records_are_read(tmp_path):
    from clsp.index.records import EmbeddingReader

    write_wav(tmp_path / "a.wav", 0.2)
    r, w = os.pipe()
    try:
        os.write(w, (tmp_path / "a.wav").read_bytes())
        os.close(w)
        with pytest.raises(ConfigError, match=r"\(a pipe\) holds audio data; expected embedding records"):
            list(EmbeddingReader().read(f"/dev/fd/{r}"))
    finally:
        os.close(r)
