"""What a speech tower takes as input: per-clip preparation, collation, frame rate, padding.

One small picklable object per model (``CLSPModel.speech_input``), used alike by
``clsp embed`` (clsp.embed), training and validation (clsp.train.data), so that a tower
sees the same input wherever it runs:

* ``"fbank"`` towers: 128-bin Kaldi log-mel fbank ``(frames, bins)`` at 100 frames/s,
  padded with ``clsp.features.PAD_VALUE`` -> ``(B, F_max, bins)``.
* ``"waveform"`` towers: 16 kHz samples, kept per clip as ``(S, 1)``, padded with zeros
  -> ``(B, S_max)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clsp.errors import ConfigError

INPUT_KINDS = ("fbank", "waveform")


@dataclass(frozen=True)
class SpeechInput:
    """Input preparation of one speech tower (``kind``: ``"fbank"`` or ``"waveform"``)."""

    kind: str = "fbank"
    num_mel_bins: int = 128
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ConfigError(f"speech encoder input_kind {self.kind!r}: expected one of {', '.join(INPUT_KINDS)}")

    @property
    def frame_rate(self) -> float:
        """Rows of a prepared clip per second of audio."""
        return float(self.sample_rate) if self.kind == "waveform" else 100.0

    def prepare(self, wave: torch.Tensor) -> torch.Tensor:
        """One mono 16 kHz clip ``(S,)`` -> fbank ``(F, bins)`` or waveform ``(S, 1)``."""
        if self.kind == "waveform":
            return wave.float().reshape(-1, 1)
        from clsp.features import fbank

        return fbank(wave, self.num_mel_bins)

    def collate(self, items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared clips -> padded batch (``(B, F_max, bins)`` or ``(B, S_max)``) and lengths ``(B,)``."""
        from clsp.features import PAD_VALUE, pad_features

        if self.kind == "waveform":
            if not items:
                return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
            x, lens = pad_features([i.reshape(-1, 1) for i in items], pad_value=0.0)
            return x[..., 0], lens
        if not items:
            return torch.zeros(0, 0, self.num_mel_bins), torch.zeros(0, dtype=torch.long)
        return pad_features(items, pad_value=PAD_VALUE)
