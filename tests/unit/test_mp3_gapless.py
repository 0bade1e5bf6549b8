"""MP3 decodes aligned with the original: encoder/decoder delay and padding removed."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from clsp.audio import audio_duration, load_audio
from clsp.mp3gapless import DECODER_DELAY, mp3_signal_range, parse_mp3_head

SR = 16000


def _signal(seconds=2.0, seed=0):
    """Band-limited noise under a slow envelope: aperiodic, so the best lag is unique."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.standard_normal(int(seconds * SR)), np.hanning(9), "same")
    env = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, x.size)) ** 2
    return (0.2 * x * env / np.abs(x).max()).astype(np.float32)


def _lag(decoded, ref, search=3000):
    n = min(len(decoded), len(ref)) - search
    c = [np.dot(decoded[k:k + n], ref[:n]) for k in range(0, search)]
    back = [np.dot(decoded[:n], ref[k:k + n]) for k in range(1, search)]
    best = int(np.argmax(c))
    return best if max(c) >= max(back) else -1 - int(np.argmax(back))


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "ref.wav"
    sf.write(str(path), _signal(), SR, subtype="PCM_16")
    return path


def _encode(cmd, out):
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0 or not out.exists():
        pytest.skip(f"cannot encode mp3 with {cmd[0]}")
    return out


@pytest.mark.parametrize("encoder", ["lame", "sox"])
def test_mp3_is_aligned_with_the_wav(wav, tmp_path, encoder):
    if shutil.which(encoder) is None:
        pytest.skip(f"{encoder} not installed")
    out = tmp_path / f"{encoder}.mp3"
    cmd = (["lame", "--quiet", "-b", "128", str(wav), str(out)] if encoder == "lame"
           else ["sox", "-V1", str(wav), "-C", "128", str(out)])
    _encode(cmd, out)
    ref = load_audio(wav).numpy()
    dec = load_audio(out).numpy()
    assert _lag(dec, ref) == 0
    head = parse_mp3_head(out.read_bytes()[:16384])
    # with a LAME tag the length is exact; without one, within half a frame (LAME's padding rule)
    tolerance = 1 if head.encoder_delay is not None else head.samples_per_frame // 2
    assert abs(len(dec) - len(ref)) <= tolerance
    assert abs(audio_duration(out) - len(ref) / SR) <= tolerance / SR
    seg_ref, seg_dec = load_audio(wav, 0.5, 1.5).numpy(), load_audio(out, 0.5, 1.5).numpy()
    assert len(seg_dec) == len(seg_ref) == SR
    assert np.corrcoef(seg_ref, seg_dec)[0, 1] > 0.99


def test_tag_is_applied_when_the_decoder_did_not(wav, tmp_path):
    if shutil.which("lame") is None:
        pytest.skip("lame not installed")
    out = _encode(["lame", "--quiet", "-b", "128", str(wav), str(tmp_path / "t.mp3")], tmp_path / "t.mp3")
    head = parse_mp3_head(out.read_bytes()[:16384])
    assert head.encoder_delay == 576 and head.lame and head.tag_frames
    untrimmed = head.tag_frames * head.samples_per_frame  # what a tag-blind decoder returns
    offset, frames = mp3_signal_range(out, untrimmed)
    assert offset == head.encoder_delay + DECODER_DELAY
    assert frames == sf.info(str(wav)).frames
    assert mp3_signal_range(out, frames) == (0, frames)  # a decoder that honoured the tag: untouched
    assert mp3_signal_range(wav, 1234) == (0, 1234)  # not an mp3


@pytest.mark.slow
def test_torchaudio_is_imported_with_the_decoder_not_in_worker_threads():
    """Worker threads that resample a 22.05 kHz clip and compute features at once must not be the
    first to import torchaudio: concurrent first imports fail inside its circular package imports."""
    import sys

    code = "import sys, clsp.audio; print('torchaudio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def _burst_wav(path, sr, seconds=4.0, onset=1.0):
    """Faint noise (frames with no spare bits for the encoder's ancillary text) with a 440 Hz
    burst starting at exactly ``onset`` seconds."""
    x = (0.002 * np.random.default_rng(0).standard_normal(int(seconds * sr))).astype(np.float32)
    t = np.arange(int(0.2 * sr)) / sr
    x[int(onset * sr):int(onset * sr) + t.size] += 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


def _onset(wave, sr, at):
    return at + int(np.argmax(np.abs(wave) > 0.05 * np.abs(wave).max())) / sr


@pytest.mark.parametrize("sr", [44100, 16000])
def test_sox_mp3_whose_lame_mark_is_past_the_head_starts_exactly(tmp_path, sr):
    """sox (libmp3lame, no LAME tag) names the encoder only in the last frames' ancillary data:
    in a file longer than the head read, the encoder delay must still be removed."""
    if shutil.which("sox") is None:
        pytest.skip("sox not installed")
    seconds = 4.0 if sr == 44100 else 30.0
    wav = _burst_wav(tmp_path / "burst.wav", sr, seconds)
    out = _encode(["sox", "-V1", str(wav), str(tmp_path / "burst.mp3")], tmp_path / "burst.mp3")
    data = out.read_bytes()
    if b"LAME" in data[:16384] or b"LAME" not in data:
        pytest.skip("this sox names LAME in the head (or not at all): nothing to find in the tail")
    wave = load_audio(out, 0.9, 1.2, sample_rate=sr).numpy()
    assert abs(_onset(wave, sr, 0.9) - 1.0) < 0.002  # 576 samples late (13 ms at 44.1 kHz) before the fix
    head = parse_mp3_head(data[:16384])
    assert head.encoder_delay is None and not head.lame  # untagged: only the tail names the encoder
    assert mp3_signal_range(out, 100 * head.samples_per_frame)[0] == 576 + DECODER_DELAY
