"""Training configuration: nested dataclasses loaded from YAML/JSON plus ``key=value`` overrides.

``load_config("stage2.yaml", ["optim.lr_heads=5e-4", "max_steps=2000"])`` reads the file,
applies the overrides (values parsed as YAML scalars or lists) and checks the whole result
against the schema below with pydantic: every unknown key (with the nearest known key as a
suggestion) and every value of the wrong type, element type, length, range or choice is a
``ConfigError`` naming the dotted key and the reason.

The schema is the dataclass fields: each field's type carries its constraints
(``Annotated[int, Field(ge=1)]``) and what ``--resume`` does when the key changed
(:func:`resume_changes`): :data:`FIXED_ON_RESUME` keys define the run (model, freeze list,
training manifest, seed) and a change is refused; :data:`FRESH_RUN_ONLY` keys act when a
run starts and a change is reported as not applied; every other change is applied from the
resumed step on.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from clsp.errors import ConfigError
from clsp.streams import absolute_path

_STRICT_KEYS = ConfigDict(extra="forbid", allow_inf_nan=False)


class OnResume:
    """What ``--resume`` does with a changed key, as a marker in the field's ``Annotated`` type
    (a key without a marker is applied from the resumed step on, with a log line)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


FIXED_ON_RESUME = OnResume("FIXED_ON_RESUME")  # defines the run: a change is refused
FRESH_RUN_ONLY = OnResume("FRESH_RUN_ONLY")  # acts only when a run starts: a change is reported, not applied

def _not_bool(value: Any) -> Any:
    """A number field given ``true`` / ``false`` is an error, not 1 / 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
NonNegInt = Annotated[Int, Field(ge=0)]
PosInt = Annotated[Int, Field(ge=1)]
NonNegFloat = Annotated[Float, Field(ge=0)]
PosFloat = Annotated[Float, Field(gt=0)]
Fraction = Annotated[Float, Field(ge=0, le=1)]


def _number_as_name(value: Any) -> Any:
    """An override parsed as YAML turns a path named ``2024`` into a number: keep it a name."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


PathName = Annotated[str, BeforeValidator(_number_as_name)]  # a file, folder or model name


@dataclass
class DataConfig:
    """Manifests and batching. Batches hold at most ``max_batch_seconds`` of audio per rank."""

    __pydantic_config__ = _STRICT_KEYS

    # the resumed position in the epoch is a position in this manifest's batch plan
    train: Annotated[PathName, FIXED_ON_RESUME] = ""
    valid: PathName | None = None
    min_duration: NonNegFloat = 0.5
    max_duration: PosFloat = 30.0
    max_batch_seconds: PosFloat = 200.0  # at least 2 x max_duration: a batch needs 2 clips (negatives)
    max_batch_size: NonNegInt = 0  # 0: bounded by seconds only; otherwise >= 2
    num_buckets: PosInt = 10
    shuffle_buffer: NonNegInt = 10000
    num_workers: NonNegInt = 2
    valid_max_clips: Annotated[Int, Field(ge=2)] = 2000
    group_key: str | None = None  # record field (e.g. speaker): its clips share batches in runs
    group_size: PosInt = 4  # clips of one group placed together (hard negatives)
    text_cache: bool = False  # cache frozen text-tower features by caption string
    text_cache_size: PosInt = 200000


@dataclass
class OptimConfig:
    """AdamW with separate learning rates for the encoders and for heads + logit scale."""

    __pydantic_config__ = _STRICT_KEYS

    lr_encoder: NonNegFloat = 1e-5
    lr_heads: NonNegFloat = 1e-3
    weight_decay: NonNegFloat = 0.01
    betas: Annotated[list[Annotated[Float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = field(
        default_factory=lambda: [0.9, 0.98])
    eps: PosFloat = 1e-8
    schedule: Literal["cosine", "eden", "constant"] = "cosine"
    warmup_steps: NonNegInt = 500
    min_lr_ratio: Fraction = 0.0
    eden_lr_batches: PosFloat = 100000.0
    eden_lr_epochs: PosFloat = 100.0
    eden_warmup_start: Fraction = 0.5
    grad_clip: NonNegFloat = 1.0  # max gradient norm; 0 disables clipping
    accumulation: PosInt = 1


@dataclass
class LossConfig:
    """Stage 1: symmetric InfoNCE; stage 2: multi-positive InfoNCE with the task scheduler."""

    __pydantic_config__ = _STRICT_KEYS

    stage: Literal[1, 2] = 1
    local_loss: bool = False
    mask_duplicate_captions: bool = True
    stage1_caption: Literal["finegrained", "global", "any"] = "finegrained"
    task1_p0: Fraction = 0.95
    task1_p_min: Fraction = 0.5
    task_horizon: PosFloat = 10000.0
    # weight of the channel-consistency term: mean (1 - cosine) between each clip's speech
    # embedding and that of its copy through a channel_rate Hz channel (clsp.audio.narrowband_copy);
    # 0: off. Needs a waveform-input speech tower (speaker_fusion, transformers speech models).
    channel_consistency: NonNegFloat = 0.0
    channel_rate: PosInt = 8000
    # the copies the term pairs clips with, one kind per clip chosen by the clip's identity
    # (clsp.audio.consistency_copy): "narrowband" (through channel_rate Hz and back),
    # "padded" (0.2-1.0 s of digital silence before and after), "offset" (a DC offset of
    # 0.02-0.1, either sign), "gain" (6-26 dB quieter), "noise" (white noise at -60 to
    # -40 dBFS); listing one kind twice pairs twice as many clips with it
    channel_copies: Annotated[list[Literal["narrowband", "padded", "offset", "gain", "noise"]], Field(min_length=1)] = field(
        default_factory=lambda: ["narrowband"])


@dataclass
class TrainConfig:
    """Everything a training run needs; ``output_dir`` receives logs and checkpoints."""

    __pydantic_config__ = _STRICT_KEYS

    init_from: Annotated[PathName | None, FIXED_ON_RESUME] = None  # model directory / built-in name to start from
    model: Annotated[dict[str, Any] | None, FIXED_ON_RESUME] = None  # a ModelConfig dict for a freshly built model
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output_dir: PathName = "exp"
    # the trained model's name in its checkpoints and in the provenance of what it embeds
    # (default: the output dir's name); a model trained from init_from records that model too
    name: PathName | None = None
    max_steps: PosInt = 10000
    max_epochs: NonNegInt = 0  # 0: no epoch limit
    seed: Annotated[Int, FIXED_ON_RESUME] = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    deterministic: bool = False
    gradient_checkpointing: bool = False
    # "text", "speech", or parameter-name prefixes; fixes the optimizer's parameter groups
    freeze: Annotated[list[str], FIXED_ON_RESUME] = field(default_factory=list)
    # how a fresh run starts the text head (see clsp.train.text_init); a resumed run keeps its weights
    text_head_init: Annotated[Literal["random", "whiten", "paraphrase"], FRESH_RUN_ONLY] = "random"
    text_whiten_captions: Annotated[Int, Field(ge=2), FRESH_RUN_ONLY] = 10000  # captions sampled from data.train
    text_whiten_shrink: Annotated[Float, Field(ge=0), FRESH_RUN_ONLY] = 0.1  # added to each eigenvalue, x mean
    text_whiten_centre: Annotated[bool, FRESH_RUN_ONLY] = False  # also centre the text head's outputs
    text_paraphrase_clips: Annotated[Int, Field(ge=2), FRESH_RUN_ONLY] = 5000  # clips for the paraphrase start
    text_paraphrase_steps: Annotated[Int, Field(ge=1), FRESH_RUN_ONLY] = 500  # caption-only steps of that start
    max_nonfinite_steps: PosInt = 5  # consecutive steps with a non-finite loss/gradient that stop the run
    log_every: PosInt = 10
    valid_every: NonNegInt = 1000  # 0: validate only at the end
    checkpoint_every: NonNegInt = 1000  # 0: checkpoint only at the end
    keep_last: NonNegInt = 3  # 0: keep every checkpoint
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Check ``data`` against the schema; raises ``ConfigError`` naming every bad key."""
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
        try:
            return _adapter().validate_python(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    def model_name(self) -> str:
        """The trained model's name: ``name``; else, for a model built from ``model``, the name
        that config gives it; else the output dir's folder name (``exp/ft-emodb`` -> ``ft-emodb``)."""
        own = (self.model or {}).get("name") if self.init_from is None else None
        return self.name or own or Path(self.output_dir).resolve().name or "clsp"

    def validate(self) -> "TrainConfig":
        """Checks across keys (each key's own type and range are checked by ``from_dict``)."""
        d = self.data
        checks = [
            (self.init_from is not None or self.model is not None, "init_from / model: set init_from (a model) or model (a model config)"),
            (self.init_from is None or bool(self.init_from.strip()),
             "init_from: empty; name the model to start from (a model folder or a built-in name), or null to "
             "build a new model from `model`"),
            (bool(self.output_dir.strip()), "output_dir: empty; give the folder the run writes its checkpoints and "
                                            "logs to (an empty name would make the working directory the run's folder)"),
            (d.group_key is None or bool(d.group_key.strip()),
             "data.group_key: empty; name the record field whose clips share batches (e.g. speaker), or null for "
             "no grouping"),
            (bool(d.train), "data.train: a training manifest is required"),
            (d.train != "-", "data.train: '-' (stdin) can be read only once, and training reads its manifest once "
                             "per epoch; save it to a file and give that"),
            (d.min_duration <= d.max_duration, f"data.min_duration: {d.min_duration} is above data.max_duration ({d.max_duration})"),
            (d.max_batch_seconds >= 2 * d.max_duration,
             f"data.max_batch_seconds: {d.max_batch_seconds} s cannot hold 2 clips of up to data.max_duration = {d.max_duration} s; "
             "a contrastive batch needs at least 2 clips (raise it to >= 2 x data.max_duration or lower data.max_duration)"),
            (d.max_batch_size != 1, "data.max_batch_size: 1 clip per batch leaves no negatives for the contrastive loss (use 0 or >= 2)"),
        ]
        if self.name is not None:
            name = self.name
            checks += [
                (name.strip() == name and name != "", f"name: {name!r} is blank or has spaces around it; give the "
                                                      "trained model a name to be known by"),
                ("/" not in name and "\\" not in name and name not in (".", ".."),
                 f"name: {name!r} holds a path separator or is one, so it reads as a folder or a hub id (owner/name) "
                 "where a model is named; give a plain name"),
                (name.isprintable(), f"name: {name!r} holds control characters; give a plain name"),
            ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


_ADAPTER: TypeAdapter | None = None


def _adapter() -> TypeAdapter:
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(TrainConfig)
    return _ADAPTER


def _section(path: tuple) -> type | None:
    """The config dataclass at a dotted path of section names (None below a plain mapping)."""
    cls: Any = TrainConfig
    for part in path:
        hint = _fields(cls).get(part)
        if hint is None or not dataclasses.is_dataclass(hint):
            return None
        cls = hint
    return cls


def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _describe(exc: ValidationError) -> str:
    """One line per bad key: ``optim.betas.1: Input should be a valid number ... (got 'abc')``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "config"
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            section = _section(tuple(loc[:-1]))
            known = sorted(_fields(section)) if section is not None else []
            near = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), near[0]])}?" if near else ""
            lines.append(f"{key}: unknown config key{hint}")
            continue
        lines.append(f"{key}: {err['msg'][0].lower()}{err['msg'][1:]} (got {err['input']!r})")
    return "invalid training config:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0]


def _policy(hint: Any) -> OnResume | None:
    extras = typing.get_args(hint)[1:] if typing.get_origin(hint) is Annotated else ()
    return next((x for x in extras if isinstance(x, OnResume)), None)


def _flatten(cls: type, data: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, OnResume | None]]:
    """``{"optim.lr_heads": (value, resume policy)}`` over the schema's leaf keys in ``data``."""
    out: dict[str, tuple[Any, OnResume | None]] = {}
    for name, hint in _fields(cls).items():
        if name not in data:
            continue
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
        if dataclasses.is_dataclass(base) and isinstance(data[name], dict):
            out.update(_flatten(base, data[name], f"{prefix}{name}."))
        else:
            out[prefix + name] = (data[name], _policy(hint))
    return out


@dataclass
class ResumeChanges:
    """Keys whose value differs from the checkpoint's config: ``{"optim.lr_heads": (old, new)}``."""

    applied: dict[str, tuple[Any, Any]]  # used from the resumed step on
    not_applied: dict[str, tuple[Any, Any]]  # FRESH_RUN_ONLY keys: they acted when the run started


_UNSET = "(unset)"


def _leaf_changes(key: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old, new)`` for each value that differs, descending into mappings on
    both sides (a model config names ``model.speech_encoder.stats_phases``, not two dicts)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for sub in list(old) + [k for k in new if k not in old]:
            a, b = old.get(sub, _UNSET), new.get(sub, _UNSET)
            if a != b:
                out += _leaf_changes(f"{key}.{sub}", a, b)
        return out or [(key, old, new)]
    return [(key, old, new)]


# keys that name a file or folder: a run saves them absolute (:func:`absolute_paths`) and
# ``--resume`` compares them as the files they name, not as text
PATH_KEYS = ("data.train", "data.valid", "init_from", "output_dir")


def absolute_paths(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping ``data`` with each path of :data:`PATH_KEYS` made
    absolute (and normal) against the current directory (``init_from`` only when it names an existing
    file or folder there, not a built-in model or a hub id), so that a run resumed from another
    directory reads the files it was started with."""
    out = copy.deepcopy(data)
    for key in PATH_KEYS:
        *sections, last = key.split(".")
        node = out
        for part in sections:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(last) if isinstance(node, dict) else None
        if not isinstance(value, str) or value in ("", "-") or "://" in value:
            continue
        if key == "init_from" and not os.path.exists(value):
            continue
        node[last] = absolute_path(os.path.expanduser(value))
    return out


def _same_path(old: Any, new: Any) -> bool:
    """Whether two values of a path key name one file: the same path once made absolute (a
    relative one against the current directory), or two names of one file (a symlink)."""
    if old == new:
        return True
    if not (isinstance(old, str) and isinstance(new, str)) or not old or not new:
        return False
    a, b = (absolute_path(os.path.expanduser(v)) for v in (old, new))
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def resume_changes(saved: dict[str, Any], cfg: TrainConfig) -> ResumeChanges:
    """Compare ``cfg`` with a checkpoint's config ``saved`` (keys missing from an older
    checkpoint's config are not compared; a path key, :data:`PATH_KEYS`, is unchanged when
    both name the same file, however written). Raises ``ConfigError`` naming every changed
    key that is :data:`FIXED_ON_RESUME`."""
    old, new = _flatten(TrainConfig, saved), _flatten(TrainConfig, cfg.to_dict())
    changed = {k: (old[k][0], v, policy) for k, (v, policy) in new.items()
               if k in old and old[k][0] != v and not (k in PATH_KEYS and _same_path(old[k][0], v))}
    fixed = [k for k, (_, _, policy) in changed.items() if policy is FIXED_ON_RESUME]
    if fixed:
        detail = ", ".join(f"{key} ({a!r} -> {b!r})" for k in fixed for key, a, b in _leaf_changes(k, *changed[k][:2]))
        raise ConfigError(f"cannot resume with a changed {detail}: these keys define the run in the checkpoint; "
                          "restore them, or start a new run (another output_dir, or init_from the checkpoint's model)")
    return ResumeChanges(
        applied={k: (o, n) for k, (o, n, policy) in changed.items() if policy is None},
        not_applied={k: (o, n) for k, (o, n, policy) in changed.items() if policy is FRESH_RUN_ONLY})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config mapping from a ``.yaml``/``.yml`` or ``.json`` file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    from clsp.errors import InputError
    from clsp.streams import read_text_file

    if ".jsonl" in p.suffixes:
        raise ConfigError(_manifest_given(p))
    try:  # a BOM from Windows editors is not part of the config; UTF-16/32 named with the fix
        text = read_text_file(p)
    except (OSError, InputError) as exc:
        raise ConfigError(f"cannot read config {p}: {exc}") from None
    if _looks_like_records(text):
        raise ConfigError(_manifest_given(p))
    try:
        if p.suffix == ".json":
            data = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, p))
        else:
            import yaml

            data = yaml.load(text, Loader=_strict_yaml_loader(p))  # noqa: S506 - a SafeLoader subclass
            if isinstance(data, dict):  # a path or name (data.train: 010) is the text as written
                data = _as_written([], data, yaml.load(text, Loader=yaml.BaseLoader))
    except ConfigError:
        raise
    except Exception as exc:  # yaml and json raise their own error types
        raise ConfigError(f"{p}: cannot parse config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping of keys to values")
    return data


def _unique_keys(pairs: list[tuple[Any, Any]], where: Path, lines: list[int] | None = None) -> dict[Any, Any]:
    """A mapping of ``pairs``; ``ConfigError`` for a key given twice in one mapping (the
    later one replaced the earlier unseen, a repeated section all of the earlier's keys)."""
    out: dict[Any, Any] = {}
    for i, (key, value) in enumerate(pairs):
        if key in out:
            at = f" (line {lines[i]})" if lines else ""
            raise ConfigError(f"{where}: key {key!r} is given twice in one section{at}; give it once")
        out[key] = value
    return out


def _strict_yaml_loader(where: Path) -> type:
    """yaml's SafeLoader, refusing a key given twice in one mapping."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict:
        given = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]  # <<: *base may be overridden
        _unique_keys([(loader.construct_object(k), None) for k in given], where, [k.start_mark.line + 1 for k in given])
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


RECORD_KEYS = {"audio", "recording", "supervisions", "global_captions", "finegrained_captions", "short_captions",
               "long_captions", "text", "embedding"}


def _looks_like_records(text: str) -> bool:
    """Whether a config file's text is JSON Lines of records (a manifest), not a config:
    a first line that is a JSON object with a record's fields (audio, captions, a cut)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and bool(RECORD_KEYS & set(obj)) and "data" not in obj


def _manifest_given(p: Path) -> str:
    return (f"{p}: a manifest of training records (JSON Lines), not a training config; give a config and the "
            f"manifest as data.train, e.g. clsp train examples/configs/finetune.yaml data.train={p} -o exp/my-voices "
            "(finetune.yaml: in examples/configs of the clsp source tree)")


def _text_key(parts: list[str]) -> tuple[bool, bool]:
    """Whether the key at ``parts`` holds text (a path or a name; not a choice, number or
    list), and whether it may be null."""
    section = _section(tuple(parts[:-1]))
    hint = _fields(section).get(parts[-1]) if section is not None else None
    if hint is None:
        return False, False
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    while kinds and typing.get_origin(kinds[0]) is Annotated:
        kinds[0] = typing.get_args(kinds[0])[0]
    return kinds == [str], len(kinds) < len(args)


def _as_written(parts: list[str], value: Any, raw: Any) -> Any:
    """``value`` (parsed as YAML) with every text key's value as the user wrote it (``raw``,
    parsed by YAML's base loader, which keeps scalars as strings): a path named ``010``,
    ``8``, ``1.50``, ``12:30`` or ``yes`` is that name, not the number 8, 1.5, 750 or true."""
    if isinstance(value, dict) and isinstance(raw, dict):
        return {k: _as_written([*parts, str(k)], v, raw.get(k)) for k, v in value.items()}
    is_text, nullable = _text_key(parts)
    if not is_text or not isinstance(raw, str) or (value is None and nullable):
        return value
    return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as a YAML scalar/list) to a nested dict.

    The value of a key that holds text (``data.train``, ``output_dir``...) is kept as written
    (quotes removed); ``null`` clears one that may be null."""
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
        quoted = raw.strip()[:1] in ("'", '"')  # a YAML string as written: '#' inside it is no comment
        if raw.strip() == "-" or (isinstance(value, str) and not quoted and " #" in raw and value != raw.strip()):
            value = raw.strip()  # '-' (stdin) and a path holding ' #' are strings, not a YAML list or comment
        parts = key.strip().split(".")
        if isinstance(value, dict) and not _text_key(parts)[0]:
            try:
                value = _as_written(parts, value, yaml.load(raw, Loader=yaml.BaseLoader))
            except yaml.YAMLError:
                pass
        elif raw.strip() and not quoted:
            value = _as_written(parts, value, raw.strip())
        node = out
        for part in parts[:-1]:
            if node.get(part) is None:  # a section left null (a saved run's model, built from init_from)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            _merge_into(node[parts[-1]], value)  # optim={lr_heads: 1e-4} sets that key, not the whole section
        else:
            node[parts[-1]] = value
    return out


def _merge_into(section: dict[str, Any], values: dict[str, Any]) -> None:
    """Set ``values`` into ``section``, sub-sections merged key by key in turn."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            _merge_into(section[key], value)
        else:
            section[key] = value


def check_repeated_overrides(overrides: list[str]) -> None:
    """``ConfigError`` when two ``key=value`` overrides set one key to different values (the
    last one won unseen, and an invalid earlier value was never checked); the same value
    twice is taken (``true`` and ``1`` are different values: a boolean is no number here)."""

    def leaves(key: str, value: Any):
        """(dotted key, value) for each key an override sets (a section's keys one by one)."""
        if isinstance(value, dict):
            for sub, v in value.items():
                yield from leaves(f"{key}.{sub}", v)
        elif isinstance(value, str) and not _text_key(key.split("."))[0]:
            try:  # YAML reads 1e-4 as text; the config reads it as the number
                yield key, float(value)
            except ValueError:
                yield key, value
        else:
            yield key, value

    seen: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            continue  # apply_overrides names it
        for top, value in apply_overrides({}, [item]).items():
            for leaf, v in leaves(top, value):
                if leaf in seen and (seen[leaf] != v or isinstance(seen[leaf], bool) != isinstance(v, bool)):
                    raise ConfigError(f"{leaf} is set twice ({leaf}={seen[leaf]} and {leaf}={v}, from overrides or "
                                      "the option that sets it); give it once")
                seen[leaf] = v


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and check a training config (``path=None`` starts from defaults)."""
    data = read_config_file(path) if path else {}
    data = apply_overrides(data, list(overrides or []))
    return TrainConfig.from_dict(data)


RUN_CONFIG = "config.json"  # the whole config of a run, written into its output dir when it starts


def load_run_config(output_dir: str | Path, overrides: list[str] | None = None,
                    resume: str | None = None) -> TrainConfig:
    """The config of the run in ``output_dir``, with ``overrides`` applied: what ``clsp train
    --resume RESUME --output-dir DIR`` uses when no config file is given. That is the config
    the checkpoint ``resume`` names was trained with (``latest``: the newest one), so that a
    later run that changed settings and then failed before its first checkpoint (a diverged
    run) does not pass its settings on; without a checkpoint, or for one that holds no config,
    it is the run's ``config.json``. Raises ``ConfigError`` when ``output_dir`` holds neither."""
    from clsp.train import checkpoint as ckpt

    run_overrides = [f"output_dir={json.dumps(str(output_dir))}", *(overrides or [])]
    path = ckpt.resolve_resume(output_dir, resume) if resume else None
    saved = ckpt.saved_config(path) if path is not None else None
    if saved is not None:
        return TrainConfig.from_dict(apply_overrides(saved, run_overrides))
    path = Path(output_dir) / RUN_CONFIG
    if not path.is_file():
        raise ConfigError(f"{output_dir}: no training run here (no {RUN_CONFIG}); give the run's output dir, "
                          "or the config file to start a new run with")
    return load_config(path, run_overrides)
