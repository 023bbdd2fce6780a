"""Encoder efficiency: analytic FLOPs of one 30 s encoder window, the GFLOP/s the measured encoder time
implies, and this machine's fp32 peak (measured with a numpy matmul, and theoretical from the CPU flags
when the clock is known), so an encoder time can be read as a fraction of what the CPU can do.

FLOPs of one window (:func:`encoder_macs`; FLOPs = 2 x MACs), with S = n_audio_ctx (1500 positions),
d = d_model, F = 2 S = 3000 mel frames, L_e encoder layers, L_d decoder layers:

    conv1 (n_mels -> d, kernel 3, F frames)            F * n_mels * d * 3
    conv2 (d -> d, kernel 3, stride 2, S frames)       S * d * d * 3
    per encoder layer:
      Q, K, V, O projections                           4 * S * d * d
      attention scores Q K^T and weighted sum A V      S * S * d + S * S * d
      MLP d -> 4d -> d                                 2 * S * d * 4d
    cross-attention K and V of every decoder layer     L_d * 2 * S * d * d
    (our encoder graph computes them once per window, so they are part of its time)

Layer norms, softmax, GELU, biases and the positional embedding are left out (< 1 % for every Whisper
size). The figure is the same for every precision: int8 graphs do the same multiply-adds, and their
MatMuls run on VNNI int8 dot products (vpdpbusd) at up to 4x the fp32 rate, so an int8 (mixed int8/fp32)
encoder's GFLOP/s can exceed the fp32 peak below; fp32 graphs cannot.

fp32 peak:
- measured: the best of a few float32 ``a @ b`` of 1536 x 1536 matrices through numpy's BLAS, in a
  subprocess with the thread variables set to the bench's thread count (onnxruntime uses its own MLAS
  kernels, so this is a reference for the machine, not for onnxruntime);
- theoretical: FMA units x fp32 lanes per vector x 2 (an FMA is two FLOPs) x cores x GHz, assuming
  2 FMA units per core; lanes 16 with AVX-512 (8 on AMD Zen 4 and older, which execute 512-bit
  operations on 256-bit units), 8 with AVX2/FMA, 4 otherwise; cores = min(threads, physical cores); GHz
  from cpufreq's maximum, else the "@ x GHz" of the model name, else /proc/cpuinfo's "cpu MHz" (on a VM
  the host's nominal clock, boost not counted). Without any clock only the measured peak is reported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

MATMUL_N = 1536
MATMUL_REPEATS = 10
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
FMA_UNITS = 2

_MATMUL = f"""
import time, numpy as np
rng = np.random.default_rng(0)
a = rng.standard_normal(({MATMUL_N}, {MATMUL_N}), dtype=np.float32)
b = rng.standard_normal(({MATMUL_N}, {MATMUL_N}), dtype=np.float32)
a @ b
best = float("inf")
for _ in range({MATMUL_REPEATS}):
    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
print(2 * {MATMUL_N} ** 3 / best / 1e9)
"""


def _dim(dims, name: str) -> int:
    return int(dims[name] if isinstance(dims, dict) else getattr(dims, name))


def encoder_macs(dims) -> int:
    """Multiply-accumulates of one 30 s encoder window (see the module docstring for the terms).
    ``dims``: a manifest's dims (edge_asr.manifest.Dims or its dict in manifest.json)."""
    n_mels, s, d = _dim(dims, "n_mels"), _dim(dims, "n_audio_ctx"), _dim(dims, "d_model")
    enc, dec = _dim(dims, "encoder_layers"), _dim(dims, "decoder_layers")
    frames = 2 * s
    conv = frames * n_mels * d * 3 + s * d * d * 3
    layer = 4 * s * d * d + 2 * s * s * d + 2 * s * d * 4 * d
    cross_kv = dec * 2 * s * d * d
    return conv + enc * layer + cross_kv


def encoder_flops(dims) -> int:
    """FLOPs of one 30 s encoder window: 2 x :func:`encoder_macs`."""
    return 2 * encoder_macs(dims)


def model_encoder_flops(folder: str | os.PathLike) -> int | None:
    """:func:`encoder_flops` of a model folder (its manifest's dims), None when they cannot be read."""
    import json

    try:
        return encoder_flops(json.loads((Path(folder) / "manifest.json").read_text())["dims"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measured_fp32_gflops(threads: int) -> float | None:
    """Best-of-5 GFLOP/s of a float32 1536 x 1536 matmul with ``threads`` BLAS threads (subprocess)."""
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    try:
        proc = subprocess.run([sys.executable, "-c", _MATMUL], env=env, capture_output=True, text=True, timeout=120)
        return round(float(proc.stdout.strip().splitlines()[-1]), 1) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def clock_ghz(model: str | None = None) -> tuple[float | None, str]:
    """(GHz, where it came from); (None, why) when no clock is known."""
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return round(khz / 1e6, 3), "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    info = _cpuinfo()
    m = re.search(r"@\s*([\d.]+)\s*GHz", model or info.get("model name", ""))
    if m:
        return float(m.group(1)), "model name (nominal base clock)"
    try:
        return round(float(info["cpu MHz"]) / 1000, 3), "/proc/cpuinfo cpu MHz (nominal/current, boost not counted)"
    except (KeyError, ValueError):
        return None, "clock unknown (no cpufreq, no GHz in the model name, no cpu MHz)"


def fp32_lanes(flags: list[str] | set[str]) -> tuple[int, str]:
    """fp32 lanes per FMA per cycle, and why."""
    flags = set(flags)
    info = _cpuinfo()
    if "avx512f" in flags:
        family = info.get("cpu family", "")
        if info.get("vendor_id") == "AuthenticAMD" and family.isdigit() and int(family) < 26:
            return 8, "AVX-512 on AMD Zen 4 or older (512-bit operations on 256-bit units)"
        return 16, "AVX-512"
    if "avx2" in flags or "fma" in flags:
        return 8, "AVX2/FMA"
    return 4, "128-bit SIMD (SSE/NEON)"


def fp32_peak(threads: tuple[int, ...] | list[int], cpu: dict) -> dict:
    """The machine's fp32 peak per bench thread count: measured (numpy matmul) and theoretical."""
    cores = cpu.get("physical_cores") or cpu.get("logical_cores") or 1
    ghz, clock_source = clock_ghz(cpu.get("model"))
    lanes, lanes_why = fp32_lanes(cpu.get("flags") or [])
    per_core = FMA_UNITS * lanes * 2 * ghz if ghz else None
    measured = {str(t): measured_fp32_gflops(t) for t in threads}
    note = None
    if per_core:
        above = [(t, v) for t, v in measured.items() if v and v > per_core * min(int(t), cores)]
        if above:
            t, v = max(above, key=lambda tv: tv[1] / min(int(tv[0]), cores))
            implied = v / (FMA_UNITS * lanes * 2 * min(int(t), cores))
            note = (f"measured exceeds theoretical: the cores run above {ghz} GHz (boost); the measured peak "
                    f"implies at least {implied:.2f} GHz under the same assumption")
    return {
        "measured_gflops": measured,
        "measured_method": f"numpy float32 {MATMUL_N}x{MATMUL_N} @ {MATMUL_N}x{MATMUL_N}, best of "
                           f"{MATMUL_REPEATS}, BLAS threads = bench threads",
        "theoretical_gflops": {str(t): round(per_core * min(t, cores), 1) for t in threads} if per_core else None,
        "clock_ghz": ghz,
        "clock_source": clock_source,
        "assumption": (f"{FMA_UNITS} FMA units x {lanes} fp32 lanes ({lanes_why}) x 2 FLOPs x min(threads, "
                       f"{cores} cores) x {ghz if ghz else '?'} GHz" + ("" if ghz else "; clock unknown, "
                                                                         "only the measured peak is reported")),
        "note": note,
    }


def efficiency_section(results: list[dict], peak: dict | None) -> dict:
    """Per edge-asr configuration: FLOPs of one window, median encoder seconds, GFLOP/s and the
    fractions of the measured and theoretical fp32 peaks at its thread count."""
    configs = {}
    for r in results:
        spec = r["spec"]
        stages = (r.get("latency") or {}).get("stages") or {}
        if r.get("status") != "ok" or spec["system"] != "edge-asr" or not stages.get("encoder_s"):
            continue
        flops = model_encoder_flops(spec["path"])
        if flops is None:
            continue
        seconds = stages["encoder_s"]["median"]
        gflops = round(flops / 1e9 / seconds, 2)
        measured = ((peak or {}).get("measured_gflops") or {}).get(str(spec["threads"]))
        theoretical = ((peak or {}).get("theoretical_gflops") or {}).get(str(spec["threads"]))
        configs[r["id"]] = {"quantization": spec["quantization"], "threads": spec["threads"],
                            "flops_per_window": flops, "encoder_s": seconds, "gflop_per_s": gflops,
                            "fraction_of_measured_fp32_peak": round(gflops / measured, 3) if measured else None,
                            "fraction_of_theoretical_fp32_peak": round(gflops / theoretical, 3) if theoretical else None}
    return {"method": "analytic FLOPs of one 30 s encoder window (convs, attention, MLP, cross-attention K/V of "
                      "every decoder layer; edge_asr_bench.flops) / median encoder_s; int8 MatMuls run on VNNI at "
                      "up to 4x the fp32 rate, so int8 rows can exceed the fp32 peak",
            "fp32_peak": peak, "configs": configs}
