"""Shared fixtures. Real audio comes from ../shared/audio (read in place); tests that need it skip
with a reason when it is absent. Models are exported into a per-session temporary cache."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_AUDIO = Path(os.environ.get("EDGE_ASR_SHARED_AUDIO", REPO.parent / "shared" / "audio"))
SAMPLE = REPO / "edge_asr" / "assets" / "sample.flac"
SAMPLE_TEXT = (REPO / "edge_asr" / "assets" / "sample.txt").read_text().strip()


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


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
