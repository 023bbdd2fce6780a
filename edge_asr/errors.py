"""Exceptions edge-asr raises. Each message names the problem and what to do about it."""

from __future__ import annotations


class EdgeASRError(Exception):
    """Base class of every error edge-asr raises on purpose."""


class AudioError(EdgeASRError):
    """The audio could not be read: missing, empty, corrupt, or in a format no decoder handles."""


class ModelError(EdgeASRError):
    """A model folder is missing, incomplete, corrupt or of an unsupported format version."""


class ModelNotFoundError(ModelError):
    """A model name or path resolves to no model folder."""


class DecodingError(EdgeASRError):
    """Options that the model cannot honour (e.g. a language an English-only model lacks)."""


WORD_TIMESTAMPS_UNAVAILABLE = ("word timestamps are unavailable for this model folder: it was exported without "
                               "cross-attention outputs; re-export it with this edge-asr version")
