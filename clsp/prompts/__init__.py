"""Prompt packs: label sets for zero-shot classification, as JSON (or YAML) files.

A pack describes one or more *attributes* (emotion, gender...). Each attribute has
classes, and each class one or more sentences ("prompts"); a class embedding is the
mean of its prompts' unit-norm text embeddings, renormalized (prompt ensembling).

Single-attribute form::

    {"name": "gender", "attribute": "gender",
     "templates": ["A {label} speaker.", "A {label} voice."],
     "classes": {"male": {"label": "male", "aliases": ["m"]}, "female": "female"}}

Several attributes in one file::

    {"name": "ravdess", "attributes": {
        "emotion": {"templates": [...], "classes": {...}},
        "gender": {"classes": {"male": {"prompts": ["A male speaker."]}, ...}}}}

Keys. Pack: ``name``, ``description``, then either ``attribute`` + the attribute keys, or
``attributes`` (attribute -> section). Attribute section: ``templates`` (sentences with
one ``{label}`` slot), ``classes`` (object name -> spec, or a list of names / objects with
``name``), ``merge`` (class -> the class it counts as, e.g. IEMOCAP's
``{"excited": "happy"}``), ``description``. Class spec: a string (its label) or an object
with ``label`` (fills the templates' slot), ``templates`` (replace the attribute's),
``prompts`` (literal sentences, no slot), ``aliases`` (other spellings of the gold label
accepted by ``--label-key``, e.g. ``"hap"``).

Refused with ``ConfigError`` naming the problem: unknown keys, no classes (or only one),
a template without its ``{label}`` slot or with another slot, a label with no template,
duplicate class names or aliases (compared in any case and Unicode normal form, NFC; also
duplicate JSON/YAML keys), two classes with the same prompts, merges to unknown or merged
classes; at classification two classes whose prompts the model embeds alike (letter case
only, ``clsp.zeroshot.ensemble_class_embeddings``). See ``docs/prompt-packs.md``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from clsp.errors import ConfigError
from clsp.sniff import binary_kind  # noqa: F401  (re-exported: where packs are read)
from clsp.prompts.schema import PromptClass, PromptPack, PromptSet, build_pack, build_prompt_set

__all__ = [
    "PromptClass",
    "PromptPack",
    "PromptSet",
    "build_pack",
    "build_prompt_set",
    "builtin_pack_names",
    "load_pack",
    "pack_from_dict",
    "parse_pack_text",
]

_YAML_SUFFIXES = (".yaml", ".yml")


def builtin_pack_names() -> list[str]:
    """Names of the packs shipped with clsp (``clsp/prompts/packs/*.json``)."""
    folder = resources.files("clsp.prompts") / "packs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ConfigError as exc:
        raise ConfigError(f"invalid prompt pack {where}: {exc} (duplicate class?)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid prompt pack {where}: not valid JSON ({exc})") from None


def _parse_yaml(text: str, where: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"cannot read {where}: YAML packs need PyYAML (pip install pyyaml), or use JSON") from None

    class _StrictLoader(yaml.SafeLoader):
        pass

    def _mapping(loader: Any, node: Any, deep: bool = False) -> dict:
        pairs = [(loader.construct_object(k, deep=deep), loader.construct_object(v, deep=deep)) for k, v in node.value]
        return _no_duplicate_keys(pairs)

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"invalid prompt pack {where}: {exc} (duplicate class?)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid prompt pack {where}: not valid YAML ({exc})") from None


def parse_pack_text(text: str, where: str = "<text>", yaml_format: bool = False, name: str = "pack") -> PromptPack:
    """Parse and validate pack text (JSON, or YAML when ``yaml_format``)."""
    raw = _parse_yaml(text, where) if yaml_format else _parse_json(text, where)
    return build_pack(raw, where, default_name=name)


def pack_from_dict(raw: dict, name: str = "pack") -> PromptPack:
    """Validate an in-memory pack (same schema as the files)."""
    return build_pack(raw, f"{name!r}", default_name=name)


_COMPRESSED_SUFFIXES = (".gz", ".zst", ".xz", ".bz2")  # read through clsp.streams like any manifest


def load_pack(name_or_path: str | Path) -> PromptPack:
    """Load a built-in pack by name (``emotion``, ``iemocap``...) or a JSON/YAML file by path.

    A built-in name given as a plain string is the built-in pack even where the working
    directory holds a file or folder of that name (``./gender`` reads the file); ``ConfigError``
    for a file that is missing or not a valid pack (saying what a binary file holds: audio, a
    ``.npy`` matrix, other binary data), and for a name that is neither."""
    text_name = str(name_or_path)
    path = Path(text_name)
    builtin = isinstance(name_or_path, str) and text_name in builtin_pack_names()
    if not builtin and (path.suffix.lower() in (".json", *_YAML_SUFFIXES, *_COMPRESSED_SUFFIXES) or path.exists()):
        if not path.is_file():
            from clsp.sniff import node_problem

            why = "is a folder" if path.is_dir() else node_problem(path) or "does not exist"
            why = "does not exist" if why == "no such file" else why
            raise ConfigError(f"prompt pack file {text_name}: {why}; give a JSON or YAML prompt pack file "
                              f"or a built-in pack name ({', '.join(builtin_pack_names())})")
        kind = binary_kind(path)
        if kind is not None:
            raise ConfigError(f"cannot read prompt pack {text_name} ({kind}); give a JSON or YAML prompt pack file "
                              f"or a built-in pack name ({', '.join(builtin_pack_names())})")
        from clsp.errors import InputError
        from clsp.streams import read_text_file

        try:  # compressed or not, a BOM from Windows editors dropped; UTF-16/32 named with the fix
            text = read_text_file(path)
        except (OSError, InputError) as exc:
            raise ConfigError(f"cannot read prompt pack {text_name}: {exc}") from None
        plain = path.with_suffix("") if path.suffix.lower() in _COMPRESSED_SUFFIXES else path
        return parse_pack_text(text, text_name, plain.suffix.lower() in _YAML_SUFFIXES, name=plain.stem)
    if text_name not in builtin_pack_names():
        raise ConfigError(
            f"unknown prompt pack {text_name!r}: not a file and not a built-in pack "
            f"(built-in: {', '.join(builtin_pack_names())})"
        )
    resource = resources.files("clsp.prompts") / "packs" / f"{text_name}.json"
    return parse_pack_text(resource.read_text(encoding="utf-8"), f"built-in {text_name!r}", name=text_name)
