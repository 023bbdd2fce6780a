"""The bench's errors: EdgeASRError subclasses that also derive from the matching builtin."""

from __future__ import annotations

from edge_asr.errors import EdgeASRError


class BenchConfigError(EdgeASRError, ValueError):
    """A bench option or input that cannot be used (unknown mode, no usable clip)."""


class BenchRunError(EdgeASRError, RuntimeError):
    """A measurement could not run (a child process failed, a model cannot be built here)."""
