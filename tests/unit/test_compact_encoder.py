import pytest
import torch

from clsp.models.compact import CompactSpeechEncoder, utterance_stats
from tests.helpers.padding_invariance import TOL, max_batch_vs_alone_diff


def test_stats_branch_is_batch_independent_and_widens_output():
    torch.manual_seed(0)
    enc = CompactSpeechEncoder(dim=32, layers=1, heads=2, ff_dim=64, conv_channels=4, dropout=0.0, stats_dim=16).eval()
    feats, lens = torch.randn(3, 200, 128), torch.tensor([200, 120, 50])
    out, out_lens = enc(feats, lens)
    assert out.shape == (3, int(out_lens.max()), 48) and enc.output_dim == 48
    alone, _ = enc(feats[1:2, :120], lens[1:2])
    assert (alone[0, : out_lens[1]] - out[1, : out_lens[1]]).abs().max() < 1e-5


def test_utterance_stats_ignore_padding_and_track_level():
    x = torch.randn(1, 80, 128)
    padded = torch.cat([x, torch.full((1, 40, 128), 99.0)], dim=1)
    a = utterance_stats(x, torch.tensor([80]))
    b = utterance_stats(padded, torch.tensor([80]))
    assert torch.allclose(a, b, atol=1e-5)
    louder = utterance_stats(x + 3.0, torch.tensor([80]))
    assert torch.allclose(louder[0, :128], a[0, :128] + 3.0, atol=1e-5)


def test_envelope_modulation_follows_the_pace_of_the_envelope():
    from clsp.models.compact import MODULATION_BANDS, envelope_modulation

    t = torch.arange(400) / 100.0  # 4 s of frames at 100 Hz
    gen = torch.Generator().manual_seed(0)
    def envelope(hz: float) -> torch.Tensor:  # syllable-like bursts, a little noise
        return 6.0 * torch.sin(torch.pi * hz * t).abs() + 0.1 * torch.randn(400, generator=gen)
    slow, fast = envelope_modulation(envelope(2.5)), envelope_modulation(envelope(6.5))
    # peaks per second (/5): one per burst
    assert abs(slow[-1].item() * 5 - 2.5) < 0.6 and abs(fast[-1].item() * 5 - 6.5) < 0.8
    band_of = lambda hz: max(i for i, lo in enumerate(MODULATION_BANDS[:-1]) if lo <= hz)  # noqa: E731
    assert int(slow[:-1].argmax()) == band_of(2.5) and int(fast[:-1].argmax()) == band_of(6.5)
    assert envelope_modulation(torch.zeros(10)).abs().sum() == 0  # too short: no cues


@pytest.mark.parametrize("options", [{}, {"stats_dim": 16}, {"stats_dim": 16, "pitch": True}],
                         ids=["plain", "stats", "stats-and-pitch"])
def test_batched_clips_equal_their_one_clip_outputs(options):
    # 0.16 s to 28 s of fbank, lengths that leave remainders at both stride-2 convolutions.
    torch.manual_seed(0)
    enc = CompactSpeechEncoder(dim=32, layers=2, heads=2, ff_dim=64, conv_channels=4, dropout=0.0, **options).eval()
    gen = torch.Generator().manual_seed(0)
    items = [torch.randn(n, 128, generator=gen) * 3 - 8 for n in (16, 50, 123, 257, 2800)]
    assert max_batch_vs_alone_diff(enc, items) <= TOL
