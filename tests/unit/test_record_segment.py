"""A record's segment and channel are read the same way by every module: embedding,
training (and its frozen-feature cache), captioning, similarity pairs and index queries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from clsp.audio import load_audio, segment_plan, select_channels
from clsp.errors import AudioError, InputError
from clsp.record_audio import load_record_audio, record_segment, record_span
from clsp.train.data import clip_cache_key, clip_from_record

SR = 16000


def _stereo(path: Path, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    data = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 530 * t + 1.0)], 1).astype(np.float32)
    sf.write(path, data, SR, subtype="FLOAT")
    return data


def test_channel_picks_one_channel_or_averages_a_list(tmp_path: Path) -> None:
    data = _stereo(tmp_path / "st.wav")
    left = load_audio(tmp_path / "st.wav", channel=0)
    right = load_audio(tmp_path / "st.wav", channel=1)
    assert torch.allclose(left, torch.from_numpy(data[:, 0]), atol=1e-6)
    assert torch.allclose(right, torch.from_numpy(data[:, 1]), atol=1e-6)
    mixed = torch.from_numpy(data.mean(1))
    assert torch.allclose(load_audio(tmp_path / "st.wav"), mixed, atol=1e-6)
    assert torch.allclose(load_audio(tmp_path / "st.wav", channel=[0, 1]), mixed, atol=1e-6)
    # a segment of one channel: the same samples as that channel's slice
    seg = load_audio(tmp_path / "st.wav", 0.25, 0.5, channel=1)
    assert torch.allclose(seg, torch.from_numpy(data[4000:8000, 1]), atol=1e-6)


@pytest.mark.parametrize("channel", [2, -1, True, 1.0, "left", "1", [], [0, 0], [0, 5], {"c": 0}])
def test_a_channel_the_file_lacks_is_an_error_naming_file_and_value(tmp_path: Path, channel) -> None:
    _stereo(tmp_path / "st.wav")
    for call in (lambda: load_audio(tmp_path / "st.wav", channel=channel),
                 lambda: segment_plan(tmp_path / "st.wav", channel=channel)):
        with pytest.raises(AudioError) as err:
            call()
        assert "st.wav" in str(err.value) and "invalid channel" in str(err.value) and "2 channels" in str(err.value)
    assert select_channels("x", None, 2) is None and select_channels("x", 1, 2) == [1]


def test_duration_ends_the_segment_and_must_agree_with_end(tmp_path: Path) -> None:
    _stereo(tmp_path / "st.wav", 2.0)
    base = {"_path": str(tmp_path / "st.wav")}
    assert record_span({**base, "start": 0.5, "duration": 1.0}) == (0.5, 1.5)
    assert record_span({**base, "duration": 0.75}) == (None, 0.75)
    assert record_span({**base, "start": 0.5, "end": 1.5, "duration": 1.004}) == (0.5, 1.5)  # rounding
    a = load_record_audio({**base, "start": 0.5, "duration": 1.0})
    b = load_record_audio({**base, "start": 0.5, "end": 1.5})
    assert a.numel() == SR and torch.equal(a, b)
    assert record_segment({**base, "start": 0.5, "duration": 1.0}) == (0.5, SR)
    for bad in ({"start": 0.5, "end": 1.5, "duration": 0.5}, {"duration": -1}, {"duration": "long"},
                {"duration": True}):
        with pytest.raises(AudioError) as err:
            record_span({**base, **bad})
        assert "st.wav" in str(err.value)


def test_training_reads_the_segment_and_channel_embedding_reads(tmp_path: Path) -> None:
    from clsp.train.data import BatchPlan, make_loader
    from clsp.train.config import DataConfig

    data = _stereo(tmp_path / "st.wav", 2.0)
    rows = [{"id": "r", "audio": "st.wav", "start": 0.5, "duration": 1.0, "channel": 1, "caption": "x"},
            {"id": "l", "audio": "st.wav", "start": 0.5, "duration": 1.0, "channel": 0, "caption": "x"},
            {"id": "m", "audio": "st.wav", "start": 0.5, "duration": 1.0, "caption": "x"}]
    for row in rows:
        clip = clip_from_record({**row, "_path": str(tmp_path / "st.wav")})
        assert (clip["start"], clip["end"]) == (0.5, 1.5) and clip["duration"] == pytest.approx(1.0)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DataConfig(train="", min_duration=0.1, max_duration=5.0, max_batch_seconds=10.0, num_buckets=1,
                     shuffle_buffer=1, num_workers=0)
    loader = make_loader(BatchPlan(str(tmp_path / "m.jsonl"), cfg, 0, 0, shuffle=False), 0)
    clips = [c for batch in loader for c in batch["clips"]]
    keys = {c["id"]: clip_cache_key(c) for c in clips}
    assert len(set(keys.values())) == 3  # two channels of one segment are two clips in the feature cache
    assert len(keys["m"]) == 4  # a clip reading every channel keeps the key it always had
    for c in clips:
        wave = load_record_audio({"_path": c["path"], "start": c["start"], "end": c["end"], "channel": c["channel"]})
        want = {"r": data[8000:24000, 1], "l": data[8000:24000, 0], "m": data[8000:24000].mean(1)}[c["id"]]
        assert torch.allclose(wave, torch.from_numpy(want), atol=1e-6)


def test_two_cuts_of_one_stereo_recording_never_share_a_cache_key(tmp_path: Path) -> None:
    from clsp.cuts import cut_record

    _stereo(tmp_path / "st.wav")
    rec = {"id": "r", "sources": [{"type": "file", "channels": [0, 1], "source": str(tmp_path / "st.wav")}],
           "sampling_rate": SR, "num_samples": SR, "duration": 1.0}
    keys = []
    for ch in (0, 1, 0):
        cut = {"id": "same-id", "start": 0.0, "duration": 0.8, "channel": ch, "type": "MonoCut", "recording": rec,
               "supervisions": [{"id": "s", "recording_id": "r", "start": 0, "duration": 0.8, "channel": ch,
                                 "custom": {"global_captions": ["a voice"]}}]}
        record = cut_record(cut, "manifest line")
        record["_path"] = record["audio"]
        keys.append(clip_cache_key(clip_from_record(record)))
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_pair_sides_and_audio_queries_take_duration_and_channel(tmp_path: Path) -> None:
    from clsp.index.query import parse_query
    from clsp.similarity import side_from_value

    _stereo(tmp_path / "st.wav", 2.0)
    side = side_from_value({"audio": "st.wav", "start": 0.5, "duration": 1.0, "channel": [1]}, "field 'a'", tmp_path)
    assert (side.start, side.end, side.channel) == (0.5, 1.5, (1,))
    assert side.key != side_from_value({"audio": "st.wav", "start": 0.5, "duration": 1.0}, "a", tmp_path).key
    kind, query = parse_query({"id": "q", "audio": "st.wav", "duration": 1.0, "channel": 0}, None, 0, tmp_path)
    assert kind == "audio" and (query.start, query.end, query.channel) == (None, 1.0, 0)
    with pytest.raises(InputError, match="query 'q'.*disagrees"):
        parse_query({"id": "q", "audio": "st.wav", "start": 0, "end": 2, "duration": 1.0}, None, 0, tmp_path)


def test_embed_a_channel_as_its_own_file_through_the_cli(tmp_path: Path) -> None:
    from clsp_cli.app import app

    data = _stereo(tmp_path / "st.wav")
    sf.write(tmp_path / "left.wav", data[:, 0], SR, subtype="FLOAT")
    sf.write(tmp_path / "right.wav", data[:, 1], SR, subtype="FLOAT")
    rows = [{"id": "c0", "audio": "st.wav", "channel": 0}, {"id": "c1", "audio": "st.wav", "channel": 1},
            {"id": "left", "audio": "left.wav"}, {"id": "right", "audio": "right.wav"},
            {"id": "bad", "audio": "st.wav", "channel": 3}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = CliRunner().invoke(app, ["embed", "m.jsonl", "--model", "tiny-random", "-q"])
    finally:
        os.chdir(old)
    recs = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert res.exit_code == 3 and [r["id"] for r in recs] == ["c0", "c1", "left", "right", "bad"]
    emb = {r["id"]: np.array(r["embedding"]) for r in recs if "embedding" in r}
    assert np.allclose(emb["c0"], emb["left"], atol=1e-5) and np.allclose(emb["c1"], emb["right"], atol=1e-5)
    assert not np.allclose(emb["c0"], emb["c1"], atol=1e-3)
    assert "invalid channel 3" in recs[-1]["error"]["message"] and recs[0]["channel"] == 0
