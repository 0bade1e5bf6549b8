"""Model definitions: the CLSP dual encoder, its towers, heads and checkpoint formats."""

from clsp.models.base import CLSPModel, ModelConfig, build_model, tiny_config, tiny_model
from clsp.models.checkpoint import load_model, save_model
from clsp.models.registry import build_speech_encoder, register_speech_encoder

__all__ = ["CLSPModel", "ModelConfig", "build_model", "tiny_config", "tiny_model", "load_model", "save_model",
           "build_speech_encoder", "register_speech_encoder"]
