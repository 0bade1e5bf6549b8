"""Transformers speech and text backends built from tiny local configs (no downloads)."""

from __future__ import annotations

import pytest
import torch

from clsp.errors import ModelError
from clsp.models.hf_encoders import HFSpeechEncoder, HFTextEncoder
from clsp.models.registry import build_speech_encoder
from tests.helpers.padding_invariance import TOL, max_batch_vs_alone_diff

CONV = dict(conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
SPEECH = {
    "wav2vec2": dict(model_type="wav2vec2", feat_extract_norm="layer", **CONV),
    "hubert": dict(model_type="hubert", feat_extract_norm="group", **CONV),
    "wavlm": dict(model_type="wavlm", feat_extract_norm="layer", num_buckets=8, max_bucket_distance=20, **CONV),
    "data2vec-audio": dict(model_type="data2vec-audio", **{**CONV, "conv_pos_kernel_size": 4, "num_conv_pos_embeddings": 4}),
}
WHISPER = dict(model_type="whisper", d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
               decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
               max_source_positions=50, max_target_positions=16, vocab_size=100, pad_token_id=1,
               bos_token_id=0, eos_token_id=2, decoder_start_token_id=0)


def save_config(tmp_path, cfg: dict) -> str:
    from transformers import AutoConfig

    cfg = dict(cfg)
    AutoConfig.for_model(cfg.pop("model_type"), **cfg).save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("name", sorted(SPEECH))
def test_speech_backends_give_frames_and_lengths(tmp_path, name):
    torch.manual_seed(0)
    enc = build_speech_encoder({"type": "hf", "source": save_config(tmp_path, SPEECH[name])}).eval()
    assert enc.input_kind == "waveform" and enc.output_dim == 16
    lens = torch.tensor([8000, 3000])
    with torch.no_grad():
        out, out_lens = enc(torch.randn(2, 8000), lens)
    assert out.shape == (2, 399, 16)  # conv (kernel 10, stride 5) then (4, 4): ((8000-10)//5+1-4)//4+1
    assert out_lens.tolist() == [399, 149]


def test_layer_norm_backend_ignores_padding(tmp_path):
    torch.manual_seed(0)
    enc = HFSpeechEncoder(source=save_config(tmp_path, SPEECH["wav2vec2"])).eval()
    wave = torch.randn(1, 3000)
    batch = torch.cat([torch.cat([wave, torch.randn(1, 2000)], 1), torch.randn(1, 5000)])
    with torch.no_grad():
        alone, n = enc(wave, torch.tensor([3000]))
        padded, _ = enc(batch, torch.tensor([3000, 5000]))
    torch.testing.assert_close(padded[0, : n[0]], alone[0], atol=1e-4, rtol=1e-4)


def test_whisper_encoder_backend(tmp_path):
    enc = build_speech_encoder({"type": "hf", "source": save_config(tmp_path, WHISPER)}).eval()
    with torch.no_grad():
        out, lens = enc(torch.randn(2, 20000), torch.tensor([20000, 4800]))
    assert out.shape == (2, 50, 16)  # a 1 s window: 100 mel frames, halved by the encoder
    assert lens.tolist() == [50, 15]


def test_speech_backend_refuses_non_local_sources(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        HFSpeechEncoder(source=str(tmp_path / "facebook-wavlm"))


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_text_backend_poolings(pooling):
    cfg = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": 32}
    torch.manual_seed(0)
    tower = HFTextEncoder(config=cfg, tokenizer="all-MiniLM-L6-v2", pooling=pooling).eval()
    with torch.no_grad():
        short = tower.encode(["a calm voice"])
        both = tower.encode(["a calm voice", "a fast, loud and breathy voice with a British accent"])
    assert both.shape == (2, 16)
    torch.testing.assert_close(both[:1], short, atol=1e-5, rtol=1e-5)


PADDING_KINDS = {
    **SPEECH,
    "wav2vec2-group-norm": dict(SPEECH["wav2vec2"], feat_extract_norm="group"),
    "wav2vec2-stable-layer-norm": dict(SPEECH["wav2vec2"], do_stable_layer_norm=True),
    "hubert-layer-norm": dict(SPEECH["hubert"], feat_extract_norm="layer"),
    "data2vec-audio-3-pos-convs": dict(SPEECH["data2vec-audio"], num_conv_pos_embeddings=3),
    "whisper": WHISPER,
}


@pytest.mark.parametrize("name", sorted(PADDING_KINDS))
def test_batched_clips_equal_their_one_clip_outputs(tmp_path, name):
    # Group-norm feature encoders and stacked positional convolutions would leak padding
    # (differences near 2 here); those models run each padded clip alone.
    torch.manual_seed(0)
    enc = build_speech_encoder({"type": "hf", "source": save_config(tmp_path, PADDING_KINDS[name])}).eval()
    gen = torch.Generator().manual_seed(0)
    items = [torch.randn(n, generator=gen) * 0.1 for n in (400, 3001, 8000, 16003)]
    assert max_batch_vs_alone_diff(enc, items, pad_scale=0.3) <= TOL
