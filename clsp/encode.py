"""Lists of audio files and captions -> embedding matrices, for use from Python.

``model.encode_audio_files(paths)`` and ``model.encode_texts(texts)`` (methods of
:class:`clsp.models.base.CLSPModel`) call these. They run the embedders of ``clsp embed``
(:class:`clsp.embed.AudioEmbedder`, :class:`clsp.embed.TextEmbedder`) with its defaults, so
a file gets the row ``clsp embed`` writes for it; unlike the command, which writes an
error record and goes on, the first file or caption that cannot be embedded raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from clsp.errors import ConfigError, InputError


def encode_audio_files(model, paths: Sequence[str | os.PathLike], batch_size: int = 64, *,
                       long_audio: str = "chunk-mean", max_seconds: float = 30.0, workers: int = 2,
                       dtype: str = "auto") -> np.ndarray:
    """Embed audio files: ``(N, D)`` float32, each row L2-normalised, row ``i`` for ``paths[i]``.

    Paths are relative to the working directory. A file is decoded to 16 kHz mono and
    embedded whole up to ``max_seconds``; a longer one follows ``long_audio``: "chunk-mean"
    (the duration-weighted mean of equal windows, renormalised) or "truncate" (its first
    ``max_seconds``). ``batch_size`` clips at most go through the model at once. The model
    runs on its own device, in eval mode (it stays in eval mode); ``dtype`` "auto" is
    bfloat16 on CUDA and float32 on CPU, as in ``clsp embed``.

    Raises ``AudioError`` naming the first file that cannot be read, ``InputError`` for a
    non-finite embedding, ``ConfigError`` for an unknown ``long_audio``.
    """
    from clsp.embed import AudioEmbedder, EmbedConfig
    from clsp.inputs import Source, iter_source_items

    if isinstance(paths, (str, os.PathLike)):
        raise ConfigError("encode_audio_files takes a list of paths, not one path")
    if long_audio == "windows":
        raise ConfigError("long_audio='windows' gives several rows per file; use 'chunk-mean' or 'truncate'")
    cfg = EmbedConfig(batch_size=batch_size, max_seconds=max_seconds, long_audio=long_audio, workers=workers,
                      device=str(model.device), dtype=dtype)
    embedder = AudioEmbedder(model, cfg)
    items = iter_source_items([Source("audio", os.fspath(p)) for p in paths])
    rows = []
    for result in embedder.run(items):
        if result.error is not None:
            raise result.error
        rows.append(result.embeddings[0])
    return _matrix(rows, model)


def encode_texts(model, texts: Iterable[str], batch_size: int = 64, *, dtype: str = "auto") -> np.ndarray:
    """Embed captions (a list or any iterable): ``(N, D)`` float32, each row L2-normalised, row
    ``i`` for the ``i``-th caption.

    Runs on the model's device in eval mode. Raises ``InputError`` naming the first empty
    caption (or one whose embedding is not finite); a model loaded with ``with_text=False``
    cannot embed text.
    """
    from clsp.embed import TextEmbedder
    from clsp.records import Item

    if isinstance(texts, str):
        raise ConfigError("encode_texts takes a list of captions, not one string")
    texts = caption_list(texts, "encode_texts")  # a generator is read once, here
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"text {bad}: a caption must be a string, got {type(texts[bad]).__name__}")
    embedder = TextEmbedder(model, batch_size=batch_size, device=str(model.device), dtype=dtype)
    items = [Item(index=i, id=f"text {i}", record={"text": t}) for i, t in enumerate(texts)]
    rows = []
    for result in embedder.run(items):
        if result.error is not None:
            raise result.error
        rows.append(result.value)
    return _matrix(rows, model)


def caption_list(texts, caller: str) -> list:
    """``texts`` (a list, tuple, generator or any other iterable of captions) as a list, read
    once; ``ConfigError`` naming ``caller`` for something that is not iterable."""
    try:
        return list(texts)
    except TypeError:
        raise ConfigError(f"{caller} takes a list of captions, got {type(texts).__name__}") from None


def _matrix(rows: list[np.ndarray], model) -> np.ndarray:
    if not rows:
        return np.zeros((0, model.config.joint_dim), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)
