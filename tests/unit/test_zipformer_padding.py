"""The Zipformer speech tower gives every clip the same output whatever its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clsp.models.zipformer import ZipformerConfig, ZipformerSpeechEncoder
from clsp.models.zipformer_blocks import SimpleDownsample
from tests.helpers.padding_invariance import TOL, max_batch_vs_alone_diff
from tests.unit.test_zipformer import TINY

# fbank frames at 100 Hz: 0.09 s (the minimum), 0.5 s and odd lengths that leave partial
# groups at every downsampling factor.
LENGTHS = (9, 50, 123, 257, 1001)


def fbank_like(lengths, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 128, generator=gen) * 3 - 8 for n in lengths]


def encoder(seed: int = 0, **overrides) -> ZipformerSpeechEncoder:
    torch.manual_seed(seed)
    return ZipformerSpeechEncoder(ZipformerConfig(**{**TINY, **overrides})).eval()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"output_downsampling_factor": 1},
        # factors that are not powers of two leave partial groups of every size
        {"downsampling_factor": (1, 3, 6, 3, 1), "encoder_dim": (32, 40, 48, 40, 32),
         "cnn_module_kernel": (7, 5, 3, 5, 7), "num_encoder_layers": (1, 1, 2, 1, 1)},
    ],
    ids=["released-layout", "no-output-downsampling", "factors-3-and-6"],
)
def test_batched_clips_equal_their_one_clip_outputs(overrides):
    enc = encoder(**overrides)
    assert max_batch_vs_alone_diff(enc, fbank_like(LENGTHS)) <= TOL


def test_half_a_second_next_to_28_seconds():
    enc = encoder(seed=2)
    assert max_batch_vs_alone_diff(enc, fbank_like((50, 2800))) <= TOL


def test_every_short_length_is_invariant():
    # Short clips next to a long one are where padding would weigh most.
    enc = encoder(seed=1)
    items = fbank_like((9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 33, 64, 65, 301))
    assert max_batch_vs_alone_diff(enc, items) <= TOL


def test_without_masking_the_same_check_would_fail():
    # The check is sharp: the published downsampling (pad by the batch's last frame, not the
    # item's) moves a short clip's output far beyond the tolerance.
    enc = encoder()
    items = fbank_like((123, 601))
    original = SimpleDownsample.forward
    try:
        SimpleDownsample.forward = lambda self, x, lengths=None: original(self, x, None)
        leaky = max_batch_vs_alone_diff(enc, items)
    finally:
        SimpleDownsample.forward = original
    assert leaky > 100 * TOL
    assert max_batch_vs_alone_diff(enc, items) <= TOL


def test_downsample_repeats_each_items_own_last_frame():
    ds = SimpleDownsample(4)
    with torch.no_grad():
        ds.bias.copy_(torch.tensor([0.1, -0.3, 0.7, 0.2]))
    x = torch.randn(2, 10, 3)
    lengths = torch.tensor([10, 5])
    out = ds(x, lengths)
    w = ds.bias.softmax(0)
    # item 1: groups [0..3] and [4, 4, 4, 4] (frame 4 repeated), never frames 5..9
    expected = (x[1, :4] * w[:, None]).sum(0), x[1, 4]
    torch.testing.assert_close(out[1, 0], expected[0])
    torch.testing.assert_close(out[1, 1], expected[1])
    # item 0: the batch-wide padding repeats frame 9 into the last group
    last = torch.cat((x[0, 8:10], x[0, 9:10], x[0, 9:10]))
    torch.testing.assert_close(out[0, 2], (last * w[:, None]).sum(0))


@pytest.mark.slow
def test_full_released_config_is_batch_invariant():
    # The released CLSP size (591 M encoder parameters) with random weights.
    torch.manual_seed(0)
    enc = ZipformerSpeechEncoder().eval()
    assert max_batch_vs_alone_diff(enc, fbank_like((50, 237, 1003))) <= TOL


def test_embed_path_gives_each_clip_its_one_clip_embedding(tmp_path):
    # clsp.embed batching (length sort, fbank padding) -> CLSP model with a tiny Zipformer.
    from clsp.embed import AudioEmbedder, EmbedConfig
    from clsp.models.base import ModelConfig, build_model, tiny_config
    from clsp.records import Item
    from tests.conftest import write_wav

    torch.manual_seed(0)
    config = ModelConfig(**{**tiny_config().to_dict(), "speech_encoder": {"type": "zipformer", **TINY}})
    model = build_model(config, with_text=False).eval()
    seconds = (0.5, 1.37, 2.213, 7.0)
    items = [
        Item(i, f"c{i}", {"_path": str(write_wav(tmp_path / f"c{i}.wav", s, freq=150 + 40 * i, seed=i))})
        for i, s in enumerate(seconds)
    ]

    def embed(batch_size: int) -> torch.Tensor:
        cfg = EmbedConfig(batch_size=batch_size, workers=0, device="cpu", dtype="float32")
        return torch.from_numpy(np.stack([r.embeddings[0] for r in AudioEmbedder(model, cfg).run(items)]))

    together, alone = embed(len(items)), embed(1)
    assert (together - alone).abs().max() <= TOL
    assert (together[0] - together[1]).abs().max() > 1e-3  # different clips, different embeddings
