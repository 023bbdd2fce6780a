"""int8 schemes of model folders, and whether this CPU can run a scheme without integer saturation.

Dynamic int8 quantization multiplies uint8 activations by int8 weights. On x86 CPUs without a VNNI
instruction (AVX2-only laptops, AVX-512 without VNNI) onnxruntime's kernels (and every other u8 x s8
kernel built on ``vpmaddubsw``) add two such products into a *16-bit* lane that saturates at 32767:
255 * 127 * 2 = 64770 does not fit, so some dot products come out wrong, and the text drifts (loops,
lost words). With VNNI/AMX the pairs go straight into 32-bit sums and nothing saturates. A model
folder exported and validated on a VNNI machine can therefore fail on the user's laptop.

The default scheme since manifest field ``quantization_scheme`` exists is ``int8-w7``: weights
per output channel, symmetric, in [-64, 64] (onnxruntime's ``reduce_range``). Then
255 * 64 * 2 = 32640 <= 32767 on every kernel, so the integer results are exact and identical on
AVX2, AVX-512, AVX512-VNNI, AVX-VNNI, AMX and ARM64. The measurements behind the choice are in
ARCHITECTURE.md and benchmarks/results/quantization-*.json.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Int8Scheme:
    name: str
    weight_type: str  # "int8" (signed, symmetric) or "uint8" (asymmetric)
    weight_max_abs: int  # largest |quantized weight - zero point| the scheme produces
    saturation_free: bool  # True when no x86 or ARM kernel can saturate with this scheme
    description: str


# Products of u8 activations (<= 255) and weights, two at a time, must fit in int16 on non-VNNI x86.
INT16_MAX = 32767
ACTIVATION_MAX = 255

SCHEMES: dict[str, Int8Scheme] = {s.name: s for s in (
    Int8Scheme("int8-w7", "int8", 64, True,
               "dynamic u8 activations x s8 weights in [-64, 64] per output channel (7-bit range: no int16 "
               "saturation on any x86 kernel)"),
    Int8Scheme("int8-u8u8", "uint8", 255, True,
               "dynamic u8 activations x u8 weights per output channel (onnxruntime's u8u8 kernels widen to "
               "16 bits before multiplying: no saturation, slower on VNNI CPUs)"),
    Int8Scheme("int8-w8-legacy", "int8", 127, False,
               "dynamic u8 activations x s8 weights in [-127, 127] per output channel (folders exported "
               "before quantization_scheme existed; saturates on x86 CPUs without VNNI)"),
)}
DEFAULT_INT8_SCHEME = "int8-w7"
LEGACY_INT8_SCHEME = "int8-w8-legacy"


class SaturationRiskWarning(UserWarning):
    """An int8 model folder of the legacy scheme runs on a CPU where its int8 products can saturate."""


def scheme_of(raw_manifest: dict) -> Int8Scheme | None:
    """The folder's int8 scheme (None for fp32/fp16 folders); folders from before the field: legacy."""
    if raw_manifest.get("quantization") != "int8":
        return None
    name = raw_manifest.get("quantization_scheme", LEGACY_INT8_SCHEME)
    return SCHEMES.get(name, SCHEMES[LEGACY_INT8_SCHEME])


def pair_sum_fits_int16(weight_max_abs: int) -> bool:
    """Whether two u8 x weight products always fit in an int16 lane (the non-VNNI x86 kernels)."""
    return 2 * ACTIVATION_MAX * weight_max_abs <= INT16_MAX


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (Linux /proc/cpuinfo), or None when they cannot be read here."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


# The int8 kernel classes onnxruntime picks between, best first (flag → name used in result files).
KERNEL_CLASSES = (("amx_int8", "amx"), ("avx512_vnni", "avx512vnni"), ("avx_vnni", "avxvnni"),
                  ("avx512f", "avx512"), ("avx2", "avx2"), ("asimd", "neon"))


def kernel_class(flags=None) -> str:
    """This CPU's int8 kernel class (amx, avx512vnni, avxvnni, avx512, avx2, neon; else the architecture):
    int8 speed and even text differ between classes, so every result file is named by it."""
    import platform

    flags = cpu_flags() if flags is None else flags
    return next((name for flag, name in KERNEL_CLASSES if flag in (flags or ())), platform.machine().lower() or "unknown")


# Any of these gives onnxruntime a u8 x s8 kernel that accumulates straight into 32 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def saturation_risk(machine: str | None = None, flags: frozenset[str] | None = None) -> str | None:
    """Why full-range s8 weights may saturate on this CPU, or None when they cannot.

    ARM64 kernels widen before adding (no risk). On x86 the risk exists unless a VNNI/AMX flag is
    present; where flags cannot be read (macOS, Windows) the risk is assumed."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return None
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return "this x86 CPU's features could not be read, so it may lack VNNI"
    if flags & VNNI_FLAGS:
        return None
    return "this x86 CPU has no VNNI/AMX int8 instructions (" + (
        "AVX-512 without VNNI" if "avx512bw" in flags else "AVX2 only" if "avx2" in flags else "no AVX2") + ")"


def warn_if_saturating(raw_manifest: dict, folder: Path) -> str | None:
    """Warn (SaturationRiskWarning) when a legacy int8 folder runs where it can saturate; return the text."""
    scheme = scheme_of(raw_manifest)
    if scheme is None or scheme.saturation_free:
        return None
    risk = saturation_risk()
    if risk is None:
        return None
    message = (f"model folder {folder} uses the {scheme.name} int8 scheme, whose full-range int8 weights saturate "
               f"16-bit sums on this machine: {risk}. Its text can drift (repeated phrases, lost words). Rebuild "
               f"it with this edge-asr version: `edge-asr pull NAME --force` for a pulled model, or "
               f"`edge-asr export CHECKPOINT OUT --force` (int8 scheme {DEFAULT_INT8_SCHEME}); "
               f"`edge-asr verify` measures the drift here.")
    warnings.warn(message, SaturationRiskWarning, stacklevel=3)
    return message
