"""Unit tests of the native Zipformer2 speech encoder (shapes, config, registry, numerics)."""

from __future__ import annotations

import pytest
import torch

from clsp.errors import ConfigError, InputError
from clsp.models.registry import build_speech_encoder
from clsp.models.zipformer import ZipformerConfig, ZipformerSpeechEncoder
from clsp.models.zipformer_blocks import compact_rel_pos_encoding, relative_to_absolute

TINY = dict(
    embed_channels=(4, 8, 16),
    encoder_dim=(32, 48, 64, 48, 32, 40, 32),
    num_heads=2,
    query_head_dim=8,
    value_head_dim=4,
    pos_head_dim=2,
    feedforward_dim=64,
    pos_dim=8,
    cnn_module_kernel=(7, 7, 5, 5, 5, 7, 7),
)


def tiny_encoder(seed: int = 0) -> ZipformerSpeechEncoder:
    torch.manual_seed(seed)
    return ZipformerSpeechEncoder(ZipformerConfig(**TINY)).eval()


def test_full_config_has_the_released_size():
    with torch.device("meta"):
        enc = ZipformerSpeechEncoder()
    assert enc.output_dim == 1280
    assert sum(p.numel() for p in enc.encoder_embed.parameters()) == 5_226_225
    assert sum(p.numel() for p in enc.encoder.parameters()) == 591_747_011


def test_output_shape_and_lengths_follow_the_frame_rate():
    enc = tiny_encoder()
    lens = torch.tensor([300, 123, 9])
    out, out_lens = enc(torch.randn(3, 300, 128), lens)
    expected = ((lens - 7) // 2 + 1) // 2
    assert out_lens.tolist() == expected.tolist()
    assert out.shape == (3, int(expected.max()), 64)
    assert torch.isfinite(out).all()


def test_extra_padding_beyond_the_longest_item_is_ignored():
    enc = tiny_encoder()
    feats, lens = torch.randn(2, 200, 128), torch.tensor([200, 150])
    padded = torch.cat([feats, torch.full((2, 40, 128), -23.0)], dim=1)
    with torch.no_grad():
        a, _ = enc(feats, lens)
        b, _ = enc(padded, lens)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_padding_far_from_the_valid_frames_does_not_leak_into_them():
    # Items 0 and 1 are equal up to frame 300 and differ after it; both have 240 valid frames,
    # so any difference in their outputs would come through unmasked attention or convolution.
    enc = tiny_encoder()
    feats = torch.randn(1, 400, 128).repeat(3, 1, 1)
    feats[1, 300:] = torch.randn(100, 128) * 5
    lens = torch.tensor([240, 240, 400])
    with torch.no_grad():
        out, out_lens = enc(feats, lens)
    valid = int(out_lens[0])
    torch.testing.assert_close(out[0, :valid], out[1, :valid], rtol=0, atol=1e-5)


def test_too_short_input_and_bad_shapes_raise_input_errors():
    enc = tiny_encoder()
    with pytest.raises(InputError, match=r"\[1\]"):
        enc(torch.randn(2, 50, 128), torch.tensor([50, 8]))
    with pytest.raises(InputError, match="80"):
        enc(torch.randn(2, 50, 80), torch.tensor([50, 50]))


def test_config_round_trips_and_rejects_bad_values():
    cfg = ZipformerConfig(**TINY)
    assert ZipformerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.num_heads == (2,) * 7
    with pytest.raises(ConfigError, match="encoder_dim"):
        ZipformerConfig(encoder_dim=(32, 32))
    with pytest.raises(ConfigError, match="bogus"):
        ZipformerConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="odd"):
        ZipformerConfig(cnn_module_kernel=8)


def test_registry_builds_the_encoder_from_a_spec():
    enc = build_speech_encoder({"type": "zipformer", **TINY})
    assert isinstance(enc, ZipformerSpeechEncoder)
    assert enc.output_dim == 64 and enc.input_kind == "fbank"


def test_relative_to_absolute_matches_direct_indexing():
    frames = 5
    rel = torch.randn(2, 3, frames, 2 * frames - 1)
    absolute = relative_to_absolute(rel)
    for i in range(frames):
        for j in range(frames):
            assert torch.equal(absolute[..., i, j], rel[..., i, frames - 1 - i + j])


def test_positional_encoding_is_symmetric_and_has_a_bias_channel():
    pe = compact_rel_pos_encoding(6, 8, torch.device("cpu"), torch.float32)
    assert pe.shape == (11, 8)
    assert torch.all(pe[:, -1] == 1.0)
    centre = pe[5]
    assert torch.allclose(centre[0::2], torch.ones(4)) and torch.allclose(centre[1:-1:2], torch.zeros(3))
    torch.testing.assert_close(pe[:, 0::2], pe.flip(0)[:, 0::2])  # cosines are even


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    enc = tiny_encoder()
    feats, lens = torch.randn(2, 160, 128), torch.tensor([160, 100])
    with torch.no_grad():
        ref, _ = enc(feats, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, low_lens = enc(feats, lens)
    assert low_lens.tolist() == [(((160 - 7) // 2) + 1) // 2, (((100 - 7) // 2) + 1) // 2]
    cos = torch.nn.functional.cosine_similarity(low.float().flatten(1), ref.flatten(1))
    assert cos.min() > 0.99


def test_training_mode_applies_dropout_and_eval_is_deterministic():
    enc = tiny_encoder()
    feats, lens = torch.randn(1, 100, 128), torch.tensor([100])
    with torch.no_grad():
        a, _ = enc(feats, lens)
        b, _ = enc(feats, lens)
        enc.train()
        c, _ = enc(feats, lens)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
