"""pipeline.py: the no-speech path's language (tiny random model, runtime only)."""

from __future__ import annotations

import dataclasses

import numpy as np

import edge_asr


def test_no_speech_uses_the_manifest_language(runtime_model_dir, monkeypatch):
    """VAD found nothing: the language is the given one, else the manifest's (a fine-tune's default, as
    for decoded audio), else "en"; it was "en" whatever the manifest said."""
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    silence = np.zeros(16000 * 3, np.float32)
    segments, info = model.transcribe_segments(silence, vad_filter=True)
    assert list(segments) == [] and info.language == "en" and info.duration_after_vad == 0.0
    monkeypatch.setattr(model.backend, "manifest", dataclasses.replace(model.backend.manifest, language="de"))
    segments, info = model.transcribe_segments(silence, vad_filter=True)
    assert list(segments) == [] and info.language == "de"
    _, info = model.transcribe_segments(silence, vad_filter=True, language="ja")
    assert info.language == "ja"
