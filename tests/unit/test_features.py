import torch
import torchaudio.compliance.kaldi as kaldi

from clsp.features import fbank, fbank_batch, num_frames


def kaldi_fbank(w: torch.Tensor) -> torch.Tensor:
    return kaldi.fbank(w.unsqueeze(0), num_mel_bins=128, frame_length=25, frame_shift=10, dither=0.0,
                       snip_edges=False, low_freq=20, high_freq=-400, sample_frequency=16000)


def test_fbank_matches_torchaudio_kaldi_alone_and_batched():
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g) * 0.2 for n in (16000, 8123, 33333, 1600, 8007)]
    feats, lens = fbank_batch(waves)
    for i, w in enumerate(waves):
        ref = kaldi_fbank(w)
        assert ref.shape == (num_frames(w.numel()), 128)
        assert int(lens[i]) == ref.shape[0]
        assert (fbank(w) - ref).abs().max() < 1e-5
        assert (feats[i, : lens[i]] - ref).abs().max() < 1e-5


def test_frame_count_formula():
    assert num_frames(16000) == 100
    assert num_frames(16080) == 101
    assert num_frames(16079) == 100
