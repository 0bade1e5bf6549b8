"""Pair parsing, scoring, per-pair errors and filtering with stand-in encoders."""

from __future__ import annotations

import numpy as np
import pytest

from clsp.errors import AudioError, ClspError, InputError
from clsp.similarity import cosine, keep_score, looks_like_audio, resolve_side, score_pairs


class FakeEncoders:
    """Audio: a vector per existing file (missing files fail); text: a vector per string."""

    def __init__(self):
        self.audio_calls = 0
        self.text_calls = 0

    @staticmethod
    def _vec(key: str) -> np.ndarray:
        v = np.random.default_rng(abs(hash(key)) % 2**32).normal(size=16)
        return v / np.linalg.norm(v)

    def embed_audio(self, sides):
        self.audio_calls += len(sides)
        out = []
        for s in sides:
            if not s.value.endswith(".wav") or "missing" in s.value:
                out.append(AudioError(f"{s.value}: no such file"))
            else:
                out.append(self._vec("audio:" + s.value.split("/")[-1]))
        return out

    def embed_text(self, texts):
        self.text_calls += len(texts)
        return [self._vec("text:" + t) for t in texts]


def test_audio_or_text_guess(tmp_path):
    wav = tmp_path / "clip one.wav"
    wav.write_bytes(b"RIFF")
    assert looks_like_audio(str(wav))  # existing file, even with a space
    assert looks_like_audio("clip one.wav", base=tmp_path)
    assert looks_like_audio("data/missing.flac")
    assert looks_like_audio("x.WAV")
    assert not looks_like_audio("a whispering young woman")
    assert not looks_like_audio("she said hello.wav")  # spaces, no folder: free text
    assert not looks_like_audio("")
    # path-like strings are paths even with a mistyped extension: reported missing, not scored as text
    assert looks_like_audio("examples/data/03a01Wa.fla") and looks_like_audio("clip.wvv")
    assert not looks_like_audio("angry") and not looks_like_audio("e.g.") and not looks_like_audio("calm. quiet")


def test_resolve_side_explicit_fields_and_objects(tmp_path):
    assert resolve_side({"a_text": "x.wav"}, "a").kind == "text"
    s = resolve_side({"a_audio": "rel/voice"}, "a", base=tmp_path)
    assert s.kind == "audio" and s.value == str(tmp_path / "rel/voice")
    s = resolve_side({"b": {"audio": "/abs/c.wav", "start": 1, "end": 2.5}}, "b")
    assert (s.kind, s.value, s.start, s.end) == ("audio", "/abs/c.wav", 1.0, 2.5)
    with pytest.raises(InputError, match="empty text"):
        resolve_side({"b": "   "}, "b")
    with pytest.raises(InputError, match="twice"):
        resolve_side({"a": "x", "a_text": "y"}, "a")
    with pytest.raises(InputError, match="no 'b'"):
        resolve_side({"a": "x"}, "b")


def test_cosine_range_and_checks():
    assert cosine([1, 0], [2, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [-1, 0]) == pytest.approx(-1.0)
    assert cosine([1, 0], [0, 3]) == pytest.approx(0.0)
    with pytest.raises(InputError):
        cosine([0, 0], [1, 0])
    with pytest.raises(InputError):
        cosine([1, 0], [1, 0, 0])


def test_score_pairs_mixed_kinds_errors_order_and_cache():
    enc = FakeEncoders()
    records = [
        {"id": "aa", "a": "/d/one.wav", "b": "/d/two.wav"},
        {"id": "at", "a": "/d/one.wav", "b": "a whispering young woman"},
        {"id": "miss", "a": "/d/missing.wav", "b": "calm voice"},
        {"id": "empty", "a": "/d/one.wav", "b": ""},
        InputError("line 5: invalid JSON"),
        {"id": "tt", "a_text": "calm", "b_text": "calm"},
        {"a": "/d/two.wav", "b": "/d/one.wav", "human": 3.5},
    ]
    out = list(score_pairs(records, enc, batch_size=3))
    assert [r["id"] for r in out] == ["aa", "at", "miss", "empty", 4, "tt", 6]
    assert [("score" in r) for r in out] == [True, True, False, False, False, True, True]
    assert out[0]["pair"] == "audio-audio" and out[1]["pair"] == "audio-text" and out[5]["pair"] == "text-text"
    assert "missing.wav" in out[2]["error"]["message"] and out[2]["error"]["type"] == "AudioError"
    assert "empty text" in out[3]["error"]["message"]
    assert out[4]["error"]["type"] == "InputError"
    assert out[5]["score"] == pytest.approx(1.0)
    assert out[6]["score"] == pytest.approx(out[0]["score"])  # symmetric
    assert out[6]["human"] == 3.5
    assert all(-1.0 <= r["score"] <= 1.0 for r in out if "score" in r)
    # one.wav / two.wav appear in several batches but each distinct clip is embedded once
    assert enc.audio_calls == 3
    assert enc.text_calls == 3


def test_keep_score():
    assert keep_score(0.3, below=0.5) and not keep_score(0.7, below=0.5)
    assert keep_score(0.7, above=0.5) and not keep_score(0.5, above=0.5)
    assert keep_score(0.4, below=0.5, above=0.3) and not keep_score(0.2, below=0.5, above=0.3)
    assert keep_score(0.0)


def test_record_fields_named_like_result_fields_are_kept_apart():
    from clsp.similarity import record_field

    recs = [{"id": "p", "a": "a calm voice", "b": "a loud voice", "score": 4.5, "pair": "gold", "other": 1}]
    out = list(score_pairs(recs, FakeEncoders()))[0]
    want = cosine(FakeEncoders._vec("text:a calm voice"), FakeEncoders._vec("text:a loud voice"))
    assert out["score"] == pytest.approx(want, abs=1e-6) and out["pair"] == "text-text"
    assert out["metadata"] == {"score": 4.5, "pair": "gold"} and out["other"] == 1
    assert record_field(out, "score") == 4.5 and record_field(out, "other") == 1


def test_an_error_field_of_a_scored_pair_is_kept_under_metadata():
    """A pair record's own ``error`` (a note) at the top of a scored record made it read as failed."""
    recs = [{"id": "p", "a": "a calm voice", "b": "a loud voice", "error": {"type": "Flag", "message": "noisy"}}]
    out = list(score_pairs(recs, FakeEncoders()))[0]
    assert "error" not in out and isinstance(out["score"], float)
    assert out["metadata"] == {"error": {"type": "Flag", "message": "noisy"}}


def test_embedding_record_sides_are_their_vectors_not_re_embedded():
    """A side that is a `clsp embed` record is scored with its own vector; another model's
    embedding, two embeddings from two models, and a `row` side (no matrix) are errors."""
    enc = FakeEncoders()
    enc.provenance = {"model": "m1", "checksum": "sha256:aa", "dim": 16}
    v = FakeEncoders._vec("given")
    a_rec = {"id": "a", "audio": "a.wav", "embedding": v.tolist(), "provenance": dict(enc.provenance)}
    other = {**a_rec, "provenance": {"model": "m2", "checksum": "sha256:bb", "dim": 16}}
    recs = [{"id": 1, "a": a_rec, "b": "b.wav"},
            {"id": 2, "a": a_rec, "b": {"text": "a calm voice"}},
            {"id": 3, "a": other, "b": "b.wav"},
            {"id": 4, "a": {k: val for k, val in a_rec.items() if k != "embedding"} | {"row": 0}, "b": "b.wav"},
            {"id": 5, "a": {**a_rec, "embedding": [0.0] * 16}, "b": "b.wav"}]
    out = list(score_pairs(recs, enc))
    assert out[0]["score"] == pytest.approx(cosine(v, FakeEncoders._vec("audio:b.wav")), abs=1e-6)
    assert out[0]["pair"] == "audio-audio"
    assert out[1]["score"] == pytest.approx(cosine(v, FakeEncoders._vec("text:a calm voice")), abs=1e-6)
    assert enc.audio_calls == 1  # b.wav only: the embedded a.wav is never decoded
    assert out[2]["error"]["type"] == "ProvenanceError" and "'m2'" in out[2]["error"]["message"]
    assert "row" in out[3]["error"]["message"] and "inline 'embedding'" in out[3]["error"]["message"]
    assert "all zeros" in out[4]["error"]["message"]
    enc.provenance = None  # no model to compare with: the two given sides must still agree
    mixed = list(score_pairs([{"id": 6, "a": a_rec, "b": other}], enc))
    assert mixed[0]["error"]["type"] == "ProvenanceError"


def test_a_caption_naming_an_existing_file_says_how_to_mean_the_caption(tmp_path):
    (tmp_path / "angry.wav").write_bytes(b"RIFF")
    (tmp_path / "angry").write_text("not audio")
    out = list(score_pairs([{"id": 1, "a": "angry.wav", "b": "angry"}], FailingFileEncoders(), base_dir=tmp_path))
    assert "side b was read as audio because a file of that name exists" in out[0]["error"]["message"]
    out = list(score_pairs([{"id": 1, "a": "angry", "b": "angry.wav"}], FailingFileEncoders(), base_dir=tmp_path))
    assert "side a was read" in out[0]["error"]["message"]


class FailingFileEncoders(FakeEncoders):
    """Audio: every file without an audio extension fails to decode."""

    def embed_audio(self, sides):
        return [AudioError(f"{s.value}: cannot decode audio") if not s.value.endswith(".wav")
                else self._vec(s.value) for s in sides]


def test_compressed_audio_is_named_as_such_in_every_command(tmp_path):
    """A gzip-compressed clip was "cannot decode audio ... side a was read as audio because a file
    of that name exists: for the caption ..." in similarity, and classify suggested clsp embed."""
    import gzip
    import json

    from tests.helpers.assets import write_wav
    from tests.helpers.cli import invoke

    write_wav(tmp_path / "clip.wav", 0.5)
    (tmp_path / "clip.wav.gz").write_bytes(gzip.compress((tmp_path / "clip.wav").read_bytes()))
    p = invoke("similarity", "clip.wav.gz", "a calm voice", "-m", "tiny-random", "-q", cwd=tmp_path, text=True)
    message = json.loads(p.stdout)["error"]["message"]
    assert p.returncode == 3 and "it is gzip-compressed: decompress it first (gzip -dc clip.wav.gz > clip.wav)" in message
    assert "read as audio because" not in message
    p = invoke("classify", "clip.wav.gz", "-m", "tiny-random", "-q", cwd=tmp_path, text=True)
    assert p.returncode == 2 and "gzip -dc clip.wav.gz > clip.wav, then give clip.wav" in p.stderr
    assert "clsp embed" not in p.stderr
