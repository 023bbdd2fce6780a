"""faster-whisper's API on edge-asr: code written for faster-whisper runs by changing its import.

    from edge_asr.compat import WhisperModel      # was: from faster_whisper import WhisperModel

    model = WhisperModel("tiny.en", device="cpu", compute_type="int8")
    segments, info = model.transcribe("audio.mp3", beam_size=5)
    print("Detected language '%s' with probability %f" % (info.language, info.language_probability))
    for segment in segments:
        print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text))

The constructor, ``transcribe`` and ``detect_language`` take faster-whisper 1.2.1's arguments with its
defaults (``beam_size=5``, ``patience=1``, ``length_penalty=1``, ...) and return its shapes: a lazy
generator of :class:`Segment` (each text with its leading space, so ``"".join(s.text for s in segments)``
is the transcript) and a :class:`TranscriptionInfo`. Each argument maps onto
:class:`~edge_asr.options.TranscribeOptions` / :class:`~edge_asr.vad.VadOptions` / ``load_model``
(``SUPPORTED`` below); an argument edge-asr cannot honour raises :class:`UnsupportedArgumentError` (a
ValueError and a TypeError) naming it, when it is given a value other than faster-whisper's default.
The segment generator is edge-asr's lazy one (:meth:`edge_asr.WhisperModel.transcribe_segments`): a
window is decoded when the loop asks for the next segment, and stopping the loop stops decoding.

This module imports nothing of faster-whisper or CTranslate2.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from .audio import load_audio
from .constants import FRAMES_PER_SECOND, N_SAMPLES, SAMPLE_RATE
from .errors import OptionError
from .model import WhisperModel as _EdgeModel, load_model
from .options import TranscribeOptions
from .registry import DEFAULT_QUANTIZATION, KNOWN_MODELS, QUANTIZATIONS, cache_dir, resolve_model
from .results import Segment as _EdgeSegment
from .errors import ModelNotFoundError
from .vad import CHUNK_VAD, VadOptions, collect_chunks, get_speech_timestamps

__all__ = ["WhisperModel", "BatchedInferencePipeline", "Segment", "Word", "TranscriptionInfo",
           "UnsupportedArgumentError", "SUPPORTED", "COMPUTE_TYPES"]


class UnsupportedArgumentError(OptionError, TypeError):
    """A faster-whisper argument (or value) edge-asr does not implement. Both a ValueError and a
    TypeError: ported code may catch either for a bad argument."""


# faster-whisper compute_type -> the folder precision that serves it (None: any pulled folder, int8 first).
COMPUTE_TYPES: dict[str, str | None] = {
    "default": None, "auto": None, "int8": "int8", "int8_float32": "int8", "float32": "fp32",
    "float16": "fp16",
}

# transcribe() arguments that map onto edge-asr, and how (README, "faster-whisper compatibility", lists them too).
SUPPORTED = {
    "language": "language (codes or names: 'en', 'English')",
    "task": "task (default None: the model folder's, a fine-tune's; else transcribe)", "log_progress": "a tqdm bar",
    "beam_size": "beam_size (1: greedy)", "best_of": "best_of", "patience": "patience",
    "length_penalty": "1 only (= edge-asr's default length normalisation)", "temperature": "temperature",
    "compression_ratio_threshold": "compression_ratio_threshold", "log_prob_threshold": "logprob_threshold",
    "no_speech_threshold": "no_speech_threshold", "condition_on_previous_text": "condition_on_previous_text",
    "prompt_reset_on_temperature": "prompt_reset_on_temperature", "initial_prompt": "initial_prompt (text)",
    "prefix": "prefix", "suppress_blank": "suppress_blank", "suppress_tokens": "suppress_tokens",
    "without_timestamps": "without_timestamps", "max_initial_timestamp": "max_initial_timestamp",
    "word_timestamps": "word_timestamps", "prepend_punctuations": "prepend_punctuations",
    "append_punctuations": "append_punctuations", "vad_filter": "vad_filter",
    "vad_parameters": "vad_options (dict or VadOptions)", "chunk_length": "30 only",
    "hallucination_silence_threshold": "hallucination_silence_threshold", "hotwords": "hotwords",
    "language_detection_threshold": "any (no effect with one detection segment, as in faster-whisper)",
}


def _asdict(self) -> dict:
    # faster-whisper 1.2.1 keeps its old NamedTuple method on its dataclasses, deprecated: ported code
    # still calls it.
    warnings.warn(f"{type(self).__name__}._asdict() method is deprecated, use dataclasses.asdict("
                  f"{type(self).__name__}) instead", DeprecationWarning, 2)
    return dataclasses.asdict(self)


@dataclass  # mutable, as faster-whisper's (ported code may edit a segment's text or times)
class Word:
    start: float
    end: float
    word: str
    probability: float

    _asdict = _asdict


@dataclass
class Segment:
    """faster-whisper's segment. ``text`` keeps its leading space (as Whisper decodes it); ``seek`` is the
    10 ms frame where the segment starts; ``tokens`` include the timestamp tokens."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None
    temperature: float | None

    _asdict = _asdict


@dataclass(frozen=True)
class TranscriptionInfo:
    """faster-whisper's info. ``language_probability`` is 1 when the language was given (or the model is
    English-only); ``transcription_options`` is the :class:`edge_asr.TranscribeOptions` used."""

    language: str
    language_probability: float
    duration: float
    duration_after_vad: float
    all_language_probs: list[tuple[str, float]] | None
    transcription_options: TranscribeOptions = field(repr=False)
    vad_options: VadOptions | None = field(repr=False)


def _info_vad_options(options: TranscribeOptions) -> VadOptions | None:
    """info.vad_options as faster-whisper fills it: the settings VAD ran with, its defaults when none were
    given (sequential: VadOptions(); batched: 30 s chunks cut at 160 ms silences), None without VAD."""
    if options.vad_options is not None:
        return options.vad_options
    if options.batch_size > 1:
        return CHUNK_VAD
    return VadOptions() if options.vad_filter else None


def _refuse(name: str, value: Any, why: str) -> UnsupportedArgumentError:
    return UnsupportedArgumentError(f"{name}={value!r} is not supported by edge-asr's faster-whisper facade: {why}")


def _model_folder(name: str, compute_type: str, download_root: str | None) -> Path:
    """The folder for faster-whisper's (size or path, compute_type): a folder path as is (its precision
    checked), else ``<name>-<precision>`` in the model cache's models folder (or ``download_root``)."""
    if compute_type not in COMPUTE_TYPES:
        raise _refuse("compute_type", compute_type,
                      f"edge-asr folders are int8, fp32 or fp16; use one of {', '.join(COMPUTE_TYPES)}")
    want = COMPUTE_TYPES[compute_type]
    path = Path(name).expanduser()
    if path.is_dir():
        if want is not None:
            from .manifest import read_manifest

            have = read_manifest(path).raw.get("quantization")
            if have != want:
                raise _refuse("compute_type", compute_type, f"the folder {path} is {have}; load it with "
                              f"compute_type='default' or pick a {want} folder")
        return path
    if want is None and download_root is None:
        return resolve_model(name)  # int8 first, then the other pulled precisions
    root = Path(download_root).expanduser() if download_root is not None else cache_dir() / "models"
    for quant in (want,) if want else (DEFAULT_QUANTIZATION, *QUANTIZATIONS):
        if (root / f"{name}-{quant}").is_dir():
            return root / f"{name}-{quant}"
    pulled = sorted(p.name for p in root.glob(f"{name}-*") if p.is_dir()) if root.is_dir() else []
    quant = want or DEFAULT_QUANTIZATION
    how = (f"build it with: edge-asr pull {name} --quantize {quant}" if name in KNOWN_MODELS
           else f"known names: {', '.join(KNOWN_MODELS)}")
    raise ModelNotFoundError(
        f"compute_type={compute_type!r} needs a {want or 'pulled'} folder of {name!r} in {root}, and there is none "
        f"({'pulled: ' + ', '.join(pulled) if pulled else 'no precision of it is pulled'}); {how}")


def _vad_options(vad_parameters: Any) -> VadOptions | None:
    if vad_parameters is None or isinstance(vad_parameters, VadOptions):
        return vad_parameters
    if dataclasses.is_dataclass(vad_parameters):  # faster-whisper's own VadOptions: same field names
        vad_parameters = dataclasses.asdict(vad_parameters)
    if not isinstance(vad_parameters, dict):
        raise _refuse("vad_parameters", vad_parameters, "give a dict of VadOptions fields or a VadOptions")
    names = {f.name for f in dataclasses.fields(VadOptions)}
    unknown = sorted(set(vad_parameters) - names)
    if unknown:
        raise _refuse("vad_parameters", unknown, f"VadOptions fields are {', '.join(sorted(names))}")
    return VadOptions(**vad_parameters)


class WhisperModel:
    """faster-whisper's ``WhisperModel`` on an edge-asr model folder (``model.edge`` is the
    :class:`edge_asr.WhisperModel` underneath).

    ``model_size_or_path``: a pulled model name ("tiny.en", "base") or a model folder; ``compute_type``
    picks the folder's precision ("default"/"auto": the pulled one, int8 first; "int8", "int8_float32":
    int8; "float32": fp32; "float16": fp16); ``device`` "cpu", "cuda" or "auto"; ``cpu_threads`` 0 =
    onnxruntime's default (physical cores); ``num_workers`` is accepted and not needed (one model serves
    concurrent ``transcribe`` calls); ``download_root``: the models folder to look in instead of the
    cache; ``local_files_only`` is accepted (edge-asr never downloads at load: ``edge-asr pull`` does).
    ``device_index`` other than 0, ``files``, ``revision``, ``use_auth_token`` and other keywords raise
    :class:`UnsupportedArgumentError`.
    """

    def __init__(self, model_size_or_path: str, device: str = "auto", device_index: int | list[int] = 0,
                 compute_type: str = "default", cpu_threads: int = 0, num_workers: int = 1,
                 download_root: str | None = None, local_files_only: bool = False, files: dict | None = None,
                 revision: str | None = None, use_auth_token: str | bool | None = None, **model_kwargs):
        if device_index not in (0, [0]):
            raise _refuse("device_index", device_index, "edge-asr runs on one device: the first (device_index=0)")
        for name, value in (("files", files), ("revision", revision), ("use_auth_token", use_auth_token)):
            if value is not None:
                raise _refuse(name, value, "edge-asr loads pulled model folders only (edge-asr pull NAME)")
        if model_kwargs:
            raise _refuse(", ".join(sorted(model_kwargs)), tuple(model_kwargs.values()),
                          "these are CTranslate2 arguments")
        if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 0:
            raise OptionError(f"cpu_threads must be 0 (the default) or a positive integer, not {cpu_threads!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise OptionError(f"num_workers must be a positive integer, not {num_workers!r}")
        folder = _model_folder(str(model_size_or_path), compute_type, download_root)
        self.edge: _EdgeModel = load_model(folder, device=device, threads=cpu_threads or None)

    @property
    def supported_languages(self) -> list[str]:
        """The language codes this model can transcribe."""
        return self.edge.tokenizer.language_codes()

    def transcribe(self, audio: str | BinaryIO | np.ndarray, language: str | None = None, task: str | None = None,
                   log_progress: bool = False, beam_size: int = 5, best_of: int = 5, patience: float = 1,
                   length_penalty: float = 1, repetition_penalty: float = 1, no_repeat_ngram_size: int = 0,
                   temperature: float | list[float] | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                   compression_ratio_threshold: float | None = 2.4, log_prob_threshold: float | None = -1.0,
                   no_speech_threshold: float | None = 0.6, condition_on_previous_text: bool = True,
                   prompt_reset_on_temperature: float = 0.5, initial_prompt: str | Iterable[int] | None = None,
                   prefix: str | None = None, suppress_blank: bool = True,
                   suppress_tokens: list[int] | None = (-1,), without_timestamps: bool = False,
                   max_initial_timestamp: float = 1.0, word_timestamps: bool = False,
                   prepend_punctuations: str = "\"'“¿([{-", append_punctuations: str = "\"'.。,，!！?？:：”)]}、",
                   multilingual: bool = False, vad_filter: bool = False,
                   vad_parameters: dict | VadOptions | None = None,
                   max_new_tokens: int | None = None, chunk_length: int | None = None,
                   clip_timestamps: str | list[float] = "0", hallucination_silence_threshold: float | None = None,
                   hotwords: str | None = None, language_detection_threshold: float | None = 0.5,
                   language_detection_segments: int = 1) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """faster-whisper's ``transcribe``: ``(segments, info)``; ``segments`` is a generator that decodes
        a 30 s window each time it needs more (stop iterating and decoding stops). ``audio``: a path, a
        binary file object, encoded bytes, or a 16 kHz float array. See ``SUPPORTED`` for the arguments."""
        return self._transcribe(audio, locals(), batch_size=1)

    def _transcribe(self, audio: Any, args: dict, batch_size: int) -> tuple[Iterator[Segment], TranscriptionInfo]:
        options = self._options(args, batch_size)
        bars: list = []  # log_progress: faster-whisper's tqdm bar of audio seconds, made at the first report

        def progress(done: float, total: float) -> None:
            if not bars:
                from tqdm import tqdm

                bars.append(tqdm(total=round(total, 2), unit="seconds"))
            bars[0].update(round(min(done, total), 2) - bars[0].n)

        edge_segments, edge_info = self.edge.transcribe_segments(
            audio, options, progress=progress if args["log_progress"] else None)
        probs = edge_info.language_probs
        info = TranscriptionInfo(
            language=edge_info.language,
            language_probability=1.0 if probs is None else float(edge_info.language_probability),
            duration=edge_info.duration, duration_after_vad=edge_info.duration_after_vad,
            all_language_probs=None if probs is None else sorted(probs.items(), key=lambda kv: -kv[1]),
            transcription_options=options, vad_options=_info_vad_options(options))
        return self._segments(edge_segments, bars), info

    def _segments(self, segments: Iterator[_EdgeSegment], bars: list) -> Iterator[Segment]:
        decode = self.edge.tokenizer.decode
        try:
            for s in segments:
                words = None if s.words is None else [Word(w.start, w.end, w.word, w.probability) for w in s.words]
                yield Segment(id=s.id + 1, seek=round(s.start * FRAMES_PER_SECOND), start=s.start, end=s.end,
                              text=decode(s.tokens), tokens=list(s.tokens), avg_logprob=s.avg_logprob,
                              compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob,
                              words=words, temperature=s.temperature)
        finally:
            segments.close()  # type: ignore[attr-defined]
            for bar in bars:
                bar.close()

    def _options(self, a: dict, batch_size: int) -> TranscribeOptions:
        """faster-whisper's arguments as TranscribeOptions; unsupported values raise, naming the argument."""
        defaults = {"repetition_penalty": 1, "no_repeat_ngram_size": 0, "multilingual": False,
                    "max_new_tokens": None, "language_detection_segments": 1}
        why = {"repetition_penalty": "edge-asr has no repetition penalty (the fallback ladder retries "
                                     "repetitive windows hotter)",
               "no_repeat_ngram_size": "edge-asr does not block repeated n-grams",
               "multilingual": "language is detected once, on the first 30 s",
               "max_new_tokens": "windows decode up to the model's 224 tokens",
               "language_detection_segments": "language is detected on the first 30 s only"}
        for name, default in defaults.items():
            if a[name] != default:
                raise _refuse(name, a[name], why[name])
        if a["length_penalty"] != 1:
            raise _refuse("length_penalty", a["length_penalty"],
                          "faster-whisper's exponent has no edge-asr equivalent except 1 (divide by length); "
                          "edge_asr.WhisperModel.transcribe(length_penalty=...) is openai's GNMT penalty")
        if a["chunk_length"] not in (None, 30):
            raise _refuse("chunk_length", a["chunk_length"], "Whisper's windows are 30 s")
        if a["clip_timestamps"] not in ("0", "0.0", [0], [0.0], (), [], None):
            raise _refuse("clip_timestamps", a["clip_timestamps"], "cut the audio array before transcribing")
        initial_prompt = a["initial_prompt"]
        if initial_prompt is not None and not isinstance(initial_prompt, str):
            raise _refuse("initial_prompt", initial_prompt, "give the prompt as text")
        suppress = a["suppress_tokens"]
        suppress = "-1" if suppress is not None and list(suppress) == [-1] else (
            None if suppress is None else tuple(int(t) for t in suppress))
        temperature = a["temperature"]
        temperature = tuple(temperature) if isinstance(temperature, (list, tuple)) else temperature
        beam_size = a["beam_size"]
        return TranscribeOptions(
            language=a["language"], task=a["task"], temperature=temperature,
            beam_size=None if beam_size == 1 else beam_size, best_of=a["best_of"],
            patience=None if a["patience"] == 1 else a["patience"], length_penalty=None,
            compression_ratio_threshold=a["compression_ratio_threshold"], logprob_threshold=a["log_prob_threshold"],
            no_speech_threshold=a["no_speech_threshold"], condition_on_previous_text=a["condition_on_previous_text"],
            prompt_reset_on_temperature=a["prompt_reset_on_temperature"], initial_prompt=initial_prompt,
            prefix=a["prefix"], hotwords=a["hotwords"], word_timestamps=a["word_timestamps"],
            prepend_punctuations=a["prepend_punctuations"], append_punctuations=a["append_punctuations"],
            hallucination_silence_threshold=a["hallucination_silence_threshold"],
            without_timestamps=a["without_timestamps"], max_initial_timestamp=a["max_initial_timestamp"],
            suppress_tokens=suppress, suppress_blank=a["suppress_blank"], vad_filter=a["vad_filter"],
            vad_options=_vad_options(a["vad_parameters"]), batch_size=batch_size)

    def detect_language(self, audio: np.ndarray | None = None, features: np.ndarray | None = None,
                        vad_filter: bool = False, vad_parameters: dict | VadOptions | None = None,
                        language_detection_segments: int = 1, language_detection_threshold: float = 0.5
                        ) -> tuple[str, float, list[tuple[str, float]]]:
        """faster-whisper's ``detect_language``: (language, probability, all (language, probability) pairs,
        most likely first) from the first 30 s (of speech, with ``vad_filter``). ``audio``: a 16 kHz
        float array (or anything ``transcribe`` accepts)."""
        if features is not None:
            raise _refuse("features", "<array>", "pass the audio; edge-asr computes its own log-mel")
        if language_detection_segments != 1:
            raise _refuse("language_detection_segments", language_detection_segments,
                          "language is detected on the first 30 s only")
        if audio is None:
            raise OptionError("detect_language needs audio")
        samples = load_audio(audio)
        if vad_filter:
            chunks = get_speech_timestamps(samples, _vad_options(vad_parameters) or VadOptions())
            samples = collect_chunks(samples, chunks) if chunks else samples[:0]
        if not self.edge.multilingual:
            return "en", 1.0, [("en", 1.0)]
        code, probs = self.edge.detect_language(samples[:N_SAMPLES], sample_rate=SAMPLE_RATE)
        return code, float(probs[code]), sorted(((k, float(v)) for k, v in probs.items()), key=lambda kv: -kv[1])


class BatchedInferencePipeline:
    """faster-whisper's ``BatchedInferencePipeline(model=...)``: ``transcribe(..., batch_size=8)`` runs
    edge-asr's batched mode (VAD speech windows, ``batch_size`` at a time; no conditioning on previous
    text). Same arguments as :meth:`WhisperModel.transcribe`, with faster-whisper's batched defaults and
    rules: ``without_timestamps=True``; ``condition_on_previous_text`` and ``hallucination_silence_threshold``
    are accepted and ignored; only the first of several temperatures is used (no fallback);
    ``vad_filter=False`` only for audio of at most 30 s (decoded as one sequential window, which may
    continue after its last timestamp as :meth:`WhisperModel.transcribe` does)."""

    def __init__(self, model: WhisperModel):
        self.model = model

    def transcribe(self, audio: str | BinaryIO | np.ndarray, *args, batch_size: int = 8, vad_filter: bool = True,
                   condition_on_previous_text: bool = True, without_timestamps: bool = True,
                   hallucination_silence_threshold: float | None = None, **kwargs
                   ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        # faster-whisper's batched transcribe takes both and ignores them (its options force False/None).
        del condition_on_previous_text, hallucination_silence_threshold
        import inspect

        if not vad_filter:
            # faster-whisper decodes audio shorter than a window whole and refuses longer audio.
            audio = load_audio(audio)
            if len(audio) > N_SAMPLES:
                raise _refuse("vad_filter", vad_filter, "batched mode cuts audio longer than 30 s at the "
                              "speech VAD finds (faster-whisper raises too); use WhisperModel.transcribe")
            batch_size = 1
        bound = inspect.signature(WhisperModel.transcribe).bind(
            self.model, audio, *args, vad_filter=vad_filter, condition_on_previous_text=False,
            without_timestamps=without_timestamps, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"], arguments["audio"]
        temperature = arguments["temperature"]
        if isinstance(temperature, (list, tuple)):  # faster-whisper's batched mode keeps temperatures[:1]
            arguments["temperature"] = temperature[0]
        return self.model._transcribe(audio, arguments, batch_size=batch_size)
