import torch

from clsp.models.compact import CompactSpeechEncoder, utterance_stats


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
