"""Which loop transcribes the audio, and the segments and result it returns.

`transcribe_segments` is the one path of offline transcription: it applies the VAD filter (times mapped
back afterwards), picks the mode (batch_size > 1: batched.py's VAD windows; else transcribe.py's
sequential openai/whisper loop), resolves the language up front (`TranscriptionInfo`) and returns a
generator of frozen `Segment`s that decodes a window (or a batch) per step. `to_result` makes the drained
segments a `TranscriptionResult` (WhisperModel.transcribe: one code path for lazy and eager). Streaming
(streaming.py) drives its own buffer decoder.
"""

from __future__ import annotations

from typing import Generator, Iterator

import numpy as np

from .batched import BatchedTranscriber, speech_windows
from .constants import SAMPLE_RATE
from .decoding import DecodingResult
from .inference import OnnxBackend
from .options import ProgressCallback, TranscribeOptions
from .results import Segment, TranscriptionInfo, TranscriptionResult, Word
from .tokenizer import Tokenizer
from .transcribe import Transcriber
from .vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps, speech_chunks


def to_segment(s: dict, index: int, duration: float, time_map: SpeechTimestampsMap | None) -> Segment:
    """A loop's segment dict as the frozen Segment number ``index``, times mapped back through the VAD
    filter and clipped to the audio."""
    def t(x: float, is_end: bool = False) -> float:
        if time_map is not None:
            x = time_map.get_original_time(x, is_end=is_end)
        return round(min(max(x, 0.0), duration), 3)

    r: DecodingResult = s["result"]
    words = None
    if "words" in s:
        words = tuple(Word(start=t(w["start"]), end=t(w["end"], True), word=w["word"],
                           probability=round(float(w["probability"]), 4)) for w in s["words"])
    start, end = t(s["start"]), t(s["end"], True)
    return Segment(id=index, start=start, end=max(end, start), text=s["text"], tokens=tuple(s["tokens"]),
                   avg_logprob=r.avg_logprob, no_speech_prob=r.no_speech_prob, temperature=r.temperature,
                   compression_ratio=round(r.compression_ratio, 4), words=words)


def _segments(windows: Iterator[list[dict]], duration: float, time_map: SpeechTimestampsMap | None
              ) -> Generator[Segment, None, None]:
    """Each window's segments as soon as the loop yields them. Closing this generator (or dropping it)
    closes the loop's, which then holds no audio features or cross K/V any more."""
    index = 0
    try:
        for window in windows:
            for s in window:
                yield to_segment(s, index, duration, time_map)
                index += 1
    finally:
        close = getattr(windows, "close", None)
        if close is not None:
            close()


def _no_speech(duration: float, progress: ProgressCallback | None) -> Generator[Segment, None, None]:
    if progress is not None:
        progress(duration, duration)
    yield from ()


def transcribe_segments(backend: OnnxBackend, tokenizer: Tokenizer, audio: np.ndarray, options: TranscribeOptions,
                        progress: ProgressCallback | None = None
                        ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
    """Segments of 16 kHz mono float32 ``audio`` of any length, lazily, and what is known before decoding.

    VAD and language detection run now, and in sequential mode the whole audio's log-mel too (the
    Transcriber's start); each window (sequential) or batch (batched mode) is decoded when the generator
    is advanced, and its segments are yielded in time order."""
    duration = len(audio) / SAMPLE_RATE

    def info(language: str, language_probs, after_vad: float) -> TranscriptionInfo:
        return TranscriptionInfo(language=language, duration=round(duration, 3),
                                 duration_after_vad=round(after_vad, 3), options=options,
                                 language_probs=language_probs)

    if options.batch_size > 1:
        transcriber = BatchedTranscriber(backend, tokenizer, options)
        chunks = speech_chunks(audio, options.vad_options)
        after_vad = sum(end - start for start, end in speech_windows(chunks)) / SAMPLE_RATE
        language, language_probs, windows = transcriber.start(audio, options.batch_size, progress, chunks)
        return _segments(windows, duration, None), info(language, language_probs, after_vad)
    time_map = None
    if options.vad_filter:
        chunks = get_speech_timestamps(audio, options.vad_options or VadOptions())
        if not chunks:  # no speech at all: nothing to decode, nothing to hallucinate
            # nothing was heard to detect a language from: the given one, else the manifest's (a
            # fine-tune's, as WindowSteps.language defaults to), else "en"
            language = options.language or backend.manifest.language or "en"
            return _no_speech(duration, progress), info(language, None, 0.0)
        audio = collect_chunks(audio, chunks)
        time_map = SpeechTimestampsMap(chunks, SAMPLE_RATE)
    language, language_probs, windows = Transcriber(backend, tokenizer, options).start(audio, progress)
    return _segments(windows, duration, time_map), info(language, language_probs, len(audio) / SAMPLE_RATE)


def to_result(segments: tuple[Segment, ...], info: TranscriptionInfo, tokenizer: Tokenizer) -> TranscriptionResult:
    # Decode all text tokens at once rather than joining segment texts with spaces: languages written
    # without spaces (Japanese, Chinese) must not gain any.
    text = tokenizer.decode([tk for s in segments for tk in s.tokens]).strip()
    return TranscriptionResult(text=text, language=info.language, duration=info.duration, segments=segments,
                               language_probs=info.language_probs)
