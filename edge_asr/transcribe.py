"""Long-form transcription: slide a 30 s window over the file, seeking by the last timestamp token.

This follows openai/whisper's transcribe(): the log-mel of the whole file is computed once (with 30 s
of trailing silence so the last window is complete), each window is decoded with timestamps, the
text between consecutive timestamp pairs becomes a segment, and the next window starts at the last
complete timestamp (or after the window when it ends on a lone timestamp or has none).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .features import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram, pad_or_trim
from .inference import OnnxBackend
from .results import Segment, TranscriptionResult
from .tokenizer import Tokenizer

INPUT_STRIDE = 2  # mel frames per encoder output frame (= per timestamp step of 0.02 s)

ProgressCallback = Callable[[float, float], None]  # (seconds processed, total seconds)


def _segments_from_tokens(result: DecodingResult, tokenizer: Tokenizer, time_offset: float,
                          window_frames: int, next_id: int) -> tuple[list[Segment], int]:
    """Split one window's tokens at timestamp pairs; return its segments and the seek advance in frames."""
    tb = tokenizer.timestamp_begin
    tokens = np.array(result.tokens, dtype=np.int64)
    is_ts = tokens >= tb
    single_ending = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
    consecutive = np.where(is_ts[:-1] & is_ts[1:])[0] + 1
    segments: list[Segment] = []

    def add(start: float, end: float, toks: np.ndarray) -> None:
        text_tokens = [int(t) for t in toks if t < tokenizer.eot]
        text = tokenizer.decode(text_tokens).strip()
        if not text:
            return
        segments.append(Segment(id=next_id + len(segments), start=round(start, 3), end=round(end, 3), text=text,
                                tokens=tuple(int(t) for t in toks), avg_logprob=result.avg_logprob,
                                no_speech_prob=result.no_speech_prob))

    if len(consecutive) > 0:
        slices = consecutive.tolist()
        if single_ending:
            slices.append(len(tokens))
        last = 0
        for cur in slices:
            part = tokens[last:cur]
            add(time_offset + float(part[0] - tb) * 0.02, time_offset + float(part[-1] - tb) * 0.02, part)
            last = cur
        if single_ending:
            advance = window_frames
        else:
            advance = int(tokens[last - 1] - tb) * INPUT_STRIDE
    else:
        duration = window_frames / FRAMES_PER_SECOND
        stamps = tokens[is_ts]
        if len(stamps) > 0 and stamps[-1] != tb:
            duration = float(stamps[-1] - tb) * 0.02
        add(time_offset, time_offset + duration, tokens)
        advance = window_frames
    # A window that cannot advance would loop forever; openai's rules make this rare, but never hang.
    return segments, max(advance, 1) if window_frames > 0 else advance


def transcribe_audio(backend: OnnxBackend, tokenizer: Tokenizer, audio: np.ndarray, options: DecodingOptions,
                     progress: ProgressCallback | None = None) -> TranscriptionResult:
    """Transcribe 16 kHz mono float32 ``audio`` of any length."""
    n_mels = backend.manifest.dims.n_mels
    duration = len(audio) / 16000
    mel = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES)
    content_frames = mel.shape[-1] - N_FRAMES
    language = options.language
    language_probs = None
    if language is None and not tokenizer.multilingual:
        language = "en"
    segments: list[Segment] = []
    seek = 0
    while seek < content_frames:
        window_frames = min(N_FRAMES, content_frames - seek)
        window = pad_or_trim(mel[:, seek:seek + window_frames], N_FRAMES)[None]
        state = backend.encode(window)
        task = DecodingTask(backend, tokenizer, replace(options, language=language))
        if language is None:  # detect once, on the first window, as openai/whisper does
            langs, probs = task.detect_language(state)
            language, language_probs = langs[0], probs[0]
            task = DecodingTask(backend, tokenizer, replace(options, language=language))
        result = task.run(state)[0]
        if options.without_timestamps:
            new = [] if not result.text else [Segment(
                id=len(segments), start=round(seek / FRAMES_PER_SECOND, 3),
                end=round((seek + window_frames) / FRAMES_PER_SECOND, 3), text=result.text,
                tokens=tuple(result.tokens), avg_logprob=result.avg_logprob, no_speech_prob=result.no_speech_prob)]
            advance = window_frames
        else:
            new, advance = _segments_from_tokens(result, tokenizer, seek * HOP_LENGTH / 16000, window_frames,
                                                 len(segments))
        for s in new:  # a timestamp past the end of the audio is clamped to it
            segments.append(replace(s, start=min(s.start, duration), end=min(max(s.end, s.start), duration)))
        seek += advance
        if progress is not None:
            progress(min(seek, content_frames) / FRAMES_PER_SECOND, content_frames / FRAMES_PER_SECOND)
    # Decode all text tokens at once rather than joining segment texts with spaces: languages written
    # without spaces (Japanese, Chinese) must not gain any.
    text = tokenizer.decode([t for s in segments for t in s.tokens]).strip()
    return TranscriptionResult(text=text, language=language or "en", duration=round(duration, 3),
                               segments=tuple(segments), language_probs=language_probs)
