"""clsp: contrastive language-speech pretraining toolkit.

Importing ``clsp`` is cheap; torch and transformers load on first use of a model.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("clsp.models.checkpoint", "load_model"),
    "save_model": ("clsp.models.checkpoint", "save_model"),
    "build_model": ("clsp.models.base", "build_model"),
    "CLSPModel": ("clsp.models.base", "CLSPModel"),
    "ModelConfig": ("clsp.models.base", "ModelConfig"),
    "load_audio": ("clsp.audio", "load_audio"),
    "classify": ("clsp.zeroshot_items", "classify"),
    "search": ("clsp.index.query", "search"),
    "compare": ("clsp.similarity", "compare"),
    "Result": ("clsp.results", "Result"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'clsp' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
