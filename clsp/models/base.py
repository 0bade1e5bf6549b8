"""The CLSP dual encoder: speech tower + text tower + heads + a learned logit scale.

Attribute names follow the released model (``audio_projection``, ``audio_transform``,
``text_projection``, ``text_transform``, ``logit_scale``) with the speech tower under
``speech_encoder`` and the transformers text model under ``text_encoder.model``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clsp.errors import ConfigError
from clsp.features import fbank_batch
from clsp.models.heads import Transform, projection
from clsp.models.registry import build_speech_encoder, check_config_keys, check_value
from clsp.models.speech_input import SpeechInput
from clsp.models.text import TextTower

LOGIT_SCALE_MAX = math.log(100.0)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a CLSP model's modules (weights live elsewhere)."""

    speech_encoder: dict[str, Any] = field(default_factory=lambda: {"type": "compact"})
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"source": "all-MiniLM-L6-v2", "pooling": "mean"})
    joint_dim: int = 512
    head_hidden: int = 512
    head_dropout: float = 0.1
    logit_scale_init: float = math.log(1 / 0.07)
    sample_rate: int = 16000
    num_mel_bins: int = 128
    name: str = "clsp"
    # rank of the gender anchor (clsp.models.anchor); 0: none. Needs a speech encoder with
    # ``gender_logodds`` (speaker_fusion with gender_head: true)
    gender_anchor: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """The config of ``d``; ``ConfigError`` naming ``model.KEY`` for an unknown key or a
        value of the wrong type or out of range (``joint_dim: abc``, ``head_dropout: 2``)."""
        if not isinstance(d, dict):
            raise ConfigError(f"the model config must be a JSON object (a mapping), got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(sorted(map(str, unknown)))}")
        _check_model_values(d)
        return cls(**d)


def _check_model_values(d: dict[str, Any]) -> None:
    from typing import Annotated

    from pydantic import Field

    rules: dict[str, Any] = {
        "speech_encoder": dict[str, Any], "text_encoder": dict[str, Any],
        "joint_dim": Annotated[int, Field(ge=1)], "head_hidden": Annotated[int, Field(ge=1)],
        "head_dropout": Annotated[float, Field(ge=0, lt=1)], "logit_scale_init": Annotated[float, Field(allow_inf_nan=False)],
        "sample_rate": Annotated[int, Field(ge=1)], "num_mel_bins": Annotated[int, Field(ge=1)], "name": str,
        "gender_anchor": Annotated[int, Field(ge=0)]}
    for key, value in d.items():
        check_value(f"model.{key}", rules[key], value, strict_text=True)


class CLSPModel(nn.Module):
    """Dual encoder mapping speech and captions to unit vectors in one joint space."""

    def __init__(self, config: ModelConfig, base_dir: Path | None = None, load_text_weights: bool = True,
                 with_text: bool = True):
        super().__init__()
        self.config = config
        self.speech_encoder = build_speech_encoder(config.speech_encoder)
        check_config_keys(TextTower, config.text_encoder, "model.text_encoder", reserved=("base_dir", "load_weights", "build"))
        self.text_encoder = TextTower(**config.text_encoder, base_dir=base_dir, load_weights=load_text_weights,
                                      build=with_text)
        d, h = config.joint_dim, config.head_hidden
        self.audio_projection = projection(self.speech_encoder.output_dim, h, d)
        self.audio_transform = Transform(d, config.head_dropout)
        self.text_projection = projection(self.text_encoder.output_dim, h, d)
        self.text_transform = Transform(d, config.head_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.gender_anchor = None
        if config.gender_anchor:
            if not callable(getattr(self.speech_encoder, "gender_logodds", None)):
                raise ConfigError("gender_anchor needs a speech encoder with a gender head "
                                  "(speaker_fusion with gender_head: true)")
            from clsp.models.anchor import GenderAnchor

            self.gender_anchor = GenderAnchor(d, config.gender_anchor)
        self.name = config.name
        self.checksum: str | None = None
        # the model this one was trained from: {"model": name, "checksum": ...} (None: trained from scratch)
        self.init_from: dict[str, str] | None = None

    # ---- speech ----
    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def speech_features(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                        frozen: torch.Tensor | None = None) -> torch.Tensor:
        """Masked mean over the valid frames of the speech encoder output ``(B, D_enc)``.

        ``frozen``: the encoder's precomputed ``frozen_features`` ``(B, frozen_dim)`` (training cache)."""
        if frozen is not None:
            out, lens = self.speech_encoder(feats, feat_lens, frozen=frozen)
        else:
            out, lens = self.speech_encoder(feats, feat_lens)
        mask = (torch.arange(out.shape[1], device=out.device).unsqueeze(0) < lens.unsqueeze(1)).to(out.dtype)
        return (out * mask.unsqueeze(-1)).sum(1) / lens.clamp(min=1).unsqueeze(1).to(out.dtype)

    def audio_embed_unnormalized(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                 frozen: torch.Tensor | None = None) -> torch.Tensor:
        if self.gender_anchor is None:
            return self.audio_transform(self.audio_projection(self.speech_features(feats, feat_lens, frozen)))
        if frozen is None:
            frozen = self.speech_encoder.frozen_features(feats, feat_lens)
        x = self.audio_transform(self.audio_projection(self.speech_features(feats, feat_lens, frozen)))
        return self.gender_anchor(x, self.speech_encoder.gender_logodds(frozen))

    def encode_fbank(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> torch.Tensor:
        """Unit-norm audio embeddings from padded encoder inputs and their lengths ``(B,)``.

        Inputs are fbank ``(B, T, bins)`` or, for waveform encoders, samples ``(B, S)``.
        """
        return F.normalize(self.audio_embed_unnormalized(feats.to(self.device), feat_lens.to(self.device)).float(), dim=-1)

    @property
    def input_kind(self) -> str:
        """``"fbank"`` (most encoders) or ``"waveform"`` (transformers speech models, speaker_fusion)."""
        return getattr(self.speech_encoder, "input_kind", "fbank")

    @property
    def speech_input(self) -> SpeechInput:
        """The tower's input preparation and collation, shared by embedding and training."""
        return SpeechInput(self.input_kind, self.config.num_mel_bins, self.config.sample_rate)

    def prepare_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """Per-clip model input: fbank frames ``(F, bins)`` or the waveform ``(S, 1)``."""
        return self.speech_input.prepare(wave)

    def encode_audio(self, waveforms: torch.Tensor, lengths, sample_rate: int | None = None) -> torch.Tensor:
        """Unit-norm audio embeddings ``(B, D)`` from padded float waveforms ``(B, S)`` (samples
        in [-1, 1]) and their sample counts ``(B,)``: a 1-D tensor, a list or a numpy array of
        whole numbers (a float dtype holding whole numbers is accepted). ``B = 0`` gives an
        empty ``(0, D)`` tensor. ``sample_rate`` (Hz) is the waveforms' rate; None means the
        model's own (``config.sample_rate``, 16 kHz); any other rate is resampled to it first,
        each clip from its own samples, as ``clsp.audio.load_audio`` resamples a file.

        Raises ``ConfigError`` for waveforms of another shape (one clip ``(S,)`` is
        ``wave[None]``) or a non-floating dtype (scale integer PCM to floats first: int16 /
        32768), for lengths of another shape than ``(B,)`` or that are not numbers, and, naming
        the clip index and the value, for a negative or fractional length or one above ``S``;
        ``AudioError`` naming the clip index for a clip with non-finite samples (NaN, inf) or
        samples past ``clsp.audio.PEAK_LIMIT`` (2.0, twice full scale: integer PCM values
        stored as floats), or one shorter than ``MIN_SECONDS`` (0.1 s); ``ConfigError`` for a
        ``sample_rate`` that is not a positive whole number."""
        from clsp.audio import check_sample_rate

        rate = self.config.sample_rate if sample_rate is None else check_sample_rate(sample_rate, "encode_audio")
        lens = _check_waveforms(waveforms, lengths, rate)
        if waveforms.shape[0] == 0:
            return torch.zeros(0, self.config.joint_dim, device=self.device)
        if rate != self.config.sample_rate:
            waveforms, lens = _resampled(waveforms, lens, rate, self.config.sample_rate)
        if self.input_kind == "waveform":
            return self.encode_fbank(waveforms.float(), lens)
        waves = [waveforms[i, : int(n)].float().cpu() for i, n in enumerate(lens.tolist())]
        feats, feat_lens = fbank_batch(waves, self.config.num_mel_bins)
        return self.encode_fbank(feats, feat_lens)

    # ---- text ----
    def text_embed_unnormalized(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw) -> torch.Tensor:
        return self.text_transform(self.text_projection(self.text_encoder(input_ids, attention_mask, **kw)))

    def text_features_to_embedding(self, pooled: torch.Tensor) -> torch.Tensor:
        """Heads applied to pooled text-encoder outputs (for cached frozen-tower features)."""
        return self.text_transform(self.text_projection(pooled))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings ``(B, D)`` for a list of captions; an empty list gives an
        empty ``(0, D)`` tensor. ``ConfigError`` for one string (give ``[text]``);
        ``InputError`` naming the index of the first caption that is not a string or is empty
        (blank), as ``encode_texts`` raises; ``ModelError`` on a model loaded with
        ``with_text=False``."""
        if isinstance(texts, str):
            raise ConfigError("encode_text takes a list of captions, not one string (give [text])")
        from clsp.encode import caption_list

        texts = caption_list(texts, "encode_text")
        _check_captions(texts)
        if len(texts) == 0:
            return torch.zeros(0, self.config.joint_dim, device=self.device)
        return self.encode_tokens(self.text_encoder.tokenize(list(texts), self.device))

    def encode_tokens(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unit-norm text embeddings ``(B, D)`` from ``text_encoder.tokenize`` output (any device)."""
        tokens = {k: v.to(self.device, non_blocking=True) for k, v in tokens.items()}
        return F.normalize(self.text_embed_unnormalized(**tokens).float(), dim=-1)

    # ---- lists of files and captions (as ``clsp embed``) ----
    def encode_audio_files(self, paths, batch_size: int = 64, **options):
        """Audio files -> ``(N, D)`` float32 numpy array, rows L2-normalised, in order; the
        embedder of ``clsp embed``. Options and errors: :func:`clsp.encode.encode_audio_files`."""
        from clsp.encode import encode_audio_files

        return encode_audio_files(self, paths, batch_size, **options)

    def encode_texts(self, texts, batch_size: int = 64, **options):
        """Captions -> ``(N, D)`` float32 numpy array, rows L2-normalised, in order; the
        embedder of ``clsp embed --modality text``. See :func:`clsp.encode.encode_texts`."""
        from clsp.encode import encode_texts

        return encode_texts(self, texts, batch_size, **options)

    # ---- misc ----
    def clamp_logit_scale(self) -> None:
        """Keep the temperature in [0.01, 1] (scale in [1, 100]) as in training."""
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)

    def provenance(self) -> dict[str, Any]:
        """What outputs record about the model that made them: its ``name``, weight
        ``checksum`` and ``config`` digest (``config_digest``; the three compared when
        embeddings meet), ``dim``, ``normalized``, ``sample_rate`` and, for a fine-tuned model,
        ``init_from`` (the name and checksum it was trained from); on the CPU, for a model with
        speaker-encoder LSTMs, ``cpu_lstm``: the format they run in there (``CLSP_CPU_LSTM``,
        :func:`clsp.models.lstm_precision.cpu_lstm_setting`), so that an index built from this
        provenance warns when vectors of the other format meet it."""
        prov: dict[str, Any] = {
            "model": self.name,
            "checksum": self.checksum,
            "config": config_digest(self.config),
            "dim": self.config.joint_dim,
            "normalized": True,
            "sample_rate": self.config.sample_rate,
        }
        if self.init_from:
            prov["init_from"] = dict(self.init_from)
        from clsp.models.lstm_precision import cpu_lstm_setting

        param = next(self.parameters(), None)
        lstm = cpu_lstm_setting(self, param.device.type if param is not None else "cpu")
        if lstm is not None:
            prov["cpu_lstm"] = lstm
        return prov

    def name_as_trained(self, name: str, fine_tuned: bool = True) -> None:
        """Give a model about to be trained its own ``name``; when ``fine_tuned``, record
        the model it starts from (its current name and checksum) as ``init_from``. The new
        weights' checksum is set when they are saved and loaded again."""
        parent = {"model": self.name, "checksum": self.checksum}
        self.init_from = {k: v for k, v in parent.items() if v is not None} if fine_tuned else None
        self.name = self.config.name = name
        self.checksum = None


def config_digest(config: "ModelConfig") -> str:
    """``sha256:`` and the first 16 hex digits of the SHA-256 of the canonical JSON (sorted
    keys) of the model settings that change its outputs beside its weights: the speech tower's
    and head settings, sample rate and fbank bins, the text tower's ``pooling`` and
    ``max_length``. Two models with the same weights but such settings changed (a text
    ``max_length``, a speech tower's ``stats_phases``) differ in it; a copy, a conversion or a
    renamed model does not (the name, training-only settings and the text tower's packaging,
    which saving rewrites, are left out)."""
    import hashlib
    import json

    full = config.to_dict()
    data = {k: v for k, v in full.items() if k not in ("name", "text_encoder", "head_dropout", "logit_scale_init")}
    text = full.get("text_encoder") if isinstance(full.get("text_encoder"), dict) else {}
    data["text_encoder"] = {k: text.get(k) for k in ("pooling", "max_length")}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_captions(texts) -> None:
    """The checks of ``CLSPModel.encode_text`` on its captions: ``InputError`` naming the first
    one that is not a string or is empty (blank), with the words of ``encode_texts``."""
    from clsp.errors import InputError

    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {i}: a caption must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InputError(f"text {i}: empty text (nothing but spaces)")


def _check_waveforms(waveforms: torch.Tensor, lengths, sample_rate: int) -> torch.Tensor:
    """The checks of ``CLSPModel.encode_audio`` on its inputs (see there); the lengths as a
    CPU int64 tensor ``(B,)``."""
    from clsp.audio import MIN_SECONDS, peak_problem
    from clsp.errors import AudioError

    if not isinstance(waveforms, torch.Tensor) or waveforms.dim() != 2:
        shape = tuple(waveforms.shape) if isinstance(waveforms, torch.Tensor) else type(waveforms).__name__
        raise ConfigError(f"encode_audio: waveforms must be a tensor of shape (B, S) (batch, samples), got {shape}; "
                          "for one clip give wave[None]")
    if not waveforms.is_floating_point():
        raise ConfigError(f"encode_audio: waveforms must be floating point samples in [-1, 1], got {waveforms.dtype}; "
                          "scale integer PCM first (e.g. int16 / 32768)")
    batch, samples = waveforms.shape
    lens = _lengths_list(lengths, batch)
    need = math.ceil(MIN_SECONDS * sample_rate)
    for i, n in enumerate(lens):
        if n > samples:
            raise ConfigError(f"encode_audio: clip {i}: length {n} is more than the {samples} samples given")
        if n < need:
            raise AudioError(f"clip {i}: too short ({n / sample_rate:.3f} s; at least {MIN_SECONDS} s needed)")
        problem = peak_problem(float(waveforms[i, :n].abs().max())) if n else None
        if problem:
            raise AudioError(f"clip {i}: {problem}")
    return torch.tensor(lens, dtype=torch.long)


def _resampled(waveforms: torch.Tensor, lens: torch.Tensor, rate: int, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's valid samples resampled from ``rate`` to ``target`` Hz (``clsp.audio.resample``),
    zero-padded again into ``(B, S')``, with the new lengths ``(B,)``."""
    from clsp.audio import resample

    waves = [resample(waveforms[i, : int(n)].float(), rate, target) for i, n in enumerate(lens.tolist())]
    new_lens = torch.tensor([w.numel() for w in waves], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), new_lens


def _lengths_list(lengths, batch: int) -> list[int]:
    """``encode_audio``'s ``lengths`` (a tensor, list or numpy array) as ``batch`` non-negative
    Python ints; ``ConfigError`` for another shape than ``(B,)``, values that are not numbers
    and, naming the clip, a negative or fractional (or non-finite) length."""
    import numpy as np

    expected = f"lengths must have shape (B,) = ({batch},), one sample count per clip"
    try:
        if isinstance(lengths, torch.Tensor):
            t = lengths.detach().cpu()
            arr = (t.double() if t.is_floating_point() else t).numpy()
        else:
            arr = np.asarray(lengths)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"encode_audio: {expected}; got {type(lengths).__name__} that is not an array of "
                          f"numbers ({exc})") from None
    if arr.ndim != 1:
        raise ConfigError(f"encode_audio: {expected}; got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iuf":
        raise ConfigError(f"encode_audio: lengths must be whole sample counts (integers), got dtype {arr.dtype}")
    if len(arr) != batch:
        raise ConfigError(f"encode_audio: {len(arr)} lengths for {batch} clips; {expected}")
    out = []
    for i, value in enumerate(arr.tolist()):
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ConfigError(f"encode_audio: clip {i}: length {value!r} is not a whole number of samples")
        n = int(value)
        if n < 0:
            raise ConfigError(f"encode_audio: clip {i}: length {n} is negative (a sample count is 0 or more)")
        out.append(n)
    return out


def build_model(config: ModelConfig | dict[str, Any], base_dir: Path | None = None, load_text_weights: bool = True,
                with_text: bool = True) -> CLSPModel:
    """Build a model with freshly initialised heads (and text weights from their source).

    ``with_text=False`` skips the text encoder's weights (audio-only use starts faster).
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return CLSPModel(config, base_dir=base_dir, load_text_weights=load_text_weights, with_text=with_text)


def tiny_config(speech: str = "compact") -> ModelConfig:
    """A small random-weight configuration for tests and examples (MiniLM tokenizer)."""
    speech_cfg: dict[str, Any] = {"type": "compact", "dim": 32, "layers": 2, "heads": 2, "ff_dim": 64, "conv_channels": 4, "dropout": 0.0}
    text_cfg = {
        "config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512},
        "tokenizer": "all-MiniLM-L6-v2",
        "pooling": "mean",
        "max_length": 128,
    }
    return ModelConfig(speech_encoder=speech_cfg, text_encoder=text_cfg, joint_dim=32, head_hidden=32, head_dropout=0.0, name="tiny-random")


def tiny_model(seed: int = 0) -> CLSPModel:
    """A deterministic tiny random-weight model (same seed, same weights)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = build_model(tiny_config())
    finally:
        torch.random.set_rng_state(state)
    model.checksum = f"seed:{seed}"
    return model.eval()
