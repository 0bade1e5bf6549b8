"""The model's speech-input object: the same preparation and collation for embedding and training."""

from __future__ import annotations

import pytest
import torch

from clsp.errors import ConfigError
from clsp.features import PAD_VALUE, fbank
from clsp.models.speech_input import SpeechInput


def test_fbank_and_waveform_inputs_collate_with_their_own_padding():
    a, b = torch.randn(3200) * 0.1, torch.randn(8000) * 0.1
    fb = SpeechInput("fbank", 64)
    x, lens = fb.collate([fb.prepare(a), fb.prepare(b)])
    assert x.shape == (2, 50, 64) and lens.tolist() == [20, 50] and fb.frame_rate == 100.0
    torch.testing.assert_close(x[0, :20], fbank(a, 64))
    assert (x[0, 20:] == PAD_VALUE).all()
    wv = SpeechInput("waveform")
    x, lens = wv.collate([wv.prepare(a), wv.prepare(b)])
    assert x.shape == (2, 8000) and lens.tolist() == [3200, 8000] and wv.frame_rate == 16000.0
    assert torch.equal(x[0, :3200], a) and (x[0, 3200:] == 0).all()
    assert wv.collate([])[0].shape == (0, 0)


def test_unknown_input_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="input_kind"):
        SpeechInput("spectrogram")
