"""The authors' CLSP checkpoint formats: icefall ``.pt`` files and the released Hugging Face directory.

* icefall: a file holding ``{"model": state_dict}`` (``epoch-45-avg-28.pt`` style), read only
  with ``torch.load(weights_only=True)``; anything that needs arbitrary unpickling is refused.
* Hugging Face (``yfyeung/CLSP``): a directory with ``config.json`` and ``model.safetensors``
  whose keys are the icefall keys, possibly under a ``model.`` prefix. No remote code runs.

Keys map to ours as ``encoder_embed.*``/``encoder.*`` -> ``speech_encoder.*`` and
``text_encoder.*`` -> ``text_encoder.model.*``; the heads and ``logit_scale`` keep their names.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from clsp.errors import CheckpointError, ModelError, ModelNotFoundError
from clsp.models.base import CLSPModel, ModelConfig, build_model
from clsp.models.weights import check_state_dict, file_checksum
from clsp.models.zipformer import ZipformerConfig

__all__ = [
    "ROBERTA_BASE",
    "check_state_dict",
    "clsp_full_config",
    "detect_format",
    "load_authors_checkpoint",
    "map_icefall_state_dict",
    "read_authors_state_dict",
]

# RoBERTa-base, as a config object needing no download.
ROBERTA_BASE: dict[str, Any] = {
    "model_type": "roberta",
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

# Deterministic buffers that older transformers versions stored in state dicts.
_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def clsp_full_config(tokenizer: str = "roberta-base") -> ModelConfig:
    """Model config of the released CLSP model (724,244,405 parameters)."""
    return ModelConfig(
        speech_encoder={"type": "zipformer", **ZipformerConfig().to_dict()},
        text_encoder={"config": dict(ROBERTA_BASE), "tokenizer": tokenizer, "pooling": "pooler", "max_length": 512},
        joint_dim=512,
        head_hidden=512,
        head_dropout=0.1,
        name="CLSP",
    )


def map_icefall_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Authors' key layout (optionally under ``model.``) -> our ``CLSPModel`` key layout."""
    if sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith(("encoder_embed.", "encoder.")):
            out["speech_encoder." + key] = value
        elif key.startswith("text_encoder."):
            rest = key[len("text_encoder."):]
            if rest not in _TEXT_BUFFERS:
                out["text_encoder.model." + rest] = value
        else:
            out[key] = value
    return out


def detect_format(path: str | Path) -> str:
    """``"clsp"`` (our directory), ``"hf"`` (released directory), ``"icefall"`` (.pt) or ``"safetensors"``.

    Raises ``ModelNotFoundError`` (a usage error) for a path that holds no model: missing, a
    training checkpoint or output folder (naming the model folder to give), any other folder.
    """
    p = Path(path)
    if p.is_dir():
        cfg = p / "config.json"
        if cfg.exists() and "clsp_format" in _json(cfg):
            return "clsp"
        if (p / "model.safetensors").exists() or (p / "model.safetensors.index.json").exists():
            return "hf"
        if (p / "model" / "config.json").is_file():  # a training checkpoint (OUT/checkpoints/step-N)
            raise ModelNotFoundError(f"{p}: a training checkpoint folder; its model is {p / 'model'} (give that), "
                             "or continue the run with clsp train --resume")
        if (p / "checkpoints").is_dir():  # a training output folder
            raise ModelNotFoundError(f"{p}: a training output folder; give one of its models, e.g. "
                             f"{p / 'checkpoints'}/step-N/model")
        raise ModelNotFoundError(f"{p}: neither a clsp checkpoint nor a CLSP Hugging Face directory (no model.safetensors)")
    if p.is_file():
        return "safetensors" if p.suffix == ".safetensors" else "icefall"
    raise ModelNotFoundError(f"{p}: no such file or directory")


def read_authors_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict stored at ``path`` (authors' key layout) and the file that held it."""
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "icefall":
        return _read_pt(p), p
    if fmt == "safetensors":
        return _read_safetensors([p]), p
    if fmt == "hf":
        index = p / "model.safetensors.index.json"
        if index.exists():
            shards = sorted(set(_json(index).get("weight_map", {}).values()))
            return _read_safetensors([p / s for s in shards]), index
        return _read_safetensors([p / "model.safetensors"]), p / "model.safetensors"
    raise ModelError(f"{p}: this is a clsp checkpoint directory; load it with clsp.load_model")


def _read_pt(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        globals_ = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if not globals_:
            raise CheckpointError(f"{path}: cannot read as a torch checkpoint (not a valid pickle)") from None
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors, so it is not a plain "
            f"state dict and will not be unpickled (it refers to {globals_[0]}); "
            "save it as {'model': model.state_dict()}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        # the weights-only unpickler meets text or other non-pickle bytes in many ways
        if path.stat().st_size == 0:
            reason = "the file is empty"
        elif isinstance(exc, (KeyError, IndexError, TypeError, AttributeError)):
            reason = "neither a zip archive nor a pickle of tensors"
        else:
            reason = str(exc) or type(exc).__name__
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({reason})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a state dict or {{'model': state_dict}}, found {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a plain state dict: non-tensor entries {', '.join(bad[:10])}")
    return obj


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f)))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise CheckpointError(f"{f}: cannot read safetensors ({exc})") from None
    return sd


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _tokenizer_source(path: Path) -> str:
    if path.is_dir() and any((path / f).exists() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        return str(path)
    return "roberta-base"


def load_authors_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", config: ModelConfig | dict[str, Any] | None = None
) -> CLSPModel:
    """Build a ``CLSPModel`` and fill it from an authors' checkpoint, checking every key and shape.

    ``config`` defaults to the released model's; give one for checkpoints of other sizes.
    """
    p = Path(path)
    sd, weights_file = read_authors_state_dict(p)
    if config is None:
        config = clsp_full_config(tokenizer=_tokenizer_source(p))
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    mapped = map_icefall_state_dict(sd)
    with torch.device("meta"):  # check names and shapes before allocating the real model
        check_state_dict(build_model(config, load_text_weights=False), mapped, source=weights_file)
    model = build_model(config, load_text_weights=False)
    model.load_state_dict(mapped)
    model.name = p.stem if p.is_file() else p.name
    model.checksum = file_checksum(weights_file)
    return model.to(device).eval()
