"""Input forms through the commands (in-process): audio files, folders, binary files, cut gzip."""

import gzip
import json
import os

import pytest
from typer.testing import CliRunner

from clsp_cli.app import app
from tests.conftest import write_wav


def _run(args, cwd, stdin=None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, args, input=stdin)
    finally:
        os.chdir(old)


def _records(res):
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_embed_audio_files_and_folders_one_record_each(tmp_path):
    write_wav(tmp_path / "clip.flac", 1.0)
    (tmp_path / "more").mkdir()
    write_wav(tmp_path / "more/x.wav", 0.5, freq=300)
    write_wav(tmp_path / "more/y.wav", 0.5, freq=200)
    res = _run(["embed", "clip.flac", "more", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0, res.output
    recs = _records(res)
    assert [r["id"] for r in recs] == ["clip.flac", os.path.join("more", "x.wav"), os.path.join("more", "y.wav")]
    assert all("embedding" in r for r in recs)
    assert recs[0]["audio"] == str(tmp_path / "clip.flac")  # absolute: opens from anywhere


def test_binary_non_audio_input_is_one_usage_error(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 16)
    for command in (["embed"], ["caption"], ["classify", "--model", "tiny-random"]):
        extra = ["--model", "tiny-random"] if command == ["embed"] else []
        res = _run([*command, "blob.bin", *extra, "-q"], tmp_path)
        assert res.exit_code == 2, (command, res.output)
        assert "blob.bin" in res.output and _records(res) == []


def test_cut_gzip_manifest_writes_records_before_the_cut_and_names_it(tmp_path):
    rows = "".join(json.dumps({"id": f"t{i}", "text": f"a calm voice number {i}"}) + "\n" for i in range(800))
    blob = gzip.compress(rows.encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    res = _run(["embed", "cut.jsonl.gz", "--modality", "text", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 3, res.output
    *good, last = _records(res)
    assert good and [r["id"] for r in good] == [f"t{i}" for i in range(len(good))]
    assert last["error"]["type"] == "TruncatedInputError"
    assert last["error"]["message"].startswith(f"cut.jsonl.gz: truncated after {len(good)} records")
    assert "cut.jsonl.gz: truncated" in res.stderr


def test_gzip_on_stdin_and_audio_root(tmp_path):
    (tmp_path / "data").mkdir()
    write_wav(tmp_path / "data/a.wav", 0.5)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/m.txt").write_text("data/a.wav\n")
    res = _run(["embed", "lists/m.txt", "--audio-root", ".", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _records(res)[0]["audio"] == str(tmp_path / "data/a.wav")
    res = _run(["embed", "-", "--model", "tiny-random", "-q"], tmp_path, stdin=gzip.compress(b"data/a.wav\n"))
    assert res.exit_code == 0, res.output
    assert _records(res)[0]["audio"] == str(tmp_path / "data/a.wav")


@pytest.mark.parametrize("modality", ["text"])
def test_audio_file_with_text_modality_is_a_usage_error(tmp_path, modality):
    write_wav(tmp_path / "a.wav", 0.5)
    res = _run(["embed", "a.wav", "--modality", modality, "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 2 and "a.wav is an audio file" in res.output


@pytest.mark.parametrize("args", [
    ["embed", "missing.jsonl"], ["embed", "--modality", "text", "missing.jsonl"], ["classify", "missing.jsonl"],
    ["caption", "missing.jsonl"], ["similarity", "missing.jsonl"], ["search", "build", "missing.jsonl"],
    ["search", "query", "missing.idx", "--text", "a calm voice"], ["plot", "map", "missing.jsonl"],
    ["search", "eval", "--speech", "missing.jsonl", "--captions", "missing.jsonl"],
    ["similarity", "missing.wav", "missing.flac"], ["similarity", "missing.wav", "a calm voice"],
])
def test_an_argument_naming_no_file_is_a_usage_error(tmp_path, args):
    res = _run([*args, "-q"], tmp_path)
    assert res.exit_code == 2, res.output
    assert "missing." in res.output and "no such" in res.output
    assert not any(line.startswith("{") for line in res.stdout.splitlines())


def test_file_names_that_are_not_utf8_embed_from_arguments_folders_and_lists_and_read_back(tmp_path):
    name = os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: bytes that are not UTF-8, as POSIX allows
    write_wav(tmp_path / "tmp.wav", 0.6)
    try:
        os.rename(os.fsencode(tmp_path / "tmp.wav"), os.fsencode(tmp_path / name))
    except (OSError, UnicodeError):
        pytest.skip("this filesystem refuses file names that are not UTF-8")
    write_wav(tmp_path / "plain.wav", 0.6, freq=300)
    (tmp_path / "list.txt").write_bytes(b"caf\xe9.wav\nplain.wav\nmissing-\xff.wav\nno name \xff\n")
    direct = _run(["embed", name, "--model", "tiny-random", "-q"], tmp_path)
    assert direct.exit_code == 0, direct.output
    [rec] = _records(direct)
    assert rec["audio"] == str(tmp_path / name)  # the same bytes, read back through JSON escapes
    for args, stdin in ((["."], None), (["list.txt"], None), (["-"], b"caf\xe9.wav\n")):
        res = _run(["embed", *args, "--model", "tiny-random", "-q"], tmp_path, stdin)
        recs = {r["id"]: r for r in _records(res)}
        key = os.path.join(".", name) if args == ["."] else name
        assert max(abs(a - b) for a, b in zip(recs[key]["embedding"], rec["embedding"])) < 1e-5, (args, list(recs))
    listed = _records(_run(["embed", "list.txt", "--model", "tiny-random", "-q"], tmp_path))
    missing = os.fsdecode(b"missing-\xff.wav")  # a file name as any other: the file is missing
    assert [r.get("id") for r in listed] == [name, "plain.wav", missing, "line-4"]
    assert listed[2]["error"]["message"] == f"{tmp_path / missing}: no such file"
    assert "not valid UTF-8" in listed[3]["error"]["message"] and "no file of that name" in listed[3]["error"]["message"]
    (tmp_path / "emb.jsonl").write_text(json.dumps(rec) + "\n")
    res = _run(["search", "build", "emb.jsonl", "-o", "idx", "-q"], tmp_path)
    assert res.exit_code == 0, res.output
    res = _run(["search", "query", "idx", "--audio", "plain.wav", "--model", "tiny-random", "-k", "1", "-q",
                "--html", "page.html"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _records(res)[0]["hits"][0]["audio"] == str(tmp_path / name)
    page = (tmp_path / "page.html").read_bytes().decode("utf-8")  # the page is valid UTF-8
    assert 'src="caf%E9.wav"' in page and "caf\\udce9.wav" in page  # linked by its bytes, shown escaped
    res = _run(["search", "build", "emb.jsonl", "-o", "emb.jsonl", "-q"], tmp_path)  # -o naming the input
    assert res.exit_code == 2 and "it is an input" in res.output, res.output


def test_caption_as_cuts_gives_a_file_lhotse_cannot_describe_an_error_record(tmp_path, monkeypatch):
    import soundfile as sf
    from lhotse import Recording

    name = os.fsdecode(b"caf\xe9.flac")  # Lhotse opens names as text: some formats fail on this one
    write_wav(tmp_path / "tmp.wav", 0.8)
    data, rate = sf.read(str(tmp_path / "tmp.wav"))
    sf.write(str(tmp_path / "tmp.flac"), data, rate)
    try:
        os.rename(os.fsencode(tmp_path / "tmp.flac"), os.fsencode(tmp_path / name))
    except (OSError, UnicodeError):
        pytest.skip("this filesystem refuses file names that are not UTF-8")
    write_wav(tmp_path / "plain.wav", 0.8, freq=300)
    write_wav(tmp_path / "other.wav", 0.8, freq=200)
    lines = [{"id": "x", "audio": name}, {"id": "p", "audio": "plain.wav"}, {"id": "o", "audio": "other.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    real = Recording.from_file

    def flaky(path, *args, **kwargs):  # any failure of Lhotse's on one file
        if str(path).endswith("other.wav"):
            raise RuntimeError("Fetching info about audio failed")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Recording, "from_file", staticmethod(flaky))
    res = _run(["caption", "m.jsonl", "--as-cuts", "-q"], tmp_path)
    assert res.exit_code == 3, res.output
    first, second, third = _records(res)  # one record per input, in order, the run not stopped
    assert first["id"] == "x" and ("error" not in first or "not valid UTF-8" in first["error"]["message"])
    assert second["id"] == "p" and second["supervisions"][0]["custom"]["global_captions"]
    assert third["id"] == "o" and "cannot be described as a Lhotse cut (RuntimeError: Fetching" in third["error"]["message"]


def test_names_too_long_for_the_filesystem_are_usage_errors_not_tracebacks(tmp_path):
    write_wav(tmp_path / "a.wav", 0.5)
    long = "x" * 5000 + ".wav"
    for args in (["similarity", long, "a.wav", "--model", "tiny-random"],
                 ["search", "query", "idx", "--audio", long, "--model", "tiny-random"]):
        res = _run(args, tmp_path)
        assert res.exit_code == 2, (args[0], res.output)
        assert ("no such file" in res.output or "File name too long" in res.output) and "Traceback" not in res.output


def test_cut_source_names_read_back_stay_names_with_a_hint(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "m", "audio": "mix:m1", "duration": 1.0}) + "\n")
    [rec] = _records(_run(["embed", "m.jsonl", "--model", "tiny-random", "-q"], tmp_path))
    assert rec["error"]["message"].startswith("mix:m1: no such file (how clsp names a Lhotse cut's audio")


def test_configs_and_packs_are_read_like_manifests(tmp_path):
    import yaml

    (tmp_path / "c16.yaml").write_bytes("init_from: tiny-random\nmax_steps: 1\n".encode("utf-16"))
    res = _run(["train", "c16.yaml", "-o", "exp"], tmp_path)
    assert res.exit_code == 2 and "UTF-16 text" in res.output and "OUT.yaml" in res.output
    from importlib import resources

    from clsp.prompts import load_pack

    pack = json.loads((resources.files("clsp.prompts") / "packs" / "gender.json").read_text())
    (tmp_path / "g.yaml.gz").write_bytes(gzip.compress(yaml.safe_dump(pack, sort_keys=False).encode()))
    assert load_pack(str(tmp_path / "g.yaml.gz")).attributes == load_pack("gender").attributes


@pytest.mark.parametrize("kind", ["fifo", "pipe"])
def test_a_manifest_read_through_a_pipe_or_fifo_loses_no_record(tmp_path, kind):
    """``clsp embed <(cat m.jsonl)`` and a named FIFO: every record read once (the input's
    start is looked at and its records read from the same bytes), paths against the working
    directory; a pipe of audio data is a usage error."""
    import subprocess
    import threading

    for i in range(3):
        write_wav(tmp_path / f"c{i}.wav", 0.5, 200 + 50 * i)
    text = "".join(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav"}) + "\n" for i in range(3))
    if kind == "fifo":
        path = tmp_path / "in.fifo"
        os.mkfifo(path)

        def feed():
            with open(path, "w") as fh:
                fh.write(text)

        threading.Thread(target=feed, daemon=True).start()
        res = _run(["embed", str(path), "--model", "tiny-random", "-q"], tmp_path)
        assert res.exit_code == 0, res.output
        assert [r["id"] for r in _records(res)] == ["c0", "c1", "c2"]
    else:
        (tmp_path / "m.jsonl").write_text(text)
        import sys

        clsp = os.path.join(os.path.dirname(sys.executable), "clsp")
        out = subprocess.run(["bash", "-c", f"{clsp} embed <(cat m.jsonl) --model tiny-random -q; "
                                            f"{clsp} embed <(cat c0.wav) --model tiny-random -q"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        recs = [json.loads(line) for line in out.stdout.splitlines()]
        assert [r["id"] for r in recs] == ["c0", "c1", "c2"] and all("embedding" in r for r in recs), out.stderr
        assert "a pipe holding audio data" in out.stderr


@pytest.mark.parametrize("args", [
    ["search", "build", "a.wav", "-o", "x.idx"], ["search", "eval", "--speech", "a.wav", "--captions", "e.jsonl"],
    ["search", "eval", "e.idx", "--queries", "a.wav"], ["merge", "a.wav", "-o", "m.jsonl"],
    ["plot", "map", "a.wav", "-o", "m.svg"],
])
def test_an_audio_file_where_embedding_records_are_read_is_a_usage_error(tmp_path, args):
    """Read as text, it gave one 'not valid UTF-8' error per binary line (and exit 1 or 3)."""
    write_wav(tmp_path / "a.wav", 1.0)
    res = _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "e.jsonl"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _run(["search", "build", "e.jsonl", "-o", "e.idx", "-q"], tmp_path).exit_code == 0
    res = _run([*args, "-q"], tmp_path)
    assert res.exit_code == 2, res.output
    assert "a.wav is an audio file; expected" in res.output and "UTF-8" not in res.output
    assert not (tmp_path / "x.idx").exists() and not (tmp_path / "m.jsonl").exists()


def test_an_audio_file_given_as_search_queries_is_searched_with(tmp_path):
    write_wav(tmp_path / "a.wav", 1.0)
    res = _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "e.jsonl"], tmp_path)
    assert _run(["search", "build", "e.jsonl", "-o", "e.idx", "-q"], tmp_path).exit_code == 0
    res = _run(["search", "query", "e.idx", "a.wav", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 0, res.output
    [rec] = _records(res)
    assert rec["id"] == "a.wav" and rec["hits"][0]["id"] == "a.wav" and rec["hits"][0]["score"] > 0.999


def test_text_that_is_not_utf8_is_an_error_record_in_every_command(tmp_path):
    write_wav(tmp_path / "a.wav", 0.6)
    bad = "caf\udce9 voice"  # a byte 0xe9 read from a file or an argument that is not UTF-8
    (tmp_path / "t.jsonl").write_text(json.dumps({"id": "q1", "text": bad}) + "\n"
                                      + json.dumps({"id": "q2", "text": "a calm voice"}) + "\n")
    res = _run(["embed", "--modality", "text", "t.jsonl", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 3, res.output
    first, second = _records(res)
    assert "not valid UTF-8 (byte 0xe9 at character 4)" in first["error"]["message"] and second["embedding"]
    res = _run(["similarity", "a.wav", bad, "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 3 and "not valid UTF-8" in _records(res)[0]["error"]["message"], res.output
    _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "a.emb.jsonl"], tmp_path)
    assert _run(["search", "build", "a.emb.jsonl", "-o", "idx", "-q"], tmp_path).exit_code == 0
    res = _run(["search", "query", "idx", "t.jsonl", "--model", "tiny-random", "-q"], tmp_path)
    assert res.exit_code == 3 and [r["id"] for r in _records(res)] == ["q1", "q2"], res.output
    assert "not valid UTF-8" in _records(res)[0]["error"]["message"] and _records(res)[1]["hits"]
    from clsp.errors import InputError
    from clsp.models import load_model

    with pytest.raises(InputError, match=r"text 1 .*not valid UTF-8 \(byte 0xe9"):  # any other way in: one clear error
        load_model("tiny-random").text_encoder.tokenize(["ok", bad])


def test_search_build_never_replaces_a_folder_whose_index_json_clsp_did_not_write(tmp_path):
    write_wav(tmp_path / "a.wav", 0.6)
    _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "a.emb.jsonl"], tmp_path)
    for mine in ('{"name": "mine"}\n', "not json\n", "[1, 2]\n", '{"dim": 3}\n'):
        (tmp_path / "notes").mkdir(exist_ok=True)
        (tmp_path / "notes" / "index.json").write_text(mine)
        res = _run(["search", "build", "a.emb.jsonl", "-o", "notes", "-q"], tmp_path)
        assert res.exit_code == 2 and "is not a clsp index" in res.output, res.output
        assert (tmp_path / "notes" / "index.json").read_text() == mine
        assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["index.json"]
    assert _run(["search", "build", "a.emb.jsonl", "-o", "idx", "-q"], tmp_path).exit_code == 0
    assert _run(["search", "build", "a.emb.jsonl", "-o", "idx", "-q"], tmp_path).exit_code == 0  # its own: replaced


def test_a_lhotse_recording_or_supervision_manifest_says_how_to_make_cuts(tmp_path):
    rec = {"id": "rec1", "sources": [{"type": "file", "channels": [0], "source": "a.wav"}], "sampling_rate": 16000,
           "num_samples": 16000, "duration": 1.0, "channel_ids": [0]}
    sup = {"id": "sup1", "recording_id": "rec1", "start": 0.0, "duration": 1.0, "channel": 0, "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(sup) + "\n")
    res = CliRunner().invoke(app, ["embed", str(tmp_path / "m.jsonl"), "--model", "tiny-random", "-q"])
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 3 and [r["id"] for r in out] == ["rec1", "sup1"]
    assert "a Lhotse Recording (a RecordingSet manifest)" in out[0]["error"]["message"]
    assert "a Lhotse SupervisionSegment" in out[1]["error"]["message"] and "lhotse cut simple" in out[1]["error"]["message"]


@pytest.mark.parametrize("args", [
    ["search", "build", "-", "-o", "x.idx"], ["search", "query", "e.idx", "-"],
    ["search", "eval", "e.idx", "--queries", "-"], ["plot", "map", "-", "-o", "m.png"],
])
def test_audio_or_a_matrix_on_stdin_where_records_are_read_is_a_usage_error(tmp_path, args):
    """Read as text lines: 161 'not valid UTF-8' warnings then 'no embeddings to index' (exit 1),
    or one error record per binary line (exit 3); an .npy matrix likewise."""
    write_wav(tmp_path / "a.wav", 1.0)
    assert _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "e.jsonl", "--npy", "e.npy"],
                tmp_path).exit_code == 0
    assert _run(["search", "build", "e.npy", "-o", "e.idx", "-q"], tmp_path).exit_code == 0
    for data, said in (((tmp_path / "a.wav").read_bytes(), "stdin holds audio data"),
                       ((tmp_path / "e.npy").read_bytes(), "stdin holds a NumPy .npy matrix")):
        res = _run([*args, "-q"], tmp_path, stdin=data)
        assert res.exit_code == 2, res.output
        assert said in res.output and "UTF-8" not in res.output and _records(res) == []
    assert not (tmp_path / "x.idx").exists() and not (tmp_path / "m.png").exists()


def test_search_build_takes_an_upper_case_npy_and_refuses_ids_without_one(tmp_path):
    """E.NPY was refused as binary; --ids with a JSONL INPUT was silently ignored (exit 0)."""
    write_wav(tmp_path / "a.wav", 1.0)
    assert _run(["embed", "a.wav", "--model", "tiny-random", "-q", "-o", "e.jsonl", "--npy", "e.npy"],
                tmp_path).exit_code == 0
    (tmp_path / "e.npy").rename(tmp_path / "E.NPY")
    res = _run(["search", "build", "E.NPY", "-o", "u.idx", "-q"], tmp_path)
    assert res.exit_code == 0 and _records(res)[0]["added"] == 1, res.output
    res = _run(["search", "build", "e.jsonl", "--ids", "nonexist.jsonl", "-o", "z.idx", "-q"], tmp_path)
    assert res.exit_code == 2 and "--ids nonexist.jsonl" in res.output and "not a .npy matrix" in res.output
    res = _run(["search", "build", "e.jsonl", "--ids", "e.jsonl", "-o", "z.idx", "-q"], tmp_path)
    assert res.exit_code == 2 and "not a .npy matrix" in res.output
    res = _run(["search", "build", "E.NPY", "--ids", "nonexist.jsonl", "-o", "z.idx", "-q"], tmp_path)
    assert res.exit_code == 2 and "nonexist.jsonl: no such file" in res.output
    assert not (tmp_path / "z.idx").exists()
    res = _run(["search", "build", "E.NPY", "--ids", "e.jsonl", "-o", "z.idx", "-q"], tmp_path)
    assert res.exit_code == 0 and _records(res)[0]["added"] == 1, res.output


def test_nul_bytes_and_unicode_blank_lines_through_embed(tmp_path):
    """A NUL refused the whole file (first 4 KiB) or was embedded (stdin); an NBSP line was an
    "'id' is empty" error record."""
    data = b"a calm voice\nan angry\x00 man\n\xc2\xa0\na sad woman\n"
    (tmp_path / "cap_nul.txt").write_bytes(data)
    for args, stdin in ((["cap_nul.txt"], None), (["-"], data)):
        res = _run(["embed", *args, "--modality", "text", "--model", "tiny-random", "-q"], tmp_path, stdin=stdin)
        assert res.exit_code == 3, res.output
        recs = _records(res)
        assert [r["id"] for r in recs] == ["line-1", "line-2", "line-4"]
        assert "line 2: holds a NUL byte" in recs[1]["error"]["message"] and "embedding" in recs[2]


def test_a_folder_named_tilde_here_is_read_here_not_from_home(tmp_path, monkeypatch):
    home, proj = tmp_path / "home", tmp_path / "proj"
    (proj / "~").mkdir(parents=True)
    home.mkdir()
    write_wav(home / "h.wav", 0.5, freq=220)
    write_wav(proj / "~" / "h.wav", 0.5, freq=880)
    monkeypatch.setenv("HOME", str(home))
    (proj / "m.jsonl").write_text(json.dumps({"id": "x", "audio": "./~/h.wav"}) + "\n"
                                  + json.dumps({"id": "y", "audio": "~/h.wav"}) + "\n")
    here, in_home = str(proj / "~" / "h.wav"), str(home / "h.wav")
    for args, audios in ((["./~/h.wav"], [here]), (["."], [here]), (["~"], [here]), (["m.jsonl"], [here, in_home])):
        res = _run(["embed", *args, "--model", "tiny-random", "-q"], proj)
        assert res.exit_code == 0, (args, res.output)
        assert [r["audio"] for r in _records(res)] == audios, args  # a leading ~ as written in a manifest expands


def test_integer_ids_stay_integers_in_error_records(tmp_path):
    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"id": 7, "audio": "a.wav"}, {"id": 8, "audio": "missing.wav"}, {"id": 9, "audio": "a.wav", "start": 99},
        {"id": 10, "audio": 5}, {"id": "11", "audio": "missing.wav"})) + "\n")
    for command in (["embed", "--model", "tiny-random"], ["classify", "--pack", "gender", "--model", "tiny-random"],
                    ["caption"]):
        res = _run([command[0], "m.jsonl", *command[1:], "-q"], tmp_path)
        assert res.exit_code == 3, (command, res.output)
        recs = _records(res)
        assert [r["id"] for r in recs] == [7, 8, 9, 10, "11"], command
        assert ["error" in r for r in recs] == [False, True, True, True, True], command
    write_wav(tmp_path / "long.wav", 2.5)
    (tmp_path / "w.jsonl").write_text(json.dumps({"id": 7, "audio": "long.wav"}) + "\n")
    res = _run(["embed", "w.jsonl", "--long-audio", "windows", "--max-seconds", "1", "--model", "tiny-random", "-q"],
               tmp_path)
    assert res.exit_code == 0 and {r["source_id"] for r in _records(res)} == {7}, res.output
