"""Exceptions raised by the clsp library.

Every error a user can cause is a ``ClspError`` subclass, so the command line can turn it
into an error record (``{"id", "error": {"type", "message"}}``) or a usage error.
"""

from __future__ import annotations


class ClspError(Exception):
    """Base class of every user-facing clsp error."""

    @property
    def type(self) -> str:
        return type(self).__name__


class InputError(ClspError):
    """A record or file given by the user cannot be used (malformed JSON, missing field...)."""


class AudioError(InputError):
    """An audio file cannot be decoded or holds unusable samples."""


class ConfigError(ClspError):
    """A configuration, option or prompt pack is invalid."""


class ModelError(ClspError):
    """A model cannot be found, loaded or does not match its checkpoint."""


class ModelNotFoundError(ModelError):
    """No model exists under the given name or path (a usage error)."""


class CheckpointError(ModelError):
    """A checkpoint has missing, unexpected or mis-shaped tensors, or an unsafe format."""


class ProvenanceError(ClspError):
    """Embeddings or indexes from incompatible models are being mixed."""


class IndexFileError(ClspError):
    """A search index is missing, corrupt or incompatible."""


class MissingIndexError(IndexFileError, ConfigError):
    """A search index named by the user does not exist (a usage error: exit 2)."""


class OutputError(ClspError):
    """An output file cannot be written (read-only target, disk full...)."""


class TrainingDivergedError(ClspError):
    """A training run cannot go on: its loss, gradients or weights are no longer finite."""
