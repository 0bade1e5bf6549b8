"""A pretrained GE2E speaker encoder (d-vector) as a plain torch module, frozen.

``GE2ESpeakerEncoder`` re-implements Resemblyzer's ``VoiceEncoder`` (resemblyzer 0.1.4,
Apache-2.0, Resemble AI; after Wan et al. 2018, "Generalized End-to-End Loss for Speaker
Verification", arXiv:1710.10467) with its released weights converted to safetensors
(``clsp/models/weights/ge2e_resemblyzer.safetensors``; licence and attribution in
``clsp/models/weights/NOTICE.txt``). Neither resemblyzer nor librosa is needed at run time.

Preprocessing, as in ``resemblyzer.audio`` / ``VoiceEncoder.embed_utterance``:

* 16 kHz mono; the level is raised (never lowered) to -30 dBFS RMS (``normalize_volume``
  with ``increase_only=True``). Resemblyzer also drops long silences with webrtcvad before
  this; that step is not reproduced (pauses stay in).
* Power (not log) mel spectrogram: 400-sample (25 ms) periodic Hann window, 160-sample
  (10 ms) hop, ``center=True``, 40 Slaney-scale, Slaney-normalised mel bands over 0-8 kHz
  (librosa's ``melspectrogram`` defaults, built here with torchaudio).
* Partial utterances of 160 frames (1.6 s), 1.3 per second, the last one kept when at least
  75 % of it holds audio (the waveform is zero-padded to cover it); each partial goes
  through LSTM(40 -> 256, 3 layers) -> last hidden state -> Linear(256, 256) -> ReLU ->
  L2 norm, and the clip's d-vector is the L2-normalised mean of its partials.
  ``max_partials`` (None: all, as Resemblyzer) keeps at most that many, evenly spread: the
  LSTM's cost grows with the partials (about 0.5 GFLOP per second of audio with all of them).

Measured against resemblyzer's own ``embed_utterance`` (librosa 0.11 mel) on EmoDB clips:
cosine >= 0.999 (tests/unit/test_speaker.py checks the mel filters against an independent
Slaney formula and the partial slicing against resemblyzer's rule).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from clsp.features import power_spectrum

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partial utterances per second
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
EMBEDDING_DIM = 256
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
GE2E_WEIGHTS = WEIGHTS_DIR / "ge2e_resemblyzer.safetensors"


@lru_cache(maxsize=2)
def _mel_filters(band: str = "full") -> torch.Tensor:
    """``(N_FFT // 2 + 1, N_MELS)`` Slaney mel filters (librosa.filters.mel defaults), over the
    spectrum bins of ``band`` only (``clsp.audio.band_mask``)."""
    import torchaudio

    from clsp.audio import band_mask

    fb = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE,
                                               norm="slaney", mel_scale="slaney")
    return fb * band_mask(N_FFT, band, SAMPLE_RATE)[:, None]


def normalize_volume(wave: torch.Tensor, target_dbfs: float = TARGET_DBFS) -> torch.Tensor:
    """Raise ``wave`` (samples in [-1, 1]) to ``target_dbfs`` RMS; louder or silent clips are
    returned unchanged (resemblyzer ``normalize_volume(..., increase_only=True)``)."""
    rms = wave.double().pow(2).mean().sqrt() if wave.numel() else torch.zeros((), dtype=torch.float64)
    if rms <= 0:
        return wave
    change = target_dbfs - 20.0 * math.log10(float(rms))
    return wave * (10.0 ** (change / 20.0)) if change > 0 else wave


def mel_power(wave: torch.Tensor, pad_mode: str = "constant", band: str = "full", center: bool = True) -> torch.Tensor:
    """Power mel spectrogram ``(frames, 40)`` of a 16 kHz waveform ``(S,)``; frames = 1 + S // 160
    (``center=False``, samples already centred: 1 + (S - 400) // 160); ``band="telephone"``: from
    the spectrum's 100 Hz-3.4 kHz only."""
    spec = torch.stft(wave.float(), N_FFT, HOP, N_FFT, torch.hann_window(N_FFT, device=wave.device), center=center,
                      pad_mode=pad_mode, return_complex=True)
    return (power_spectrum(spec).t() @ _mel_filters(band).to(wave.device)).float()


def partial_starts(num_samples: int) -> tuple[list[int], int]:
    """Start frames of the partial utterances and the samples the waveform is padded to
    (resemblyzer ``VoiceEncoder.compute_partial_slices`` with rate 1.3, coverage 0.75)."""
    n_frames = int(math.ceil((num_samples + 1) / HOP))
    step = int(round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (num_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return starts, (starts[-1] + PARTIAL_FRAMES) * HOP


def partial_mels(wave: torch.Tensor, max_partials: int | None = None, band: str = "full") -> torch.Tensor:
    """The partial-utterance mel windows ``(P, 160, 40)`` of one clip ``(S,)``; with
    ``max_partials``, at most that many, evenly spread over the clip; mels over ``band``."""
    wave = normalize_volume(wave.float().reshape(-1))
    starts, padded = partial_starts(wave.numel())
    if max_partials is not None and len(starts) > max_partials:
        keep = torch.linspace(0, len(starts) - 1, max_partials).round().long().tolist()
        starts = [starts[i] for i in keep]
    if padded >= wave.numel():
        wave = nn.functional.pad(wave, (0, padded - wave.numel()))
    if 1 + wave.numel() // HOP <= len(starts) * PARTIAL_FRAMES:
        mel = mel_power(wave, band=band)
        return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
    # only the kept partials' frames, each from its own stretch of the centred (zero-padded)
    # waveform: the same numbers as slicing the whole clip's mel_power
    centred = nn.functional.pad(wave, (N_FFT // 2, N_FFT // 2))
    span = (PARTIAL_FRAMES - 1) * HOP + N_FFT
    return torch.stack([mel_power(centred[s * HOP : s * HOP + span], band=band, center=False) for s in starts])


class GE2ESpeakerEncoder(nn.Module):
    """Frozen d-vector encoder: 16 kHz waveforms ``(B, S)`` + lengths ``(B,)`` -> ``(B, 256)``
    unit vectors. Each clip is read from its own valid samples only, so its d-vector does
    not depend on the batch. ``band="telephone"`` builds the mel from the spectrum's
    100 Hz-3.4 kHz only (``clsp.audio.band_mask``), the band a telephone channel keeps, so an
    8 kHz copy of a clip gets nearly the same d-vector. Weights load from safetensors (``ModelError`` when missing)."""

    USES_CPU_LSTM_PRECISION = True  # its CPU LSTM runs in the format CLSP_CPU_LSTM says (clsp embed records it)

    output_dim = EMBEDDING_DIM

    def __init__(self, load_weights: bool = True, max_partials: int | None = None, band: str = "full"):
        super().__init__()
        from clsp.audio import SPEAKER_BANDS
        from clsp.errors import ConfigError

        if max_partials is not None and max_partials < 1:
            raise ConfigError(f"max_partials must be >= 1 or None, got {max_partials}")
        if band not in SPEAKER_BANDS:
            raise ConfigError(f"band must be one of {', '.join(SPEAKER_BANDS)}, got {band!r}")
        self.max_partials, self.band = max_partials, band
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_DIM)
        if load_weights:
            self.load_state_dict(load_ge2e_state())
        self.requires_grad_(False)

    def _load_from_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_bf16_copy", None)  # new weights: rebuild the bfloat16 copy
        super()._load_from_state_dict(*args, **kwargs)

    def _bf16(self) -> nn.Module:
        """A bfloat16 copy of the LSTM and linear layer for CPU (built once; not in the state dict)."""
        if "_bf16_copy" not in self.__dict__:
            import copy

            plain = nn.ModuleDict({"lstm": copy.deepcopy(self.lstm), "linear": copy.deepcopy(self.linear)})
            self.__dict__["_bf16_copy"] = plain.to(torch.bfloat16)
        return self.__dict__["_bf16_copy"]

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """``(P, 160, 40)`` power mel windows -> ``(P, 256)`` unit partial embeddings (float32). On
        the CPU the LSTM runs in bfloat16 where ``clsp.models.lstm_precision`` says so (AMX, AVX512-BF16)."""
        from clsp.models.lstm_precision import bf16_rows, cpu_lstm_precision

        if mels.device.type == "cpu" and cpu_lstm_precision("float32") == "bfloat16":
            layers = self._bf16()
            raw = torch.relu(bf16_rows(lambda rows: layers["linear"](layers["lstm"](rows)[1][0][-1]).float(),
                                       mels.to(torch.bfloat16)))
        else:
            _, (hidden, _) = self.lstm(mels.float())
            raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        parts = [partial_mels(waveforms[i, : int(n)], self.max_partials, self.band) for i, n in enumerate(lengths.tolist())]
        counts = [p.shape[0] for p in parts]
        partial = self.embed_partials(torch.cat(parts).to(waveforms.device))
        means = torch.stack([chunk.mean(0) for chunk in partial.split(counts)])
        return means / means.norm(dim=1, keepdim=True).clamp(min=1e-12)


@lru_cache(maxsize=1)
def _ge2e_state_cached() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from clsp.errors import ModelError

    if not GE2E_WEIGHTS.exists():
        raise ModelError(f"{GE2E_WEIGHTS}: GE2E speaker-encoder weights missing from the package")
    return load_file(str(GE2E_WEIGHTS))


def load_ge2e_state() -> dict[str, torch.Tensor]:
    """The packaged GE2E weights (``lstm.*``, ``linear.*``) as a fresh state dict."""
    return {k: v.clone() for k, v in _ge2e_state_cached().items()}
