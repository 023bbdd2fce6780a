"""Which loop transcribes the audio, and the result it returns.

`transcribe_audio` is the one entry point of offline transcription: it applies the VAD filter (times
mapped back afterwards), picks the mode (batch_size > 1: batched.py's VAD windows; else transcribe.py's
sequential openai/whisper loop) and turns the loops' segment dicts into a frozen TranscriptionResult.
Streaming (streaming.py) drives the sequential loop itself, one window per update.
"""

from __future__ import annotations

import numpy as np

from .batched import BatchedTranscriber
from .constants import SAMPLE_RATE
from .decoding import DecodingResult
from .inference import OnnxBackend
from .options import TranscribeOptions
from .results import Segment, TranscriptionResult, Word
from .tokenizer import Tokenizer
from .options import ProgressCallback
from .transcribe import Transcriber
from .vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps


def to_result(segments: list[dict], tokenizer: Tokenizer, language: str, language_probs, duration: float,
              time_map: SpeechTimestampsMap | None) -> TranscriptionResult:
    def t(x: float, is_end: bool = False) -> float:
        if time_map is not None:
            x = time_map.get_original_time(x, is_end=is_end)
        return round(min(max(x, 0.0), duration), 3)

    out: list[Segment] = []
    for s in segments:
        r: DecodingResult = s["result"]
        words = None
        if "words" in s:
            words = tuple(Word(start=t(w["start"]), end=t(w["end"], True), word=w["word"],
                               probability=round(float(w["probability"]), 4)) for w in s["words"])
        start, end = t(s["start"]), t(s["end"], True)
        out.append(Segment(id=len(out), start=start, end=max(end, start), text=s["text"], tokens=tuple(s["tokens"]),
                           avg_logprob=r.avg_logprob, no_speech_prob=r.no_speech_prob, temperature=r.temperature,
                           compression_ratio=round(r.compression_ratio, 4), words=words))
    # Decode all text tokens at once rather than joining segment texts with spaces: languages written
    # without spaces (Japanese, Chinese) must not gain any.
    text = tokenizer.decode([tk for s in out for tk in s.tokens]).strip()
    return TranscriptionResult(text=text, language=language, duration=round(duration, 3), segments=tuple(out),
                               language_probs=language_probs)


def transcribe_audio(backend: OnnxBackend, tokenizer: Tokenizer, audio: np.ndarray,
                     options: TranscribeOptions, progress: ProgressCallback | None = None) -> TranscriptionResult:
    """Transcribe 16 kHz mono float32 ``audio`` of any length."""
    duration = len(audio) / SAMPLE_RATE
    if options.batch_size > 1:
        segments, language, language_probs = BatchedTranscriber(backend, tokenizer, options).run(
            audio, options.batch_size, progress)
        return to_result(segments, tokenizer, language, language_probs, duration, None)
    time_map = None
    if options.vad_filter:
        chunks = get_speech_timestamps(audio, options.vad_options or VadOptions())
        if not chunks:  # no speech at all: nothing to decode, nothing to hallucinate
            language = options.language or "en"  # nothing was heard to detect a language from
            if progress is not None:
                progress(duration, duration)
            return TranscriptionResult(text="", language=language, duration=round(duration, 3), segments=())
        audio = collect_chunks(audio, chunks)
        time_map = SpeechTimestampsMap(chunks, SAMPLE_RATE)
    segments, language, language_probs = Transcriber(backend, tokenizer, options).run(audio, progress)
    return to_result(segments, tokenizer, language, language_probs, duration, time_map)
