"""The public entry point: load a model folder and transcribe audio with it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .audio import AudioInput, load_audio
from .decoding import DecodingOptions, DecodingTask
from .features import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from .inference import OnnxBackend
from .manifest import Manifest, read_manifest, verify_files
from .providers import SessionConfig, resolve_providers
from .registry import resolve_model
from .results import TranscriptionResult
from .tokenizer import Tokenizer
from .transcribe import ProgressCallback, transcribe_audio


class WhisperModel:
    """A loaded edge-asr model folder. Create it with :func:`load_model`."""

    def __init__(self, manifest: Manifest, config: SessionConfig):
        self.manifest = manifest
        self.tokenizer = Tokenizer(manifest.folder / "tokenizer.json", manifest.tokens, manifest.multilingual)
        self.backend = OnnxBackend(manifest, config)

    @property
    def device(self) -> str:
        """"cuda" or "cpu": where the decoder actually runs (after any fallback)."""
        return self.backend.device

    @property
    def multilingual(self) -> bool:
        return self.manifest.multilingual

    def transcribe(self, audio: AudioInput, *, language: str | None = None, task: str = "transcribe",
                   sample_rate: int | None = None, without_timestamps: bool = False,
                   progress: ProgressCallback | None = None) -> TranscriptionResult:
        """Transcribe a file path, encoded bytes, or a sample array (of rate ``sample_rate``, default 16 kHz).

        ``language`` is an ISO code such as "en" or "de"; None detects it (multilingual models).
        ``task`` is "transcribe" or "translate" (to English; multilingual models only).
        ``progress(done_seconds, total_seconds)`` is called after each 30 s window.
        """
        options = DecodingOptions(task=task, language=language, without_timestamps=without_timestamps)
        # Validate options before the (possibly long) audio decode, so mistakes fail fast.
        self.tokenizer.sot_sequence(language, task, not without_timestamps)
        samples = load_audio(audio, sample_rate)
        return transcribe_audio(self.backend, self.tokenizer, samples, options, progress)

    def detect_language(self, audio: AudioInput, sample_rate: int | None = None) -> tuple[str, dict[str, float]]:
        """Most likely language of the first 30 s, and the probability of every language."""
        samples = load_audio(audio, sample_rate)[:N_SAMPLES]
        mel = pad_or_trim(log_mel_spectrogram(samples, self.manifest.dims.n_mels, padding=N_SAMPLES))[None]
        task = DecodingTask(self.backend, self.tokenizer, DecodingOptions())
        codes, probs = task.detect_language(self.backend.encode(mel))
        return codes[0], probs[0]


def load_model(name_or_path: str | os.PathLike = "base", device: str = "auto", *,
               providers: Sequence[str] | None = None, threads: int | None = None,
               verify: str = "auto") -> WhisperModel:
    """Load a model folder, or a model pulled into the cache by name ("base", "tiny.en", "base-fp32").

    ``device``: "cpu", "cuda" or "auto" (CUDA when onnxruntime offers it). ``providers`` overrides it
    with any onnxruntime provider list. A provider that is unavailable falls back to CPU with a
    :class:`~edge_asr.providers.ProviderFallbackWarning` naming what is missing.
    ``threads``: onnxruntime intra-op threads (default: physical cores).
    ``verify``: "auto" (sha256 when files changed since the last check), "full" or "size".
    """
    folder = resolve_model(name_or_path)
    manifest = read_manifest(Path(folder))
    verify_files(manifest, verify)
    config = SessionConfig(providers=resolve_providers(device, providers), threads=threads)
    return WhisperModel(manifest, config)
