"""`edge-asr doctor`: what a bug report needs to know about this machine, and whether what the user
asks for can work here.

It reports Python and onnxruntime (version, execution providers), the CPU and the instruction sets
int8 kernels dispatch on, whether the CUDA/cuDNN libraries onnxruntime-gpu needs load (each one named),
GPUs (nvidia-smi), audio input devices (sounddevice + PortAudio), cached models (size, precision,
verification and fidelity state) and the cache's disk use. Then it runs checks: always a real CPU
session (the bundled VAD graph); with ``--device cuda`` a CUDA session (also with ``--device auto`` when
this onnxruntime build has the CUDA provider: auto then means CUDA); with ``--model`` the model loads
on that device (no CPU fallback) and passes its fidelity check. The exit status is 1 when a check fails.

``--json`` prints one object with the keys of :func:`collect` (stable; README "Diagnosing a machine").
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

# The instruction sets onnxruntime's int8/fp32 CPU kernels dispatch on, with the /proc/cpuinfo flags
# that mean them (any one is enough).
CPU_FEATURES = {
    "avx2": ("avx2",),
    "avx512": ("avx512f",),
    "vnni": ("avx512_vnni", "avx_vnni"),
    "amx": ("amx_int8", "amx_tile"),
    "neon": ("asimd", "neon"),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
}
CUDA_DRIVER = "libcuda.so.1"  # the NVIDIA driver's library: installed with the driver, not from pip


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, macOS sysctl), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return platform.processor() or platform.machine()


def cpu_info() -> dict:
    """Model, cores and the int8-relevant instruction sets (True/False; None where flags cannot be read:
    macOS and Windows x86; ARM64 always has NEON)."""
    from .quantization import cpu_flags, saturation_risk

    flags = cpu_flags()
    machine = platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    features = {}
    for name, names in CPU_FEATURES.items():
        if flags is not None:
            features[name] = any(f in flags for f in names) or (name == "neon" and arm)
        else:
            features[name] = True if (name == "neon" and arm) else (False if arm and name in ("avx2", "avx512", "vnni", "amx") else None)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    risk = saturation_risk()
    return {"model": cpu_model(), "machine": platform.machine(), "logical_cores": os.cpu_count(),
            "usable_cores": usable, "features": features,
            "int8": ("legacy full-range int8 folders can saturate here: " + risk) if risk else
            "every int8 scheme computes exactly here"}


def cuda_info() -> dict:
    """Whether this onnxruntime build has the CUDA provider, and which of its libraries load."""
    import ctypes

    import onnxruntime as ort

    from .providers import _PROVIDER_PACKAGES, library_status

    in_build = "CUDAExecutionProvider" in ort.get_available_providers()
    libraries = []
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(CUDA_DRIVER)
            driver_error = None
        except OSError as e:
            driver_error = str(e)
        libraries.append({"name": CUDA_DRIVER, "from": "the NVIDIA driver", "loaded": driver_error is None,
                          "error": driver_error})
        libraries += [{"name": lib, "from": what, "loaded": err is None, "error": err}
                      for lib, what, err in library_status("CUDAExecutionProvider")]
    missing = [f"{x['name']} (from {x['from']})" for x in libraries if not x["loaded"]]
    if not in_build:
        problem = (f"this onnxruntime build ({ort.__version__}) has no CUDAExecutionProvider: install "
                   f"{_PROVIDER_PACKAGES['CUDAExecutionProvider']}")
    elif missing:
        problem = "cannot load " + ", ".join(missing)
    else:
        problem = None
    return {"provider_in_build": in_build, "libraries": libraries, "missing": missing,
            "libraries_checked": sys.platform.startswith("linux"), "problem": problem}


def gpu_info() -> dict:
    """NVIDIA GPUs from nvidia-smi (name, memory, driver), or why none are listed."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"gpus": [], "problem": "nvidia-smi not found (no NVIDIA driver installed, or not on PATH)"}
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"gpus": [], "problem": f"nvidia-smi failed: {e}"}
    if out.returncode != 0:
        return {"gpus": [], "problem": f"nvidia-smi failed: {(out.stderr or out.stdout).strip()[:300]}"}
    gpus = [dict(zip(("name", "memory_total", "driver"), (x.strip() for x in line.split(","))))
            for line in out.stdout.splitlines() if line.strip()]
    return {"gpus": gpus, "problem": None if gpus else "nvidia-smi lists no GPU"}


def audio_input_info() -> dict:
    """Input devices through sounddevice/PortAudio, or what is missing for `edge-asr listen`."""
    from .mic import MicrophoneError, list_input_devices

    try:
        import sounddevice as sd
    except ImportError:
        return {"available": False, "devices": [], "portaudio": None,
                "problem": "sounddevice is not installed: pip install 'edge-asr[mic]'"}
    except OSError as e:
        return {"available": False, "devices": [], "portaudio": None,
                "problem": f"the PortAudio library does not load ({e}): on Debian/Ubuntu apt install libportaudio2"}
    try:
        version = sd.get_portaudio_version()[1]
    except Exception:
        version = None
    try:
        devices = list_input_devices(sd)
    except MicrophoneError as e:
        return {"available": False, "devices": [], "portaudio": version, "problem": str(e)}
    return {"available": bool(devices), "devices": devices, "portaudio": version,
            "problem": None if devices else "no audio input device (no microphone, or no permission to use one)"}


def _check(name: str, ok: bool, detail: str) -> dict:
    return {"name": name, "ok": ok, "detail": detail}


def check_cpu_session() -> dict:
    """A real onnxruntime CPU run: the bundled Silero VAD graph on one second of silence."""
    import numpy as np

    try:
        from .vad import SileroVad

        probs = SileroVad().speech_probs(np.zeros(16000, np.float32))
        return _check("cpu", True, f"onnxruntime ran the bundled VAD graph on CPU ({len(probs)} frames)")
    except Exception as e:
        return _check("cpu", False, f"onnxruntime cannot run a graph on CPU: {type(e).__name__}: {e}")


def check_cuda_session(cuda: dict) -> dict:
    """A CUDA session on the bundled VAD graph: the provider must survive session creation (onnxruntime
    drops it silently when a library fails to load)."""
    if cuda["problem"] and not cuda["provider_in_build"]:
        return _check("cuda", False, cuda["problem"])
    import onnxruntime as ort

    from .vad import SileroVad

    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(SileroVad().path), sess_options=opts,
                                       providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception as e:
        return _check("cuda", False, f"a CUDA session cannot be created: {type(e).__name__}: {str(e)[:300]}")
    if "CUDAExecutionProvider" not in session.get_providers():
        why = cuda["problem"] or "its libraries failed to load; run with ORT log level 0 to see which"
        return _check("cuda", False, f"onnxruntime dropped the CUDA provider at session creation: {why}")
    return _check("cuda", True, "a CUDA session was created (" + ", ".join(session.get_providers()) + ")")


def check_model(name: str, device: str, threads: int | None) -> dict:
    """The model loads on ``device`` without falling back, its files match the manifest, and its
    fidelity to PyTorch on this machine passes (or warns)."""
    from .errors import EdgeASRError
    from .model import load_model

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_model(name, device=device, threads=threads, verify="fidelity", fallback=False)
    except EdgeASRError as e:
        return _check(f"model {name}", False, str(e))
    except Exception as e:  # anything else (onnxruntime, a bug) is still this check's failure, not doctor's crash
        return _check(f"model {name}", False, f"{type(e).__name__}: {str(e)[:300]}")
    report = model.fidelity
    notes = "; ".join(str(w.message) for w in caught if "Fidelity" not in type(w.message).__name__)
    detail = (f"{model.manifest.folder} on {model.device}: files match, {report.summary()}"
              + (" [cached verdict]" if report.cached else "") + (f"; warnings: {notes}" if notes else ""))
    return _check(f"model {name}", report.verdict != "fail", detail)


def collect(device: str = "cpu", models: tuple[str, ...] = (), threads: int | None = None) -> dict:
    """Everything doctor reports, as one JSON-ready dict. Keys: ok, edge_asr, python, platform,
    onnxruntime, cpu, cuda, gpus, audio_input, cache, models, checks (each {name, ok, detail})."""
    import onnxruntime as ort

    from . import __version__
    from .model_cache import cache_usage, list_models
    from .registry import cache_dir

    cuda = cuda_info()
    gpus = gpu_info()
    checks = [check_cpu_session()]
    if device == "cuda":
        checks.append(check_cuda_session(cuda))
    elif device == "auto":
        # "auto" means CUDA when this onnxruntime offers it: then it must also work.
        if cuda["provider_in_build"]:
            checks.append(check_cuda_session(cuda))
    for name in models:
        checks.append(check_model(name, device, threads))
    return {
        "ok": all(c["ok"] for c in checks),
        "edge_asr": {"version": __version__, "device": device},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "onnxruntime": {"version": ort.__version__, "build_device": ort.get_device(),
                        "available_providers": list(ort.get_available_providers())},
        "cpu": cpu_info(),
        "cuda": cuda,
        "gpus": gpus,
        "audio_input": audio_input_info(),
        "cache": {"dir": str(cache_dir()), "usage_bytes": cache_usage()},
        "models": [m.to_dict() for m in list_models()],
        "checks": checks,
    }


def _yes(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def format_report(r: dict) -> str:
    from .model_cache import human_size

    cpu, cuda, audio = r["cpu"], r["cuda"], r["audio_input"]
    lines = [f"edge-asr {r['edge_asr']['version']}, Python {r['python']['version']} ({r['python']['executable']}), "
             f"{r['platform']['system']} {r['platform']['release']} {r['platform']['machine']}",
             f"onnxruntime {r['onnxruntime']['version']}: providers {', '.join(r['onnxruntime']['available_providers'])}",
             f"CPU: {cpu['model']} ({cpu['usable_cores']} of {cpu['logical_cores']} logical cores usable)",
             "  " + ", ".join(f"{k.upper() if k != 'avx512' else 'AVX-512'} {_yes(v)}" for k, v in cpu["features"].items()),
             f"  int8: {cpu['int8']}"]
    if not cuda["libraries_checked"]:
        libs = "libraries not checked on this OS"
    else:
        libs = ", ".join(f"{x['name']} {'ok' if x['loaded'] else 'MISSING'}" for x in cuda["libraries"])
    lines.append(f"CUDA: provider {'in' if cuda['provider_in_build'] else 'not in'} this onnxruntime build; {libs}")
    if cuda["problem"]:
        lines.append(f"  {cuda['problem']}")
    gpus = r["gpus"]
    lines.append("GPUs: " + (", ".join(f"{g.get('name')} ({g.get('memory_total')}, driver {g.get('driver')})"
                                        for g in gpus["gpus"]) or f"none: {gpus['problem']}"))
    if audio["devices"]:
        lines.append("Audio input: " + "; ".join(f"[{d['index']}] {d['name']} ({d['channels']} ch, "
                                                 f"{d['default_samplerate']:.0f} Hz){' default' if d['default'] else ''}"
                                                 for d in audio["devices"]))
    else:
        lines.append(f"Audio input: {audio['problem']}" + (f" ({audio['portaudio']})" if audio["portaudio"] else ""))
    usage = r["cache"]["usage_bytes"]
    lines.append(f"Cache: {r['cache']['dir']}" + (" (" + ", ".join(f"{k} {human_size(v)}" for k, v in usage.items())
                                                  + ")" if usage else " (empty)"))
    for m in r["models"]:
        fid = f", fidelity {'; '.join(m['fidelity'])}" if m["fidelity"] else ""
        lines.append(f"  {m['name']:<22} {human_size(m['size_bytes']):>9}  {m['scheme'] or m['quantization']:<15} "
                     f"{m['verification']}{fid}")
    if not r["models"]:
        lines.append("  no cached models (edge-asr pull NAME)")
    lines.append("Checks:")
    for c in r["checks"]:
        lines.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['detail']}")
    lines.append("All requested checks passed." if r["ok"] else "Something you asked for cannot work here (see FAIL).")
    return "\n".join(lines)


def add_arguments(p) -> None:
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="the device that must work (default: cpu); cuda creates a real CUDA session, and so "
                        "does auto when this onnxruntime build has the CUDA provider")
    p.add_argument("--model", action="append", default=[], metavar="NAME",
                   help="also load this model (name or folder) on --device without CPU fallback and run its "
                        "fidelity check (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads for --model")
    p.add_argument("--json", action="store_true", help="print one JSON object (keys in README)")


def run(args) -> int:
    """Exit 0 when every check passed, 1 when something asked for cannot work."""
    report = collect(args.device, tuple(args.model), args.threads)
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0 if report["ok"] else 1
