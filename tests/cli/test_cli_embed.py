"""``clsp embed``: the command contract in-process, pipes through the real executable."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import CLSP, invoke, jsonl, write_wav


def test_help_is_fast_and_imports_no_torch():
    code = "import sys, clsp_cli.app; print(sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = invoke("--help")
    assert res.returncode == 0 and b"embed" in res.stdout


@pytest.mark.slow
def test_pipe_to_head_is_quiet(clips):
    cmd = f"cat clips.jsonl | {CLSP} embed - --model tiny-random -q | head -1"
    res = subprocess.run(cmd, shell=True, capture_output=True, cwd=clips, timeout=300)
    lines = res.stdout.decode().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["id"] == "c0"
    assert b"Traceback" not in res.stderr


@pytest.mark.slow
def test_stdout_closed_early_with_npy_says_the_matrix_was_not_written(clips):
    """`clsp embed --npy m.npy | head` exited 0 with no m.npy, and left m.npy.partial/.lock."""
    lines = (clips / "clips.jsonl").read_text().splitlines() * 60  # more than a pipe buffer of records
    (clips / "many.jsonl").write_text("\n".join(lines) + "\n")
    cmd = f"{CLSP} embed many.jsonl --model tiny-random -q --npy m.npy | head -c 100 > /dev/null; echo rc=${{PIPESTATUS[0]}}"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, cwd=clips, timeout=300)
    assert res.stdout.decode().strip() == "rc=1", res.stderr.decode()[-2000:]
    assert b"m.npy was not written" in res.stderr and b"Traceback" not in res.stderr
    assert not any(p.name.startswith("m.npy") for p in clips.iterdir())


def bad_corpus(tmp):
    """Good clips interleaved with every kind of broken input the reader must survive."""
    (tmp / "empty.wav").write_bytes(b"")
    good = write_wav(tmp / "good.wav", 1.0)
    (tmp / "trunc.wav").write_bytes(good.read_bytes()[:30])
    (tmp / "text.wav").write_text("this is not audio\n")
    sf.write(str(tmp / "zero.wav"), np.zeros((0,), np.float32), 16000)
    nan = np.full(16000, np.nan, np.float32)
    sf.write(str(tmp / "nan.wav"), nan, 16000, subtype="FLOAT")
    write_wav(tmp / "six.wav", 1.0, sr=48000, channels=6)
    (tmp / "adir.wav").mkdir()
    lines = [
        json.dumps({"id": "g1", "audio": "good.wav"}),
        json.dumps({"id": "missing", "audio": "nope.wav"}),
        json.dumps({"id": "empty", "audio": "empty.wav"}),
        json.dumps({"id": "trunc", "audio": "trunc.wav"}),
        json.dumps({"id": "text", "audio": "text.wav"}),
        json.dumps({"id": "zero", "audio": "zero.wav"}),
        json.dumps({"id": "nan", "audio": "nan.wav"}),
        json.dumps({"id": "six", "audio": "six.wav"}),
        '{"id": "broken", "audio": ',
        json.dumps({"id": "noaudio", "path": "good.wav"}),
        json.dumps({"id": "dir", "audio": "adir.wav"}),
        json.dumps({"id": "g2", "audio": "good.wav", "start": 0.2, "end": 0.9}),
    ]
    data = ("\n".join(lines[:9]) + "\n").encode() + b"\xff\xfe not utf8\n" + ("\n".join(lines[9:]) + "\n").encode()
    (tmp / "bad.jsonl").write_bytes(data)
    return 13


def test_bad_inputs_each_get_an_error_record(tmp_path):
    n = bad_corpus(tmp_path)
    res = invoke("embed", "bad.jsonl", "--model", "tiny-random", "-q", cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    recs = jsonl(res.stdout)
    assert len(recs) == n
    by_id = {r["id"]: r for r in recs}
    ok = {r["id"] for r in recs if "embedding" in r}
    assert ok == {"g1", "g2", "six"}
    for rid in ("missing", "empty", "trunc", "text", "zero", "nan", "noaudio", "dir"):
        err = by_id[rid]["error"]
        assert err["type"] and err["message"], rid
    assert "nope.wav" in by_id["missing"]["error"]["message"]
    assert "NaN" in by_id["nan"]["error"]["message"]
    assert sum("error" in r for r in recs) == n - 3
    assert b"Traceback" not in res.stderr


def test_on_error_fail_stops(tmp_path):
    bad_corpus(tmp_path)
    res = invoke("embed", "bad.jsonl", "--model", "tiny-random", "-q", "--on-error", "fail", cwd=tmp_path)
    assert res.returncode == 1
    recs = jsonl(res.stdout)
    assert recs[-1]["id"] == "missing" and "error" in recs[-1]
    res = invoke("embed", "bad.jsonl", "--model", "tiny-random", "--on-error", "fail", cwd=tmp_path)
    assert f"({sum('error' in r for r in recs)} failed)" in res.stderr.decode(), res.stderr  # the one it stopped on counts


def test_batch_size_and_order_do_not_change_embeddings(clips):
    a = jsonl(invoke("embed", "clips.jsonl", "--model", "tiny-random", "-b", "1", "-q", cwd=clips).stdout)
    b = jsonl(invoke("embed", "clips.jsonl", "--model", "tiny-random", "-b", "5", "-q", cwd=clips).stdout)
    lines = (clips / "clips.jsonl").read_text().splitlines()
    (clips / "rev.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    c = jsonl(invoke("embed", "rev.jsonl", "--model", "tiny-random", "-b", "3", "-q", cwd=clips).stdout)
    ea = {r["id"]: np.array(r["embedding"]) for r in a}
    for other in (b, c):
        for r in other:
            assert np.abs(ea[r["id"]] - np.array(r["embedding"])).max() <= 1e-5
    assert [r["id"] for r in c] == [json.loads(x)["id"] for x in reversed(lines)]
    assert a[0]["provenance"]["dim"] == len(a[0]["embedding"]) and a[0]["provenance"]["normalized"] is True
    assert a[0]["provenance"]["modality"] == "audio"


def test_npy_output_and_rows(clips):
    res = invoke("embed", "clips.jsonl", "--model", "tiny-random", "--npy", "e.npy", "-o", "e.jsonl", "-q", cwd=clips)
    assert res.returncode == 0 and res.stdout == b""
    mat = np.load(clips / "e.npy")
    recs = jsonl((clips / "e.jsonl").read_bytes())
    assert mat.shape == (6, recs[0]["provenance"]["dim"])
    assert [r["row"] for r in recs] == list(range(6))
    assert np.allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-5)


def test_text_embedding_lines(tmp_path):
    res = invoke("embed", "-", "--modality", "text", "--model", "tiny-random", "-q",
                   stdin=b"a calm low male voice\n\nfast and loud\n   \n{\"id\": \"e\", \"text\": \"\"}\n", cwd=tmp_path)
    recs = jsonl(res.stdout)
    assert [r["id"] for r in recs] == ["line-1", "line-3", "e"]
    assert res.returncode == 3 and "empty text" in recs[2]["error"]["message"]


def test_long_audio_policies(tmp_path):
    write_wav(tmp_path / "long.wav", 5.0)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "L", "audio": "long.wav"}) + "\n")
    win = jsonl(invoke("embed", "m.jsonl", "--model", "tiny-random", "--max-seconds", "2", "--long-audio", "windows", "-q", cwd=tmp_path).stdout)
    assert [(r["window_start"], r["window_end"]) for r in win] == [(0.0, 1.667), (1.667, 3.333), (3.333, 5.0)]
    mean = jsonl(invoke("embed", "m.jsonl", "--model", "tiny-random", "--max-seconds", "2", "-q", cwd=tmp_path).stdout)
    assert len(mean) == 1
    avg = np.mean([r["embedding"] for r in win], axis=0)
    assert np.allclose(np.array(mean[0]["embedding"]), avg / np.linalg.norm(avg), atol=1e-5)


def test_a_negative_worker_count_is_a_usage_error(clips):
    res = invoke("embed", "clips.jsonl", "--model", "tiny-random", "--workers", "-100", cwd=clips)
    assert res.returncode == 2 and b"--workers must be a whole number >= 0" in res.stderr and not res.stdout
    assert invoke("embed", "clips.jsonl", "--model", "tiny-random", "--workers", "0", "-q", cwd=clips).returncode == 0


def test_shards_partition_the_input(clips):
    outs = [jsonl(invoke("embed", "clips.jsonl", "--model", "tiny-random", "--shard", f"{i}/2", "-q", cwd=clips).stdout) for i in range(2)]
    assert [r["id"] for r in outs[0]] == ["c0", "c2", "c4"] and [r["id"] for r in outs[1]] == ["c1", "c3", "c5"]
    assert invoke("embed", "clips.jsonl", "--shard", "3/2", cwd=clips).returncode == 2


def test_unknown_model_is_a_clear_error(clips):
    res = invoke("embed", "clips.jsonl", "--model", str(clips / "no-such-model"), cwd=clips)
    assert res.returncode == 2 and b"no such model" in res.stderr and b"Traceback" not in res.stderr


def test_a_folder_that_holds_no_model_is_a_usage_error(clips):
    """A training checkpoint folder, a run's output folder or any other folder given as a model
    is an argument that names no model: exit 2 with the folder to give instead, for every
    command that takes a model (embed, convert)."""
    step = clips / "run" / "checkpoints" / "step-00000004"
    (step / "model").mkdir(parents=True)
    (step / "model" / "config.json").write_text("{}")
    other = clips / "just-a-folder"
    other.mkdir()
    for folder, says in ((step, b"training checkpoint folder"), (clips / "run", b"training output folder"),
                         (other, b"neither a clsp checkpoint")):
        for args in (("embed", "clips.jsonl", "--model", str(folder)), ("convert", str(folder), str(clips / "conv"))):
            res = invoke(*args, cwd=clips)
            assert res.returncode == 2 and says in res.stderr and b"Traceback" not in res.stderr, (args, res.stderr)
            assert not (clips / "conv").exists()


def test_waveform_encoder_model_embeds_through_the_cli(clips):
    """A transformers speech encoder (waveform input) works end to end, batch-independently."""
    from clsp.models import ModelConfig, build_model, save_model, tiny_config

    cfg = tiny_config().to_dict()
    cfg["speech_encoder"] = {"type": "hf", "config": {"model_type": "wav2vec2", "hidden_size": 16, "num_hidden_layers": 1,
                             "num_attention_heads": 2, "intermediate_size": 32, "conv_dim": [8, 8], "conv_stride": [5, 4],
                             "conv_kernel": [10, 8], "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
                             "feat_extract_norm": "layer", "do_stable_layer_norm": True}}
    model = build_model(ModelConfig.from_dict(cfg)).eval()
    save_model(model, clips / "w2v")
    one = jsonl(invoke("embed", "clips.jsonl", "--model", "w2v", "-b", "1", "-q", cwd=clips).stdout)
    many = jsonl(invoke("embed", "clips.jsonl", "--model", "w2v", "-b", "6", "-q", cwd=clips).stdout)
    assert len(one) == 6 and all("embedding" in r for r in one)
    for a, b in zip(one, many):
        assert np.abs(np.array(a["embedding"]) - np.array(b["embedding"])).max() <= 1e-5


def test_audio_only_load_skips_the_text_tower(tiny_model, tiny_model_dir):
    import torch

    from clsp.errors import ModelError
    from clsp.models import load_model

    full = tiny_model
    audio_only = load_model(tiny_model_dir, with_text=False)
    assert audio_only.text_encoder.model is None
    w = torch.randn(2, 16000) * 0.1
    n = torch.tensor([16000, 12000])
    assert torch.equal(audio_only.encode_audio(w, n), full.encode_audio(w, n))
    try:
        audio_only.encode_text(["a calm voice"])
    except ModelError as exc:
        assert "audio only" in str(exc)
    else:
        raise AssertionError("encode_text must refuse on an audio-only model")


def test_odd_and_absurd_sample_rates(tmp_path):
    """An odd rate resamples without a huge kernel; an absurd header rate is a named error."""
    from clsp.audio import load_audio
    from clsp.errors import AudioError

    sf.write(str(tmp_path / "odd.wav"), (0.1 * np.random.default_rng(0).standard_normal(44101)).astype(np.float32), 44101)
    assert abs(load_audio(tmp_path / "odd.wav").numel() - 16000) <= 1
    sf.write(str(tmp_path / "huge.wav"), np.zeros(2000, np.float32), 2_000_000)
    try:
        load_audio(tmp_path / "huge.wav")
    except AudioError as exc:
        assert "sample rate" in str(exc)
    else:
        raise AssertionError("a 2 MHz file must be refused")


def test_float16_on_the_cpu_is_a_usage_error_not_a_traceback():
    import torch

    from clsp.embed import resolve_dtype
    from clsp.errors import ConfigError

    with pytest.raises(ConfigError, match="float16 runs on a GPU only"):
        resolve_dtype("float16", torch.device("cpu"))
    assert resolve_dtype("fp16", torch.device("cuda")) is torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


def test_a_window_record_is_its_window_read_back(tmp_path):
    """A --long-audio windows record names its window's segment (start/end in the file): read
    back, it is that window's audio (it named the whole file: captions, players and re-embedding
    of each window heard all of it). A record's duration is replaced by the window's span."""
    write_wav(tmp_path / "long.wav", 6.0)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "L", "audio": "long.wav", "start": 0.5, "duration": 5.0}) + "\n")
    win = jsonl(invoke("embed", "m.jsonl", "--model", "tiny-random", "--max-seconds", "2", "--long-audio", "windows",
                       "-q", cwd=tmp_path).stdout)
    spans = [x for r in win for x in (r["start"], r["end"])]
    assert spans == pytest.approx([0.5, 2.1667, 2.1667, 3.8333, 3.8333, 5.5], abs=1e-3)
    assert all("duration" not in r for r in win)
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "embedding"}) + "\n"
                                              for r in win))
    again = jsonl(invoke("embed", "w.jsonl", "--model", "tiny-random", "--max-seconds", "2", "-q", cwd=tmp_path).stdout)
    for a, b in zip(win, again):
        assert np.abs(np.array(a["embedding"]) - np.array(b["embedding"])).max() < 1e-4


def test_window_records_of_a_cut_name_their_segment_in_the_file(tmp_path):
    """A cut starting 0.5 s into its recording: its window records' start/end are seconds in
    the file (they were relative to the cut: 0.0-1.667 for audio at 0.5-2.167 s), and read
    back as plain records they are that window's audio."""
    write_wav(tmp_path / "long.wav", 6.0)
    n = sf.info(str(tmp_path / "long.wav")).frames
    rec = {"id": "R", "sources": [{"type": "file", "channels": [0], "source": str(tmp_path / "long.wav")}],
           "sampling_rate": 16000, "num_samples": n, "duration": n / 16000, "channel_ids": [0]}
    cut = {"id": "cw", "start": 0.5, "duration": 5.0, "channel": 0, "supervisions": [], "recording": rec,
           "type": "MonoCut"}
    (tmp_path / "cw.jsonl").write_text(json.dumps(cut) + "\n")
    win = jsonl(invoke("embed", "cw.jsonl", "--model", "tiny-random", "--max-seconds", "2", "--long-audio", "windows",
                       "-q", cwd=tmp_path).stdout)
    spans = [x for r in win for x in (r["start"], r["end"])]
    assert spans == pytest.approx([0.5, 2.1667, 2.1667, 3.8333, 3.8333, 5.5], abs=1e-3)
    assert [r["window_start"] for r in win] == [0.0, 1.667, 3.333]  # from the cut's start
    (tmp_path / "w.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "embedding"}) + "\n"
                                              for r in win))
    again = jsonl(invoke("embed", "w.jsonl", "--model", "tiny-random", "--max-seconds", "2", "-q", cwd=tmp_path).stdout)
    for a, b in zip(win, again):
        assert np.abs(np.array(a["embedding"]) - np.array(b["embedding"])).max() < 1e-4


def test_caption_output_embeds_as_one_text_record_per_caption_sharded_or_not(tmp_path):
    """`clsp caption ... | clsp embed --modality text`: one record per caption (id ID-global0,
    audio_id, caption_type), so the pool mode of search eval reads it as it is; shards split
    the caption records and merge back to the unsharded output."""
    recs = [{"id": f"c{i}", "audio": f"c{i}.wav", "global_captions": [f"a calm voice {i}", f"a low voice {i}"],
             "finegrained_captions": [f"slow then fast {i}"]} for i in range(3)]
    (tmp_path / "cap.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    whole = jsonl(invoke("embed", "cap.jsonl", "--modality", "text", "--model", "tiny-random", "-q", cwd=tmp_path).stdout)
    assert [r["id"] for r in whole[:3]] == ["c0-global0", "c0-global1", "c0-finegrained0"] and len(whole) == 9
    assert whole[4]["audio_id"] == "c1" and whole[4]["caption_type"] == "global" and whole[4]["text"] == "a low voice 1"
    assert all(r["provenance"]["modality"] == "text" and "audio" not in r for r in whole)
    for i in range(2):
        res = invoke("embed", "cap.jsonl", "--modality", "text", "--model", "tiny-random", "--shard", f"{i}/2",
                     "-o", f"part{i}.jsonl", "-q", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    res = invoke("merge", "part0.jsonl", "part1.jsonl", "-q", cwd=tmp_path)
    merged = jsonl(res.stdout)
    assert res.returncode == 0 and [r["id"] for r in merged] == [r["id"] for r in whole]
    for a, b in zip(whole, merged):
        assert np.allclose(a["embedding"], b["embedding"], atol=1e-6)


@pytest.mark.parametrize("long_audio", ["chunk-mean", "truncate", "windows"])
def test_a_silent_recording_longer_than_max_seconds_is_an_error_record(tmp_path, long_audio):
    """Digital silence read window by window (a clip longer than --max-seconds) was embedded;
    a silent window of a clip with speech is an error record of its own with --long-audio
    windows (as that window read back is) and left out of chunk-mean's mean."""
    sf.write(tmp_path / "silent.wav", np.zeros(16000 * 7, dtype=np.float32), 16000)
    write_wav(tmp_path / "speech.wav", 3.0, 160, seed=1)
    speech, _ = sf.read(tmp_path / "speech.wav", dtype="float32")
    sf.write(tmp_path / "gap.wav", np.concatenate([speech, np.zeros(16000 * 4, dtype=np.float32)]), 16000)
    res = invoke("embed", "silent.wav", "gap.wav", "--model", "tiny-random", "--max-seconds", "3",
                 "--long-audio", long_audio, "-q", cwd=tmp_path)
    out = jsonl(res.stdout)
    assert res.returncode == 3, res.stderr
    says = ("its first 3.0 s (of 7.0 s), all that --long-audio truncate reads, are silent" if long_audio == "truncate"
            else "silent (every window's peak below one 16-bit step)")  # truncate read only the first window
    assert out[0]["id"] == "silent.wav" and says in out[0]["error"]["message"], out[0]
    assert "embedding" in out[1] and len(out) == (4 if long_audio == "windows" else 2), out
    failed = [r for r in out[1:] if "error" in r]  # windows: the last one (4.67-7 s) is all silence
    assert len(failed) == (1 if long_audio == "windows" else 0), out
    assert all("silent" in r["error"]["message"] and r["id"] == "gap.wav@2" for r in failed), out


def test_input_fields_named_like_embeds_own_are_kept_under_metadata(tmp_path):
    """An input's own `provenance`, `row`, `embedding`, `error` (a note on a clip that embeds) and
    window fields were overwritten by clsp's, or kept at the top where they read as clsp's (a
    stale `row` beside an `embedding`; an `error` that made the record read as failed)."""
    write_wav(tmp_path / "a.wav", 1.0)
    write_wav(tmp_path / "long.wav", 5.0)
    note = {"type": "Flag", "message": "noisy take"}
    recs = [{"id": "p1", "audio": "a.wav", "provenance": "studio B, take 3", "row": 17},
            {"id": "x", "audio": "a.wav", "error": note, "embedding": "mine", "metadata": {"spk": 3}},
            {"id": "w", "audio": "long.wav", "source_id": "orig", "window": 9, "speaker": "s1"},
            {"id": "e", "error": {"type": "AudioError", "message": "upstream"}}]  # an upstream error record
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    for extra in ([], ["--npy", "m.npy"]):
        out = jsonl(invoke("embed", "m.jsonl", "--model", "tiny-random", "-q", *extra, cwd=tmp_path).stdout)
        p1, x, w, e = out
        assert p1["metadata"] == {"provenance": "studio B, take 3", "row": 17}
        assert p1["provenance"]["model"] == "tiny-random" and p1["row" if extra else "embedding"] != 17
        assert "error" not in x and x["metadata"] == {"error": note, "embedding": "mine", "metadata": {"spk": 3}}
        assert ("row" in p1) == ("row" in x) == bool(extra) and ("embedding" in x) == (not extra)
        assert w["source_id"] == "orig" and w["window"] == 9 and "metadata" not in w  # no windows: not embed's
        assert set(e) == {"id", "error"}
    win = jsonl(invoke("embed", "m.jsonl", "--model", "tiny-random", "-q", "--max-seconds", "2",
                       "--long-audio", "windows", cwd=tmp_path).stdout)
    w0 = next(r for r in win if r["id"] == "w@0")
    assert w0["source_id"] == "w" and w0["window"] == 0 and w0["metadata"] == {"source_id": "orig", "window": 9}


def test_a_clsp_embed_record_embedded_again_gets_this_runs_vector_and_provenance(tmp_path):
    """A record an earlier `clsp embed` wrote (its provenance an embedding's) is embedded again:
    its old embedding/row/provenance are replaced, in either form, never left beside the new one;
    the fields kept under metadata stay as they were, and merge and search read the result."""
    write_wav(tmp_path / "a.wav", 1.0)
    write_wav(tmp_path / "b.wav", 1.5)
    recs = [{"id": "a", "audio": "a.wav", "provenance": "studio B", "row": 3}, {"id": "b", "audio": "b.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    first = invoke("embed", "m.jsonl", "--model", "tiny-random", "-q", "-o", "e.jsonl", cwd=tmp_path)
    assert first.returncode == 0
    res = invoke("embed", "e.jsonl", "--model", "tiny-random", "-q", "--npy", "e2.npy", "-o", "e2.jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    again = jsonl((tmp_path / "e2.jsonl").read_bytes())
    assert [sorted(r) for r in again] == [["audio", "id", "metadata", "provenance", "row", "row_sha256"],
                                          ["audio", "id", "provenance", "row", "row_sha256"]]
    assert again[0]["metadata"] == {"provenance": "studio B", "row": 3} and [r["row"] for r in again] == [0, 1]
    back = jsonl(invoke("embed", "e2.jsonl", "--model", "tiny-random", "-q", cwd=tmp_path).stdout)
    assert back == jsonl((tmp_path / "e.jsonl").read_bytes())
    for i in (0, 1):
        assert invoke("embed", "e2.jsonl", "--model", "tiny-random", "-q", "--shard", f"{i}/2", "-o",
                      "part-{shard}.jsonl", "--npy", "part-{shard}.npy", cwd=tmp_path).returncode == 0
    merged = invoke("merge", "part-0000-of-0002.jsonl", "part-0001-of-0002.jsonl", "--npy", "all.npy", "-o",
                    "all.jsonl", "-q", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert [r.get("metadata") for r in jsonl((tmp_path / "all.jsonl").read_bytes())] == [again[0]["metadata"], None]
    np.testing.assert_allclose(np.load(tmp_path / "all.npy"), np.load(tmp_path / "e2.npy"), atol=1e-6)
    built = invoke("search", "build", "all.jsonl", "--npy", "all.npy", "-o", "all.idx", "-q", cwd=tmp_path)
    assert built.returncode == 0, built.stderr


def test_a_shard_with_no_share_of_the_input_is_still_published_for_merge(tmp_path):
    write_wav(tmp_path / "a.wav", 0.5, 160)
    write_wav(tmp_path / "b.wav", 0.5, 220)
    (tmp_path / "two.jsonl").write_text("".join(json.dumps({"id": n, "audio": f"{n}.wav"}) + "\n" for n in "ab"))
    for i in range(3):
        res = invoke("embed", "two.jsonl", "--shard", f"{i}/3", "-o", "p-{shard}.jsonl", "--model", "tiny-random",
                     "-q", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    assert (tmp_path / "p-0002-of-0003.jsonl").exists()  # an empty share: an empty shard, not none
    res = invoke("merge", "p-0000-of-0003.jsonl", "p-0001-of-0003.jsonl", "p-0002-of-0003.jsonl", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in jsonl(res.stdout)] == ["a", "b"]
    # an input with no records at all (an upstream step failed) replaces no earlier shard
    before = (tmp_path / "p-0000-of-0003.jsonl").read_bytes()
    res = invoke("embed", "-", "--shard", "0/3", "-o", "p-{shard}.jsonl", "--model", "tiny-random", "-q",
                 cwd=tmp_path, stdin=b"")
    assert res.returncode == 0 and (tmp_path / "p-0000-of-0003.jsonl").read_bytes() == before, res.stderr


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-", "<&- >&- 2>&-"])
def test_a_run_on_files_needs_no_standard_stream(tmp_path, closed):
    """With stdin, stdout or stderr closed (cron, daemons) a run that reads and writes files gave
    a traceback and exit 1, or exit 1 silently, or (a missing input) 1 for the usage error's 2."""
    write_wav(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav"}) + "\n")
    run = f"{CLSP} --threads 1 embed m.jsonl -o out.jsonl -q --model tiny-random {closed}; echo rc=$? >&3"
    p = subprocess.run(["bash", "-c", f"exec 3>rc.txt; {run}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert (tmp_path / "rc.txt").read_text().strip() == "rc=0", p.stderr
    assert "Traceback" not in p.stderr and len(jsonl((tmp_path / "out.jsonl").read_text())) == 1
    missing = f"{CLSP} --threads 1 embed nosuch.wav -o x.jsonl -q --model tiny-random {closed}; echo rc=$? >&3"
    subprocess.run(["bash", "-c", f"exec 3>rc.txt; {missing}"], cwd=tmp_path, capture_output=True, timeout=300)
    assert (tmp_path / "rc.txt").read_text().strip() == "rc=2"
