"""Execution providers and onnxruntime session creation, with CPU fallback that says why."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnxruntime as ort

log = logging.getLogger("edge_asr")

_DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


class ProviderFallbackWarning(UserWarning):
    """The requested execution provider is unavailable; edge-asr runs on CPU instead."""


@dataclass(frozen=True)
class SessionConfig:
    providers: tuple[str, ...]
    threads: int | None = None  # intra-op threads; None lets onnxruntime use the physical cores

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"


def resolve_providers(device: str = "auto", providers: Sequence[str] | None = None) -> tuple[str, ...]:
    """Providers to use for ``device`` ("cpu", "cuda", "auto"), or the explicit ``providers`` list,
    dropping (with a warning) those this onnxruntime build lacks."""
    available = ort.get_available_providers()
    if providers:
        wanted = list(providers)
    elif device == "auto":
        wanted = _DEVICE_PROVIDERS["cuda"] if "CUDAExecutionProvider" in available else _DEVICE_PROVIDERS["cpu"]
    elif device in _DEVICE_PROVIDERS:
        wanted = _DEVICE_PROVIDERS[device]
    else:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
    usable = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        hint = ""
        if "CUDAExecutionProvider" in missing:
            hint = (" The installed onnxruntime has no CUDA support: install onnxruntime-gpu "
                    "in place of onnxruntime (pip uninstall onnxruntime && pip install onnxruntime-gpu) with a CUDA 12 "
                    "runtime and cuDNN 9.")
        warnings.warn(f"execution provider(s) {', '.join(missing)} unavailable (onnxruntime {ort.__version__} "
                      f"offers {', '.join(available)}); falling back to CPU.{hint}",
                      ProviderFallbackWarning, stacklevel=3)
    if "CPUExecutionProvider" not in usable:
        usable.append("CPUExecutionProvider")
    return tuple(usable)


def create_session(path: Path, config: SessionConfig) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if config.threads:
        opts.intra_op_num_threads = int(config.threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # onnxruntime's own warnings are noise for users; errors still raise
    session = ort.InferenceSession(str(path), sess_options=opts, providers=list(config.providers))
    active = session.get_providers()
    if config.providers[0] != "CPUExecutionProvider" and config.providers[0] not in active:
        # onnxruntime drops a provider whose libraries fail to load (e.g. cuDNN missing) silently.
        warnings.warn(f"{config.providers[0]} could not be initialised for {path.name} (its CUDA/cuDNN "
                      "libraries failed to load; run with ORT logging to see which); running on CPU.",
                      ProviderFallbackWarning, stacklevel=3)
    return session
