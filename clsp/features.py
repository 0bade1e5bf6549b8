"""CLSP's audio features: 128-bin Kaldi log-mel filterbanks, computed alone or batched.

Settings follow the released model exactly: 25 ms Povey window, 10 ms shift,
``snip_edges=False`` (frames = (N + 80) // 160), DC removal, pre-emphasis 0.97, 512-point
FFT, power spectrum, 128 mel bins from 20 Hz to 7600 Hz, ``log(max(eps, energy))``, no
dither, no energy term, no CMVN, waveform in [-1, 1]. ``fbank_batch`` vectorizes all
frames of a batch into one FFT and gives the same numbers as ``torchaudio.compliance.kaldi``
on each clip alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

FRAME_LENGTH = 400  # samples at 16 kHz (25 ms)
FRAME_SHIFT = 160  # samples (10 ms)
PADDED_WINDOW = 512
NUM_MEL_BINS = 128
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
HIGH_FREQ = -400.0
SAMPLE_RATE = 16000
PAD_VALUE = float(torch.log(torch.tensor(1e-10)))


@dataclass(frozen=True)
class FbankConfig:
    """The filterbank settings, recorded in model configs for provenance."""

    num_mel_bins: int = NUM_MEL_BINS
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = LOW_FREQ
    high_freq: float = HIGH_FREQ
    sample_rate: int = SAMPLE_RATE
    snip_edges: bool = False
    dither: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def num_frames(num_samples: int) -> int:
    """Number of fbank frames for ``num_samples`` with ``snip_edges=False``."""
    return (num_samples + FRAME_SHIFT // 2) // FRAME_SHIFT


@lru_cache(maxsize=8)
def _mel_banks(num_bins: int, device: str = "cpu") -> torch.Tensor:
    if device != "cpu":
        return _mel_banks(num_bins).to(device)
    from torchaudio.compliance.kaldi import get_mel_banks

    banks, _ = get_mel_banks(num_bins, PADDED_WINDOW, float(SAMPLE_RATE), LOW_FREQ, HIGH_FREQ, 100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0.0)  # (bins, 257)
    return banks.t().contiguous()  # (257, bins)


@lru_cache(maxsize=4)
def _povey_window(device: str = "cpu") -> torch.Tensor:
    if device != "cpu":
        return _povey_window().to(device)
    return torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float32).pow(0.85)


def _frames_of(wave: torch.Tensor) -> torch.Tensor:
    """Kaldi framing with ``snip_edges=False``: mirrored edges, one frame per 10 ms. A strided
    view ``(frames, 400)`` of the clip with only its mirrored edges added."""
    n = wave.numel()
    m = num_frames(n)
    pad = FRAME_LENGTH // 2 - FRAME_SHIFT // 2
    need = (m - 1) * FRAME_SHIFT + FRAME_LENGTH
    parts = [wave[:pad].flip(0), wave]  # the first samples mirrored before the start
    tail = need - min(pad, n) - n
    if tail > 0:  # the last samples mirrored after the end
        parts.append(wave[max(n - tail, 0) :].flip(0))
    padded = torch.cat(parts)
    if padded.numel() < need:  # clips under 25 ms, which Kaldi itself cannot frame
        padded = torch.nn.functional.pad(padded, (0, need - padded.numel()))
    return padded.as_strided((m, FRAME_LENGTH), (FRAME_SHIFT, 1))


FBANK_CHUNK = 256  # frames per pass, so that a chunk's spectra stay in the CPU's cache


def _frames_to_fbank(clips: list[torch.Tensor], num_bins: int) -> torch.Tensor:
    """Kaldi fbank of framed samples, one ``(N_i, 400)`` tensor or strided view per clip ->
    ``(sum N_i, num_bins)``, the clips one after another: DC removal, pre-emphasis (first
    sample against itself), Povey window, 512-point FFT, power re^2 + im^2, mel, log of at
    least float32 eps. On the CPU ``FBANK_CHUNK`` frames of one clip at a time, read straight
    from its view (elsewhere all frames in one pass); each chunk is pre-emphasised into a
    zero-padded 512-sample buffer (the same numbers as padding inside the FFT), its power from
    ``power_spectrum``."""
    device = clips[0].device if clips else torch.device("cpu")
    window, banks = _povey_window(str(device)), _mel_banks(num_bins, str(device))
    total = sum(c.shape[0] for c in clips)
    out = torch.empty(total, num_bins, device=device)
    if device.type != "cpu":
        clips, chunk = [torch.cat(clips)] if clips else [], max(total, 1)
    else:
        chunk = FBANK_CHUNK
    padded = torch.zeros(min(chunk, max((c.shape[0] for c in clips), default=0)), PADDED_WINDOW, device=device)
    start = 0
    for frames in clips:
        for at in range(0, frames.shape[0], chunk):
            part = frames[at : at + chunk]
            n = part.shape[0]
            part = part - part.mean(dim=1, keepdim=True)
            emph = padded[:n, :FRAME_LENGTH]  # columns FRAME_LENGTH.. stay zero
            torch.mul(part[:, :-1], PREEMPHASIS, out=emph[:, 1:])
            torch.sub(part[:, 1:], emph[:, 1:], out=emph[:, 1:])
            emph[:, 0] = part[:, 0] - PREEMPHASIS * part[:, 0]
            emph.mul_(window)
            torch.matmul(power_spectrum(torch.fft.rfft(padded[:n])), banks, out=out[start : start + n])
            start += n
    return out.clamp_(min=torch.finfo(torch.float32).eps).log_()


def power_spectrum(spec: torch.Tensor) -> torch.Tensor:
    """Power ``re^2 + im^2`` of a complex spectrum (any shape), as one contiguous pass over its
    real view: equal to ``spec.abs().pow(2)`` to float rounding, without its square root."""
    parts = torch.view_as_real(spec).square()
    return torch.add(parts[..., 0], parts[..., 1])


def fbank(wave: torch.Tensor, num_mel_bins: int = NUM_MEL_BINS) -> torch.Tensor:
    """Log-mel fbank of one mono 16 kHz waveform ``(T,)`` -> ``(frames, num_mel_bins)``."""
    wave = wave.to(torch.float32).reshape(-1)
    if num_frames(wave.numel()) == 0:
        return torch.zeros(0, num_mel_bins)
    return _frames_to_fbank([_frames_of(wave)], num_mel_bins)


def fbank_batch(
    waves: list[torch.Tensor], num_mel_bins: int = NUM_MEL_BINS, pad_value: float = PAD_VALUE,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fbank of several waveforms in one FFT: ``(B, F_max, bins)`` padded, and lengths ``(B,)``.

    ``device`` (default: where the waveforms are) is where the frames are computed and the
    features returned; lengths stay on the CPU. Host waveforms bound for a CUDA device travel
    as one pinned copy. Each clip's frames are its own, so a clip's features do not depend on
    the batch (on a GPU they match the CPU's to float32 rounding of the FFT).
    """
    lens = torch.tensor([num_frames(w.numel()) for w in waves], dtype=torch.long)
    device = torch.device(device) if device is not None else (waves[0].device if waves else torch.device("cpu"))
    if waves and device.type == "cuda" and any(w.device != device for w in waves):
        flat = torch.cat([w.detach().to("cpu", torch.float32).reshape(-1) for w in waves])
        flat = flat.pin_memory().to(device, non_blocking=True)
        waves = list(torch.split(flat, [w.numel() for w in waves]))
    else:
        waves = [w.to(device) for w in waves]
    feats = torch.full((len(waves), int(lens.max()) if len(waves) else 0, num_mel_bins), pad_value, device=device)
    allf, counts = fbank_frames(waves, num_mel_bins)
    offset = 0
    for i, n in enumerate(counts):
        feats[i, :n] = allf[offset : offset + n]
        offset += n
    return feats, lens


def fbank_frames(waves: list[torch.Tensor], num_mel_bins: int = NUM_MEL_BINS) -> tuple[torch.Tensor, list[int]]:
    """Fbank of several waveforms ``(S_i,)``, unpadded: every clip's frames one clip after
    another ``(sum F_i, bins)`` on the waveforms' device, and the frame counts ``[F_i]``."""
    counts = [num_frames(w.numel()) for w in waves]
    nonempty = [_frames_of(w.to(torch.float32).reshape(-1)) for w, n in zip(waves, counts) if n > 0]
    if not nonempty:
        return torch.zeros(0, num_mel_bins, device=waves[0].device if waves else "cpu"), counts
    return _frames_to_fbank(nonempty, num_mel_bins), counts


def pad_features(feats: list[torch.Tensor], pad_value: float = PAD_VALUE) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-clip ``(F_i, bins)`` features into ``(B, F_max, bins)`` with lengths."""
    lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    bins = feats[0].shape[1] if feats else NUM_MEL_BINS
    out = torch.full((len(feats), int(lens.max()) if feats else 0, bins), pad_value)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lens
