"""Model names and where their folders live: ``load_model("base")`` looks in the user cache.

The cache is ``$EDGE_ASR_CACHE`` if set, else the platform's user cache folder (platformdirs):
``~/.cache/edge-asr`` on Linux (``$XDG_CACHE_HOME/edge-asr`` when set: the path edge-asr always used there),
``~/Library/Caches/edge-asr`` on macOS, ``%LOCALAPPDATA%\edge-asr\Cache`` on Windows. Model folders live in
its ``models/`` and are named ``<name>-<quantization>``: ``tiny.en-int8``, ``base-fp32``. ``edge-asr pull``
fills it; what else the cache holds is edge_asr.model_cache's concern.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFoundError

# Names `edge-asr pull` can build, with the hub checkpoint it prefers when the hub is reachable.
KNOWN_MODELS = {
    "tiny.en": "openai/whisper-tiny.en",
    "base": "openai/whisper-base",
}
QUANTIZATIONS = ("int8", "fp32", "fp16")
DEFAULT_MODEL = "base"
DEFAULT_QUANTIZATION = "int8"


def cache_dir() -> Path:
    env = os.environ.get("EDGE_ASR_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    # appauthor=False: no vendor level on Windows (%LOCALAPPDATA%\edge-asr\Cache).
    return Path(user_cache_dir("edge-asr", appauthor=False))


def model_folder(name: str, quantization: str = DEFAULT_QUANTIZATION) -> Path:
    return cache_dir() / "models" / f"{name}-{quantization}"


def cached_model(name: str) -> Path | None:
    """The cache's folder for ``name``: a ``name-quant`` folder, or a bare name (int8 preferred); None
    when the cache has none. Never looks in the current directory (`edge-asr models remove` uses it)."""
    root = cache_dir() / "models"
    if (root / name).is_dir():
        return root / name
    for quant in (DEFAULT_QUANTIZATION,) + tuple(q for q in QUANTIZATIONS if q != DEFAULT_QUANTIZATION):
        if (root / f"{name}-{quant}").is_dir():
            return root / f"{name}-{quant}"
    return None


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model folder path, a cached ``name-quant`` folder, or a bare name (int8 preferred)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    root = cache_dir() / "models"
    found = cached_model(name)
    if found is not None:
        return found
    if name in KNOWN_MODELS or name.rsplit("-", 1)[0] in KNOWN_MODELS:
        base = name.rsplit("-", 1)[0] if name not in KNOWN_MODELS else name
        quant = name.rsplit("-", 1)[1] if name not in KNOWN_MODELS else DEFAULT_QUANTIZATION
        raise ModelNotFoundError(
            f"model {name!r} is not in the cache ({root}); build it once with: "
            f"edge-asr pull {base} --quantize {quant}")
    raise ModelNotFoundError(
        f"no model folder at {path} and no cached model named {name!r} in {root}; "
        f"known names: {', '.join(KNOWN_MODELS)} (edge-asr pull NAME), or export your own with edge-asr export")
