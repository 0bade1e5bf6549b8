"""A pair whose clip cannot be embedded (silent, too short, unreadable) names the side that failed."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from clsp.similarity import score_pairs
from clsp.similarity import ModelEncoders
from clsp.models import load_model
from tests.conftest import write_wav


def test_the_failing_side_is_named(tmp_path):
    write_wav(tmp_path / "ok.wav", 0.8, 150, seed=1)
    sf.write(str(tmp_path / "silent.wav"), np.zeros(16000, np.float32), 16000)
    enc = ModelEncoders(load_model("tiny-random"))
    recs = [{"id": 1, "a": "ok.wav", "b": "silent.wav"}, {"id": 2, "a": "silent.wav", "b": "ok.wav"},
            {"id": 3, "a": {"audio": "ok.wav", "start": 0.0, "end": 0.01}, "b": "ok.wav"}]
    out = list(score_pairs(recs, enc, base_dir=tmp_path))
    assert out[0]["error"]["message"].startswith("side b: ") and "silent" in out[0]["error"]["message"]
    assert out[1]["error"]["message"].startswith("side a: ")
    assert out[2]["error"]["message"].startswith("side a: ") and "too short" in out[2]["error"]["message"]
