"""The public entry point: load a model folder and transcribe audio with it."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Generator, Sequence

from .audio import AudioInput, load_audio
from .decoding import DecodingOptions, DecodingTask
from .errors import (WORD_TIMESTAMPS_UNAVAILABLE, DecodingError, EdgeASRError, ModelError, OptionError,
                     UnknownOptionError)
from .fidelity import FidelityError, FidelityReport, FidelityWarning, check_fidelity
from .constants import N_SAMPLES
from .features import log_mel_spectrogram, pad_or_trim
from .inference import OnnxBackend
from .manifest import Manifest, check_graph_signature, read_manifest, verify_files
from .providers import SessionConfig, resolve_providers
from .quantization import warn_if_saturating
from .registry import resolve_model
from .results import Segment, TranscriptionInfo, TranscriptionResult
from .tokenizer import Tokenizer
from .options import ProgressCallback, TranscribeOptions
from .languages import language_code
from .pipeline import to_result, transcribe_segments


class WhisperModel:
    """A loaded edge-asr model folder. Create it with :func:`load_model`."""

    def __init__(self, manifest: Manifest, config: SessionConfig):
        self.manifest = manifest
        self.tokenizer = _load_tokenizer(manifest)
        self.backend = _load_backend(manifest, config)
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
        :meth:`transcribe_segments` gives the same segments one window at a time, and can be stopped.
        """
        segments, info = self.transcribe_segments(audio, options, sample_rate=sample_rate, progress=progress,
                                                  **option_overrides)
        return to_result(tuple(segments), info, self.tokenizer)

    def transcribe_segments(self, audio: AudioInput, options: TranscribeOptions | None = None, *,
                            sample_rate: int | None = None, progress: ProgressCallback | None = None,
                            **option_overrides) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Lazy transcription: ``(segments, info)``, where ``segments`` is a generator of :class:`Segment`
        that decodes one 30 s window (one batch with ``batch_size`` > 1) each time it needs more, and
        ``info`` (:class:`TranscriptionInfo`: language, its probability, duration, duration after VAD,
        the options) is known at once: the audio is loaded, VAD and language detection run before this
        returns and, in sequential mode (batch_size 1), the whole file's log-mel is computed (held until
        the generator ends: ~115 MB per hour of audio, ~185 MB with 128 mel bins); nothing is decoded.
        Same arguments and the same segments as :meth:`transcribe`.

        Stop iterating (``break``) and nothing more is decoded; ``segments.close()`` (or dropping the
        generator) also frees the audio features and buffers it holds. One generator is used by one
        thread; several generators may run on one model concurrently.

            segments, info = model.transcribe_segments("talk.flac")
            print(info.language, info.duration)
            for s in segments:          # each window's segments as soon as it is decoded
                print(f"[{s.start:.2f} -> {s.end:.2f}] {s.text}")
                if cancelled():
                    break
        """
        opts = transcribe_options(options, option_overrides)
        if opts.language is not None:
            language_code(opts.language)  # an unknown name: the error names the closest ones
        self.check_options(opts)  # before the (possibly long) audio decode, so mistakes fail fast
        samples = load_audio(audio, sample_rate, max_duration=opts.max_duration)
        return transcribe_segments(self.backend, self.tokenizer, samples, opts, progress)

    def check_options(self, opts: TranscribeOptions) -> None:
        """Raise DecodingError for options this model cannot honour (language, task, word timing)."""
        # task None = the model's default (WindowSteps resolves it: the manifest's task, else transcribe)
        self.tokenizer.sot_sequence(opts.language, opts.task or (self.manifest.task if self.multilingual else None)
                                    or "transcribe",
                                    not opts.without_timestamps)
        if (opts.word_timestamps or opts.hallucination_silence_threshold) and not self.backend.has_alignment:
            raise DecodingError(WORD_TIMESTAMPS_UNAVAILABLE)

    @property
    def word_timestamps_available(self) -> bool:
        return self.backend.has_alignment

    def detect_language(self, audio: AudioInput, sample_rate: int | None = None) -> tuple[str, dict[str, float]]:
        """Most likely language of the first 30 s, and the probability of every language."""
        samples = load_audio(audio, sample_rate, max_duration=TranscribeOptions().max_duration)[:N_SAMPLES]
        mel = pad_or_trim(log_mel_spectrogram(samples, self.manifest.dims.n_mels, padding=N_SAMPLES))[None]
        task = DecodingTask(self.backend, self.tokenizer, DecodingOptions())
        codes, probs = task.detect_language(self.backend.encode(mel))
        return codes[0], probs[0]


_REPAIR = ("re-pull or re-export the model (load with verify='full' to check every file's sha256 against the "
           "manifest)")


def _load_tokenizer(manifest: Manifest) -> Tokenizer:
    """The folder's tokenizer, checked against the manifest's token table: a corrupt file or one from
    another model fails here with a ModelError, not as wrong text later."""
    path = manifest.folder / "tokenizer.json"
    try:
        tokenizer = Tokenizer(path, manifest.tokens, manifest.multilingual)
        size = tokenizer.vocab_size()
        eot, sot = (tokenizer.token_text(t) for t in (manifest.tokens.eot, manifest.tokens.sot))
    except Exception as e:  # tokenizers raises a bare Exception for unparsable files
        raise ModelError(f"{path} cannot be read as a tokenizer ({type(e).__name__}: {e}): the file is corrupt; "
                         f"{_REPAIR}") from None
    if size > manifest.dims.vocab_size or (eot, sot) != ("<|endoftext|>", "<|startoftranscript|>"):
        raise ModelError(f"{path} does not match manifest.json (vocabulary {size} vs {manifest.dims.vocab_size}, token "
                         f"{manifest.tokens.eot} is {eot!r}, {manifest.tokens.sot} is {sot!r}): it belongs to another "
                         f"model; {_REPAIR}")
    return tokenizer


def _load_backend(manifest: Manifest, config: SessionConfig) -> OnnxBackend:
    """The onnxruntime sessions, checked against the manifest (graph inputs/outputs and their static
    sizes). onnxruntime's own load errors (a corrupt or foreign graph) become ModelErrors."""
    try:
        backend = OnnxBackend(manifest, config)
    except EdgeASRError:
        raise
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph, ...
        first = str(e).strip().splitlines()[0][:400] if str(e).strip() else type(e).__name__
        raise ModelError(f"{manifest.folder}: onnxruntime cannot load the model's graphs ({first}); a graph file is "
                         f"corrupt or not an edge-asr graph: {_REPAIR}") from None
    for graph, session in (("encoder", backend.encoder), ("decoder", backend.decoder)):
        check_graph_signature(manifest, graph, {i.name: list(i.shape) for i in session.get_inputs()},
                              {o.name: list(o.shape) for o in session.get_outputs()})
    return backend


def transcribe_options(options: TranscribeOptions | dict | None, overrides: dict) -> TranscribeOptions:
    """``options`` (an object, a dict of fields or None) with keyword ``overrides``, checked: misspelt
    names raise UnknownOptionError, anything else that is not options raises OptionError."""
    if isinstance(options, dict):
        overrides = {**options, **overrides}
        options = None
    if options is not None and not isinstance(options, TranscribeOptions):
        raise OptionError(f"options must be a TranscribeOptions (or a dict of its fields), not {type(options).__name__}")
    unknown = set(overrides) - TranscribeOptions.names()
    if unknown:
        raise UnknownOptionError(f"unknown transcribe option(s): {', '.join(sorted(unknown))}; "
                                 f"valid: {', '.join(sorted(TranscribeOptions.names()))}")
    return replace(options or TranscribeOptions(), **overrides)


def load_model(name_or_path: str | os.PathLike = "base", device: str = "auto", *,
               providers: Sequence[str] | None = None, threads: int | None = None,
               verify: str = "auto", fallback: bool = True, optimized_graphs: bool = True) -> WhisperModel:
    """Load a model folder, or a model pulled into the cache by name ("base", "tiny.en", "base-fp32").

    ``device``: "cpu", "cuda" or "auto" (CUDA when onnxruntime offers it). ``providers`` overrides it
    with any onnxruntime provider list. A provider that is unavailable falls back to CPU with a
    :class:`~edge_asr.providers.ProviderFallbackWarning` naming what is missing; with ``fallback=False``
    it raises :class:`~edge_asr.errors.ProviderError` instead (naming the package or shared library to
    install), so a deployment that needs the GPU never runs slowly on CPU unnoticed.
    ``threads``: onnxruntime intra-op threads (default: physical cores).
    ``verify``: "auto" (sha256 when files changed since the last check), "full" or "size"; "fidelity"
    does "auto" and then decodes the folder's reference clip on this machine and provider and compares
    it with PyTorch (cached per machine): FidelityError when it fails, FidelityWarning when it warns
    (the report is ``model.fidelity``).
    An int8 folder of the legacy scheme warns (SaturationRiskWarning) on CPUs where it can saturate.
    ``optimized_graphs``: keep onnxruntime's optimized CPU graphs in the cache directory and load those
    next time (loads take ~0.75x the time; README "Model cache"); False (or the environment
    variable EDGE_ASR_OPTIMIZED_GRAPHS=0) loads the folder's graphs alone and writes nothing.
    Nothing is ever written into the model folder: verification state goes to the cache directory too.
    """
    if verify not in ("auto", "full", "size", "fidelity"):
        raise OptionError(f"verify must be 'auto', 'full', 'size' or 'fidelity', not {verify!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise OptionError(f"threads must be a positive integer or None, not {threads!r}")
    if not isinstance(device, str):
        raise OptionError(f"device must be 'cpu', 'cuda' or 'auto', not {device!r}")
    folder = resolve_model(name_or_path)
    manifest = read_manifest(Path(folder))
    verify_files(manifest, "auto" if verify == "fidelity" else verify)
    warn_if_saturating(manifest.raw, manifest.folder)
    config = SessionConfig(providers=resolve_providers(device, providers, fallback=fallback), threads=threads,
                           fallback=fallback, optimized_graphs=bool(optimized_graphs))
    model = WhisperModel(manifest, config)
    if verify == "fidelity":
        report = model.check_fidelity()
        if report.verdict == "fail":
            raise FidelityError(f"{manifest.folder}: {report.summary()}")
        if report.verdict == "warn":
            warnings.warn(f"{manifest.folder}: {report.summary()}", FidelityWarning, stacklevel=2)
    return model
