import math

import torch

from clsp.features import fbank
from clsp.models.pitch import SMOOTH_BINS, REFERENCE_HZ, _contrast, VOICED_CONFIDENCE, pitch_stats, pitch_track, voiced_mask


def _voice(f0_of_t, seconds=2.0, sr=16000, seed=0):
    """A harmonic tone with a vowel-like spectral envelope (formants near 500 and 1500 Hz),
    random phases and a little noise; ``f0_of_t`` maps time (s) to F0 (Hz)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    f0 = f0_of_t(t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    wave = torch.zeros_like(t)
    for k in range(1, 40):
        freq = k * f0
        amp = torch.exp(-((freq - 500) / 300) ** 2) + 0.5 * torch.exp(-((freq - 1500) / 400) ** 2) + 0.05
        wave += torch.where(freq < 7000, amp, torch.zeros_like(amp)) * torch.cos(k * phase + 6.283 * torch.rand(1, generator=gen, dtype=torch.float64))
    wave = 0.3 * wave / wave.abs().max() + 0.001 * torch.randn(len(t), generator=gen, dtype=torch.float64)
    return wave.float()


def _semitones(hz_a, hz_b):
    return 12 * abs(math.log2(hz_a / hz_b))


def test_contrast_is_the_row_minus_its_moving_average_centred_and_unit_norm():
    x = torch.randn(300, 43, generator=torch.Generator().manual_seed(0)) * 3 - 5
    smooth = torch.stack([x[:, max(0, j - SMOOTH_BINS // 2): j + SMOOTH_BINS // 2 + 1].mean(1) for j in range(43)], 1)
    y = x - smooth
    y = y - y.mean(1, keepdim=True)
    torch.testing.assert_close(_contrast(x), y / y.norm(dim=1, keepdim=True), atol=1e-6, rtol=0)


def test_steady_tones_are_tracked_within_a_semitone():
    for f0 in (95.0, 130.0, 210.0, 310.0):
        feats = fbank(_voice(lambda t: torch.full_like(t, f0)))
        logf0, conf = pitch_track(feats)
        voiced = conf > VOICED_CONFIDENCE
        assert voiced.float().mean() > 0.8, f0
        est = REFERENCE_HZ * 2 ** float(logf0[voiced].median())
        assert _semitones(est, f0) < 1.0, (f0, est)


def test_noise_is_not_voiced():
    gen = torch.Generator().manual_seed(1)
    feats = fbank(0.1 * torch.randn(32000, generator=gen))
    _, conf = pitch_track(feats)
    assert (conf > VOICED_CONFIDENCE).float().mean() < 0.3


def test_stats_follow_register_glide_and_range():
    def stats(wave):
        feats = fbank(wave).unsqueeze(0)
        lens = torch.tensor([feats.shape[1]])
        logf0, conf = pitch_track(feats)
        return pitch_stats(logf0, conf, voiced_mask(feats, lens, conf), lens)[0]

    low, high = stats(_voice(lambda t: torch.full_like(t, 110.0))), stats(_voice(lambda t: torch.full_like(t, 240.0)))
    assert high[1] - low[1] > 0.9  # median log2 F0: about 1.1 octaves apart
    rising = stats(_voice(lambda t: 110.0 * 2 ** (t / 2.0)))  # one octave up over 2 s
    falling = stats(_voice(lambda t: 220.0 * 2 ** (-t / 2.0)))
    assert rising[9] > 2.0 and falling[9] < -2.0  # octaves per 10 s: about +-5
    lively = stats(_voice(lambda t: 160.0 * 2 ** (0.4 * torch.sin(2 * math.pi * 1.5 * t))))
    flat = stats(_voice(lambda t: torch.full_like(t, 160.0)))
    assert lively[6] > 3 * flat[6] and lively[4] - lively[3] > 0.25


def test_pitch_encoder_is_batch_independent_and_hears_register():
    from clsp.models.compact import CompactSpeechEncoder

    torch.manual_seed(0)
    enc = CompactSpeechEncoder(dim=32, layers=1, heads=2, ff_dim=64, conv_channels=4, dropout=0.0,
                               stats_dim=16, pitch=True).eval()
    a, b = fbank(_voice(lambda t: torch.full_like(t, 120.0))), fbank(_voice(lambda t: torch.full_like(t, 240.0), 1.2))
    feats = torch.full((2, a.shape[0], 128), -23.0)
    feats[0], feats[1, : b.shape[0]] = a, b
    lens = torch.tensor([a.shape[0], b.shape[0]])
    with torch.no_grad():
        out, out_lens = enc(feats, lens)
        alone, _ = enc(b.unsqueeze(0), lens[1:])
    assert out.shape[-1] == 48
    assert (alone[0] - out[1, : out_lens[1]]).abs().max() < 1e-4
    assert (out[0, 0] - out[1, 0]).abs().max() > 1e-3
