"""``clsp embed --resume`` keeps a partial output only when it is the start of this run's
output (same inputs, shard, model and value-changing options), else exits 2 and leaves it
as it was; a resumed run equals an uninterrupted one byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clsp_cli.app import app
from tests.conftest import write_wav

CAPTIONS = ["a calm young woman", "an angry man shouting", "a whisper", "", "a slow old man",
            "a fast happy child", "a sad voice", "a loud announcement", "a tired speaker"]


def embed(*args: str):
    return CliRunner().invoke(app, ["embed", *args, "--model", "tiny-random", "-q"])


def write_captions(path: Path, captions: list[str], first: int = 0) -> None:
    path.write_text("".join(json.dumps({"id": f"t{first + i}", "text": c}) + "\n" for i, c in enumerate(captions)))


def text_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return [str(inp), "--modality", "text", "-b", "2", "-o", str(out), *extra]


@pytest.fixture
def interrupted(tmp_path):
    """A text run stopped by ``--on-error fail`` at the empty caption: 4 records kept."""
    inp = tmp_path / "in.jsonl"
    write_captions(inp, CAPTIONS)
    ref = embed(*text_args(inp, tmp_path / "ref.jsonl"))
    assert ref.exit_code == 3, ref.output
    stopped = embed(*text_args(inp, tmp_path / "out.jsonl", "--on-error", "fail"))
    assert stopped.exit_code == 1
    partial = tmp_path / "out.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 4 and not (tmp_path / "out.jsonl").exists()
    return tmp_path, inp, partial


def test_resume_gives_the_uninterrupted_output(interrupted):
    tmp, inp, partial = interrupted
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume"))
    assert res.exit_code == 3, res.output
    assert (tmp / "out.jsonl").read_bytes() == (tmp / "ref.jsonl").read_bytes()
    assert sorted(p.name for p in tmp.iterdir()) == ["in.jsonl", "out.jsonl", "ref.jsonl"]


def test_resume_after_new_lines_at_the_top_is_refused(interrupted):
    tmp, inp, partial = interrupted
    before = partial.read_bytes()
    write_captions(inp, ["a brand new caption", *CAPTIONS], first=-1)
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume"))
    assert res.exit_code == 2
    assert "output record 1 is for 't0', input record 1 of this run is 't-1'" in res.stderr
    assert partial.read_bytes() == before and not (tmp / "out.jsonl").exists()


def test_resume_with_other_settings_is_refused(interrupted):
    tmp, inp, partial = interrupted
    before = partial.read_bytes()
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume", "-b", "3"))
    assert res.exit_code == 2
    assert "batch_size: 2 there, 3 now" in res.stderr
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume", "--shard", "0/2"))
    assert res.exit_code == 2
    assert partial.read_bytes() == before and not (tmp / "out.jsonl").exists()


def test_partial_without_run_record_is_refused(interrupted):
    tmp, inp, partial = interrupted
    (tmp / "out.jsonl.lock").unlink()
    before = partial.read_bytes()
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume"))
    assert res.exit_code == 2 and "with no clsp run record beside it" in res.stderr
    assert partial.read_bytes() == before


def test_shorter_input_is_refused(interrupted):
    tmp, inp, partial = interrupted
    write_captions(inp, CAPTIONS[:2])
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume"))
    assert res.exit_code == 2 and "this input has only 2" in res.stderr


def test_resume_of_a_published_output_computes_it_again(interrupted):
    tmp, inp, partial = interrupted
    partial.unlink()
    (tmp / "out.jsonl").write_text('{"id": "stale"}\n')
    res = embed(*text_args(inp, tmp / "out.jsonl", "--resume"))
    assert res.exit_code == 3
    assert (tmp / "out.jsonl").read_bytes() == (tmp / "ref.jsonl").read_bytes()


def test_audio_resume_with_npy_mid_chunk_is_exact(tmp_path, monkeypatch):
    """Chunks of 4 clips, a partial cut inside the second chunk: the resumed rows equal
    the uninterrupted ones exactly (the cut chunk is embedded again as a whole)."""
    import clsp.embed

    monkeypatch.setattr(clsp.embed.EmbedConfig, "chunk_size", 4)
    recs = []
    for i in range(10):
        write_wav(tmp_path / f"c{i}.wav", 0.3 + 0.37 * (i % 5), 120 + 30 * i, seed=i)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = [str(tmp_path / "m.jsonl"), "-b", "3", "--workers", "0"]
    assert embed(*args, "-o", str(tmp_path / "ref.jsonl"), "--npy", str(tmp_path / "ref.npy")).exit_code == 0
    bad = tmp_path / "bad.jsonl"  # the same list with a missing clip at position 7 stops the run there
    bad.write_text("".join(json.dumps(r if i != 6 else {**r, "audio": "gone.wav"}) + "\n" for i, r in enumerate(recs)))
    out, npy = tmp_path / "out.jsonl", tmp_path / "out.npy"
    stopped = embed(str(bad), *args[1:], "-o", str(out), "--npy", str(npy), "--on-error", "fail")
    assert stopped.exit_code == 1
    lines = (tmp_path / "out.jsonl.partial").read_text().splitlines()
    (tmp_path / "out.jsonl.partial").write_text("\n".join(lines[:6]) + "\n")  # drop the error record
    res = embed(*args, "-o", str(out), "--npy", str(npy), "--resume")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    import numpy as np

    np.testing.assert_array_equal(np.load(npy), np.load(tmp_path / "ref.npy"))


def test_resume_embeds_again_from_a_row_changed_in_the_partial_matrix(tmp_path, monkeypatch):
    """A partial matrix overwritten after the stop (same size, other values): the kept records'
    row_sha256 find it, and the rows from there are embedded again, not published as they are."""
    import clsp.embed
    import numpy as np

    monkeypatch.setattr(clsp.embed.EmbedConfig, "chunk_size", 2)
    recs = []
    for i in range(8):
        write_wav(tmp_path / f"c{i}.wav", 0.4 + 0.1 * i, 150 + 20 * i, seed=i)
        recs.append({"id": f"c{i}", "audio": f"c{i}.wav"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = [str(tmp_path / "m.jsonl"), "-b", "2", "--workers", "0"]
    assert embed(*args, "-o", str(tmp_path / "ref.jsonl"), "--npy", str(tmp_path / "ref.npy")).exit_code == 0
    bad = tmp_path / "bad.jsonl"  # a missing clip at position 7 stops the run there
    bad.write_text("".join(json.dumps(r if i != 6 else {**r, "audio": "gone.wav"}) + "\n" for i, r in enumerate(recs)))
    out, npy = tmp_path / "out.jsonl", tmp_path / "out.npy"
    assert embed(str(bad), *args[1:], "-o", str(out), "--npy", str(npy), "--on-error", "fail").exit_code == 1
    lines = (tmp_path / "out.jsonl.partial").read_text().splitlines()
    (tmp_path / "out.jsonl.partial").write_text("\n".join(lines[:6]) + "\n")  # drop the error record
    raw = tmp_path / "out.npy.partial"
    data = bytearray(raw.read_bytes())
    width = len(data) // 6
    data[3 * width : 4 * width] = bytes(width)  # row 3 zeroed, the file's size unchanged
    raw.write_bytes(bytes(data))
    res = CliRunner().invoke(app, ["embed", *args, "-o", str(out), "--npy", str(npy), "--resume", "--model", "tiny-random"])
    assert res.exit_code == 0, res.output
    assert "row 3 of" in res.output and "'c3' was written with" in res.output
    np.testing.assert_array_equal(np.load(npy), np.load(tmp_path / "ref.npy"))
    assert out.read_bytes() == (tmp_path / "ref.jsonl").read_bytes()


def test_the_speaker_encoders_lstm_format_is_part_of_a_run(tmp_path, monkeypatch):
    """CLSP_CPU_LSTM changes the default model's vectors (up to about 0.03 a component): a
    resume kept float32 rows and added int8 ones, and merge joined shards of both formats."""
    from clsp.models import load_model
    from clsp.models.lstm_precision import cpu_lstm_setting

    for i in range(3):
        write_wav(tmp_path / f"c{i}.wav", 0.8, 140 + 60 * i, seed=i)
    recs = [{"id": f"c{i}", "audio": f"c{i}.wav"} for i in range(3)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r if i != 1 else {**r, "audio": "gone.wav"}) + "\n"
                                                for i, r in enumerate(recs)))
    run = CliRunner().invoke
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("CLSP_CPU_LSTM", "float32")
    stopped = run(app, ["embed", str(tmp_path / "bad.jsonl"), "-o", str(out), "--on-error", "fail", "-q"])
    assert stopped.exit_code == 1 and (tmp_path / "out.jsonl.partial").exists()
    monkeypatch.setenv("CLSP_CPU_LSTM", "int8")
    res = run(app, ["embed", str(tmp_path / "m.jsonl"), "-o", str(out), "--resume", "-q"])
    assert res.exit_code == 2 and "cpu_lstm" in res.stderr and not out.exists(), res.output
    for i, fmt in enumerate(["float32", "int8"]):
        monkeypatch.setenv("CLSP_CPU_LSTM", fmt)
        res = run(app, ["embed", str(tmp_path / "m.jsonl"), "--shard", f"{i}/2", "-o", str(tmp_path / "s-{shard}.jsonl"),
                        "-q"])
        assert res.exit_code == 0, res.output
    shards = sorted(str(p) for p in tmp_path.glob("s-*.jsonl"))
    made = {json.loads(line)["provenance"]["cpu_lstm"] for p in shards for line in Path(p).read_text().splitlines()}
    assert made == {"float32", "int8"}  # an index the vectors go into records it (and warns of two formats)
    res = run(app, ["merge", *shards, "-o", str(tmp_path / "all.jsonl")])
    assert res.exit_code != 0 and "cpu_lstm: 'float32' vs 'int8'" in res.output and not (tmp_path / "all.jsonl").exists()
    assert cpu_lstm_setting(load_model("tiny-random"), "cpu") is None  # no speaker-encoder LSTM: nothing to record
    assert cpu_lstm_setting(load_model("default", with_text=False), "cuda") is None


def test_resume_keeps_records_whose_input_fields_are_named_like_embeds_own(tmp_path):
    """Captions with their own `provenance`, `row`, `source_id`/`windows` fields: a resume compared
    those with clsp's (and read `source_id` as a window group) and refused its own partial output."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"t{i}", "text": c, "provenance": "panel A", "row": i,
                                       "source_id": "s", "windows": 3}) + "\n" for i, c in enumerate(CAPTIONS)))
    ref = embed(*text_args(inp, tmp_path / "ref.jsonl"))
    assert ref.exit_code == 3, ref.output
    assert embed(*text_args(inp, tmp_path / "out.jsonl", "--on-error", "fail")).exit_code == 1
    assert len((tmp_path / "out.jsonl.partial").read_text().splitlines()) == 4
    res = embed(*text_args(inp, tmp_path / "out.jsonl", "--resume"))
    assert res.exit_code == 3, res.output
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    first = json.loads((tmp_path / "ref.jsonl").read_text().splitlines()[0])
    assert first["metadata"] == {"provenance": "panel A", "row": 0} and first["source_id"] == "s"
