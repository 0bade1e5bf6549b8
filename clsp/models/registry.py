"""Registry of speech encoders, so configs choose an encoder by name.

A speech encoder is an ``nn.Module`` built from a dict of keyword arguments with
``forward(feats (B, T, bins), feat_lens (B,)) -> (out (B, T', D), out_lens (B,))`` and an
``output_dim`` attribute. Encoders that take raw waveforms set ``input_kind = "waveform"``
and receive ``(waveforms (B, S), sample_lens (B,))`` instead. An encoder with a frozen,
parameter-free part may expose ``frozen_features(x, lens) -> (B, frozen_dim)`` and accept
``forward(x, lens, frozen=...)``; training then computes that part once per clip (cached).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from clsp.errors import ConfigError

_SPEECH_ENCODERS: dict[str, type] = {}

# Modules that register encoders when imported; loaded on first lookup.
_BUILTIN_MODULES = ("clsp.models.compact", "clsp.models.zipformer", "clsp.models.hf_encoders", "clsp.models.fusion")


def register_speech_encoder(name: str) -> Callable[[type], type]:
    """Class decorator registering a speech encoder under ``name``."""

    def deco(cls: type) -> type:
        _SPEECH_ENCODERS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def speech_encoder_names() -> list[str]:
    _load_builtins()
    return sorted(_SPEECH_ENCODERS)


def check_config_keys(target: Callable, spec: dict[str, Any], where: str, reserved: tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` naming the keys of ``spec`` that ``target`` (a class or function
    built with ``**spec``) does not take, or that the caller sets itself (``reserved``), with
    ``where`` (e.g. ``model.speech_encoder``) as their prefix and the known keys. A target
    that takes ``**kwargs`` checks its own keys."""
    import inspect

    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = sorted(n for n, p in params.items()
                   if n != "self" and n not in reserved and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    unknown = sorted(set(spec) - set(known))
    if unknown:
        keys = ", ".join(f"{where}.{k}" for k in unknown)
        raise ConfigError(f"unknown config key{'s' if len(unknown) > 1 else ''} {keys} (known: {', '.join(known)})")
    _check_value_types(target, spec, where)


def _check_value_types(target: Callable, spec: dict[str, Any], where: str) -> None:
    """``ConfigError`` naming ``where.KEY`` for a value that does not fit the type ``target``
    declares for that argument (``dim: abc`` where it takes an ``int``); arguments whose type
    pydantic cannot check are left to ``target``."""
    import typing

    try:
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    except Exception:  # noqa: BLE001 - annotations that do not resolve: nothing to check
        return
    for key, value in spec.items():
        if key in hints:
            check_value(f"{where}.{key}", hints[key], value)


def check_value(name: str, hint: Any, value: Any, strict_text: bool = False) -> None:
    """``ConfigError`` ``"NAME: <the reason> (got VALUE)"`` when ``value`` does not fit the type
    ``hint`` (pydantic, lax: ``3.0`` is an ``int``; with ``strict_text`` a string is no number);
    a boolean where a number belongs is refused too. A type pydantic has no schema for is not
    checked."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(hint)
    except Exception:  # noqa: BLE001 - a type pydantic has no schema for
        return
    base = hint
    while typing.get_origin(base) is typing.Annotated:
        base = typing.get_args(base)[0]
    if isinstance(value, bool) and base in (int, float):
        raise ConfigError(f"{name}: expected a number, got the boolean {str(value).lower()}")
    try:
        adapter.validate_python(value, strict=strict_text and isinstance(value, str) and base is not str)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise ConfigError(f"{name}: {msg[0].lower()}{msg[1:]} (got {value!r})") from None


def build_speech_encoder(spec: dict[str, Any]):
    """Build the encoder named by ``spec["type"]`` with the remaining keys as arguments.
    ``ConfigError`` for an unknown type or a key the encoder does not take."""
    spec = dict(spec)
    name = spec.pop("type", None)
    if name not in _SPEECH_ENCODERS:
        _load_builtins()
    if name not in _SPEECH_ENCODERS:
        raise ConfigError(f"unknown speech encoder {name!r}; known: {', '.join(speech_encoder_names())}")
    check_config_keys(_SPEECH_ENCODERS[name], spec, "model.speech_encoder")
    return _SPEECH_ENCODERS[name](**spec)
