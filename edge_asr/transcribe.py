"""Long-form transcription: slide a 30 s window over the file, seeking by the last timestamp token.

This follows openai/whisper's transcribe(): the log-mel of the whole file is computed once (with 30 s
of trailing silence so the last window is complete); each window is decoded with temperature
fallback (on compression-ratio and average-logprob thresholds), skipped when it is silence (no-speech
probability), split into segments at timestamp pairs, optionally word-timed, and the next window
starts at the last complete timestamp. Previous text is fed back as the prompt. With ``vad_filter``
only the speech Silero VAD finds is transcribed (faster-whisper's approach), and times are mapped back.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .constants import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE
from .features import log_mel_spectrogram, mel_window, pad_or_trim
from .gap_fill import fill_gaps
from .inference import OnnxBackend
from .memory import release_free_memory
from .options import ProgressCallback, TranscribeOptions
from .tokenizer import Tokenizer
from .vad import MIN_REMAINDER_S, speech_chunks, speech_in
from .window import WindowSteps, kept, reduced_window_frames, token_budget

__all__ = ["Transcriber", "TranscribeOptions", "ProgressCallback", "token_budget", "reduced_window_frames"]

_PUNCTUATION = "\"'“¿([{-\"'.。,，!！?？:：”)]}、"


def _word_anomaly_score(word: dict) -> float:
    probability = word.get("probability", 0.0)
    duration = word["end"] - word["start"]
    score = 0.0
    if probability < 0.15:
        score += 1.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score


def _is_segment_anomaly(segment: dict | None) -> bool:
    if segment is None or not segment.get("words"):
        return False
    words = [w for w in segment["words"] if w["word"] not in _PUNCTUATION][:8]
    score = sum(_word_anomaly_score(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def _next_words_segment(segments: list[dict]) -> dict | None:
    return next((s for s in segments if s.get("words")), None)


def _first_word_start(segments: list[dict], default: float) -> float:
    return next((w["start"] for s in segments for w in s.get("words") or []), default)


def _word_count(segments: list[dict]) -> int:
    return sum(len(s.get("words") or []) for s in segments)


def _get_end(segments: list[dict]) -> float | None:
    return next((w["end"] for s in reversed(segments) for w in reversed(s.get("words") or [])),
                segments[-1]["end"] if segments else None)


class Transcriber:
    """Runs one long-form transcription; holds the state that carries across windows."""

    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: TranscribeOptions):
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        self.steps = WindowSteps(backend, tokenizer, options)

    def _window_mel(self, mel: np.ndarray, seek: int, segment_size: int) -> np.ndarray:
        tail = self.options.encoder_tail_s
        if tail is None:
            return mel_window(mel, seek, segment_size, self.backend.manifest.mel_padding)
        # Whole seconds (100 mel frames; even, as the encoder's stride-2 conv needs), padded with the
        # log-mel of real silence that follows the audio in ``mel`` (not zeros, which read as sound).
        return mel[:, seek:seek + reduced_window_frames(segment_size, tail)]

    def run(self, audio: np.ndarray, progress: ProgressCallback | None = None,
            max_windows: int | None = None, sample_len: int | None = None) -> tuple[list[dict], str, dict | None]:
        """Segments (dicts), language, language probabilities. ``max_windows`` stops after that many
        decoded windows (streaming decodes its < 30 s buffer once per update, never a tail window);
        ``sample_len`` caps the tokens decoded per window."""
        language, language_probs, windows = self.start(audio, progress, max_windows, sample_len)
        return [s for window in windows for s in window], language, language_probs

    def start(self, audio: np.ndarray, progress: ProgressCallback | None = None,
              max_windows: int | None = None, sample_len: int | None = None
              ) -> tuple[str, dict | None, Iterator[list[dict]]]:
        """Language and language probabilities now (the log-mel and language detection run here), and a
        generator that decodes one window per step and yields its segments (dicts; [] for a skipped
        window). Nothing is decoded until it is iterated; closing it stops after the current window."""
        opt, backend = self.options, self.backend
        silence_peak = None if opt.silence_peak_db is None else 10 ** (opt.silence_peak_db / 20)
        mel = log_mel_spectrogram(audio, backend.manifest.dims.n_mels, padding=N_SAMPLES)
        # The first window's mel only when the language must be detected (streaming calls this per update).
        detect = opt.language is None and self.tokenizer.multilingual
        if detect and silence_peak is not None and (audio.size == 0 or np.abs(audio).max() < silence_peak):
            detect = False  # every window is digital silence: nothing to detect a language from ("en")
        language, language_probs = self.steps.language(pad_or_trim(mel[:, :N_FRAMES]) if detect else None)
        return language, language_probs, self._windows(audio, mel, language, silence_peak, progress, max_windows,
                                                       sample_len)

    def _windows(self, audio: np.ndarray, mel: np.ndarray, language: str, silence_peak: float | None,
                 progress: ProgressCallback | None, max_windows: int | None, sample_len: int | None
                 ) -> Iterator[list[dict]]:
        opt, backend, steps = self.options, self.backend, self.steps
        windows = 0
        content_frames = mel.shape[-1] - N_FRAMES
        content_duration = content_frames * HOP_LENGTH / SAMPLE_RATE
        hotword_tokens = steps.hotword_tokens()
        history: list[int] = steps.text_tokens(opt.initial_prompt)
        prompt_reset_since = 0
        last_speech_timestamp = 0.0
        threshold = opt.hallucination_silence_threshold
        want_words = opt.word_timestamps or threshold is not None
        vad_chunks: list[dict] | None = None  # Silero VAD over the audio, computed once when needed
        seek = 0
        while seek < content_frames and (max_windows is None or windows < max_windows):
            windows += 1
            time_offset = seek * HOP_LENGTH / SAMPLE_RATE
            window_end_time = (seek + N_FRAMES) * HOP_LENGTH / SAMPLE_RATE
            segment_size = min(N_FRAMES, content_frames - seek)
            segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE
            window = audio[seek * HOP_LENGTH:(seek + segment_size) * HOP_LENGTH]
            if silence_peak is not None and (window.size == 0 or np.abs(window).max() < silence_peak):
                seek += segment_size  # digital silence: nothing to hear, nothing to decode
                if progress is not None:
                    progress(min(seek, content_frames) / FRAMES_PER_SECOND, content_duration)
                yield []
                continue
            state = None  # release the previous window's cross K/V before the encoder allocates new ones
            state = backend.encode(self._window_mel(mel, seek, segment_size)[None])
            prefix = opt.prefix if seek == 0 else None
            prompt = steps.prompt(history[prompt_reset_since:], [] if prefix else hotword_tokens)

            def no_speech_heard(start: int = seek * HOP_LENGTH, end: int = (seek + segment_size) * HOP_LENGTH) -> bool:
                """Silero VAD hears no speech in this window (VAD runs once per file, when first asked)."""
                nonlocal vad_chunks
                if vad_chunks is None:
                    vad_chunks = speech_chunks(audio)
                return speech_in(vad_chunks, start, end) == 0

            result = steps.decode_with_fallback(state, prompt, language, prefix=prefix, sample_len=sample_len,
                                                no_speech_heard=no_speech_heard)
            if progress is not None:
                progress(min(seek + segment_size, content_frames) / FRAMES_PER_SECOND, content_duration)
            if steps.is_silence(result) or (steps.is_noise_hallucination(result) and no_speech_heard()):
                seek += segment_size  # silence
                state = None  # a suspended generator must not hold the window's cross K/V
                yield []
                continue
            previous_seek = seek
            current, advance, single_ending = steps.split_segments(result, time_offset, segment_size)
            words_done = False
            if want_words and len(prompt) > len(hotword_tokens) and not prefix:
                # Conditioned on the previous text, Whisper sometimes skips the speech at a window's
                # start and still opens with <|0.00|>; only the word times show it. Measured (issue 18,
                # a 60-minute timeline): whole clips lost this way; the same window decoded without the
                # previous text was complete. When VAD hears a second or more of speech before the
                # first word, decode again without it; keep the retry when it starts earlier with no fewer words.
                if vad_chunks is None:
                    vad_chunks = speech_chunks(audio)
                steps.add_words(current, state, segment_size, language, time_offset, last_speech_timestamp,
                                speech_chunks=vad_chunks)
                words_done = True
                first = _first_word_start(current, time_offset + segment_duration)
                skipped = speech_in(vad_chunks, seek * HOP_LENGTH, int((first - MIN_REMAINDER_S) * SAMPLE_RATE))
                if skipped >= MIN_REMAINDER_S * SAMPLE_RATE:
                    retry = steps.decode_with_fallback(state, prompt[:len(hotword_tokens)], language,
                                                       sample_len=sample_len, no_speech_heard=no_speech_heard)
                    if not steps.is_silence(retry):
                        again = steps.split_segments(retry, time_offset, segment_size)
                        steps.add_words(again[0], state, segment_size, language, time_offset, last_speech_timestamp,
                                        speech_chunks=vad_chunks)
                        # Earlier, and not at the price of words: measured, one retry started 3 s earlier
                        # with the previous clip's last word and then dropped a whole clip at its end.
                        if (_first_word_start(again[0], first) <= first - MIN_REMAINDER_S
                                and _word_count(again[0]) >= _word_count(current)):
                            result, (current, advance, single_ending) = retry, again
            seek += advance
            if advance == segment_size and current:
                # Whisper ended the window before its audio did (a lone final timestamp: "nothing more
                # here") and openai's loop skips the rest of the window. When VAD hears a second or more
                # of speech after that timestamp the model was wrong, and skipping lost whole sentences
                # (measured: ~20 % of a long file's words after one such window), so decode from there.
                rest = round(current[-1]["end"] * FRAMES_PER_SECOND)
                if previous_seek + FRAMES_PER_SECOND <= rest < seek:
                    if vad_chunks is None:
                        vad_chunks = speech_chunks(audio)
                    if speech_in(vad_chunks, rest * HOP_LENGTH, seek * HOP_LENGTH) >= MIN_REMAINDER_S * SAMPLE_RATE:
                        seek = rest
            if want_words:
                if not words_done:
                    if vad_chunks is None:
                        vad_chunks = speech_chunks(audio)
                    steps.add_words(current, state, segment_size, language, time_offset, last_speech_timestamp,
                                    speech_chunks=vad_chunks)
                if not single_ending:
                    last_word_end = _get_end(current)
                    if last_word_end is not None and last_word_end > time_offset:
                        seek = round(last_word_end * FRAMES_PER_SECOND)
                if threshold is not None:
                    if not single_ending:
                        last_word_end = _get_end(current)
                        if last_word_end is not None and last_word_end > time_offset:
                            remaining = window_end_time - last_word_end
                            seek = round(last_word_end * FRAMES_PER_SECOND) if remaining > threshold \
                                else previous_seek + segment_size
                    first_segment = _next_words_segment(current)
                    if first_segment is not None and _is_segment_anomaly(first_segment):
                        gap = first_segment["start"] - time_offset
                        if gap > threshold:  # leading silence then a likely hallucination: skip the silence
                            seek = previous_seek + round(gap * FRAMES_PER_SECOND)
                            state = None  # a suspended generator must not hold the window's cross K/V
                            yield []
                            continue
                    hal_last_end = last_speech_timestamp
                    for si, segment in enumerate(current):
                        if not segment.get("words"):
                            continue
                        if _is_segment_anomaly(segment):
                            nxt = _next_words_segment(current[si + 1:])
                            hal_next_start = nxt["words"][0]["start"] if nxt else time_offset + segment_duration
                            silence_before = (segment["start"] - hal_last_end > threshold
                                              or segment["start"] < threshold or segment["start"] - time_offset < 2.0)
                            silence_after = (hal_next_start - segment["end"] > threshold or _is_segment_anomaly(nxt)
                                             or window_end_time - segment["end"] < 2.0)
                            if silence_before and silence_after:
                                seek = round(max(time_offset + 1, segment["start"]) * FRAMES_PER_SECOND)
                                if content_duration - segment["end"] < threshold:
                                    seek = content_frames
                                current[si:] = []
                                break
                        hal_last_end = segment["end"]
                last_word_end = _get_end(current)
                if last_word_end is not None:
                    last_speech_timestamp = last_word_end
            # Never move backwards or stall: a guard against pathological timestamp sequences.
            seek = max(seek, previous_seek + 1)
            current = kept(current)
            history.extend(t for s in current for t in s["tokens"])
            if not opt.condition_on_previous_text or result.temperature > opt.prompt_reset_on_temperature:
                prompt_reset_since = len(history)
            state = None  # a suspended generator must not hold the window's cross K/V
            if want_words:
                if vad_chunks is None:
                    vad_chunks = speech_chunks(audio)
                current = fill_gaps(steps, audio, current, vad_chunks, previous_seek * HOP_LENGTH,
                                    min(seek, content_frames) * HOP_LENGTH, language, hotword_tokens)
            release_free_memory()  # the window's buffers, freed above, back to the OS (memory.py)
            yield current
