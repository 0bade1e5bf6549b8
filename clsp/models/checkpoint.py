"""Our checkpoint format and ``load_model``: a directory, never a pickle.

A checkpoint directory holds ``config.json`` (``{"clsp_format": 1, "model": ModelConfig}``,
plus ``"init_from": {"model", "checksum"}`` for a model trained from another one),
``model.safetensors`` and, when the text tower is stored, ``tokenizer/``. A frozen text
tower from a named source (``"external": true``) is not copied: it loads from its source;
nor are the frozen speaker encoders whose weights ship inside the package
(``packaged_prefixes``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from clsp.errors import CheckpointError, ConfigError, ModelError, ModelNotFoundError
from clsp.models.base import CLSPModel, ModelConfig, build_model, tiny_model
from clsp.models.weights import canonical_safetensors_header, check_state_dict, file_checksum, same_safetensors

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"
BUILTIN_NAMES = ("default", "clsp-default", "tiny-random")
TINY_CHECKSUM = "seed:0"  # the checksum of ``tiny_model()``, the built-in tiny-random


def packaged_prefixes(model: CLSPModel) -> tuple[str, ...]:
    """State-dict prefixes of frozen parts whose weights are files inside the clsp package
    (the speaker encoders of a ``speaker_fusion`` tower, clsp/models/weights): checkpoints do
    not copy them, and loading one without them keeps the packaged weights."""
    return tuple(f"speech_encoder.{p}" for p in getattr(model.speech_encoder, "packaged_prefixes", ()))


def _stored_keys(model: CLSPModel) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    drop = packaged_prefixes(model) + (("text_encoder.",) if model.text_encoder.external else ())
    return {k: v.detach().contiguous().cpu() for k, v in sd.items() if not k.startswith(drop)}


def apply_state_dict(model: CLSPModel, sd: dict[str, torch.Tensor], skip_text: bool,
                     source: Path | None = None) -> None:
    """Copy a checkpoint's tensors into ``model`` after ``check_state_dict``: the text tower
    is skipped with ``skip_text``, and packaged parts (``packaged_prefixes``) keep their
    packaged weights when the checkpoint does not hold them (checkpoints written before they
    were left out do, and load as they are). Raises ``CheckpointError`` on any mismatch,
    naming ``source`` (the weights file) when given."""
    ignore = ("text_encoder.",) if skip_text else ()
    packaged = packaged_prefixes(model)
    if packaged and not any(k.startswith(packaged) for k in sd):
        ignore += packaged
    check_state_dict(model, sd, ignore_prefixes=ignore, source=source)
    model.load_state_dict(sd, strict=not ignore)


MODEL_ENTRIES = frozenset({"config.json", WEIGHTS, "tokenizer"})  # what save_model writes


def check_replaceable(out: Path) -> None:
    """``ConfigError`` unless ``out`` is absent or a clsp model folder that ``save_model`` may
    replace: a folder holding only ``config.json`` (with ``clsp_format``), the weights and
    ``tokenizer/``. A file, a data folder or a folder with anything else is never replaced."""
    from clsp.errors import ConfigError

    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; give a new folder for the model")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    other = [e for e in entries if e not in MODEL_ENTRIES]
    try:
        ours = "clsp_format" in json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        ours = False
    if other or not ours:
        what = f"it holds {', '.join(other[:5])}{' ...' if len(other) > 5 else ''}" if other else "no clsp config.json"
        raise ConfigError(f"{out}: exists and is not a clsp model folder ({what}); it would be replaced as a whole: "
                          "give a new folder, or remove this one first")


def save_model(model: CLSPModel, directory: str | os.PathLike) -> Path:
    """Write ``model`` to ``directory`` atomically (temp dir + rename).

    A symlink is followed: the folder it points to is replaced, the link stays. Only an
    empty folder or an earlier clsp model folder is replaced (``check_replaceable``:
    ``ConfigError`` otherwise).
    """
    from safetensors.torch import save_file

    out = Path(os.path.realpath(directory))
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        cfg = model.config.to_dict()
        tower = model.text_encoder
        if not tower.external:
            hf_cfg = tower.model.config.to_dict()
            keep = {k: v for k, v in hf_cfg.items() if not k.startswith("_") and k not in ("architectures", "transformers_version", "dtype", "torch_dtype")}
            cfg["text_encoder"] = {**tower.spec, "source": None, "config": keep, "tokenizer": "tokenizer"}
            tower.tokenizer.save_pretrained(tmp / "tokenizer")
        meta: dict[str, Any] = {"clsp_format": FORMAT_VERSION, "model": cfg}
        if getattr(model, "init_from", None):
            meta["init_from"] = model.init_from
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
        save_file(_stored_keys(model), str(tmp / WEIGHTS), metadata={"format": "pt", "clsp_format": str(FORMAT_VERSION)})
        canonical_safetensors_header(tmp / WEIGHTS)  # the same weights, the same bytes: one checksum
        source = getattr(model, "weights_file", None)
        if source is not None and same_safetensors(Path(source), tmp / WEIGHTS):
            shutil.copyfile(source, tmp / WEIGHTS)  # the file it was read from, byte for byte: its checksum kept
        _readable_as_umask_allows(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced.", dir=out.parent))
            out.rename(old)  # onto the empty folder just made: never a folder of the user's
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _readable_as_umask_allows(folder: Path) -> None:
    """Give ``folder`` (made by ``tempfile.mkdtemp``, mode 0700) and what is in it the modes
    the user's umask gives new folders and files, so a model written for a group (a cluster's
    shared folder) can be read by it."""
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def load_clsp_dir(directory: Path, device: str | torch.device = "cpu", with_text: bool = True) -> CLSPModel:
    """Load one of our checkpoint directories. ``ConfigError`` naming ``DIR/config.json`` and
    the key for a config that is not a valid clsp config (a ``clsp_format`` that is not an
    integer, no ``model`` object, a model key of the wrong type); ``CheckpointError`` naming
    the weights file when its tensors do not match the model."""
    from safetensors.torch import load_file

    cfg_path = directory / "config.json"
    meta = _read_json(cfg_path)
    fmt = meta.get("clsp_format", 0)
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise ConfigError(f"{cfg_path}: clsp_format must be an integer (this clsp writes {FORMAT_VERSION}), got {fmt!r}")
    if fmt > FORMAT_VERSION:
        raise ModelError(f"{directory}: checkpoint format {meta['clsp_format']} is newer than this clsp")
    if "model" not in meta:
        raise ConfigError(f"{cfg_path}: no 'model' key (the model's config)")
    if not isinstance(meta["model"], dict):
        raise ConfigError(f"{cfg_path}: 'model' must be a JSON object (the model's config), got "
                          f"{type(meta['model']).__name__}")
    try:
        config = ModelConfig.from_dict(meta["model"])
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    external = bool(config.text_encoder.get("external"))
    weights = directory / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"{directory}: no {WEIGHTS}")
    try:
        model = build_model(config, base_dir=directory, load_text_weights=external, with_text=with_text)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    try:
        sd = load_file(str(weights))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{weights}: cannot read safetensors ({exc})") from None
    if not with_text:
        sd = {k: v for k, v in sd.items() if not k.startswith("text_encoder.")}
    apply_state_dict(model, sd, skip_text=external or not with_text, source=weights)
    model.name = meta.get("name") or config.name
    model.init_from = meta.get("init_from") if isinstance(meta.get("init_from"), dict) else None
    model.checksum = file_checksum(weights)
    if model.name == "tiny-random" and _is_tiny_random(model):
        model.checksum = TINY_CHECKSUM  # tiny-random converted or copied: that model, not a new one
    model.weights_file = weights  # saved again unchanged (clsp convert), this file is copied: one checksum
    return model.to(device).eval()


def _hub_snapshot(repo_id: str) -> Path:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ModelError(f"{repo_id}: not a local path, and the hub is disabled (HF_HUB_OFFLINE is set)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "tokenizer*", "*.model"]))
    except Exception as exc:
        raise ModelError(f"{repo_id}: not a local path, and it could not be fetched from the hub "
                         f"(offline or unknown repository: {type(exc).__name__})") from None


def load_model(name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu",
               with_text: bool = True) -> CLSPModel:
    """Load a model by built-in name, local directory / ``.pt`` file, or hub id (online only).

    The ``model.safetensors`` file of a clsp model directory loads that directory.

    ``with_text=False`` loads the speech side only (faster; ``encode_text`` then raises).
    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when there is one), as
    ``--device`` of the commands.

    Raises ``TypeError`` when ``name_or_path`` is not a ``str`` or ``os.PathLike`` (None
    included), ``ConfigError`` for an empty name or a device that is not one or is not
    usable here (``cuda`` without a GPU), ``ModelNotFoundError`` for an unknown name.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"load_model: a model name, folder or checkpoint file is needed (str or os.PathLike), "
                        f"got {type(name_or_path).__name__}")
    device = _usable_device(device)
    name = str(name_or_path)
    if not name.strip():
        raise ConfigError("the model name is empty; give a built-in name, a model directory or a checkpoint file")
    if name == "tiny-random":
        return tiny_model().to(device)
    if name in ("default", "clsp-default"):
        if not (DEFAULT_MODEL_DIR / "config.json").exists():
            raise ModelNotFoundError("the default model is not installed in this package (clsp/default_model is missing)")
        model = load_clsp_dir(DEFAULT_MODEL_DIR, device, with_text)
        model.name, model.init_from = "clsp-default", None  # the built-in model is known by name, not by how it was built
        return model
    from clsp.records import home_path

    path = home_path(name)
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.exists() and "clsp_format" in _read_json(cfg):
            model = load_clsp_dir(path, device, with_text)
            if model.name == "clsp" or (model.name == "tiny-random" and model.checksum != TINY_CHECKSUM):
                model.name = path.name  # a generic name: the folder tells models apart
            return model
        return _load_authors_format(path, device)
    if path.is_file():
        cfg = path.parent / "config.json"
        if path.suffix == ".safetensors" and cfg.is_file() and "clsp_format" in _read_json(cfg):
            return load_model(path.parent, device, with_text)  # a clsp model's weights file: that model
        return _load_authors_format(path, device)
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return load_model(_hub_snapshot(name), device, with_text)
    raise ModelNotFoundError(f"{name}: no such model (not a built-in name {BUILTIN_NAMES}, a directory or a checkpoint file)")


def _usable_device(device: str | torch.device) -> torch.device:
    """``device`` as ``clsp.embed.resolve_device`` reads ``--device``; ``ConfigError`` naming it
    and why it cannot be used (no CUDA here, no such GPU, not a device name)."""
    from clsp.embed import resolve_device

    try:
        dev = resolve_device(str(device))
    except ConfigError as exc:
        raise ConfigError(f"load_model: device {str(device)!r}: {str(exc).split(': ', 1)[-1]}") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"load_model: device {str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def as_model(model: Any, device: str | torch.device = "cpu") -> CLSPModel:
    """``model`` when it is a loaded model (it has ``provenance``), else ``load_model(model)``
    for a name, directory or file (``str`` or ``os.PathLike``). ``TypeError`` naming the
    parameter for anything else (None included)."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, device)
    if callable(getattr(model, "provenance", None)):
        return model
    raise TypeError(f"model: a model name or directory, or a loaded clsp model; got {type(model).__name__}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable config ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: config is not a JSON object")
    return data


def _is_tiny_random(model: CLSPModel) -> bool:
    """Whether ``model`` holds the weights of ``tiny_model()`` (the built-in ``tiny-random``;
    its text tower is not compared when it was loaded without one)."""
    ref_model = tiny_model()
    ours, ref = model.config.to_dict(), ref_model.config.to_dict()
    if {**ours, "text_encoder": None} != {**ref, "text_encoder": None}:
        return False
    sd = model.state_dict()
    want = {k: v for k, v in ref_model.state_dict().items()
            if model.text_encoder.model is not None or not k.startswith("text_encoder.")}
    return set(want) == set(sd) and all(want[k].shape == sd[k].shape and torch.equal(want[k], sd[k].cpu()) for k in want)


def _load_authors_format(path: Path, device) -> CLSPModel:
    """The released Hugging Face directory or the authors' icefall ``.pt`` checkpoints.
    A ``CheckpointError`` (tensors that do not match) says the path was read in that format
    because no clsp ``config.json`` was found."""
    try:
        from clsp.models import icefall_format
    except ImportError:
        raise ModelError(f"{path}: not a clsp checkpoint directory (no 'clsp_format' in config.json)") from None
    try:
        return icefall_format.load_authors_checkpoint(path, device)
    except CheckpointError as exc:
        where = "in it" if path.is_dir() else "beside it"
        raise CheckpointError(f"{path}: read as the authors' (icefall / Hugging Face) format because no clsp "
                              f"config.json was found {where}, and {exc}") from None
