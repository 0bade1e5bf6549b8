import gzip
import json

from clsp.records import iter_items


def test_items_one_per_line_with_errors(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"id": "a", "audio": "x.wav"}\n\n{bad json\n\xff\xfe\n{"id": "b"}\nplain.wav\n[1,2]\n')
    items = list(iter_items(p, "audio"))
    assert [it.ok for it in items] == [True, False, False, False, True, False]
    assert items[0].record["_path"] == str(tmp_path / "x.wav")
    assert "invalid JSON" in str(items[1].error)
    assert "UTF-8" in str(items[2].error)
    assert items[3].id == "b" and "'audio'" in str(items[3].error)
    assert items[4].record["id"] == "plain.wav"


def test_lhotse_cuts_gz(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")  # Lhotse resolves a relative source against the working directory
    cut = {"id": "cut1", "start": 1.0, "duration": 2.0, "channel": 0, "type": "MonoCut",
           "recording": {"id": "r", "sources": [{"type": "file", "channels": [0], "source": "a/b.wav"}],
                         "sampling_rate": 16000, "num_samples": 64000, "duration": 4.0},
           "supervisions": [{"id": "s", "speaker": "spk", "gender": "female", "custom": {"short_captions": ["x"]}}]}
    p = tmp_path / "cuts.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(json.dumps(cut) + "\n")
    (item,) = list(iter_items(p, "audio"))
    assert item.record["start"] == 1.0 and item.record["end"] == 3.0
    assert item.record["_path"] == str(tmp_path.parent / "a/b.wav")
    assert item.record["gender"] == "female" and item.record["short_captions"] == ["x"]


def test_text_lines(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("a calm voice\n{\"id\": \"q\", \"text\": \"fast speech\"}\n")
    items = list(iter_items(p, "text"))
    assert items[0].record == {"id": "line-1", "text": "a calm voice"}
    assert items[1].record["id"] == "q"


def test_numbers_beyond_the_float_range_are_record_errors(tmp_path):
    path = tmp_path / "m.jsonl"
    digits = "1" + "0" * 5000
    path.write_text('{"id": "a", "audio": "x.wav", "snr": 1e400}\n{"id": "b", "audio": "x.wav", "n": %s}\n'
                    '{"id": "c", "audio": "x.wav", "start": 1e308}\n' % digits)
    items = list(iter_items(str(path), "audio"))
    assert [i.ok for i in items] == [False, False, True]
    assert "beyond the float range" in str(items[0].error) and "line 2" in str(items[1].error)


def test_a_start_past_the_end_is_named_and_an_empty_segment_not_a_crash(tmp_path):
    import re

    import numpy as np
    import pytest
    import soundfile as sf

    from clsp.audio import load_audio
    from clsp.errors import AudioError

    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 16000)
    for start, end in ((1e308, None), (0.5, None), (2.0, 3.0), (0.6, 0.9)):  # the start is what is past the end
        with pytest.raises(AudioError, match=re.escape(f"start={start} is at or past the end of the file (0.500 s)")):
            load_audio(tmp_path / "a.wav", start=start, end=end)
    with pytest.raises(AudioError, match=r"empty segment \(start=0\.3, end=0\.2"):
        load_audio(tmp_path / "a.wav", start=0.3, end=0.2)
    with pytest.raises(AudioError, match="past the end of the file"):  # as a Lhotse cut past its recording
        load_audio(tmp_path / "a.wav", end=1e308)
    assert load_audio(tmp_path / "a.wav", end=0.52).numel() == 8000  # within 25 ms of the end: the whole file
    with pytest.raises(AudioError, match=r"end=0\.53 is past the end of the file \(0\.500 s\)"):
        load_audio(tmp_path / "a.wav", start=0.1, end=0.53)


def test_a_duration_past_the_end_reads_to_the_end_an_explicit_end_does_not(tmp_path):
    import numpy as np
    import pytest
    import soundfile as sf

    from clsp.errors import AudioError
    from clsp.record_audio import load_record_audio, record_segment

    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 16000)
    path = str(tmp_path / "a.wav")
    # a speed-perturbed copy that kept its source's duration: the whole (shorter) file
    stale = {"audio": path, "_path": path, "duration": 0.7}
    assert load_record_audio(stale).numel() == 8000 and record_segment(stale) == (0.0, 8000)
    assert load_record_audio({**stale, "start": 0.25}).numel() == 4000
    with pytest.raises(AudioError, match="past the end of the file"):
        record_segment({"audio": path, "_path": path, "end": 0.7})


def test_a_wav_cut_short_of_its_header_is_named_and_a_streamed_wav_is_not(tmp_path):
    import struct

    import numpy as np
    import pytest
    import soundfile as sf

    from clsp.audio import load_audio
    from clsp.errors import AudioError

    sf.write(tmp_path / "a.wav", np.full(16000, 0.1, dtype=np.float32), 16000, subtype="PCM_16")
    whole = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:5000])
    with pytest.raises(AudioError, match="truncated: its header announces 32000 bytes of audio, the file holds 4956"):
        load_audio(tmp_path / "cut.wav")
    streamed = bytearray(whole)  # sizes unknown when written to a pipe: the placeholder, all data there
    at = streamed.find(b"data")
    streamed[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    streamed[4:8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert load_audio(tmp_path / "streamed.wav").numel() == 16000
    unfinished = bytearray(whole)  # a header never finished: sizes 0, all data there
    unfinished[at + 4 : at + 8] = struct.pack("<I", 0)
    unfinished[4:8] = struct.pack("<I", 0)
    (tmp_path / "unfinished.wav").write_bytes(bytes(unfinished))
    with pytest.raises(AudioError, match="announces 0 bytes of audio, but 32000 bytes follow.*sox --ignore-length"):
        load_audio(tmp_path / "unfinished.wav")
    (tmp_path / "header.wav").write_bytes(whole[:30])
    with pytest.raises(AudioError, match="30 bytes, shorter than a WAV header"):
        load_audio(tmp_path / "header.wav")
    (tmp_path / "empty-data.wav").write_bytes(bytes(unfinished[:44]))  # sizes 0 and nothing follows
    with pytest.raises(AudioError, match="no audio samples$"):
        load_audio(tmp_path / "empty-data.wav")
    info = b"LIST" + struct.pack("<I", 20) + b"INFOISFT" + struct.pack("<I", 8) + b"clsp\0\0\0\0"
    (tmp_path / "empty-with-list.wav").write_bytes(bytes(unfinished[:44]) + info)  # an empty recording, tagged
    with pytest.raises(AudioError, match="no audio samples$"):
        load_audio(tmp_path / "empty-with-list.wav")


def test_pretty_printed_json_and_arrays_are_named_with_the_fix(tmp_path):
    import pytest

    from clsp.errors import ConfigError

    pretty = tmp_path / "p.json"
    pretty.write_text('\n[\n  {"id": "a", "audio": "a.wav"}\n]\n')
    with pytest.raises(ConfigError, match="pretty-printed JSON.*line 2.*jq"):
        list(iter_items(str(pretty), "audio"))
    array = tmp_path / "a.json"
    array.write_text('[{"id": "a", "audio": "a.wav"}, {"id": "b", "audio": "b.wav"}]\n')
    (item,) = list(iter_items(str(array), "audio"))
    assert "a JSON array, not a record" in str(item.error)
    listed = tmp_path / "l.txt"  # bare paths that start with '[' or '{' stay paths
    listed.write_text("[take1] a.wav\n{b}.wav\n")
    (tmp_path / "[take1] a.wav").write_bytes(b"")
    (tmp_path / "{b}.wav").write_bytes(b"")
    assert [i.record["id"] for i in iter_items(str(listed), "audio")] == ["[take1] a.wav", "{b}.wav"]


def test_override_values_keep_stdin_and_hashes_as_text():
    import pytest

    from clsp.errors import ConfigError
    from clsp.train.config import TrainConfig, apply_overrides

    out = apply_overrides({}, ["data.train=-", "data.valid=runs/take #2.jsonl", "max_steps=5 # five",
                               'output_dir="exp/out #2"', "name='my #2'"])
    assert out == {"data": {"train": "-", "valid": "runs/take #2.jsonl"}, "max_steps": 5,
                   "output_dir": "exp/out #2", "name": "my #2"}
    with pytest.raises(ConfigError, match="stdin"):
        TrainConfig.from_dict({"init_from": "tiny-random", "data": {"train": "-"}}).validate()


def test_a_start_given_as_an_integer_beyond_the_float_range_is_an_invalid_start(tmp_path):
    import numpy as np
    import pytest
    import soundfile as sf

    from clsp.audio import load_audio
    from clsp.errors import AudioError
    from clsp.records import _may_hold_a_huge_float

    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="invalid start"):
        load_audio(tmp_path / "a.wav", start=10 ** 400)
    assert _may_hold_a_huge_float('{"x": 1E+309}') and not _may_hold_a_huge_float('{"embedding": [5e-05, 0.1]}')


def test_home_names_of_no_user_and_nul_bytes_stay_names(tmp_path):
    """'~name' of no such user, a control byte after '~' or a NUL byte in a path: one item each,
    an error record on reading the audio, never a traceback from expanding the home folder."""
    import pytest

    from clsp.audio import load_audio
    from clsp.errors import AudioError
    from clsp.records import home_path, iter_items

    lst = tmp_path / "list.txt"
    lst.write_bytes(b"~\x01\n~no-such-user-here/a.wav\n" + b'{"id": "n", "audio": "a\\u0000b.wav"}\n')
    items = list(iter_items(str(lst), "audio"))
    assert [it.ok for it in items] == [True, True, True]
    assert items[1].record["audio"] == str(tmp_path / "~no-such-user-here" / "a.wav")
    assert home_path("~no-such-user-here/x") == __import__("pathlib").Path("~no-such-user-here/x")
    with pytest.raises(AudioError, match="cannot hold a NUL byte"):
        load_audio(items[2].record["audio"])


def test_ids_are_non_empty_strings_or_integers(tmp_path):
    """An id that is empty, true/false, a float or a structure is an error record naming its
    line (it became the text 'True', or failed a whole index build); no id is the line's."""
    p = tmp_path / "e.jsonl"
    ids = ["", "  ", True, 2.5, ["x"], {"a": 1}, 7, "7b"]
    lines = [json.dumps({"id": i, "embedding": [1.0]}) for i in ids] + [json.dumps({"embedding": [1.0]}),
                                                                          json.dumps({"id": None, "embedding": [1.0]})]
    p.write_text("\n".join(lines) + "\n")
    items = list(iter_items(p, "embeddings"))
    assert [it.ok for it in items] == [False] * 6 + [True] * 4
    assert "'id' is empty" in str(items[0].error) and "'id' is empty" in str(items[1].error)
    assert "not true" in str(items[2].error) and "not 2.5" in str(items[3].error)
    assert [it.id for it in items[:3]] == ["line-1", "line-2", "line-3"]
    assert [it.id for it in items[6:]] == ["7", "7b", "line-9", "line-10"]


def test_caption_output_read_as_text_is_one_record_per_caption(tmp_path):
    """clsp caption output (captions in lists) read with --modality text: one text record per
    caption naming its clip (audio_id) and kind; the clip's own fields stay with the clip."""
    from clsp.records import split_captions

    p = tmp_path / "c.jsonl"
    recs = [{"id": "a", "audio": "a.wav", "speaker": "s1", "global_captions": ["x", "y"], "finegrained_captions": ["z"],
             "measurements": {"f0": 1}, "provenance": {"backend": "acoustic"}},
            {"id": "t", "text": "plain"}, {"id": "e", "global_captions": [" "]}, {"id": "b", "global_captions": [3]}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    items = list(split_captions(iter_items(p, "text")))
    assert [(it.index, it.id) for it in items] == [(0, "a-global0"), (1, "a-global1"), (2, "a-finegrained0"), (3, "t"),
                                                   (4, "e"), (5, "b")]
    assert items[2].record == {"id": "a-finegrained0", "text": "z", "audio_id": "a", "caption_type": "finegrained",
                               "speaker": "s1"}
    assert items[3].record["text"] == "plain"
    assert "hold no caption" in str(items[4].error) and "list of caption strings" in str(items[5].error)


def test_an_upstream_error_record_read_as_text_keeps_its_reason(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"id": "e1", "error": {"type": "AudioError", "message": "x.wav: no such file"}}) + "\n")
    (item,) = iter_items(p, "text")
    assert str(item.error) == "line 1: an upstream error record, no text: x.wav: no such file"


def test_lines_of_unicode_whitespace_are_blank_and_give_no_item(tmp_path):
    """A line of NBSP or U+3000 gave an "'id' is empty" or "empty text" error record, though
    whitespace-only lines give none."""
    p = tmp_path / "list.txt"
    p.write_bytes("a.wav\n\u00a0\n\u3000 \t\nb.wav\n\u2028\n".encode())
    assert [it.id for it in iter_items(p, "audio")] == ["a.wav", "b.wav"]
    p.write_bytes("a calm voice\n\u00a0\n\u3000\nan angry man\n".encode())
    items = list(iter_items(p, "text"))
    assert [it.record["text"] for it in items] == ["a calm voice", "an angry man"]
    assert [it.id for it in items] == ["line-1", "line-4"]  # named by their line in the file


def test_a_nul_byte_is_an_error_for_its_line_wherever_it_sits(tmp_path):
    """The whole file was refused as binary when the NUL sat in its first 4 KiB, embedded
    (NUL and all) after it or on stdin."""
    import numpy as np
    import pytest

    from clsp.errors import ConfigError
    from clsp.inputs import sniff_file

    early = tmp_path / "early.txt"
    early.write_bytes(b"a calm voice\nan angry\x00 man\na sad woman\n")
    late = tmp_path / "late.txt"
    late.write_bytes(b"".join(b"caption number %d is calm\n" % i for i in range(300)) + b"an angry\x00 man\n")
    for path, at in ((early, 2), (late, 301)):
        assert sniff_file(str(path)) == "manifest"
        for modality in ("text", "audio", "embeddings"):
            items = list(iter_items(path, modality))
            bad = [it for it in items if not it.ok]
            assert len(bad) == 1 and bad[0].id == f"line-{at}", modality
            assert f"line {at}: holds a NUL byte" in str(bad[0].error)
            assert len(items) == (3 if path is early else 301)
    blob = tmp_path / "blob.bin"  # binary data is still refused as a whole
    blob.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(64) + b"name\n" * 10)
    npy = tmp_path / "m.dat"
    np.save(open(npy, "wb"), np.ones((3, 4), np.float32))
    with pytest.raises(ConfigError, match="neither an audio file nor a text list"):
        sniff_file(str(blob))
    with pytest.raises(ConfigError, match="a NumPy .npy matrix"):
        sniff_file(str(npy))


def test_caption_lines_that_are_json_strings_numbers_or_literals_are_errors(tmp_path):
    """`jq '.text'` without -r writes "quoted" captions: they were embedded with their quotes,
    '""' as a two-character caption and 42 as the caption "42"; JSON that is not an object is
    an error record naming it, as the README says; text that only looks like JSON stays a caption."""
    p = tmp_path / "caps.txt"
    p.write_text('"a quoted caption"\n""\n42\n-1.5e3\ntrue\nnull\n"Hello," she said.\nNaN\n42 angry men\n')
    items = list(iter_items(p, "text"))
    kinds = ["a string", "a string", "a number", "a number", "true", "null"]
    for item, kind in zip(items[:6], kinds):
        assert item.error is not None and f"JSON that is not an object ({kind})" in str(item.error), item
        assert "jq -r" in str(item.error)
    assert [it.record["text"] for it in items[6:]] == ['"Hello," she said.', "NaN", "42 angry men"]
    audio = list(iter_items(p, "audio"))  # a path list keeps every line as a path, as written
    assert [it.record["audio"] for it in audio][2] == str(tmp_path / "42")


def test_an_earlier_commands_summary_line_is_not_a_record(tmp_path):
    """classify / similarity / search eval end their output with a __summary__ line; fed back in
    (classify output to classify, caption, embed), it became an error record and exit 3."""
    summary = {"id": "__summary__", "summary": {"task": "classify", "n": 2}}
    p = tmp_path / "out.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, summary,
                                                        {"id": "__summary__", "text": "a caption with that id"}]))
    for modality in ("text", "any", "embeddings"):
        items = list(iter_items(p, modality))
        assert [it.id for it in items] == ["a", "b", "__summary__"], modality
        assert [it.index for it in items] == [0, 1, 2]
        assert items[2].record["text"] == "a caption with that id"


def test_caption_lines_in_braces_are_captions_and_broken_records_errors(tmp_path):
    """"{laughs} a happy young woman" was an "invalid JSON" error, "[laughs] ..." a caption."""
    p = tmp_path / "caps.txt"
    p.write_text('{laughs} a happy young woman\n{whispering}\n[laughs] hi\n{"id": "a", "text": \n{}\n'
                 "{ 'id': 1}\n{\"text\": \"ok\"}\n[1, 2]\n")
    items = list(iter_items(p, "text"))
    assert [it.record["text"] for it in items[:3]] == ["{laughs} a happy young woman", "{whispering}", "[laughs] hi"]
    assert "invalid JSON" in str(items[3].error)
    assert "no 'text' field" in str(items[4].error)
    assert "invalid JSON" in str(items[5].error)
    assert items[6].record["text"] == "ok"
    assert "a JSON array" in str(items[7].error)
