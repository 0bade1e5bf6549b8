"""Training configuration: nested dataclasses loaded from YAML/JSON plus ``key=value`` overrides.

``load_config("stage2.yaml", ["optim.lr_heads=5e-4", "max_steps=2000"])`` reads the file,
applies the overrides (values parsed as YAML scalars or lists), and checks every key:
an unknown key or a value of the wrong type is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clsp.errors import ConfigError


@dataclass
class DataConfig:
    """Manifests and batching. Batches hold at most ``max_batch_seconds`` of audio per rank."""

    train: str = ""
    valid: str | None = None
    min_duration: float = 0.5
    max_duration: float = 30.0
    max_batch_seconds: float = 200.0
    max_batch_size: int = 0  # 0: bounded by seconds only
    num_buckets: int = 10
    shuffle_buffer: int = 10000
    num_workers: int = 2
    valid_max_clips: int = 2000
    group_key: str | None = None  # record field (e.g. speaker): its clips share batches in runs
    group_size: int = 4  # clips of one group placed together (hard negatives)
    text_cache: bool = False  # cache frozen text-tower features by caption string
    text_cache_size: int = 200000


@dataclass
class OptimConfig:
    """AdamW with separate learning rates for the encoders and for heads + logit scale."""

    lr_encoder: float = 1e-5
    lr_heads: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    schedule: str = "cosine"  # cosine | eden | constant
    warmup_steps: int = 500
    min_lr_ratio: float = 0.0
    eden_lr_batches: float = 100000.0
    eden_lr_epochs: float = 100.0
    eden_warmup_start: float = 0.5
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    accumulation: int = 1


@dataclass
class LossConfig:
    """Stage 1: symmetric InfoNCE; stage 2: multi-positive InfoNCE with the task scheduler."""

    stage: int = 1
    local_loss: bool = False
    mask_duplicate_captions: bool = True
    stage1_caption: str = "finegrained"  # finegrained | global | any
    task1_p0: float = 0.95
    task1_p_min: float = 0.5
    task_horizon: float = 10000.0


@dataclass
class TrainConfig:
    """Everything a training run needs; ``output_dir`` receives logs and checkpoints."""

    init_from: str | None = None  # model directory / built-in name to start from
    model: dict[str, Any] | None = None  # a ModelConfig dict for a freshly built model
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output_dir: str = "exp"
    max_steps: int = 10000
    max_epochs: int = 0  # 0: no epoch limit
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    deterministic: bool = False
    gradient_checkpointing: bool = False
    freeze: list[str] = field(default_factory=list)  # "text", "speech", or parameter-name prefixes
    text_head_init: str = "random"  # random | whiten | paraphrase (see clsp.train.text_init); fresh runs only
    text_whiten_captions: int = 10000  # captions sampled from data.train for the whitening
    text_whiten_shrink: float = 0.1  # added to each eigenvalue, times the mean eigenvalue
    text_whiten_centre: bool = False  # also centre the text head's outputs over the caption sample
    text_paraphrase_clips: int = 5000  # clips sampled from data.train for the paraphrase start
    text_paraphrase_steps: int = 500  # steps of caption-only training for the paraphrase start
    log_every: int = 10
    valid_every: int = 1000
    checkpoint_every: int = 1000
    keep_last: int = 3
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _build(cls, data, "")

    def validate(self) -> "TrainConfig":
        checks = [
            (self.loss.stage in (1, 2), "loss.stage must be 1 or 2"),
            (self.optim.schedule in ("cosine", "eden", "constant"), "optim.schedule must be cosine, eden or constant"),
            (self.loss.stage1_caption in ("finegrained", "global", "any"), "loss.stage1_caption must be finegrained, global or any"),
            (self.precision in ("auto", "bf16", "fp32"), "precision must be auto, bf16 or fp32"),
            (self.text_head_init in ("random", "whiten", "paraphrase"), "text_head_init must be random, whiten or paraphrase"),
            (self.text_paraphrase_clips >= 2, "text_paraphrase_clips must be >= 2"),
            (self.text_paraphrase_steps >= 1, "text_paraphrase_steps must be >= 1"),
            (self.text_whiten_captions >= 2, "text_whiten_captions must be >= 2"),
            (self.text_whiten_shrink >= 0, "text_whiten_shrink must be >= 0"),
            (self.data.group_size >= 1, "data.group_size must be >= 1"),
            (self.optim.accumulation >= 1, "optim.accumulation must be >= 1"),
            (self.data.max_batch_seconds > 0, "data.max_batch_seconds must be > 0"),
            (0 <= self.data.min_duration <= self.data.max_duration, "need 0 <= data.min_duration <= data.max_duration"),
            (self.max_steps > 0, "max_steps must be > 0"),
            (self.init_from is not None or self.model is not None, "set init_from (a model) or model (a model config)"),
            (bool(self.data.train), "data.train (a training manifest) is required"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(where + k for k in unknown)}")
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, f"{where}{key}.")
        else:
            values[key] = _coerce(value, hint, where + key)
    return cls(**values)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    base = next((a for a in args if a is not type(None)), hint) if args and typing.get_origin(hint) is not list else hint
    origin = typing.get_origin(base) or base
    if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if origin is float and isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if origin is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if origin in (str, bool, list, dict) and isinstance(value, origin):
        return value
    if origin is typing.Any:
        return value
    raise ConfigError(f"{name}: expected {getattr(origin, '__name__', origin)}, got {value!r}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config mapping from a ``.yaml``/``.yml`` or ``.json`` file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    text = p.read_text(encoding="utf-8-sig")  # a BOM from Windows editors is not part of the config
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise their own error types
        raise ConfigError(f"{p}: cannot parse config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping of keys to values")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as a YAML scalar/list) to a nested dict."""
    import yaml

    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and check a training config (``path=None`` starts from defaults)."""
    data = read_config_file(path) if path else {}
    data = apply_overrides(data, list(overrides or []))
    return TrainConfig.from_dict(data)
