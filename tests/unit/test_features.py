import torch
import torchaudio.compliance.kaldi as kaldi

from clsp.features import FBANK_CHUNK, fbank, fbank_batch, fbank_frames, num_frames


def kaldi_fbank(w: torch.Tensor) -> torch.Tensor:
    return kaldi.fbank(w.unsqueeze(0), num_mel_bins=128, frame_length=25, frame_shift=10, dither=0.0,
                       snip_edges=False, low_freq=20, high_freq=-400, sample_frequency=16000)


def test_fbank_matches_torchaudio_kaldi_alone_and_batched():
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(n, generator=g) * 0.2 for n in (16000, 8123, 33333, 1600, 8007, 70001)]
    feats, lens = fbank_batch(waves)
    for i, w in enumerate(waves):
        ref = kaldi_fbank(w)
        assert ref.shape == (num_frames(w.numel()), 128)
        assert int(lens[i]) == ref.shape[0]
        assert (fbank(w) - ref).abs().max() < 1e-5
        assert (feats[i, : lens[i]] - ref).abs().max() < 1e-5


def test_fbank_frames_are_the_batch_without_padding():
    g = torch.Generator().manual_seed(1)
    waves = [torch.randn(n, generator=g) * 0.1 for n in (9000, 0, 50, FBANK_CHUNK * 160 + 4000, 2400)]
    frames, counts = fbank_frames(waves)
    feats, lens = fbank_batch(waves)
    assert counts == lens.tolist() and counts[1] == 0 and counts[3] > FBANK_CHUNK
    assert frames.shape == (sum(counts), 128)
    torch.testing.assert_close(frames, torch.cat([feats[i, :n] for i, n in enumerate(counts)]), atol=0, rtol=0)
    torch.testing.assert_close(frames[-counts[-1]:], kaldi_fbank(waves[-1]), atol=1e-5, rtol=0)
    assert fbank_frames([torch.zeros(10)])[0].shape == (0, 128)


def test_frame_count_formula():
    assert num_frames(16000) == 100
    assert num_frames(16080) == 101
    assert num_frames(16079) == 100
