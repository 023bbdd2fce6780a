"""`edge-asr doctor` (issue 16): the report's stable JSON keys, real CPU/CUDA/model checks and the exit
status, named missing libraries, microphones. Runs on the committed tiny random model in a private cache."""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from edge_asr import doctor
from edge_asr.cli import main

TINY_MODEL = Path(__file__).resolve().parent / "assets" / "tiny-model"
KEYS = {"ok", "edge_asr", "python", "platform", "onnxruntime", "cpu", "cuda", "gpus", "audio_input", "cache",
        "models", "checks"}
HAS_CUDA_PROVIDER = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("doctor-cache")
    shutil.copytree(TINY_MODEL, root / "models" / "tiny-int8")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGE_ASR_CACHE", str(root))
    yield root
    mp.undo()


def run_json(capsys, *args) -> tuple[int, dict]:
    code = main(["doctor", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_plain_doctor_reports_everything_and_exits_0_when_the_cpu_works(cache, capsys):
    code, r = run_json(capsys)
    assert code == 0 and r["ok"] is True and set(r) == KEYS
    assert r["onnxruntime"]["version"] == ort.__version__
    assert r["onnxruntime"]["available_providers"] == ort.get_available_providers()
    assert set(r["cpu"]["features"]) == set(doctor.CPU_FEATURES) and r["cpu"]["model"]
    if sys.platform.startswith("linux"):  # flags come from /proc/cpuinfo: they agree with it
        flags = Path("/proc/cpuinfo").read_text().split()
        assert r["cpu"]["features"]["avx2"] == ("avx2" in flags)
        assert [x["name"] for x in r["cuda"]["libraries"]][:2] == ["libcuda.so.1", "libcudart.so.12"]
    (cpu,) = r["checks"]  # plain doctor checks the CPU path only
    assert cpu["name"] == "cpu" and cpu["ok"] and "VAD graph" in cpu["detail"]
    assert r["cache"]["dir"] == str(cache)
    (m,) = r["models"]
    assert m["name"] == "tiny-int8" and m["scheme"] == "int8-w7" and m["size_bytes"] > 1_000_000
    assert isinstance(r["audio_input"]["devices"], list)
    assert r["audio_input"]["available"] == bool(r["audio_input"]["devices"])
    assert r["audio_input"]["problem"] is None or r["audio_input"]["problem"]  # says what is missing

    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime" in text and "[ok] cpu" in text and "tiny-int8" in text and "Checks:" in text


def test_doctor_model_loads_without_fallback_and_checks_fidelity(cache, capsys):
    code, r = run_json(capsys, "--model", "tiny-int8", "--model", "nosuch")
    assert code == 1 and not r["ok"]
    _, model, missing = r["checks"]
    assert model["ok"] and "fidelity" in model["detail"] and "files match" in model["detail"]
    assert not missing["ok"] and "no cached model named 'nosuch'" in missing["detail"]
    # The model check's verification was cached (in the cache directory): the listing says so.
    code, r = run_json(capsys, "--model", "tiny-int8")
    assert code == 0 and r["models"][0]["verification"] == "verified" and r["models"][0]["fidelity"]


def test_doctor_cuda_exit_status_names_what_is_missing(cache, capsys):
    code, r = run_json(capsys, "--device", "cuda")
    (cuda,) = [c for c in r["checks"] if c["name"] == "cuda"]
    if not HAS_CUDA_PROVIDER:
        assert code == 1 and not cuda["ok"] and "onnxruntime-gpu" in cuda["detail"]
    else:  # a GPU build: the check is a real CUDA session, its verdict decides the exit status
        assert code == (0 if cuda["ok"] else 1)
        assert ("CUDAExecutionProvider" in cuda["detail"]) if cuda["ok"] else cuda["detail"]
    code, r = run_json(capsys, "--device", "cuda", "--model", "tiny-int8")
    (model,) = [c for c in r["checks"] if c["name"] == "model tiny-int8"]
    if not HAS_CUDA_PROVIDER:
        assert code == 1 and not model["ok"] and "fallback=False" in model["detail"]


def test_missing_cudnn_is_named_with_its_package(monkeypatch):
    """A GPU build whose cuDNN does not load (the most common GPU complaint): only cuDNN is named."""
    real = ctypes.CDLL

    def cdll(name, *a, **k):
        if name == "libcudnn.so.9":
            raise OSError("libcudnn.so.9: cannot open shared object file: No such file or directory")
        if name.startswith(("libcuda", "libcublas", "libcufft")):
            return None  # the driver and CUDA runtime load
        return real(name, *a, **k)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(sys, "platform", "linux")
    info = doctor.cuda_info()
    assert info["provider_in_build"] and info["missing"] == ["libcudnn.so.9 (from cuDNN 9 (nvidia-cudnn-cu12))"]
    assert info["problem"] == "cannot load libcudnn.so.9 (from cuDNN 9 (nvidia-cudnn-cu12))"
    assert [x["loaded"] for x in info["libraries"]] == [True] * 5 + [False]


def test_microphone_section_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if the mic extra were not installed
    info = doctor.audio_input_info()
    assert info == {"available": False, "devices": [], "portaudio": None,
                    "problem": "sounddevice is not installed: pip install 'edge-asr[mic]'"}
