"""An Ogg file cut short in the middle of a page is refused as truncated, even where libsndfile
decodes the pages before the cut (it would give part of the clip, without an error); a whole
file, and one whose last page is whole and marked end-of-stream, load as before."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from clsp.audio import load_audio
from clsp.errors import AudioError
from tests.unit.test_formats49 import _audio_bytes


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
@pytest.mark.parametrize("keep", [0.9, 0.6])
def test_an_ogg_cut_mid_page_is_truncated_not_a_shorter_clip(tmp_path, subtype, keep):
    try:
        data = _audio_bytes("OGG", subtype, seconds=4.0)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:  # pragma: no cover - libsndfile without Opus
        pytest.skip(f"libsndfile cannot write Ogg {subtype}: {exc}")
    whole = tmp_path / "whole.ogg"
    whole.write_bytes(data)
    n = load_audio(whole).numel()
    assert n >= 63000
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[: int(len(data) * keep) | 1])
    assert 0 < sf.info(str(cut)).frames < n  # libsndfile alone decodes part of it
    with pytest.raises(AudioError, match=r"cut\.ogg: truncated Ogg stream"):
        load_audio(cut)


def test_an_ogg_with_bytes_after_its_end_of_stream_page_still_loads(tmp_path):
    data = _audio_bytes("OGG", "VORBIS", seconds=2.0)
    extra = tmp_path / "extra.ogg"
    extra.write_bytes(data + b"\0" * 100)
    assert np.isfinite(load_audio(extra).numpy()).all()
