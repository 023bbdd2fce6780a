"""Execution providers and onnxruntime session creation, with CPU fallback that says why."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnxruntime as ort

from .errors import OptionError, ProviderError

log = logging.getLogger("edge_asr")

_DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


class ProviderFallbackWarning(UserWarning):
    """The requested execution provider is unavailable; edge-asr runs on CPU instead."""


# What brings each provider into a Python install: onnxruntime builds are per provider.
_PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu in place of onnxruntime (pip uninstall onnxruntime && pip install "
                             "onnxruntime-gpu) with a CUDA 12 runtime and cuDNN 9",
    "TensorrtExecutionProvider": "onnxruntime-gpu in place of onnxruntime, with TensorRT 10, CUDA 12 and cuDNN 9",
    "OpenVINOExecutionProvider": "onnxruntime-openvino in place of onnxruntime",
    "DmlExecutionProvider": "onnxruntime-directml in place of onnxruntime (Windows)",
    "CoreMLExecutionProvider": "the standard onnxruntime wheel on macOS",
    "MIGraphXExecutionProvider": "onnxruntime-migraphx (ROCm) in place of onnxruntime",
    "QNNExecutionProvider": "onnxruntime-qnn in place of onnxruntime (Qualcomm NPUs)",
    "CANNExecutionProvider": "onnxruntime-cann in place of onnxruntime (Huawei Ascend)",
}
# Shared libraries a GPU provider loads at session creation (Linux names; onnxruntime drops the
# provider silently when one is missing). The first that fails to load is the one to install.
_PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": [("libcudart.so.12", "the CUDA 12 runtime (nvidia-cuda-runtime-cu12)"),
                              ("libcublas.so.12", "cuBLAS 12 (nvidia-cublas-cu12)"),
                              ("libcublasLt.so.12", "cuBLASLt 12 (nvidia-cublas-cu12)"),
                              ("libcufft.so.11", "cuFFT 11 (nvidia-cufft-cu12)"),
                              ("libcudnn.so.9", "cuDNN 9 (nvidia-cudnn-cu12)")],
    "TensorrtExecutionProvider": [("libnvinfer.so.10", "TensorRT 10 (tensorrt-cu12-libs)")],
}


def missing_library(provider: str) -> str | None:
    """The first shared library ``provider`` needs that cannot be loaded here, named with the package
    that brings it, or None when all load (or the provider needs none we know of)."""
    for lib, what, error in library_status(provider):
        if error is not None:
            return f"{lib}, from {what}"
    return None


def library_status(provider: str) -> list[tuple[str, str, str | None]]:
    """(library, what brings it, None or why it does not load) for each shared library ``provider``
    loads at session creation, in load order (`edge-asr doctor` lists them all). Empty off Linux,
    where the names differ."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return []
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") and hasattr(ort, "preload_dlls"):
        try:  # onnxruntime >= 1.21 finds the nvidia-* pip packages' libraries this way
            # It print()s to stdout when a library is missing: that would break `doctor --json`'s output
            # (each library's state is reported below anyway).
            with contextlib.redirect_stdout(io.StringIO()):
                ort.preload_dlls()
        except Exception:
            pass
    status = []
    for lib, what in _PROVIDER_LIBRARIES.get(provider, []) + (
            _PROVIDER_LIBRARIES["CUDAExecutionProvider"] if provider == "TensorrtExecutionProvider" else []):
        try:
            ctypes.CDLL(lib)
            status.append((lib, what, None))
        except OSError as e:
            status.append((lib, what, str(e)))
    return status


def _unavailable_message(missing: Sequence[str], available: Sequence[str]) -> str:
    hints = [f"{p} needs {_PROVIDER_PACKAGES[p]}" for p in missing if p in _PROVIDER_PACKAGES]
    return (f"execution provider(s) {', '.join(missing)} unavailable (onnxruntime {ort.__version__} offers "
            f"{', '.join(available)})" + (": " + "; ".join(hints) if hints else ""))


@dataclass(frozen=True)
class SessionConfig:
    providers: tuple[str, ...]
    threads: int | None = None  # intra-op threads; None lets onnxruntime use the physical cores
    # False: a requested provider that cannot run raises ProviderError instead of falling back to CPU.
    fallback: bool = True
    # Keep onnxruntime's optimized CPU graphs in the cache folder and load those next time (faster).
    optimized_graphs: bool = True

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"


def resolve_providers(device: str = "auto", providers: Sequence[str] | None = None, *,
                      fallback: bool = True) -> tuple[str, ...]:
    """Providers to use for ``device`` ("cpu", "cuda", "auto"), or the explicit ``providers`` list,
    dropping (with a ProviderFallbackWarning) those this onnxruntime build lacks, or, with
    ``fallback=False``, raising ProviderError naming the package that brings them. "auto" never warns:
    it means CUDA when this onnxruntime has it."""
    available = ort.get_available_providers()
    if providers is not None and (isinstance(providers, str) or not all(isinstance(p, str) for p in providers)):
        raise OptionError(f"providers must be a list of onnxruntime provider names, not {providers!r}")
    if providers:
        unknown = [p for p in providers if p not in ort.get_all_providers()]
        if unknown:
            raise OptionError(f"unknown execution provider(s) {', '.join(unknown)}; onnxruntime knows "
                              f"{', '.join(ort.get_all_providers())}")
        wanted = list(providers)
    elif device == "auto":
        wanted = _DEVICE_PROVIDERS["cuda"] if "CUDAExecutionProvider" in available else _DEVICE_PROVIDERS["cpu"]
    elif device in _DEVICE_PROVIDERS:
        wanted = _DEVICE_PROVIDERS[device]
    else:
        raise OptionError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
    usable = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        message = _unavailable_message(missing, available)
        if not fallback:
            raise ProviderError(message + " (fallback=False: not running on CPU instead)")
        warnings.warn(message + "; falling back to CPU.", ProviderFallbackWarning, stacklevel=3)
    if "CPUExecutionProvider" not in usable:
        usable.append("CPUExecutionProvider")
    return tuple(usable)


@dataclass(frozen=True)
class GraphPolicy:
    """onnxruntime settings of one graph (measured on base int8, 2 threads; ARCHITECTURE.md).

    mem_pattern: plan one block per input shape. Off for both graphs: the block is allocated next to
        what the first run left in the arena (+35 MB peak), and the decoder's shapes change every step.
    arena: onnxruntime's CPU arena. Off for the decoder (-12 MB, same speed); on for the encoder (off
        raised its peak through fragmentation).
    prepack: keep weights pre-packed for the int8 GEMMs (a second copy of them). Off for the encoder
        (-31 MB for ~4 % more encoder time); on for the decoder (off: 50 % slower per token).
    spin: intra-op threads busy-wait for work after a run. Off for the encoder: its threads kept spinning
        into the decoder's first steps (and the decoder's into the next encoder run), and on two cores
        that slowed a 13 s encoder window from 0.085 to 0.14 s; one long run per window gains nothing
        from spinning. On for the decoder, whose many small runs per second need the fast wake-up.
    """

    mem_pattern: bool = False
    arena: bool = True
    prepack: bool = True
    spin: bool = True


def _session_options(config: SessionConfig, policy: GraphPolicy) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_mem_pattern = policy.mem_pattern
    opts.enable_cpu_mem_arena = policy.arena
    if not policy.prepack:
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if not policy.spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if config.threads:
        opts.intra_op_num_threads = int(config.threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # onnxruntime's own warnings are noise for users; errors still raise
    return opts


# Graphs above this size are not cached optimized: protobuf's 2 GiB limit (fp32 large models).
_MAX_CACHED_GRAPH = 1 << 30


def _optimized_session(path: Path, config: SessionConfig, policy: GraphPolicy, cache: Path
                       ) -> ort.InferenceSession | None:
    """A CPU session from the graph onnxruntime optimized on an earlier load (saved under ``cache``),
    or a fresh one that saves its optimized graph there. Loading the saved graph skips the graph
    optimizer, roughly halving session creation. The cache folder is keyed by the graph's sha256 and the
    onnxruntime version (see inference.py), so it never serves a stale graph; any failure falls back to
    the plain load. Only the extended level is saved: it is hardware-independent, and the layout
    transforms of the "all" level cost little at load."""
    cached = cache / path.name
    if cached.is_file():
        opts = _session_options(config, policy)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(cached), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # truncated or unreadable by this build: rebuild it below
            log.debug("optimized graph %s unusable (%s); rebuilding it", cached, e)
    if path.stat().st_size > _MAX_CACHED_GRAPH:
        return None
    tmp = cache / f".{path.name}.{os.getpid()}.tmp"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        opts = _session_options(config, policy)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(tmp)
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        os.replace(tmp, cached)
        return session
    # Exception, not only OSError: onnxruntime raises its own errors when it cannot write the optimized
    # graph (the folder trimmed away by another process meanwhile, a full disk). A read-only or full cache
    # only means running without it; a graph that really does not load fails again in the plain load,
    # with the caller's error handling.
    except Exception as e:
        log.debug("cannot cache the optimized graph in %s: %s", cache, e)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None


def create_session(path: Path, config: SessionConfig, *, policy: GraphPolicy = GraphPolicy(),
                   optimized_cache: Path | None = None) -> ort.InferenceSession:
    """A session for one graph. ``optimized_cache``: a folder to keep the optimized CPU graph in."""
    if optimized_cache is not None and config.providers == ("CPUExecutionProvider",):
        session = _optimized_session(path, config, policy, optimized_cache)
        if session is not None:
            return session
    opts = _session_options(config, policy)
    session = ort.InferenceSession(str(path), sess_options=opts, providers=list(config.providers))
    active = session.get_providers()
    dropped = [p for p in config.providers if p != "CPUExecutionProvider" and p not in active]
    if dropped:
        # onnxruntime drops a provider whose libraries fail to load (e.g. cuDNN missing) silently.
        library = missing_library(dropped[0])
        why = (f"{library} cannot be loaded" if library else
               "its libraries failed to load; set ORT's log level to 0 to see which")
        message = f"{dropped[0]} could not be initialised for {path.name} ({why})"
        if not config.fallback:
            raise ProviderError(message + "; fallback=False: not running on CPU instead")
        warnings.warn(message + "; running on CPU.", ProviderFallbackWarning, stacklevel=3)
    return session
