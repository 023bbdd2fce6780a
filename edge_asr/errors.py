"""Exceptions edge-asr raises. Each message names the problem and what to do about it."""

from __future__ import annotations


class EdgeASRError(Exception):
    """Base class of every error edge-asr raises on purpose. Each concrete error also derives from the
    builtin it means (ValueError, FileNotFoundError, RuntimeError, TypeError), so code that catches
    builtins keeps working."""


class AudioError(EdgeASRError, ValueError):
    """The audio could not be read: missing, empty, corrupt, or in a format no decoder handles."""


class AudioTypeError(AudioError, TypeError):
    """The audio argument is of a type edge-asr cannot read (not a path, bytes or an array)."""


class ModelError(EdgeASRError, ValueError):
    """A model folder is missing, incomplete, corrupt or of an unsupported format version."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model name or path resolves to no model folder."""


class DecodingError(EdgeASRError, ValueError):
    """Options that the model cannot honour (e.g. a language an English-only model lacks)."""


class OptionError(EdgeASRError, ValueError):
    """An argument outside its valid values (a device name, a verify mode, a writer option)."""


class UnknownOptionError(EdgeASRError, TypeError):
    """An option name that does not exist (a misspelt keyword)."""


class StreamError(EdgeASRError, RuntimeError):
    """A streaming session used wrongly (fed after finish, sample rate changed mid-stream)."""


class AudioLimitError(AudioError):
    """The audio is readable but outside the limits edge-asr accepts: a sample rate no recording has (a
    corrupt header), or longer than the ``max_duration`` the caller allows."""


class ProviderError(EdgeASRError, RuntimeError):
    """An execution provider was required (``load_model(..., fallback=False)``) but cannot run here; the
    message names the missing package or shared library."""


class AudioWarning(UserWarning):
    """The audio was usable but odd, and edge-asr changed it to go on: float samples at integer scale
    (rescaled), or NaN/infinite samples in a live stream (replaced by silence)."""


WORD_TIMESTAMPS_UNAVAILABLE = ("word timestamps are unavailable for this model folder: it was exported without "
                               "cross-attention outputs; re-export it with this edge-asr version")
