"""Preparing a CLSP model for training: freezing, gradient checkpointing, parameter
groups, the frozen-text and frozen-speech feature caches, and the one-forward wrapper DDP needs."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from clsp.errors import ConfigError
from clsp.train.config import TrainConfig

ENCODER_PREFIXES = ("speech_encoder.", "text_encoder.")
TOWER_PREFIXES = {"text": "text_encoder.", "speech": "speech_encoder."}


_MISSING = object()
# where a text tower's files come from: a checkpoint rewrites these to point into itself
# (clsp.models.checkpoint), so a saved run config names them otherwise for the same model
_FILE_KEYS = ("model.text_encoder.source", "model.text_encoder.config", "model.text_encoder.tokenizer")


def _settings_unlike(given: dict, own: dict, prefix: str) -> list[str]:
    """Dotted keys of ``given`` whose value differs from (or is missing in) ``own``, leaving
    out the text tower's file locations (``_FILE_KEYS``)."""
    out = []
    for key, value in given.items():
        if f"{prefix}.{key}" in _FILE_KEYS:
            continue
        theirs = own.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(theirs, dict):
            out += _settings_unlike(value, theirs, f"{prefix}.{key}")
        elif value != theirs:
            out.append(f"{prefix}.{key}")
    return out


def load_initial_model(cfg: TrainConfig):
    """The model to start from: ``init_from`` (directory / built-in name) or ``model`` (a config),
    renamed to the run's model name (:meth:`TrainConfig.model_name`), with the model it starts
    from recorded as its ``init_from``. Naming a fine-tuned model after a built-in one is a
    ``ConfigError``: its weights must not pass for the built-in ones; so is a ``model`` setting
    next to ``init_from`` that differs from that model's own (it loads as it was built, so the
    setting would be ignored; a saved run config that repeats the model's settings is fine)."""
    from clsp.models.checkpoint import BUILTIN_NAMES

    name = cfg.model_name()
    if cfg.init_from and name in BUILTIN_NAMES:
        raise ConfigError(f"name: {name!r} is a built-in model's name; give the trained model its own "
                          "(--name, name=..., or another --output-dir)")
    if cfg.init_from:
        from clsp.models.checkpoint import load_model

        model = load_model(cfg.init_from)
        if cfg.model:
            ignored = _settings_unlike(cfg.model, model.config.to_dict(), "model")
            if ignored:
                raise ConfigError(f"{', '.join(ignored)}: the model comes from init_from ({cfg.init_from}) as it "
                                  "was built, so these model settings, unlike its own, would be ignored; remove them, "
                                  "or build a new model from `model` without init_from")
    else:
        from clsp.models.base import build_model

        try:
            model = build_model(cfg.model)
        except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError) as exc:
            # a value of the right type the modules cannot take (layers: -1; heads that do not divide dim)
            raise ConfigError(f"model: cannot build the model from these settings ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else 'no message'})") from None
    model.name_as_trained(name, fine_tuned=bool(cfg.init_from))
    return model


def freeze(model: nn.Module, names: list[str]) -> list[str]:
    """Turn off gradients for ``text``, ``speech`` or any parameter-name prefixes; returns
    the frozen prefixes. A prefix matching no parameter is a ``ConfigError``."""
    prefixes = [TOWER_PREFIXES.get(n, n) for n in names]
    params = dict(model.named_parameters())
    for prefix in prefixes:
        hits = [p for name, p in params.items() if name.startswith(prefix)]
        if not hits:
            raise ConfigError(f"freeze: no parameter name starts with {prefix!r}")
        for p in hits:
            p.requires_grad_(False)
    return prefixes


def frozen_towers(model: nn.Module) -> list[nn.Module]:
    """Towers with no trainable parameter: kept in eval mode (no dropout) while training."""
    towers = [model.speech_encoder, model.text_encoder]
    return [t for t in towers if not any(p.requires_grad for p in t.parameters())]


def _checkpointed(module: nn.Module) -> None:
    original = module.forward

    def forward(*args, **kwargs):
        if module.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(original, *args, use_reentrant=False, **kwargs)
        return original(*args, **kwargs)

    module.forward = forward


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Recompute layer activations in backward: the text tower through transformers, the
    speech tower by wrapping every element of its ``layers`` lists. Returns layers wrapped."""
    count = 0
    text = getattr(model.text_encoder, "model", None)
    if text is not None and getattr(text, "supports_gradient_checkpointing", False):
        if hasattr(text, "activation_checkpointing_enable"):  # transformers >= 5
            text.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            text.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        count += int(getattr(text.config, "num_hidden_layers", 1))
    for name, child in model.speech_encoder.named_modules():
        if isinstance(child, nn.ModuleList) and name.split(".")[-1] == "layers":
            for layer in child:
                _checkpointed(layer)
                count += 1
    return count


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: encoders vs heads (+ logit scale) x with / without weight decay
    (biases, norms and scalars take none). Each group remembers its ``base_lr``."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (name.startswith(ENCODER_PREFIXES), p.ndim >= 2)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_encoder, decay), params in sorted(groups.items()):
        lr = cfg.optim.lr_encoder if is_encoder else cfg.optim.lr_heads
        out.append({"params": params, "lr": lr, "base_lr": lr, "weight_decay": cfg.optim.weight_decay if decay else 0.0,
                    "name": f"{'encoder' if is_encoder else 'heads'}{'' if decay else '_no_decay'}"})
    if not out:
        raise ConfigError("every parameter is frozen: nothing to train")
    return out


class TextFeatureCache:
    """Pooled outputs of a frozen text tower by caption string (LRU, on CPU)."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self.items: OrderedDict[str, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def features(self, model: nn.Module, texts: list[str], device: torch.device) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self.items))
        if missing:
            pooled = model.text_encoder.encode(missing).float().cpu()
            for text, vec in zip(missing, pooled):
                self.items[text] = vec
        return lru_rows(self.items, texts, self.max_items, device)


def lru_rows(items: OrderedDict, keys: list, max_items: int, device: torch.device) -> torch.Tensor:
    """Stack the cached rows of ``keys`` (all present) onto ``device``, mark them recently
    used and drop the least recently used entries beyond ``max_items``."""
    for key in keys:
        items.move_to_end(key)
    out = torch.stack([items[k] for k in keys]).to(device)
    while len(items) > max_items:
        items.popitem(last=False)
    return out


class SpeechFeatureCache:
    """Per-clip output of the speech tower's frozen part (``frozen_features``), by clip identity.

    Keys come from ``clsp.train.data.clip_cache_key`` (audio path, start, end, augmentation, channels),
    so a frozen speaker encoder runs once per clip and augmentation, not once per step. LRU on
    CPU, at most ``max_items`` rows (float32, ``frozen_dim`` wide each)."""

    def __init__(self, max_items: int = 200_000):
        self.max_items = max_items
        self.items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.computed = 0

    @staticmethod
    def usable(model: nn.Module) -> bool:
        return callable(getattr(model.speech_encoder, "frozen_features", None))

    @torch.no_grad()
    def features(self, model: nn.Module, keys: list[tuple], feats: torch.Tensor, feat_lens: torch.Tensor,
                 device: torch.device) -> torch.Tensor:
        """``(B, frozen_dim)`` for the batch's clips, computing only those not seen before."""
        first = {}
        for i, key in enumerate(keys):
            if key not in self.items:
                first.setdefault(key, i)
        missing = list(first.values())
        if missing:
            idx = torch.tensor(missing)
            rows = model.speech_encoder.frozen_features(feats[idx].to(device), feat_lens[idx].to(device)).float().cpu()
            for i, row in zip(missing, rows):
                self.items[keys[i]] = row
            self.computed += len(missing)
        return lru_rows(self.items, keys, self.max_items, device)


class ContrastiveTowers(nn.Module):
    """One ``forward`` returning (audio emb, text emb, logit scale) so DDP sees every use."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, feats, feat_lens, tokens: dict | None = None, text_features: torch.Tensor | None = None,
                speech_frozen: torch.Tensor | None = None, channel_feats: torch.Tensor | None = None,
                channel_frozen: torch.Tensor | None = None, channel_lens: torch.Tensor | None = None):
        """With ``channel_feats`` (the batch's clips through a channel; lengths ``channel_lens``,
        by default the clips' own), a fourth output: their unit audio embeddings, in the same forward."""
        m = self.model
        audio = m.audio_embed_unnormalized(feats, feat_lens, speech_frozen)
        if text_features is not None:
            text = m.text_features_to_embedding(text_features)
        else:
            text = m.text_embed_unnormalized(**tokens)
        out = (F.normalize(audio.float(), dim=-1), F.normalize(text.float(), dim=-1), m.logit_scale)
        if channel_feats is not None:
            copy = m.audio_embed_unnormalized(channel_feats, feat_lens if channel_lens is None else channel_lens,
                                              channel_frozen)
            out += (F.normalize(copy.float(), dim=-1),)
        return out


def apply_optim_config(optimizer: torch.optim.Optimizer, model: nn.Module, cfg: TrainConfig) -> None:
    """Set every group's ``base_lr``, ``weight_decay``, ``betas`` and ``eps`` from ``cfg``.

    Loading a checkpoint's optimizer state brings back the values it was saved with; this
    makes a resumed run use the configured ones (the moments and step counts stay)."""
    fresh = {g["name"]: g for g in param_groups(model, cfg)}
    for group in optimizer.param_groups:
        want = fresh[group["name"]]
        group.update(lr=want["lr"], base_lr=want["base_lr"], weight_decay=want["weight_decay"],
                     betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
