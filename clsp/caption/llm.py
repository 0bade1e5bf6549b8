"""The model caption backend: an audio language model (Qwen2-Audio family) through transformers.

The model and its processor load from a local directory or a hub id (from the local cache,
or downloaded when online). Each clip gets ``num_samples`` sampled captions per kind; the
FCaps rule filters and optional CLSP similarity ranking choose what is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clsp.caption.prompt import KINDS, build_prompt
from clsp.errors import ConfigError, ModelError, ModelNotFoundError

SUPPORTED_MODEL_TYPES = ("qwen2_audio",)
BACKEND_NAME = "model"
BACKEND_VERSION = "1"


@dataclass
class SamplingConfig:
    """Decoding settings; ``temperature`` 0 means greedy decoding (then one sample per clip)."""

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    num_samples: int = 1
    max_new_tokens: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ConfigError("sampling needs temperature >= 0, 0 < top-p <= 1 and top-k >= 0")
        if self.num_samples < 1 or self.max_new_tokens < 1:
            raise ConfigError("sampling needs --num-samples >= 1 and --max-new-tokens >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SamplingConfig":
        return cls(**d)


@dataclass
class ModelCaptionConfig:
    """Which model to run, where, and how to decode."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    kinds: tuple[str, ...] = KINDS
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ConfigError(f"caption kinds must be among {KINDS}, got {list(self.kinds)}")


def pick_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is visible")
    return device


def pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ConfigError(f"dtype must be one of auto, {', '.join(table)}; got {dtype!r}")
    return table[dtype]


def _model_class(model_type: str):
    import transformers

    if model_type == "qwen2_audio":
        return transformers.Qwen2AudioForConditionalGeneration
    raise ModelError(f"model type {model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")


def _hub_id(name: str) -> bool:
    """Whether ``name`` can be a hub repository id (``owner/name``: one ``/``, not a path that
    starts with ``.``, ``/`` or ``~``), as ``clsp.load_model`` reads a name."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and all(name.split("/"))


class AudioLMCaptioner:
    """Generates voice captions with an audio language model."""

    def __init__(self, config: ModelCaptionConfig):
        from transformers import AutoConfig, AutoProcessor

        self.config = config
        self.device = pick_device(config.device)
        local = Path(config.model).expanduser().is_dir()
        if not local and not _hub_id(str(config.model)):  # names no folder here and no hub repository
            raise ModelNotFoundError(f"{config.model}: no such model (not a local model folder, nor a hub id "
                                     "such as Qwen/Qwen2-Audio-7B-Instruct)")
        if local and not (Path(config.model).expanduser() / "config.json").is_file():
            raise ModelNotFoundError(f"{config.model}: a folder without config.json, no model folder (give the "
                                     "folder a Hugging Face model was saved or downloaded to)")
        try:
            model_config = AutoConfig.from_pretrained(config.model, local_files_only=local)
            self.processor = AutoProcessor.from_pretrained(config.model, local_files_only=local)
            cls = _model_class(model_config.model_type)
            self.model = cls.from_pretrained(config.model, dtype=pick_dtype(config.dtype, self.device),
                                             local_files_only=local)
        except ModelError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{config.model}: cannot load audio language model ({exc})") from exc
        self.model.to(self.device).eval()
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.sample_rate = int(getattr(self.processor.feature_extractor, "sampling_rate", 16000))
        self.name = config.model
        self.model_type = model_config.model_type

    def provenance(self) -> dict:
        return {"backend": BACKEND_NAME, "version": BACKEND_VERSION, "model": self.name,
                "model_type": self.model_type, "sampling": self.config.sampling.to_dict()}

    def _chat_text(self, kind: str, metadata: dict) -> str:
        conversation = [{"role": "user", "content": [
            {"type": "audio", "audio_url": "clip"}, {"type": "text", "text": build_prompt(kind, metadata)}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def _generate(self, texts: list[str], waves: list[np.ndarray], seed: int) -> list[list[str]]:
        import torch

        s = self.config.sampling
        inputs = self.processor(text=texts, audio=waves, sampling_rate=self.sample_rate,
                                return_tensors="pt", padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
        sample = s.temperature > 0
        n = s.num_samples if sample else 1
        kwargs = dict(max_new_tokens=s.max_new_tokens, do_sample=sample, num_return_sequences=n)
        if sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        decoded = [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
        return [decoded[i * n : (i + 1) * n] for i in range(len(texts))]

    def caption_batch(self, waves: list, metadata: list[dict], ids: list) -> list[dict[str, list[str]]]:
        """Raw candidate captions per clip: ``{"global": [...], "finegrained": [...]}``."""
        arrays = [np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float32)
                  for w in waves]
        key = hashlib.sha256(f"{self.config.sampling.seed}:{ids}".encode("utf-8", "surrogateescape")).digest()
        seed = int.from_bytes(key[:4], "big")
        results: list[dict[str, list[str]]] = [{} for _ in arrays]
        for kind in self.config.kinds:
            texts = [self._chat_text(kind, meta) for meta in metadata]
            for result, samples in zip(results, self._generate(texts, arrays, seed)):
                result[kind] = samples
        return results
