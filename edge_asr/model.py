"""The public entry point: load a model folder and transcribe audio with it."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .audio import AudioInput, load_audio
from .decoding import DecodingOptions, DecodingTask
from .errors import WORD_TIMESTAMPS_UNAVAILABLE, DecodingError, OptionError, UnknownOptionError
from .fidelity import FidelityError, FidelityReport, FidelityWarning, check_fidelity
from .constants import N_SAMPLES
from .features import log_mel_spectrogram, pad_or_trim
from .inference import OnnxBackend
from .manifest import Manifest, read_manifest, verify_files
from .providers import SessionConfig, resolve_providers
from .quantization import warn_if_saturating
from .registry import resolve_model
from .results import TranscriptionResult
from .tokenizer import Tokenizer
from .options import ProgressCallback, TranscribeOptions
from .pipeline import transcribe_audio


class WhisperModel:
    """A loaded edge-asr model folder. Create it with :func:`load_model`."""

    def __init__(self, manifest: Manifest, config: SessionConfig):
        self.manifest = manifest
        self.tokenizer = Tokenizer(manifest.folder / "tokenizer.json", manifest.tokens, manifest.multilingual)
        self.backend = OnnxBackend(manifest, config)
        self.fidelity: FidelityReport | None = None  # set by check_fidelity / load_model(verify="fidelity")

    def check_fidelity(self, *, force: bool = False) -> FidelityReport:
        """Drift of this folder on this machine and execution provider against the PyTorch reference
        stored at export (edge_asr.fidelity): a pass/warn/fail report, cached per machine."""
        self.fidelity = check_fidelity(self.backend, self.tokenizer, force=force)
        return self.fidelity

    @property
    def device(self) -> str:
        """"cuda" or "cpu": where the decoder actually runs (after any fallback)."""
        return self.backend.device

    @property
    def multilingual(self) -> bool:
        return self.manifest.multilingual

    def transcribe(self, audio: AudioInput, options: TranscribeOptions | None = None, *,
                   sample_rate: int | None = None, progress: ProgressCallback | None = None,
                   **option_overrides) -> TranscriptionResult:
        """Transcribe a file path, encoded bytes, or a sample array (of rate ``sample_rate``, default 16 kHz).

        Options are the fields of :class:`TranscribeOptions`, given as an object and/or keywords, e.g.
        ``language="de"``, ``task="translate"``, ``beam_size=5``, ``word_timestamps=True``,
        ``vad_filter=True``, ``initial_prompt="Glossary: ..."``, ``hotwords="Kubernetes, kubectl"``.
        ``progress(done_seconds, total_seconds)`` is called after each 30 s window.
        """
        unknown = set(option_overrides) - TranscribeOptions.names()
        if unknown:
            raise UnknownOptionError(f"unknown transcribe option(s): {', '.join(sorted(unknown))}; "
                            f"valid: {', '.join(sorted(TranscribeOptions.names()))}")
        opts = replace(options or TranscribeOptions(), **option_overrides)
        self.check_options(opts)  # before the (possibly long) audio decode, so mistakes fail fast
        samples = load_audio(audio, sample_rate)
        return transcribe_audio(self.backend, self.tokenizer, samples, opts, progress)

    def check_options(self, opts: TranscribeOptions) -> None:
        """Raise DecodingError for options this model cannot honour (language, task, word timing)."""
        self.tokenizer.sot_sequence(opts.language, opts.task, not opts.without_timestamps)
        if (opts.word_timestamps or opts.hallucination_silence_threshold) and not self.backend.has_alignment:
            raise DecodingError(WORD_TIMESTAMPS_UNAVAILABLE)

    @property
    def word_timestamps_available(self) -> bool:
        return self.backend.has_alignment

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
    ``verify``: "auto" (sha256 when files changed since the last check), "full" or "size"; "fidelity"
    does "auto" and then decodes the folder's reference clip on this machine and provider and compares
    it with PyTorch (cached per machine): FidelityError when it fails, FidelityWarning when it warns
    (the report is ``model.fidelity``).
    An int8 folder of the legacy scheme warns (SaturationRiskWarning) on CPUs where it can saturate.
    """
    if verify not in ("auto", "full", "size", "fidelity"):
        raise OptionError(f"verify must be 'auto', 'full', 'size' or 'fidelity', not {verify!r}")
    folder = resolve_model(name_or_path)
    manifest = read_manifest(Path(folder))
    verify_files(manifest, "auto" if verify == "fidelity" else verify)
    warn_if_saturating(manifest.raw, manifest.folder)
    config = SessionConfig(providers=resolve_providers(device, providers), threads=threads)
    model = WhisperModel(manifest, config)
    if verify == "fidelity":
        report = model.check_fidelity()
        if report.verdict == "fail":
            raise FidelityError(f"{manifest.folder}: {report.summary()}")
        if report.verdict == "warn":
            warnings.warn(f"{manifest.folder}: {report.summary()}", FidelityWarning, stacklevel=2)
    return model
