"""Training data: manifest formats, skipped rows, batches bounded by seconds, sharding, shuffling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from clsp.train.config import DataConfig
from clsp.train.data import BatchPlan, SkipCounter, clip_from_record, iter_clips, make_loader


def _wav(path: Path, seconds: float) -> None:
    sf.write(path, (0.1 * np.sin(np.arange(int(seconds * 16000)) * 0.05)).astype(np.float32), 16000)


def _manifest(tmp_path: Path, n: int = 40) -> Path:
    (tmp_path / "wav").mkdir()
    rows = []
    for i in range(n):
        seconds = 0.3 + (i % 7) * 0.2
        _wav(tmp_path / "wav" / f"{i}.wav", seconds)
        rows.append({"id": f"c{i}", "audio": f"wav/{i}.wav", "duration": seconds,
                     "global_captions": [f"g{i}"], "finegrained_captions": [f"f{i}a", f"f{i}b"]})
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(**kw) -> DataConfig:
    base = dict(train="", min_duration=0.1, max_duration=5.0, max_batch_seconds=3.0, num_buckets=3,
                shuffle_buffer=8, num_workers=0)
    base.update(kw)
    return DataConfig(**base)


def test_field_names_and_lhotse_cuts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a cut's relative source resolves against the working directory, as in Lhotse
    _wav(tmp_path / "a.wav", 2.0)
    cut = {"id": "cut1", "start": 0.5, "duration": 1.0, "channel": 0, "type": "MonoCut",
           "recording": {"id": "r", "sources": [{"type": "file", "channels": [0], "source": "a.wav"}],
                         "sampling_rate": 16000, "num_samples": 32000, "duration": 2.0},
           "supervisions": [{"id": "s", "start": 0, "duration": 1.0, "text": "hello",
                             "custom": {"short_captions": ["A calm man."], "long_captions": ["He speaks calmly."]}}]}
    fcaps = {"id": "r2", "audio": "a.wav", "short_captions": "Short.", "long_captions": ["Long one.", "Long two."]}
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(cut) + "\n" + json.dumps(fcaps) + "\n")
    clips = list(iter_clips(str(path)))
    assert [c["id"] for c in clips] == ["cut1", "r2"]
    assert clips[0]["global_captions"] == ["A calm man."] and clips[0]["finegrained_captions"] == ["He speaks calmly."]
    assert clips[0]["path"] == str(tmp_path / "a.wav") and clips[0]["start"] == 0.5 and clips[0]["end"] == 1.5
    assert abs(clips[0]["duration"] - 1.0) < 1e-9
    assert clips[1]["global_captions"] == ["Short."] and abs(clips[1]["duration"] - 2.0) < 1e-3  # from the header
    lens = [n for b in make_loader(BatchPlan(str(path), _cfg(), 0, 0, shuffle=False), 0) for n in b["feat_lens"].tolist()]
    assert sorted(lens) == [100, 200]  # the 1 s segment of the cut, the whole 2 s file


def test_unusable_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", 1.0)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    lines = [json.dumps({"id": "ok", "audio": "a.wav", "caption": "fine"}), "{not json",
             json.dumps({"id": "nocap", "audio": "a.wav"}), json.dumps({"id": "missing", "audio": "nope.wav", "caption": "x"}),
             json.dumps({"id": "bad", "audio": "broken.wav", "duration": 1.0, "caption": "x"}),
             json.dumps({"id": "long", "audio": "a.wav", "duration": 99.0, "caption": "x"})]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    skips = SkipCounter()
    plan = BatchPlan(str(path), _cfg(), 0, 0, skips=skips)
    batches = list(make_loader(plan, 0))
    kept = [c["id"] for b in batches for c in b["clips"]]
    undecodable = [s[0] for b in batches for s in b["skipped"]]
    assert kept == ["ok"] and undecodable == ["bad"]
    assert skips.counts == {"unreadable row": 1, "unusable row": 2, "duration filter": 1}
    assert clip_from_record({"id": "x", "_path": "a.wav", "caption": "c", "duration": 1})["finegrained_captions"] == ["c"]


def test_batches_bounded_bucketed_sharded_and_seeded(tmp_path: Path) -> None:
    path = str(_manifest(tmp_path))
    cfg = _cfg()
    plan = list(BatchPlan(path, cfg, seed=1, epoch=0))
    for n, batch in enumerate(plan):
        assert sum(c["duration"] for c in batch) <= cfg.max_batch_seconds + 1e-9 or len(batch) == 1
        durs = [c["duration"] for c in batch]
        if n < len(plan) - cfg.num_buckets:  # the last ones pack the buckets' leftovers together
            assert max(durs) - min(durs) <= (cfg.max_duration - cfg.min_duration) / cfg.num_buckets
    ids = [c["id"] for b in plan for c in b]
    assert sorted(ids) == sorted(f"c{i}" for i in range(40))
    assert [[c["id"] for c in b] for b in BatchPlan(path, cfg, 1, 0)] == [[c["id"] for c in b] for b in plan]
    assert [c["id"] for b in BatchPlan(path, cfg, 1, 1) for c in b] != ids  # reshuffled each epoch
    shards = [[c["id"] for b in BatchPlan(path, cfg, 1, 0, rank=r, world=3) for c in b] for r in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids) and not set(shards[0]) & set(shards[1])
    tail = list(BatchPlan(path, cfg, 1, 0, skip_batches=3))
    assert [[c["id"] for c in b] for b in tail] == [[c["id"] for c in b] for b in plan[3:]]


def test_workers_give_the_same_batches_in_order(tmp_path: Path) -> None:
    path = str(_manifest(tmp_path, 20))
    one = [b["feats"] for b in make_loader(BatchPlan(path, _cfg(), 0, 0), 0)]
    two = [b["feats"] for b in make_loader(BatchPlan(path, _cfg(), 0, 0), 2)]
    assert len(one) == len(two) and all(torch.equal(a, b) for a, b in zip(one, two))


def test_group_key_puts_a_speakers_clips_in_one_batch(tmp_path: Path) -> None:
    (tmp_path / "wav").mkdir()
    _wav(tmp_path / "wav" / "a.wav", 0.5)
    rows = [{"id": f"c{i}", "audio": "wav/a.wav", "duration": 0.5, "speaker": f"s{i % 5}", "caption": f"g{i}"}
            for i in range(40)]
    speaker = {r["id"]: r["speaker"] for r in rows}

    def plan(extra: list[dict], **kw) -> list[list[str]]:
        path = tmp_path / "m.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
        return [[c["id"] for c in b] for b in BatchPlan(str(path), _cfg(max_batch_seconds=2.0, shuffle_buffer=40, **kw), 3, 0)]

    grouped = plan([], group_key="speaker", group_size=4)
    assert all(len({speaker[i] for i in b}) == 1 for b in grouped)  # runs of 4 clips of 0.5 s = one batch
    assert sorted(sum(grouped, [])) == sorted(speaker)
    assert grouped == plan([], group_key="speaker", group_size=4)  # deterministic
    assert any(len({speaker[i] for i in b}) > 1 for b in plan([]))  # without a group key: mixed
    loner = {"id": "loner", "audio": "wav/a.wav", "duration": 0.5, "caption": "x"}  # no speaker field
    assert sorted(sum(plan([loner], group_key="speaker", group_size=4), [])) == sorted([*speaker, "loner"])
    import pytest

    from clsp.errors import ConfigError
    from clsp.train.data import check_group_key

    check_group_key(str(tmp_path / "m.jsonl"), "speaker")  # some records have it
    with pytest.raises(ConfigError, match=r"data.group_key: no record .* has a 'speakr' field, .*fields there: "
                                          r"audio, caption, duration, id, speaker"):
        check_group_key(str(tmp_path / "m.jsonl"), "speakr")


def test_a_skipped_row_counts_once_however_many_epochs_meet_it():
    from clsp.train.data import SkipCounter

    skips = SkipCounter()
    for _ in range(3):  # three epochs over the same three bad rows
        for row in ("a", "b", "c"):
            skips.skip(row, "no captions", "unusable row")
    skips.skip("a", "unreadable", "unreadable row")
    assert skips.total == 4 and dict(skips.counts) == {"unusable row": 3, "unreadable row": 1}


def test_the_buckets_leftovers_share_batches_so_no_long_clip_trains_alone(tmp_path: Path) -> None:
    """A small fine-tuning set gave a batch of one clip (its longest) every epoch: each bucket's
    last batch went out on its own, so half the steps had no negatives."""
    (tmp_path / "wav").mkdir()
    rows = []
    for i, seconds in enumerate([0.5] * 11 + [4.0]):
        _wav(tmp_path / "wav" / f"{i}.wav", seconds)
        rows.append({"id": f"c{i}", "audio": f"wav/{i}.wav", "duration": seconds, "global_captions": [f"g{i}"]})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(max_batch_seconds=20.0, num_buckets=4)
    for epoch in range(3):
        plan = list(BatchPlan(str(tmp_path / "m.jsonl"), cfg, seed=1, epoch=epoch))
        assert [len(b) for b in plan] == [12], plan  # 9.5 s fits one batch
    tight = list(BatchPlan(str(tmp_path / "m.jsonl"), _cfg(max_batch_seconds=5.0, num_buckets=4), seed=1, epoch=0))
    assert sorted(c["id"] for b in tight for c in b) == sorted(r["id"] for r in rows)
    assert all(sum(c["duration"] for c in b) <= 5.0 + 1e-9 for b in tight) and min(len(b) for b in tight) >= 2
