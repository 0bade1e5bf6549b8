"""Hugging Face transformers encoders as CLSP towers, built from local directories only.

* ``HFSpeechEncoder`` (registered as speech encoder ``"hf"``): any transformers audio encoder
  on 16 kHz waveforms (WavLM, HuBERT, wav2vec2, data2vec-audio, Whisper's encoder). It takes
  ``(waveforms (B, S), sample_lens (B,))`` (``input_kind = "waveform"``) and returns frame
  features ``(B, T', D)`` with their valid lengths, for the model's masked mean pooling.
  Every clip gets its one-clip output whatever its batch: padded batches run in one pass only
  where the model masks padding exactly (``MASKED_PADDING_TYPES`` with layer-norm feature
  encoders); any other model (group-norm feature encoders normalise over time, data2vec-audio's
  stacked positional convolutions see padded frames) runs each padded clip at its own length.
* ``HFTextEncoder``: any transformers text encoder with ``pooler`` / ``cls`` / ``mean``
  pooling (the text tower of ``clsp.models.text``).

No code is downloaded or executed from model repositories (``trust_remote_code`` is never set).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from clsp.errors import ConfigError, InputError, ModelError
from clsp.models.registry import register_speech_encoder
from clsp.models.text import TextTower as HFTextEncoder

__all__ = ["HFSpeechEncoder", "HFTextEncoder"]

SAMPLE_RATE = 16000

# Model types whose forward pass keeps padding out of valid frames when given an attention
# mask and a layer-norm feature encoder: the convolutional feature encoder has no time padding,
# padded frames are zeroed before the (single) positional convolution, and attention masks
# padded keys. Checked batch against one clip in tests/unit/test_hf_encoders.py.
MASKED_PADDING_TYPES = ("wav2vec2", "hubert", "wavlm")


def _local_dir(source: str | Path, base_dir: Path | None) -> Path:
    from clsp.records import home_path

    p = home_path(source)
    if not p.is_absolute() and base_dir is not None and (base_dir / p).exists():
        p = base_dir / p
    if not (p / "config.json").exists():
        raise ModelError(f"{source}: not a local transformers model directory (no config.json)")
    return p


@register_speech_encoder("hf")
class HFSpeechEncoder(nn.Module):
    """A transformers audio encoder on 16 kHz waveforms -> (frames (B, T', D), frame lengths (B,))."""

    input_kind = "waveform"

    def __init__(
        self,
        source: str | None = None,
        config: dict[str, Any] | None = None,
        load_weights: bool = True,
        normalize: bool | None = None,
        frozen: bool = False,
        base_dir: Path | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        path = _local_dir(source, base_dir) if source is not None else None
        if config is not None:
            cfg = dict(config)
            hf_config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        elif path is not None:
            hf_config = AutoConfig.from_pretrained(path, local_files_only=True)
        else:
            raise ConfigError("an 'hf' speech encoder needs a 'source' directory or a 'config'")
        weights = path is not None and load_weights and (path / "model.safetensors").exists()
        if weights:
            model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
        else:
            model = AutoModel.from_config(hf_config)
        self.is_whisper = hf_config.model_type == "whisper"
        self.model = model.get_encoder() if self.is_whisper else model
        self.output_dim = int(hf_config.d_model if self.is_whisper else hf_config.hidden_size)
        self.normalize = _read_normalize(path) if normalize is None else normalize
        self.use_attention_mask = getattr(hf_config, "feat_extract_norm", "layer") == "layer"
        self.masks_padding = self.use_attention_mask and hf_config.model_type in MASKED_PADDING_TYPES
        self.spec = {"source": source, "config": config, "normalize": self.normalize, "frozen": frozen}
        if self.is_whisper:
            self._mel = _whisper_mel(path, hf_config)
        if frozen:
            self.model.requires_grad_(False)

    def forward(self, waveforms: Tensor, sample_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Waveforms (B, S) at 16 kHz and valid sample counts (B,) -> frames (B, T', D), lengths (B,).

        Each item's valid frames equal its one-item result; frames past its length are padding.
        """
        if waveforms.ndim != 2 or sample_lens.shape != waveforms.shape[:1]:
            raise InputError(f"hf speech encoder: expected waveforms (batch, samples), got {tuple(waveforms.shape)}")
        if self.is_whisper:
            return self._forward_whisper(waveforms, sample_lens)
        if self.masks_padding or bool((sample_lens >= waveforms.shape[1]).all()):
            return self._forward_padded(waveforms, sample_lens)
        return self._forward_each(waveforms, sample_lens)

    def _forward_padded(self, waveforms: Tensor, sample_lens: Tensor) -> tuple[Tensor, Tensor]:
        valid = torch.arange(waveforms.shape[1], device=waveforms.device)[None, :] < sample_lens[:, None]
        x = waveforms.float().masked_fill(~valid, 0.0)
        if self.normalize:
            n = sample_lens.clamp(min=1).to(x.dtype)[:, None]
            mean = x.sum(1, keepdim=True) / n
            var = ((x - mean).masked_fill(~valid, 0.0) ** 2).sum(1, keepdim=True) / n
            x = ((x - mean) / torch.sqrt(var + 1e-7)).masked_fill(~valid, 0.0)
        mask = valid.long() if self.use_attention_mask else None
        out = self.model(input_values=x, attention_mask=mask).last_hidden_state
        out_lens = self.model._get_feat_extract_output_lengths(sample_lens).long().clamp(max=out.shape[1])
        return out, out_lens

    def _forward_each(self, waveforms: Tensor, sample_lens: Tensor) -> tuple[Tensor, Tensor]:
        """One pass per item at its own length (models whose padding would leak), zero-padded."""
        outs, lens = zip(*(self._forward_padded(waveforms[i : i + 1, : int(n)], sample_lens[i : i + 1])
                           for i, n in enumerate(sample_lens.tolist())))
        frames = max(o.shape[1] for o in outs)
        out = torch.cat([torch.nn.functional.pad(o, (0, 0, 0, frames - o.shape[1])) for o in outs])
        return out, torch.cat(lens)

    def _forward_whisper(self, waveforms: Tensor, sample_lens: Tensor) -> tuple[Tensor, Tensor]:
        extractor, window = self._mel
        clips = [waveforms[i, : int(n)].float().cpu().numpy() for i, n in enumerate(sample_lens.tolist())]
        feats = extractor(clips, sampling_rate=SAMPLE_RATE, max_length=window, padding="max_length",
                          truncation=True, return_tensors="pt").input_features
        out = self.model(input_features=feats.to(waveforms.device, self.model.dtype)).last_hidden_state
        frames = torch.ceil(sample_lens.clamp(max=window).float() / (2 * extractor.hop_length)).long()
        return out, frames.clamp(min=1, max=out.shape[1])


def _read_normalize(path: Path | None) -> bool:
    """``do_normalize`` of the directory's feature extractor (True when it has none)."""
    if path is None or not (path / "preprocessor_config.json").exists():
        return True
    return bool(json.loads((path / "preprocessor_config.json").read_text()).get("do_normalize", True))


def _whisper_mel(path: Path | None, hf_config) -> tuple[Any, int]:
    """Whisper log-mel extractor and its window in samples (the encoder's fixed input length)."""
    from transformers import WhisperFeatureExtractor

    if path is not None and (path / "preprocessor_config.json").exists():
        extractor = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
    else:
        extractor = WhisperFeatureExtractor(feature_size=hf_config.num_mel_bins)
    window = hf_config.max_source_positions * 2 * extractor.hop_length
    extractor.chunk_length = math.ceil(window / SAMPLE_RATE)
    return extractor, window
