"""``clsp caption`` with the acoustic backend: real pipes (slow), usage errors and loudness words in-process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import invoke
from tests.helpers.synth import make_speech, requires_espeak

CLSP = [sys.executable, "-m", "clsp_cli.app"]


@pytest.mark.slow
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
        proc = invoke("caption", *args, "-", stdin="", text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
    # sampling and batch options of the model backend were silently ignored by the acoustic one
    proc = invoke("caption", "--temperature", "0.2", "-b", "4", "-", stdin="", text=True)
    assert proc.returncode == 2 and "--temperature 0.2, --batch-size 4: these options belong to --backend model" \
        in proc.stderr, proc.stderr
    proc = invoke("caption", "--device", "cuda:3", "-", stdin="", text=True)  # the acoustic backend runs on the CPU
    assert proc.returncode == 2 and "--device cuda:3: this option belongs to --backend model" in proc.stderr
    assert invoke("caption", "--device", "cpu", "--dtype", "float32", "-", stdin="", text=True).returncode == 0


def test_fewer_distinct_phrasings_than_asked_for_are_said(tmp_path, caplog):
    import logging

    import numpy as np

    from clsp.caption import backend as captioner

    cap = captioner.AcousticCaptioner.from_bins_file(None, num_global=50, num_finegrained=1, seed=0)
    t = np.arange(32000) / 16000
    wave = (0.1 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    captioner._warned.discard("--num-global")
    with caplog.at_level(logging.WARNING, logger="clsp.caption"):
        out = cap.caption_waveform(wave, rec_id="c1")
    got = len(out["global_captions"])
    assert got < 50 and len(set(out["global_captions"])) == got
    assert f"--num-global 50: clip 'c1' has only {got} distinct phrasings" in caplog.text


def test_caption_loudness_words_relative_to_the_corpus(tmp_path):
    import numpy as np
    import soundfile as sf
    from typer.testing import CliRunner

    from clsp_cli.app import app

    sr = 16000
    t = np.arange(2 * sr) / sr
    voice = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 50)) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    lines = []
    for name, gain in (("quiet", 0.01), ("mid", 0.04), ("loud", 0.16)):  # 12 dB apart
        sf.write(tmp_path / f"{name}.wav", (gain * voice).astype(np.float32), sr)
        lines.append(json.dumps({"id": name, "audio": str(tmp_path / f"{name}.wav")}))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")

    def run(*extra):
        res = CliRunner().invoke(app, ["caption", str(manifest), *extra])
        return res, [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]

    res, recs = run()
    assert res.exit_code == 0, res.output
    words = {r["id"]: r["attributes"]["loudness"] for r in recs}
    assert words["quiet"] in {"soft", "very soft"} and words["mid"] == "moderate" and words["loud"] in {"loud", "very loud"}
    ref = recs[0]["provenance"]["loudness_reference"]
    assert ref["mode"] == "corpus" and ref["lufs"] == recs[1]["measurements"]["overall"]["loudness_lufs"].__round__(2)
    # A given reference 12 dB above the median: the median clip now reads soft.
    res, recs = run("--loudness-reference", str(ref["lufs"] + 12))
    assert {r["id"]: r["attributes"]["loudness"] for r in recs}["mid"] in {"soft", "very soft"}
    # recording: gain-free, one word for the three copies of one voice
    res, recs = run("--loudness-reference", "recording")
    assert len({r["attributes"]["loudness"] for r in recs}) == 1
    res, _ = run("--loudness-reference", "loudest")
    assert res.exit_code == 2


def test_as_cuts_with_errors_apart_is_a_cut_set_lhotse_reads(tmp_path):
    """Error records among cuts stop Lhotse's reader: --errors FILE writes them apart (one
    record per input across the two files); without it the output keeps them and says so."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet
    from typer.testing import CliRunner

    from clsp_cli.app import app

    t = np.arange(32000) / 16000
    sf.write(tmp_path / "v.wav", (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             16000)
    (tmp_path / "m.txt").write_text(f"{tmp_path / 'v.wav'}\n{tmp_path / 'gone.wav'}\n")
    out, errs = tmp_path / "cuts.jsonl", tmp_path / "errors.jsonl"
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.txt"), "--as-cuts", "-o", str(out), "--errors", str(errs)])
    assert res.exit_code == 3, res.output
    cuts = CutSet.from_file(out)
    assert len(cuts) == 1 and cuts[0].supervisions[0].custom["global_captions"]
    [err] = [json.loads(x) for x in errs.read_text().splitlines()]
    assert err["id"] == str(tmp_path / "gone.wav") and "no such file" in err["error"]["message"]
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.txt"), "--as-cuts", "-o", str(tmp_path / "mixed.jsonl")])
    assert res.exit_code == 3 and "holds 1 error record(s) among the cuts" in res.output and "--errors FILE" in res.output
    assert len((tmp_path / "mixed.jsonl").read_text().splitlines()) == 2
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.txt"), "-o", str(out), "--errors", str(tmp_path / "m.txt")])
    assert res.exit_code == 2 and "this run reads that file" in res.output


def test_as_cuts_refuses_a_repeated_id_that_lhotse_would_drop_a_recording_for(tmp_path):
    """Two records of one id would be two cuts and two recordings of that id: the second is an
    error record, the first is captioned, and Lhotse reads every recording the cuts name."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet
    from typer.testing import CliRunner

    from clsp_cli.app import app

    t = np.arange(32000) / 16000
    for name, f0 in (("a.wav", 140), ("b.wav", 220)):
        sf.write(tmp_path / name, (0.2 * np.sin(2 * np.pi * f0 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
                 16000)
    rows = [{"id": "x", "audio": "a.wav"}, {"id": "x", "audio": "b.wav"}, {"id": "y", "audio": "b.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, errs = tmp_path / "cuts.jsonl", tmp_path / "errors.jsonl"
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.jsonl"), "--as-cuts", "-q", "-o", str(out), "--errors", str(errs)])
    assert res.exit_code == 3, res.output
    cuts = CutSet.from_file(out)
    assert [c.id for c in cuts] == ["x", "y"] and cuts[0].recording.sources[0].source.endswith("a.wav")
    [err] = [json.loads(x) for x in errs.read_text().splitlines()]
    assert err["id"] == "x" and "repeats that of record 1" in err["error"]["message"]
    # without --as-cuts the same records are captioned, one record each
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.jsonl"), "-q", "-o", str(tmp_path / "caps.jsonl")])
    assert res.exit_code == 0 and len((tmp_path / "caps.jsonl").read_text().splitlines()) == 3


def test_caption_clips_takes_paths_and_records_and_keeps_private_fields_out(tmp_path):
    import numpy as np
    import soundfile as sf

    from clsp.caption.backends import caption_clips

    t = np.arange(32000) / 16000
    sf.write(tmp_path / "v.wav", (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             16000)
    path = str(tmp_path / "v.wav")
    with pytest.raises(TypeError):
        list(caption_clips(path, "acoustic"))
    results = list(caption_clips([path, {"id": "r", "audio": path, "speaker": "s1"}], "acoustic"))
    assert [r.ok for r in results] == [True, True] and results[1].value["id"] == "r"
    assert all(r.value["global_captions"] and not any(k.startswith("_") for k in r.value) for r in results)


@pytest.mark.parametrize("encoder", ["sox", "lame"])
def test_as_cuts_refuses_an_mp3_whose_decoders_disagree_on_its_start(tmp_path, encoder):
    """clsp reads an MP3 gapless (a burst at 1.000 s is at 1.000 s); Lhotse reading the cut
    written for it kept the encoder/decoder delay (the burst at 1.069 s): the cut held other
    audio than was captioned. An MP3 plain record gets an error record naming the record and
    why, suggesting FLAC/WAV, before captioning; the WAV beside it is still a cut."""
    import shutil

    import numpy as np
    import soundfile as sf
    from typer.testing import CliRunner

    from clsp_cli.app import app

    if shutil.which(encoder) is None:
        pytest.skip(f"{encoder} not installed")
    t = np.arange(48000) / 16000
    sf.write(tmp_path / "v.wav", (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             16000)
    mp3 = tmp_path / "v.mp3"
    cmd = ["sox", "-V1", str(tmp_path / "v.wav"), str(mp3)] if encoder == "sox" else \
        ["lame", "--quiet", str(tmp_path / "v.wav"), str(mp3)]
    if subprocess.run(cmd, capture_output=True).returncode != 0 or not mp3.exists():
        pytest.skip(f"cannot encode mp3 with {encoder}")
    recs = [{"id": "m", "audio": "v.mp3", "start": 0.9, "end": 2.2}, {"id": "w", "audio": "v.wav", "start": 0.9, "end": 2.2}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "cuts.jsonl"
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.jsonl"), "--as-cuts", "-q", "-o", str(out)])
    assert res.exit_code == 3, res.output
    err, cut = [json.loads(x) for x in out.read_text().splitlines()]
    assert err["id"] == "m" and "no Lhotse cut for record 'm'" in err["error"]["message"]
    assert "MP3" in err["error"]["message"] and "FLAC or WAV" in err["error"]["message"]
    assert cut["id"] == "w" and cut["recording"]["sources"][0]["source"].endswith("v.wav")
    # without --as-cuts the MP3 is captioned as usual
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "m.jsonl"), "-q", "-o", str(tmp_path / "flat.jsonl")])
    assert res.exit_code == 0, res.output


def test_caption_bins_that_are_compressed_or_audio(tmp_path):
    """--bins of a gzip copy or an audio file gave a UnicodeDecodeError traceback (exit 1)."""
    import gzip

    import numpy as np
    import soundfile as sf

    from clsp.caption.bins import DEFAULT_BINS_PATH

    sf.write(tmp_path / "clip.flac", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(DEFAULT_BINS_PATH.read_bytes()))
    proc = invoke("caption", "--bins", "clip.flac", "-", stdin="", text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "clip.flac: cannot read bins file (an audio file)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    proc = invoke("caption", "--bins", "b.json.gz", "-", stdin="", text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_input_fields_named_like_caption_output_are_kept_under_metadata(tmp_path):
    """A corpus's own captions, a `provenance` note or an `error` note were overwritten by the
    caption record's fields (or left at its top, reading as failed); a record `clsp caption`
    wrote is captioned again, its old captions replaced, what it kept under metadata unchanged."""
    from pathlib import Path

    clip = Path(__file__).resolve().parents[2] / "examples" / "data" / "09a01Nb.flac"
    note = {"type": "Flag", "message": "noisy"}
    rec = {"id": "c1", "audio": str(clip), "provenance": "studio B", "global_captions": ["gold"], "error": note}
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    first = invoke("caption", "in.jsonl", "-q", "-o", "c.jsonl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (out,) = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert out["metadata"] == {"provenance": "studio B", "global_captions": ["gold"], "error": note}
    assert "error" not in out and out["global_captions"] != ["gold"] and out["provenance"]["backend"] == "acoustic"
    again = invoke("caption", "c.jsonl", "-q", cwd=tmp_path, text=True)
    assert again.returncode == 0, again.stderr
    (out2,) = [json.loads(x) for x in again.stdout.splitlines()]
    assert out2 == out


def test_as_cuts_keeps_a_plain_records_own_fields_in_the_supervision(tmp_path):
    """A plain record's speaker, gender and language become its cut's supervision fields and its
    other fields the supervision's custom, so reading the cut back gives them again."""
    import numpy as np
    import soundfile as sf

    from clsp.records import iter_items

    t = np.arange(32000) / 16000
    sf.write(tmp_path / "v.wav", (0.2 * np.sin(2 * np.pi * 140 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             16000)
    rec = {"id": "r1", "audio": "v.wav", "start": 0.3, "end": 1.3, "speaker": "spk1", "gender": "female",
           "language": "German", "emotion": "anger", "age": 31, "transcript": "hallo"}
    (tmp_path / "seg.jsonl").write_text(json.dumps(rec) + "\n")
    p = invoke("caption", "seg.jsonl", "--as-cuts", "-o", "seg.cuts.jsonl", "-q", cwd=tmp_path, text=True)
    assert p.returncode == 0, p.stderr
    [cut] = [json.loads(x) for x in (tmp_path / "seg.cuts.jsonl").read_text().splitlines()]
    sup = cut["supervisions"][0]
    assert (sup["speaker"], sup["gender"], sup["language"], sup["text"]) == ("spk1", "female", "German", "hallo")
    assert sup["custom"]["emotion"] == "anger" and sup["custom"]["age"] == 31 and sup["custom"]["global_captions"]
    [item] = iter_items(tmp_path / "seg.cuts.jsonl", "audio")
    back = item.record
    assert {k: back[k] for k in ("speaker", "gender", "language", "emotion", "age", "transcript")} == {
        k: rec[k] for k in ("speaker", "gender", "language", "emotion", "age", "transcript")}
    assert (back["start"], back["end"]) == (0.3, 1.3)


def test_caption_of_embed_output_keeps_each_embedding_with_its_provenance(tmp_path):
    """caption kept embed's provenance under metadata but left `embedding` (or `row` and
    `row_sha256`) at the top, so a vector said to be model 'my-voices''s was classified as
    --model's with a warning, and indexed with model null."""
    from pathlib import Path

    clip = Path(__file__).resolve().parents[2] / "examples" / "data" / "09a01Nb.flac"
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "c1", "audio": str(clip), "provenance": "studio B"}) + "\n")
    for args in ([], ["--npy", "emb.npy"]):
        e = invoke("embed", "in.jsonl", "-m", "tiny-random", "-q", "-o", "emb.jsonl", *args, cwd=tmp_path)
        assert e.returncode == 0, e.stderr
        (emb,) = [json.loads(x) for x in (tmp_path / "emb.jsonl").read_text().splitlines()]
        emb["provenance"] = {**emb["provenance"], "model": "my-voices", "checksum": "sha256:0000000000000000"}
        (tmp_path / "fake.jsonl").write_text(json.dumps(emb) + "\n")
        c = invoke("caption", "fake.jsonl", "-q", "-o", "cap.jsonl", cwd=tmp_path)
        assert c.returncode == 0, c.stderr
        (cap,) = [json.loads(x) for x in (tmp_path / "cap.jsonl").read_text().splitlines()]
        vector = {k: emb[k] for k in ("embedding", "row", "row_sha256", "provenance") if k in emb}
        assert cap["metadata"] == {**vector, "metadata": {"provenance": "studio B"}}  # together, nothing lost
        assert not any(k in cap for k in ("embedding", "row", "row_sha256")) and cap["provenance"]["backend"] == "acoustic"
        p = invoke("classify", "cap.jsonl", "--pack", "gender", "-m", "tiny-random", cwd=tmp_path, text=True)
        assert p.returncode == 0 and "warning" not in p.stderr, p.stderr  # the clip, classified by --model
        b = invoke("search", "build", "cap.jsonl", "-o", "idx", "-q", cwd=tmp_path, text=True)
        assert b.returncode == 1 and "no embeddings to index" in b.stderr
