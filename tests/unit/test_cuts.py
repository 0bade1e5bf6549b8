"""Lhotse cuts are read and decoded by Lhotse: channels, multi-source recordings, relative paths,
command sources, mixes and padding give the samples Lhotse gives, checked against the signals
the cuts were made from."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clsp.errors import AudioError
from clsp.record_audio import load_record_audio, record_segment
from clsp.records import iter_items

SR = 16000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)  # swelling as syllables


def recording(rid: str, sources: list[dict], n: int = SR, channels=(0,)) -> dict:
    return {"id": rid, "sources": sources, "sampling_rate": SR, "num_samples": n, "duration": n / SR,
            "channel_ids": list(channels)}


def mono_cut(cid: str, rec: dict, channel: int = 0, start: float = 0.0, duration: float | None = None, **extra) -> dict:
    return {"id": cid, "start": start, "duration": duration if duration is not None else rec["duration"] - start,
            "channel": channel, "supervisions": [], "recording": rec, "type": "MonoCut", **extra}


def read(tmp_path: Path, cuts: list[dict]) -> dict:
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in cuts)
    return {it.id: it for it in iter_items(path, "audio")}


@pytest.fixture
def signals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    left, right = tone(220), tone(330)
    sf.write("L.wav", left, SR)
    sf.write("R.wav", right, SR)
    sf.write("stereo.wav", np.stack([left, right], axis=1), SR)
    return left, right


def test_channel_of_an_interleaved_stereo_file(tmp_path, signals):
    left, right = signals
    rec = recording("st", [{"type": "file", "channels": [0, 1], "source": "stereo.wav"}], channels=(0, 1))
    items = read(tmp_path, [mono_cut("c0", rec, 0), mono_cut("c1", rec, 1)])
    np.testing.assert_allclose(load_record_audio(items["c0"].record).numpy(), left, atol=1e-4)
    np.testing.assert_allclose(load_record_audio(items["c1"].record).numpy(), right, atol=1e-4)


def test_channel_of_a_recording_with_one_file_per_channel(tmp_path, signals):
    left, right = signals
    rec = recording("two", [{"type": "file", "channels": [0], "source": "L.wav"},
                            {"type": "file", "channels": [1], "source": "R.wav"}], channels=(0, 1))
    items = read(tmp_path, [mono_cut("c0", rec, 0), mono_cut("c1", rec, 1)])
    np.testing.assert_allclose(load_record_audio(items["c1"].record).numpy(), right, atol=1e-4)
    assert items["c1"].record["audio"] == str(tmp_path / "R.wav")  # the file the channel comes from
    assert items["c0"].record["audio"] == str(tmp_path / "L.wav")


def test_relative_sources_resolve_against_the_working_directory_as_in_lhotse(tmp_path, signals):
    left, _ = signals
    (tmp_path / "manifests").mkdir()
    rec = recording("l", [{"type": "file", "channels": [0], "source": "L.wav"}])
    path = tmp_path / "manifests" / "cuts.jsonl"
    path.write_text(json.dumps(mono_cut("c", rec, start=0.25, duration=0.5)) + "\n")
    (item,) = iter_items(path, "audio")
    assert item.record["audio"] == str(tmp_path / "L.wav")
    np.testing.assert_allclose(load_record_audio(item.record).numpy(), left[4000:12000], atol=1e-4)
    assert record_segment(item.record) == (0.0, 8000)


def test_audio_root_applies_to_relative_cut_sources_and_mix_tracks(tmp_path, signals):
    from lhotse import Recording

    left, right = signals
    (tmp_path / "project").mkdir()
    sf.write(tmp_path / "project" / "L.wav", right, SR)  # same name, other audio, under the root
    sf.write(tmp_path / "project" / "R.wav", left, SR)
    rec = recording("l", [{"type": "file", "channels": [0], "source": "L.wav"}])
    mixed = Recording.from_file("L.wav").to_cut().mix(Recording.from_file("R.wav").to_cut()).to_dict()
    path = tmp_path / "cuts.jsonl"
    path.write_text(json.dumps(mono_cut("c", rec)) + "\n" + json.dumps(mixed) + "\n")
    cut, mix = iter_items(path, "audio", audio_root=tmp_path / "project")
    assert cut.record["audio"] == str(tmp_path / "project" / "L.wav")
    np.testing.assert_allclose(load_record_audio(cut.record).numpy(), right, atol=1e-4)
    assert mix.record["audio_files"] == [str(tmp_path / "project" / f) for f in ("L.wav", "R.wav")]
    # without --audio-root the same manifest reads the working directory's files, as Lhotse does
    cut, _ = iter_items(path, "audio")
    np.testing.assert_allclose(load_record_audio(cut.record).numpy(), left, atol=1e-4)


def test_command_source(tmp_path, signals):
    if shutil.which("sox") is None:
        pytest.skip("needs sox")
    _, right = signals
    rec = recording("cmd", [{"type": "command", "channels": [0], "source": "sox R.wav -t wav -"}])
    (item,) = read(tmp_path, [mono_cut("c", rec)]).values()
    assert item.record["audio"] == "command:sox R.wav -t wav -"
    np.testing.assert_allclose(load_record_audio(item.record).numpy(), right, atol=1e-4)


def test_mixed_cut_with_padding(tmp_path, signals):
    from lhotse import Recording

    left, right = signals
    a, b = Recording.from_file("L.wav").to_cut(), Recording.from_file("R.wav").to_cut()
    mixed = a.mix(b, offset_other_by=0.25, allow_padding=True).pad(duration=1.5)  # MixedCut with a PaddingCut track
    (item,) = read(tmp_path, [mixed.to_dict()]).values()
    wave = load_record_audio(item.record).numpy()
    expected = np.zeros(int(1.5 * SR), dtype=np.float32)
    expected[:SR] += left
    expected[4000:4000 + SR] += right
    assert wave.shape == expected.shape
    np.testing.assert_allclose(wave, expected, atol=1e-4)
    assert record_segment(item.record) == (0.0, int(1.5 * SR))
    # the record says what was heard: a mix of both files, no start/end of one of them
    assert item.record["audio"] == f"mix:{mixed.id}" and item.record["duration"] == 1.5
    assert item.record["audio_files"] == sorted(str(tmp_path / f) for f in ("L.wav", "R.wav"))
    assert "start" not in item.record and "end" not in item.record
    # every command reads it: caption measures the mix (plain records and cuts written back)
    from typer.testing import CliRunner

    from clsp_cli.app import app

    res = CliRunner().invoke(app, ["caption", str(tmp_path / "cuts.jsonl.gz"), "-o", str(tmp_path / "cap.jsonl")])
    assert res.exit_code == 0, res.output
    [out] = [json.loads(x) for x in (tmp_path / "cap.jsonl").read_text().splitlines()]
    assert out["id"] == mixed.id and out["global_captions"] and out["audio"] == f"mix:{mixed.id}"
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "cuts.jsonl.gz"), "--as-cuts", "-o", str(tmp_path / "c.jsonl")])
    [out] = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert res.exit_code == 3 and "MonoCut/MultiCut only, not a MixedCut" in out["error"]["message"]


def test_supervision_fields_and_a_bad_cut(tmp_path, signals):
    rec = recording("l", [{"type": "file", "channels": [0], "source": "L.wav"}])
    cut = mono_cut("c", rec)
    cut["supervisions"] = [{"id": "s", "recording_id": "l", "start": 0.0, "duration": 1.0, "speaker": "spk1",
                            "text": "hello", "custom": {"global_captions": ["A calm voice."]}}]
    missing = mono_cut("gone", recording("g", [{"type": "file", "channels": [0], "source": "gone.wav"}]))
    items = read(tmp_path, [cut, missing, {"id": "broken", "type": "MonoCut", "duration": 1.0}])
    rec0 = items["c"].record
    assert (rec0["speaker"], rec0["transcript"], rec0["global_captions"]) == ("spk1", "hello", ["A calm voice."])
    with pytest.raises(AudioError, match="gone"):
        load_record_audio(items["gone"].record)
    assert items["broken"].error is not None and "Lhotse" in str(items["broken"].error)


def test_shar_folder_as_input(tmp_path, signals):
    from lhotse import CutSet, Recording

    from clsp.inputs import iter_source_items, plan_sources

    left, right = signals
    cuts = CutSet.from_cuts([Recording.from_file("L.wav").to_cut(), Recording.from_file("R.wav").to_cut()])
    (tmp_path / "shar").mkdir()
    cuts.to_shar(tmp_path / "shar", fields={"recording": "wav"}, shard_size=1)
    sources = plan_sources([str(tmp_path / "shar")])
    assert [s.kind for s in sources] == ["shar"]
    items = list(iter_source_items(sources))
    assert [it.index for it in items] == [0, 1] and all(it.ok for it in items)
    waves = [load_record_audio(it.record).numpy() for it in items]
    np.testing.assert_allclose(waves[0], left, atol=1e-4)
    np.testing.assert_allclose(waves[1], right, atol=1e-4)
    assert items[0].record["audio"].startswith("memory:")


def test_caption_writes_cuts_back_with_captions_in_the_supervisions(tmp_path, signals):
    from lhotse.serialization import deserialize_item
    from typer.testing import CliRunner

    from clsp.train.data import clip_from_record
    from clsp_cli.app import app

    rec = recording("st", [{"type": "file", "channels": [0, 1], "source": "stereo.wav"}], channels=(0, 1))
    cut = mono_cut("c1", rec, 1)
    cut["supervisions"] = [{"id": "s1", "recording_id": "st", "start": 0.0, "duration": 1.0, "channel": 1,
                            "speaker": "spk", "custom": {"accent": "Scottish"}}]
    (tmp_path / "cuts.jsonl").write_text(json.dumps(cut) + "\n" + json.dumps({"id": "plain", "audio": "L.wav"}) + "\n")
    res = CliRunner().invoke(app, ["caption", str(tmp_path / "cuts.jsonl"), "--as-cuts", "-o", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [c["id"] for c in out] == ["c1", "plain"]
    for c in out:
        lhotse_cut = deserialize_item(json.loads(json.dumps(c)))  # Lhotse reads what we wrote (it pops keys)
        custom = lhotse_cut.supervisions[0].custom
        assert custom["global_captions"] and custom["finegrained_captions"] and custom["caption_provenance"]
    assert out[0]["channel"] == 1 and out[0]["supervisions"][0]["custom"]["accent"] == "Scottish"
    assert out[1]["recording"]["sources"][0]["source"].endswith("L.wav")
    # ... and clsp train reads the captions from them
    (tmp_path / "out2.jsonl").write_text("".join(json.dumps(c) + "\n" for c in out))
    items = list(iter_items(tmp_path / "out2.jsonl", "audio"))
    clip = clip_from_record(items[0].record)
    assert clip["global_captions"] == out[0]["supervisions"][0]["custom"]["global_captions"]
    assert clip["cut"] is not None


def test_output_records_say_which_channel_or_files_were_heard(tmp_path, signals):
    left, right = signals
    stereo = recording("st", [{"type": "file", "channels": [0, 1], "source": "stereo.wav"}], channels=(0, 1))
    split = recording("lr", [{"type": "file", "channels": [0], "source": "L.wav"},
                             {"type": "file", "channels": [1], "source": "R.wav"}], channels=(0, 1))
    multi = {**mono_cut("both", split), "channel": [0, 1], "type": "MultiCut"}
    items = read(tmp_path, [mono_cut("c1", stereo, 1), mono_cut("l", split, 0), multi])
    c1 = items["c1"].record
    assert c1["channel"] == 1 and "audio_files" not in c1
    # the output record alone reads the same samples as the cut
    plain = {k: v for k, v in c1.items() if not k.startswith("_")}
    plain["_path"] = plain["audio"]
    np.testing.assert_allclose(load_record_audio(plain).numpy(), load_record_audio(c1).numpy(), atol=1e-6)
    assert "channel" not in items["l"].record and "audio_files" not in items["l"].record  # a mono file
    assert items["both"].record["audio_files"] == [str(tmp_path / "L.wav"), str(tmp_path / "R.wav")]


def test_a_captioned_cut_covers_the_segment_and_channel_that_were_captioned(tmp_path, signals):
    from clsp.cuts import captioned_cut

    left, right = signals
    base = {"_path": str(tmp_path / "stereo.wav"), "audio": "stereo.wav"}
    cut = captioned_cut({**base, "id": "r", "channel": 1, "start": 0.2, "duration": 0.5}, {"global_captions": ["x"]})
    assert (cut["type"], cut["channel"], cut["start"], cut["duration"]) == ("MonoCut", 1, 0.2, 0.5)
    back = read(tmp_path, [cut])["r"].record
    np.testing.assert_allclose(load_record_audio(back).numpy(), right[3200:11200], atol=1e-4)
    both = captioned_cut({**base, "id": "m"}, {"global_captions": ["x"]})
    assert both["type"] == "MultiCut" and both["channel"] == [0, 1]


def test_a_cut_of_several_voices_is_an_error_record_not_one_caption(tmp_path, signals):
    """Supervisions naming two speakers, or overlapping in time, are refused (one error record
    each); several supervisions of one speaker, one after another, are captioned as one voice."""
    from typer.testing import CliRunner

    from clsp.cuts import several_voices
    from clsp_cli.app import app

    rec = recording("L", [{"type": "file", "channels": [0], "source": "L.wav"}])

    def sup(sid, start, dur, speaker=None):
        return {"id": sid, "recording_id": "L", "start": start, "duration": dur, "channel": 0,
                **({"speaker": speaker} if speaker else {})}

    two = mono_cut("two", rec, supervisions=[sup("a", 0.0, 0.5, "A"), sup("b", 0.5, 0.5, "B")])
    overlap = mono_cut("overlap", rec, supervisions=[sup("a", 0.0, 0.6), sup("b", 0.4, 0.6)])
    turns = mono_cut("turns", rec, supervisions=[sup("a", 0.0, 0.5, "A"), sup("b", 0.5, 0.5, "A")])
    assert "2 speakers (A, B)" in several_voices(two) and "overlap in time" in several_voices(overlap)
    assert several_voices(turns) is None
    (tmp_path / "cuts.jsonl").write_text("".join(json.dumps(c) + "\n" for c in (two, overlap, turns)))
    for extra in ([], ["--as-cuts"]):
        res = CliRunner().invoke(app, ["caption", str(tmp_path / "cuts.jsonl"), *extra, "-o", str(tmp_path / "o.jsonl")])
        assert res.exit_code == 3, res.output
        out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
        assert [c["id"] for c in out] == ["two", "overlap", "turns"]
        assert "trim-to-supervisions" in out[0]["error"]["message"] and "overlap" in out[1]["error"]["message"]
        assert "error" not in out[2]
        (tmp_path / "o.jsonl").unlink()


def test_supervisions_outside_the_cut_lend_it_nothing(tmp_path, signals):
    """A windowed cut keeps supervisions of speech before or after it: their speaker, gender
    and captions are not its own, and they do not make it two voices."""
    from clsp.cuts import captioned_cut, several_voices

    rec = recording("L", [{"type": "file", "channels": [0], "source": "L.wav"}])
    before = {"id": "s0", "recording_id": "L", "start": -0.6, "duration": 0.5, "channel": 0, "speaker": "A",
              "gender": "female", "custom": {"global_captions": ["a woman laughing"]}}
    inside = {"id": "s1", "recording_id": "L", "start": 0.1, "duration": 0.3, "channel": 0, "speaker": "B",
              "gender": "male"}
    after = {**before, "id": "s2", "start": 0.5}
    lone = mono_cut("lone", rec, start=0.5, duration=0.4, supervisions=[before, after])
    mixed = mono_cut("mixed", rec, start=0.5, duration=0.4, supervisions=[before, inside])
    items = read(tmp_path, [lone, mixed])
    assert "speaker" not in items["lone"].record and "global_captions" not in items["lone"].record
    assert (items["mixed"].record["speaker"], items["mixed"].record["gender"]) == ("B", "male")
    assert several_voices(mixed) is None
    cut = captioned_cut(items["lone"].record, {"global_captions": ["x"]})  # first, where recipes read captions
    assert [s["id"] for s in cut["supervisions"]] == ["lone", "s0", "s2"]
    assert cut["supervisions"][0]["custom"]["global_captions"] == ["x"]
    assert cut["supervisions"][1]["custom"] == {"global_captions": ["a woman laughing"]}
    cut = captioned_cut(items["mixed"].record, {"global_captions": ["y"]})
    assert [s["id"] for s in cut["supervisions"]] == ["s1", "s0"]
    assert cut["supervisions"][0]["custom"]["global_captions"] == ["y"]


def test_a_cut_past_its_recording_end_says_so_in_one_line(tmp_path, signals):
    rec = recording("L", [{"type": "file", "channels": [0], "source": "L.wav"}])
    items = read(tmp_path, [mono_cut("past", rec, start=0.5, duration=2.0)])
    with pytest.raises(AudioError) as err:
        load_record_audio(items["past"].record)
    msg = str(err.value)
    assert "spans 0.500-2.500 s of recording 'L', which holds 1.000 s" in msg
    assert "\n" not in msg and "extra info" not in msg


def test_a_cut_starting_outside_its_recording_is_an_error_record_up_front(tmp_path, signals):
    """A negative start (Lhotse decodes from 0 and the record said start -0.5, which no
    reader accepts back) or a start past the recording's end: an error record naming the cut
    and why, in every command, before any decoding."""
    from typer.testing import CliRunner

    from clsp_cli.app import app

    rec = recording("L", [{"type": "file", "channels": [0], "source": "L.wav"}])
    cuts = [mono_cut("neg", rec, start=-0.5, duration=1.0), mono_cut("late", rec, start=1.5, duration=0.5),
            mono_cut("ok", rec, start=0.25, duration=0.5)]
    items = read(tmp_path, cuts)
    assert "cut 'neg': its start -0.500 s is negative" in str(items["neg"].error)
    assert "cut 'late': its start 1.500 s is at or past the end of recording 'L'" in str(items["late"].error)
    assert items["ok"].ok
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cuts))
    for cmd in (["embed", "-m", "tiny-random"], ["classify", "-m", "tiny-random"], ["caption"]):
        res = CliRunner().invoke(app, [cmd[0], str(tmp_path / "c.jsonl"), *cmd[1:], "-q", "-o", str(tmp_path / "o.jsonl")])
        assert res.exit_code == 3, (cmd, res.output)
        out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
        assert [r["id"] for r in out] == ["neg", "late", "ok"]
        assert "negative" in out[0]["error"]["message"] and "past the end" in out[1]["error"]["message"]
        assert "error" not in out[2] and out[2]["start"] == 0.25
        (tmp_path / "o.jsonl").unlink()


def test_cuts_that_are_no_segment_of_one_file_are_named_as_mixes(tmp_path, signals):
    """A MultiCut of channels in separate files (averaged), and a cut Lhotse speed-, volume- or
    rate-changes as it reads it, were written as {"audio": first file, "start", "end"}: read
    back, that record decoded another audio (one channel's file, the untouched file). They are
    named "mix:ID" as mixes are, with their files and transforms; read back they fail, naming why."""
    from lhotse.serialization import deserialize_item

    from clsp.records import public_fields

    split = recording("lr", [{"type": "file", "channels": [0], "source": "L.wav"},
                             {"type": "file", "channels": [1], "source": "R.wav"}], channels=(0, 1))
    multi = {**mono_cut("both", split), "channel": [0, 1], "type": "MultiCut"}
    rec = recording("L", [{"type": "file", "channels": [0], "source": "L.wav"}])
    plain = deserialize_item(json.loads(json.dumps(mono_cut("plain", rec))))  # Lhotse pops keys of what it reads
    fast = plain.perturb_speed(1.5).to_dict()
    loud = {**plain.perturb_volume(0.5).to_dict(), "id": "loud"}
    narrow = {**plain.resample(8000).to_dict(), "id": "narrow"}
    # Lhotse decodes an MP3 cut with the encoder/decoder delay a plain record's segment has removed
    on_mp3 = mono_cut("onmp3", recording("M", [{"type": "file", "channels": [0], "source": "M.mp3"}]))
    items = read(tmp_path, [multi, fast, loud, narrow, mono_cut("plain", rec), on_mp3])
    assert items["onmp3"].record["audio"] == "mix:onmp3" and items["onmp3"].record["audio_files"] == [str(tmp_path / "M.mp3")]
    both = items["both"].record
    assert (both["audio"], both["audio_files"]) == ("mix:both", [str(tmp_path / "L.wav"), str(tmp_path / "R.wav")])
    assert "start" not in both and "end" not in both and both["duration"] == 1.0
    for cid, name in ((fast["id"], "Speed"), ("loud", "Volume"), ("narrow", "Resample")):
        r = items[cid].record
        assert r["audio"] == f"mix:{cid}" and r["audio_files"] == [str(tmp_path / "L.wav")], r
        assert [t["name"] for t in r["transforms"]] == [name] and "start" not in r
    assert items[fast["id"]].record["transforms"][0]["kwargs"] == {"factor": 1.5}
    assert items["plain"].ok, items["plain"].error
    assert items["plain"].record["audio"] == str(tmp_path / "L.wav")  # untouched: a segment of its file
    # clsp still reads the cut's own audio (Lhotse's): the speed-changed one is shorter
    assert load_record_audio(items[fast["id"]].record).numel() == pytest.approx(SR / 1.5, abs=2)
    # an output record read back is no file segment: refused, not decoded as L.wav
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(public_fields(items[c].record)) + "\n" for c in ("both", fast["id"], "loud")))
    for item in iter_items(out, "audio"):
        with pytest.raises(AudioError, match="no such file"):
            load_record_audio(item.record)


def test_a_mixed_cut_lends_the_fields_of_its_first_heard_supervision(tmp_path, signals):
    """A MixedCut keeps its supervisions in its tracks (Lhotse's ``cut.supervisions``): the
    first one heard gives the record its fields, as a MonoCut's does."""
    from lhotse import Recording, SupervisionSegment

    def voiced(name, speaker, emotion):
        cut = Recording.from_file(name).to_cut()
        cut.supervisions = [SupervisionSegment(f"{speaker}-s", cut.recording_id, 0.0, cut.duration, speaker=speaker,
                                               gender="female", language="German", text="hallo",
                                               custom={"emotion": emotion})]
        return cut

    mixed = voiced("L.wav", "spk1", "anger").mix(voiced("R.wav", "spk2", "fear"), offset_other_by=0.2)
    late = voiced("L.wav", "spk3", "joy").pad(duration=0.3, direction="left")  # its voice starts 0.3 s in
    items = read(tmp_path, [mixed.to_dict(), late.to_dict()])
    rec = items[mixed.id].record
    assert rec["audio"] == f"mix:{mixed.id}"
    assert (rec["speaker"], rec["gender"], rec["language"], rec["transcript"], rec["emotion"]) == (
        "spk1", "female", "German", "hallo", "anger")
    assert (items[late.id].record["speaker"], items[late.id].record["emotion"]) == ("spk3", "joy")
