"""What machine and software produced a result: CPU model and flags, cores, memory, load, GPU,
onnxruntime version and providers, library versions and the git commit. Without this a latency
number cannot be compared with anything."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# The flags that decide which kernels onnxruntime and CTranslate2 pick (VNNI int8 dot products,
# AVX-512, AMX, fp16/bf16); the full list is kept too.
KEY_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "sse4_2", "asimd", "sve")
PACKAGES = ("edge-asr", "onnxruntime", "onnxruntime-gpu", "numpy", "faster-whisper", "ctranslate2", "torch",
            "transformers", "onnx", "jiwer", "whisper-normalizer")


def _cpu() -> dict:
    model, flags = None, []
    try:
        import cpuinfo  # py-cpuinfo: portable (macOS, Windows), in the bench extra

        info = cpuinfo.get_cpu_info()
        model, flags = info.get("brand_raw"), list(info.get("flags", []))
    except Exception:  # not installed, or it failed to probe: /proc/cpuinfo on Linux
        pass
    if not model or not flags:
        try:
            text = Path("/proc/cpuinfo").read_text()
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                if key.strip() in ("flags", "Features") and not flags:
                    flags = value.split()
        except OSError:
            pass
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return {"model": model or platform.processor() or platform.machine(), "arch": platform.machine(),
            "logical_cores": os.cpu_count(), "physical_cores": physical,
            "key_flags": sorted(f for f in KEY_FLAGS if f in flags), "flags": sorted(flags)}


def _memory_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def _gpu() -> list[dict]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [dict(zip(("name", "memory_total", "driver"), (x.strip() for x in line.split(","))))
            for line in out.stdout.splitlines() if line.strip()]


def git_commit(repo: Path | None = None) -> dict:
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_info() -> dict:
    import onnxruntime as ort

    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": _cpu(),
        "memory_gb": _memory_gb(),
        "gpus": _gpu(),
        "onnxruntime": {"version": ort.__version__, "providers": ort.get_available_providers()},
        "versions": versions(),
        "git": git_commit(),
        "load_average_start": load_average(),
    }
