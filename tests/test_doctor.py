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
    problem = r["audio_input"]["problem"]
    assert (problem is None) == bool(r["audio_input"]["devices"])  # no device: it says what is missing
    assert problem is None or (isinstance(problem, str) and problem)

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
    assert code == (0 if all(c["ok"] for c in r["checks"]) else 1) and model["detail"]
    if not HAS_CUDA_PROVIDER:
        assert code == 1 and not model["ok"] and "fallback=False" in model["detail"]
    elif model["ok"]:  # loaded without fallback: on CUDA, files checked, fidelity measured there
        assert " on cuda: files match" in model["detail"] and "fidelity" in model["detail"]
    else:  # it says why: the provider could not run (fallback=False), or the fidelity verdict on CUDA
        assert "fallback=False" in model["detail"] or "fidelity FAIL" in model["detail"]


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


def test_model_check_reports_any_failure_as_a_failed_check(cache, monkeypatch):
    """Not only EdgeASRError: an onnxruntime or other error is the model check's FAIL, not a doctor crash."""
    import edge_asr.model

    def broken(*a, **k):
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(edge_asr.model, "load_model", broken)
    assert doctor.check_model("tiny-int8", "cpu", None) == {
        "name": "model tiny-int8", "ok": False, "detail": "RuntimeError: onnxruntime exploded"}


def test_json_stays_json_when_preload_dlls_prints(cache, capsys, monkeypatch):
    """onnxruntime-gpu's preload_dlls() print()s when a CUDA library is missing: not into --json's stdout."""
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: print("Failed to load libcudnn.so.9"), raising=False)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(doctor, "check_cuda_session", lambda cuda: doctor._check("cuda", False, "stubbed"))
    monkeypatch.setattr(sys, "platform", "linux")
    code, r = run_json(capsys)  # json.loads of the whole stdout: any stray line fails here
    assert code == 0 and set(r) == KEYS
