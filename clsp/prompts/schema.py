"""Prompt-pack data classes and their validation (see ``clsp.prompts`` for the file format)."""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping

from clsp.errors import ConfigError

SLOT = "label"
_PACK_KEYS = {"name", "description", "attribute", "attributes", "templates", "classes", "merge"}
_SET_KEYS = {"description", "templates", "classes", "merge"}
_CLASS_KEYS = {"name", "label", "prompts", "templates", "aliases"}


def label_key(text: Any) -> str:
    """How class names, aliases and gold labels compare: NFC-normalized (``"ma\u0308nnlich"``
    is ``"m\u00e4nnlich"``), stripped and case-folded."""
    folded = unicodedata.normalize("NFC", str(text)).strip().casefold()
    return unicodedata.normalize("NFC", folded)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class PromptClass:
    """One class of an attribute: its name, the sentences that describe it and label aliases."""

    name: str
    prompts: tuple[str, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSet:
    """The classes of one attribute; ``merge`` maps a class to the class it counts as."""

    attribute: str
    classes: tuple[PromptClass, ...]
    merge: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def output_classes(self) -> list[str]:
        """Class names after merging, in pack order (what predictions can be)."""
        return [c.name for c in self.classes if c.name not in self.merge]

    def output_class(self, name: str) -> str:
        """The class a prompt class counts as (itself unless merged)."""
        return self.merge.get(name, name)

    def canonical_label(self, label: Any) -> str | None:
        """Map a gold label (class name or alias, any case or Unicode normal form) to its output
        class, else None."""
        key = label_key(label)
        for c in self.classes:
            if key == label_key(c.name) or key in (label_key(a) for a in c.aliases):
                return self.output_class(c.name)
        return None

    def to_dict(self) -> dict:
        return {
            "attribute": self.attribute,
            "description": self.description,
            "classes": {c.name: {"prompts": list(c.prompts), "aliases": list(c.aliases)} for c in self.classes},
            "merge": dict(self.merge),
        }


@dataclass(frozen=True)
class PromptPack:
    """A named collection of prompt sets, one per attribute."""

    name: str
    attributes: Mapping[str, PromptSet]
    description: str = ""

    def get(self, attribute: str | None = None) -> PromptSet:
        """The prompt set of ``attribute``; may be omitted when the pack has a single one."""
        if attribute is None:
            if len(self.attributes) == 1:
                return next(iter(self.attributes.values()))
            raise ConfigError(
                f"prompt pack {self.name!r} has several attributes "
                f"({', '.join(self.attributes)}); choose one with --attribute (attribute= in Python)"
            )
        attribute = next((a for a in self.attributes if _nfc(a) == _nfc(attribute)), attribute)
        if attribute not in self.attributes:
            raise ConfigError(
                f"prompt pack {self.name!r} has no attribute {attribute!r} "
                f"(it has: {', '.join(self.attributes)})"
            )
        return self.attributes[attribute]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "attributes": {k: v.to_dict() for k, v in self.attributes.items()},
        }


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"invalid prompt pack {where}: {problem}")


def _strings(value: Any, where: str, what: str) -> list[str]:
    """A string or list of non-empty strings, as a list."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise _fail(where, f"{what} must be a string or a list of strings")
    for s in items:
        if not s.strip():
            raise _fail(where, f"{what} contains an empty string")
    return list(items)


def _slots(text: str, where: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise _fail(where, f"malformed braces in {text!r} ({exc})") from None


def _check_template(template: str, where: str) -> None:
    slots = _slots(template, where)
    if not slots:
        raise _fail(where, f"template {template!r} has no {{{SLOT}}} slot")
    unknown = sorted({s for s in slots if s != SLOT})
    if unknown:
        raise _fail(where, f"template {template!r} uses unknown slot(s) {unknown}; only {{{SLOT}}} exists")
    if len(slots) != 1:
        raise _fail(where, f"template {template!r} has {len(slots)} {{{SLOT}}} slots; a template has exactly one")
    specs = [(spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    if any(spec or conv for spec, conv in specs):
        raise _fail(where, f"template {template!r} writes its slot with a format or conversion; write it as "
                           f"{{{SLOT}}}")


def _check_literal(prompt: str, where: str) -> None:
    if _slots(prompt, where):
        raise _fail(where, f"prompt {prompt!r} contains a slot; put sentences with {{{SLOT}}} in 'templates'")


def _class_entries(raw: Any, where: str) -> list[tuple[str, Any]]:
    """Normalize the dict and list forms of ``classes`` to (name, spec) pairs."""
    if isinstance(raw, Mapping):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list):
        out = []
        for item in raw:
            if isinstance(item, str):
                out.append((item, item))
            elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
                out.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
            else:
                raise _fail(where, "each entry of a 'classes' list must be a string or an object with a 'name'")
        return out
    raise _fail(where, "'classes' must be an object or a list")


def _build_class(name: str, spec: Any, templates: list[str], where: str) -> PromptClass:
    cwhere = f"{where}, class {name!r}"
    if not name.strip():
        raise _fail(where, "a class has an empty name")
    if isinstance(spec, str):
        spec = {"label": spec}
    if not isinstance(spec, Mapping):
        raise _fail(cwhere, "must be a string (its label) or an object")
    unknown = sorted(set(spec) - _CLASS_KEYS)
    if unknown:
        raise _fail(cwhere, f"unknown key(s) {unknown}; allowed: {sorted(_CLASS_KEYS - {'name'})}")
    own_templates = _strings(spec["templates"], cwhere, "'templates'") if "templates" in spec else templates
    prompts: list[str] = []
    if "label" in spec:
        label = _strings(spec["label"], cwhere, "'label'")
        if len(label) != 1:
            raise _fail(cwhere, "'label' must be a single string")
        if not own_templates:
            raise _fail(cwhere, "has a 'label' but there are no templates to put it in")
        for t in own_templates:
            _check_template(t, cwhere)
            prompts.append(t.replace("{" + SLOT + "}", label[0]))
    elif "templates" in spec:
        raise _fail(cwhere, "has 'templates' but no 'label' to fill their slot")
    for p in _strings(spec.get("prompts", []), cwhere, "'prompts'"):
        _check_literal(p, cwhere)
        prompts.append(p)
    if not prompts:
        raise _fail(cwhere, "has no prompts (give a 'label' with templates, or 'prompts')")
    aliases = _strings(spec.get("aliases", []), cwhere, "'aliases'")
    return PromptClass(name=name, prompts=tuple(dict.fromkeys(prompts)), aliases=tuple(aliases))


def _check_unique(classes: list[PromptClass], where: str) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for c in classes:
        for key, raw in {label_key(k): k.strip().casefold() for k in (c.name, *c.aliases)}.items():
            if key in seen:
                other, other_raw = seen[key]
                form = f" ({ascii(other_raw)} and {ascii(raw)} are one name in Unicode NFC)" if raw != other_raw else ""
                raise _fail(where, f"duplicate class {key!r} (classes {other!r} and {c.name!r}){form}")
            seen[key] = (c.name, raw)
    by_prompts: dict[tuple[str, ...], str] = {}
    for c in classes:
        key = tuple(sorted(c.prompts))
        if key in by_prompts:
            raise _fail(where, f"classes {by_prompts[key]!r} and {c.name!r} have identical prompts")
        by_prompts[key] = c.name


def _check_merge(merge: Any, names: list[str], where: str) -> dict[str, str]:
    if not isinstance(merge, Mapping):
        raise _fail(where, "'merge' must map a class to the class it counts as")
    by_nfc = {_nfc(n): n for n in names}  # a class named in another Unicode normal form is that class
    merged = {_nfc(str(k)) for k in merge}
    out = {}
    for src, dst in merge.items():
        source = by_nfc.get(_nfc(str(src)))
        target = by_nfc.get(_nfc(dst)) if isinstance(dst, str) else None
        if source is None or target is None:
            raise _fail(where, f"merge {src!r} -> {dst!r} names a class that does not exist")
        if source == target or _nfc(target) in merged:
            raise _fail(where, f"merge {src!r} -> {dst!r} must point to a class that is not itself merged")
        out[source] = target
    return out


def build_prompt_set(attribute: str, raw: Any, where: str) -> PromptSet:
    """Validate one attribute's section of a pack and build its ``PromptSet``."""
    swhere = f"{where}, attribute {attribute!r}"
    if not isinstance(raw, Mapping):
        raise _fail(swhere, "must be an object with 'classes'")
    unknown = sorted(set(raw) - _SET_KEYS)
    if unknown:
        raise _fail(swhere, f"unknown key(s) {unknown}; allowed: {sorted(_SET_KEYS)}")
    templates = _strings(raw.get("templates", []), swhere, "'templates'")
    for t in templates:
        _check_template(t, swhere)
    entries = _class_entries(raw.get("classes", {}), swhere)
    if len(entries) < 2:
        raise _fail(swhere, "no classes" if not entries else "needs at least two classes")
    classes = [_build_class(name, spec, templates, swhere) for name, spec in entries]
    _check_unique(classes, swhere)
    merge = _check_merge(raw.get("merge", {}), [c.name for c in classes], swhere)
    return PromptSet(attribute, tuple(classes), merge, str(raw.get("description", "")))


def build_pack(raw: Any, where: str, default_name: str = "pack") -> PromptPack:
    """Validate a whole pack (single-attribute or ``attributes`` form) into a ``PromptPack``."""
    if not isinstance(raw, Mapping):
        raise _fail(where, "the top level must be an object")
    unknown = sorted(set(raw) - _PACK_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; allowed: {sorted(_PACK_KEYS)}")
    name = str(raw.get("name", default_name))
    description = str(raw.get("description", ""))
    if "attributes" in raw:
        extra = sorted({"attribute", "templates", "classes", "merge"} & set(raw))
        if extra:
            raise _fail(where, f"give either 'attributes' or a single 'attribute', not both (found {extra})")
        if not isinstance(raw["attributes"], Mapping) or not raw["attributes"]:
            raise _fail(where, "'attributes' must be a non-empty object")
        sets = {str(a): build_prompt_set(str(a), s, where) for a, s in raw["attributes"].items()}
    else:
        if "classes" not in raw:
            raise _fail(where, "no classes")
        attribute = raw.get("attribute")
        if not isinstance(attribute, str) or not attribute.strip():
            raise _fail(where, "missing 'attribute' (the name of what the classes describe)")
        section = {k: raw[k] for k in ("templates", "classes", "merge") if k in raw}
        sets = {attribute: build_prompt_set(attribute, section, where)}
    return PromptPack(name=name, attributes=sets, description=description)
