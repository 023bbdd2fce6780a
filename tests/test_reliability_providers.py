"""Execution providers (issue 18): a provider requested where it cannot run gives the documented CPU
fallback with a warning naming what is missing, or, with ``fallback=False``, a ProviderError naming the
package or shared library to install. Runs on CPU-only machines (the usual CI); on a CUDA machine the
checks that need CUDA to be absent skip."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

import edge_asr
from edge_asr import providers
from edge_asr.errors import OptionError, ProviderError
from edge_asr.providers import ProviderFallbackWarning

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA: no fallback to observe")


@no_cuda
def test_cuda_unavailable_falls_back_or_raises_when_strict(runtime_model_dir):
    with pytest.warns(ProviderFallbackWarning, match="onnxruntime-gpu"):
        model = edge_asr.load_model(runtime_model_dir, device="cuda")
    assert model.device == "cpu"
    with pytest.raises(ProviderError, match="CUDAExecutionProvider.*onnxruntime-gpu") as e:
        edge_asr.load_model(runtime_model_dir, device="cuda", fallback=False)
    assert isinstance(e.value, RuntimeError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" means CUDA when there is one: no warning, no error
        assert edge_asr.load_model(runtime_model_dir, device="auto", fallback=False).device == "cpu"


@no_cuda
def test_cli_require_device_refuses_the_cpu_fallback(runtime_model_dir, capsys):
    from edge_asr.cli import main

    args = ["transcribe", "edge_asr/assets/sample.flac", "--model", str(runtime_model_dir), "--device", "cuda",
            "--language", "en", "--temperature", "0"]
    assert main(args + ["--require-device"]) == 2
    err = capsys.readouterr().err
    assert "CUDAExecutionProvider" in err and "onnxruntime-gpu" in err and "Traceback" not in err
    assert main(args) == 0  # without the flag: the documented fallback, said on stderr, and text
    captured = capsys.readouterr()
    assert "falling back to CPU" in captured.err and captured.out.strip()
    assert main(["verify", str(runtime_model_dir), "--device", "cuda", "--require-device"]) == 2


@pytest.mark.parametrize("provider, package", [("OpenVINOExecutionProvider", "onnxruntime-openvino"),
                                               ("DmlExecutionProvider", "onnxruntime-directml"),
                                               ("TensorrtExecutionProvider", "TensorRT")])
def test_other_providers_name_their_package(runtime_model_dir, provider, package):
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is available here")
    with pytest.warns(ProviderFallbackWarning, match=package):
        assert edge_asr.load_model(runtime_model_dir, providers=[provider]).device == "cpu"
    with pytest.raises(ProviderError, match=package):
        edge_asr.load_model(runtime_model_dir, providers=[provider, "CPUExecutionProvider"], fallback=False)


def test_bad_provider_arguments_are_option_errors(runtime_model_dir):
    with pytest.raises(OptionError, match="unknown execution provider.*CUDAProvider"):
        edge_asr.load_model(runtime_model_dir, providers=["CUDAProvider"])
    with pytest.raises(OptionError, match="list of onnxruntime provider names"):
        edge_asr.load_model(runtime_model_dir, providers="CPUExecutionProvider")
    for threads in (0, -2, "2", 1.5):
        with pytest.raises(OptionError, match="threads"):
            edge_asr.load_model(runtime_model_dir, threads=threads)
    with pytest.raises(OptionError, match="device must be"):
        edge_asr.load_model(runtime_model_dir, device=["cuda"])


@no_cuda
def test_provider_dropped_at_session_creation_names_the_library(runtime_model_dir, monkeypatch):
    """onnxruntime-gpu without its CUDA libraries lists CUDA as available, then drops it silently when
    the session is created. Simulated here by making this CPU build claim CUDA: the fallback warning,
    or with fallback=False the error, names the first CUDA library that cannot be loaded."""
    real = ort.get_available_providers
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    missing = providers.missing_library("CUDAExecutionProvider")
    if missing is None:
        pytest.skip("the CUDA libraries load on this machine")
    with pytest.warns(ProviderFallbackWarning, match="could not be initialised") as caught:
        model = edge_asr.load_model(runtime_model_dir, device="cuda")
    assert any(missing.split(",")[0] in str(w.message) for w in caught)
    assert model.device == "cpu" and model.transcribe(np.zeros(1600, np.float32)).text == ""
    with pytest.raises(ProviderError, match=missing.split(",")[0].replace(".", r"\.")):
        edge_asr.load_model(runtime_model_dir, device="cuda", fallback=False)
