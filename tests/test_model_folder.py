"""Loading model folders: integrity checks, clear errors, provider fallback, torch-free runtime."""

import json
import shutil
import subprocess
import sys
import warnings

import pytest

import edge_asr
from conftest import REPO, SAMPLE, needs_export
from edge_asr.errors import ModelError, ModelNotFoundError
from edge_asr.providers import ProviderFallbackWarning



@pytest.fixture
def model_copy(runtime_model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(runtime_model_dir, dst)
    return dst


def test_missing_file(model_copy):
    (model_copy / "decoder.onnx").unlink()
    with pytest.raises(ModelError, match="missing.*decoder.onnx"):
        edge_asr.load_model(model_copy, device="cpu")


def test_truncated_file(model_copy):
    data = (model_copy / "encoder.onnx").read_bytes()
    (model_copy / "encoder.onnx").write_bytes(data[:-100])
    with pytest.raises(ModelError, match="truncated"):
        edge_asr.load_model(model_copy, device="cpu")


@pytest.mark.parametrize("mode", ["auto", "full"])
def test_corrupt_file_detected_by_hash(model_copy, mode):
    edge_asr.load_model(model_copy, device="cpu", verify=mode)  # fine first, and stamps the folder (auto)
    path = model_copy / "decoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        edge_asr.load_model(model_copy, device="cpu", verify=mode)


def test_manifest_problems(model_copy):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    (model_copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ModelError, match="format version 99"):
        edge_asr.load_model(model_copy, device="cpu")
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        edge_asr.load_model(model_copy, device="cpu")
    (model_copy / "manifest.json").unlink()
    with pytest.raises(ModelError, match="manifest.json is missing"):
        edge_asr.load_model(model_copy, device="cpu")


def test_unknown_model_names(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="edge-asr pull tiny.en"):
        edge_asr.load_model("tiny.en")
    with pytest.raises(ModelNotFoundError, match="edge-asr pull base --quantize fp32"):
        edge_asr.load_model("base-fp32")
    with pytest.raises(ModelNotFoundError, match="known names"):
        edge_asr.load_model("no-such-model")


def test_name_resolves_to_cached_folder(runtime_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path))
    shutil.copytree(runtime_model_dir, tmp_path / "models" / "mymodel-int8")
    model = edge_asr.load_model("mymodel", device="cpu")
    assert model.manifest.folder == tmp_path / "models" / "mymodel-int8"


def test_cuda_request_falls_back_to_cpu_with_warning(runtime_model_dir):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: no fallback to observe")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = edge_asr.load_model(runtime_model_dir, device="cuda")
    msgs = [str(w.message) for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    assert msgs and "CUDAExecutionProvider" in msgs[0] and "onnxruntime-gpu" in msgs[0]
    assert model.device == "cpu"
    assert model.transcribe(SAMPLE, language="en").duration > 1
    with pytest.raises(ValueError, match="device must be"):
        edge_asr.load_model(runtime_model_dir, device="tpu")


def test_runtime_never_imports_torch_or_transformers(runtime_model_dir):
    code = f"""
import sys, edge_asr
m = edge_asr.load_model({str(runtime_model_dir)!r}, device="cpu")
r = m.transcribe({str(SAMPLE)!r}, language="de")
assert r.duration > 1 and r.language == "de"
m.detect_language({str(SAMPLE)!r})
bad = sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "transformers", "optimum", "onnx"))
print("LOADED:", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "LOADED: []" in out.stdout


def test_decoding_option_errors(runtime_model_dir):
    from edge_asr.errors import DecodingError

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    with pytest.raises(DecodingError, match="unknown language code 'xx'"):
        model.transcribe(SAMPLE, language="xx")
    with pytest.raises(DecodingError, match="unknown task"):
        model.transcribe(SAMPLE, task="summarize")


@pytest.fixture(scope="module")
def english_only_dir(tmp_path_factory):
    from edge_asr_export.exporter import export_model
    from tiny_whisper import build_tiny_checkpoint

    ckpt = build_tiny_checkpoint(tmp_path_factory.mktemp("en") / "ckpt", multilingual=False)
    return export_model(ckpt, tmp_path_factory.mktemp("en-model") / "m", "int8", log=lambda m: None)[0]


@needs_export
def test_english_only_model_rejects_other_languages_and_translate(english_only_dir):
    from edge_asr.errors import DecodingError

    model = edge_asr.load_model(english_only_dir, device="cpu")
    assert not model.multilingual
    with pytest.raises(DecodingError, match="English-only"):
        model.transcribe(SAMPLE, language="de")
    with pytest.raises(DecodingError, match="English-only.*translate"):
        model.transcribe(SAMPLE, task="translate")
    result = model.transcribe(SAMPLE)
    assert result.language == "en" and model.detect_language(SAMPLE)[0] == "en"
    # English-only prefix: <|startoftranscript|> then straight to text (no language or task token).
    assert model.tokenizer.sot_sequence(None, "transcribe", True) == [model.tokenizer.special.sot]


def test_optimized_graph_cache_is_reused_and_rebuilt_when_broken(model_copy, tmp_path, monkeypatch, sample_audio):
    """The first load saves onnxruntime's optimized graphs under <cache>/optimized/<sha>-ort<version>/;
    the next load reads them and transcribes identically; an unreadable cached graph is rebuilt."""
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path / "cache"))
    first = edge_asr.load_model(model_copy, device="cpu")
    expected = first.transcribe(sample_audio[:16000 * 5], language="en").text
    saved = sorted((tmp_path / "cache" / "optimized").glob("*/*.onnx"))
    assert {p.name for p in saved} == {"encoder.onnx", "decoder.onnx"}
    assert all(p.parent.name.endswith("-ort" + __import__("onnxruntime").__version__) for p in saved)
    again = edge_asr.load_model(model_copy, device="cpu")
    assert again.transcribe(sample_audio[:16000 * 5], language="en").text == expected
    saved[0].write_bytes(b"not a model")
    rebuilt = edge_asr.load_model(model_copy, device="cpu")
    assert rebuilt.transcribe(sample_audio[:16000 * 5], language="en").text == expected
    assert saved[0].stat().st_size > 1000  # rewritten


def test_runtime_commands_work_with_torch_unimportable(runtime_model_dir, tmp_path):
    """As on a runtime-only install: torch, transformers and onnx cannot be imported at all, and
    transcribe (sequential, batched, word timing), streaming and verify still run on the committed model."""
    code = f"""
import sys
for name in ("torch", "transformers", "onnx", "jiwer"):
    sys.modules[name] = None  # import raises ImportError
import numpy as np, edge_asr
from edge_asr.cli import main
from edge_asr.streaming import StreamingOptions, StreamingTranscriber
from edge_asr.options import TranscribeOptions
assert main(["transcribe", {str(SAMPLE)!r}, "-m", {str(runtime_model_dir)!r}, "--language", "en", "-f", "srt",
             "--word-timestamps", "-o", {str(tmp_path)!r}, "--no-progress"]) == 0
assert main(["transcribe", {str(SAMPLE)!r}, "-m", {str(runtime_model_dir)!r}, "--language", "en",
             "--batch-size", "2", "--no-progress"]) == 0
assert main(["verify", {str(runtime_model_dir)!r}]) == 0
m = edge_asr.load_model({str(runtime_model_dir)!r}, device="cpu")
audio = edge_asr.audio.load_audio({str(SAMPLE)!r})
st = StreamingTranscriber(m, StreamingOptions(transcribe=TranscribeOptions(language="en"), vad=False))
for i in range(0, len(audio), 8000):
    st.feed(audio[i:i + 8000])
st.finish()
print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout and "fidelity PASS" in out.stdout
    assert (tmp_path / "sample.srt").read_text().startswith("1\n00:00:")
