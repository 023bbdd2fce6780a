"""Long-form transcription: slide a 30 s window over the file, seeking by the last timestamp token.

This follows openai/whisper's transcribe(): the log-mel of the whole file is computed once (with 30 s
of trailing silence so the last window is complete); each window is decoded with temperature
fallback (on compression-ratio and average-logprob thresholds), skipped when it is silence (no-speech
probability), split into segments at timestamp pairs, optionally word-timed, and the next window
starts at the last complete timestamp. Previous text is fed back as the prompt. With ``vad_filter``
only the speech Silero VAD finds is transcribed (faster-whisper's approach), and times are mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np

from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .errors import WORD_TIMESTAMPS_UNAVAILABLE, DecodingError
from .constants import FRAMES_PER_SECOND, HOP_LENGTH, INPUT_STRIDE, N_FRAMES, N_SAMPLES, SAMPLE_RATE, TIME_PRECISION
from .features import log_mel_spectrogram, pad_or_trim
from .inference import OnnxBackend
from .results import Segment, TranscriptionResult, Word
from .tokenizer import Tokenizer
from .vad import (MIN_REMAINDER_S, SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps,
                  speech_chunks, speech_in)


ProgressCallback = Callable[[float, float], None]  # (seconds processed, total seconds)


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything that shapes a transcription. Defaults follow openai/whisper (greedy, fallback on)."""

    language: str | None = None  # ISO code; None: detect on the first 30 s (multilingual models)
    task: str = "transcribe"  # or "translate" (to English; multilingual models)
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fallback ladder
    beam_size: int | None = None  # beam search at temperature 0 (None: greedy)
    best_of: int | None = 5  # samples per fallback temperature > 0
    patience: float | None = None
    length_penalty: float | None = None
    compression_ratio_threshold: float | None = 2.4  # above: repetitive, retry hotter
    logprob_threshold: float | None = -1.0  # average logprob below: retry hotter
    no_speech_threshold: float | None = 0.6  # with a low logprob: the window is silence, skip it
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5
    initial_prompt: str | None = None  # context/vocabulary for the first window
    prefix: str | None = None  # forced start of the first window's text
    hotwords: str | None = None  # terms to favour: put in every window's prompt (faster-whisper)
    word_timestamps: bool = False
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"
    hallucination_silence_threshold: float | None = None  # seconds; skip silent gaps around likely hallucinations
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    suppress_tokens: str | Sequence[int] | None = "-1"
    suppress_blank: bool = True
    # Windows whose loudest sample is below this level (dBFS) are skipped without decoding: Whisper
    # answers digital silence with "you" or "Thank you." even at a high no-speech probability.
    silence_peak_db: float | None = -60.0
    # Reduced encoder window (whisper.cpp's audio_ctx, sherpa-onnx's sliced positions): encode only the
    # audio plus this many seconds of trailing silence, rounded up to whole seconds, instead of a full
    # 30 s window. None keeps the full window (the model was trained on it). Saves most of the encoder
    # on short audio; costs accuracy (see benchmarks/results for the measured WER).
    encoder_tail_s: float | None = None
    vad_filter: bool = False
    vad_options: VadOptions | None = None
    seed: int = 0
    # > 1: batched mode (batched.py): VAD speech chunks of up to 30 s, this many encoded and decoded
    # together; no conditioning on previous text. 1: the sequential openai/whisper loop.
    batch_size: int = 1

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


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


def _get_end(segments: list[dict]) -> float | None:
    return next((w["end"] for s in reversed(segments) for w in reversed(s.get("words") or [])),
                segments[-1]["end"] if segments else None)


BUDGET_TOKENS_PER_SECOND = 12  # a token budget per second of audio: fast speech is ~5 words, ~7 tokens, a second


def token_budget(seconds: float) -> int:
    """Most tokens worth decoding for ``seconds`` of audio (timestamps included). A decode that loops
    (repetition, or text invented after the speech) otherwise runs to the 224-token limit: in streaming
    that stalls the stream (1.3 s for base on two cores), in a batch every row waits for it."""
    return int(BUDGET_TOKENS_PER_SECOND * seconds) + 16


def reduced_window_frames(audio_frames: int, tail_s: float) -> int:
    """Mel frames the reduced encoder window encodes for ``audio_frames`` of audio: the audio plus
    ``tail_s`` of silence, rounded up to whole seconds (100 frames; even, as the encoder's stride-2 conv
    needs), never more than a 30 s window."""
    return min(N_FRAMES, int(np.ceil((audio_frames + tail_s * FRAMES_PER_SECOND) / 100.0)) * 100)


class Transcriber:
    """Runs one long-form transcription; holds the state that carries across windows."""

    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: TranscribeOptions):
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        self.n_ctx = backend.manifest.dims.n_text_ctx
        if (options.word_timestamps or options.hallucination_silence_threshold) and not backend.has_alignment:
            raise DecodingError(WORD_TIMESTAMPS_UNAVAILABLE)
        temps = options.temperature
        self.temperatures = [float(temps)] if isinstance(temps, (int, float)) else [float(t) for t in temps]
        if not self.temperatures:
            raise DecodingError("temperature must be a number or a non-empty sequence")

    def decoding_options(self, temperature: float, prompt: list[int], prefix: str | None,
                         language: str, sample_len: int | None = None) -> DecodingOptions:
        """One decoding attempt at ``temperature`` (beam search at 0, best_of sampling above)."""
        opt = self.options
        t = temperature
        return DecodingOptions(
            task=opt.task, language=language, temperature=t, prompt=prompt or None, prefix=prefix,
            beam_size=opt.beam_size if t == 0 else None, patience=opt.patience if t == 0 else None,
            best_of=opt.best_of if t > 0 else None, length_penalty=opt.length_penalty,
            suppress_tokens=opt.suppress_tokens, suppress_blank=opt.suppress_blank,
            without_timestamps=opt.without_timestamps, max_initial_timestamp=opt.max_initial_timestamp,
            seed=opt.seed, sample_len=sample_len)

    def decode_with_fallback(self, state, prompt: list[int], prefix: str | None, language: str,
                             first: int = 0, sample_len: int | None = None) -> DecodingResult:
        """Decode one window, climbing the temperature ladder from rung ``first`` while the result
        needs a fallback; at most ``sample_len`` tokens (None: the model's limit, 224)."""
        result = None
        for t in self.temperatures[first:]:
            options = self.decoding_options(t, prompt, prefix, language, sample_len)
            result = DecodingTask(self.backend, self.tokenizer, options).run(state)[0]
            if not self.needs_fallback(result):
                break
        assert result is not None
        return result

    def needs_fallback(self, r: DecodingResult) -> bool:
        """Too repetitive or too unsure, and not silence (where hotter decoding would only invent words)."""
        opt = self.options
        if (opt.no_speech_threshold is not None and r.no_speech_prob is not None
                and r.no_speech_prob > opt.no_speech_threshold
                and opt.logprob_threshold is not None and r.avg_logprob < opt.logprob_threshold):
            return False
        return ((opt.compression_ratio_threshold is not None and r.compression_ratio > opt.compression_ratio_threshold)
                or (opt.logprob_threshold is not None and r.avg_logprob < opt.logprob_threshold))

    def is_silence(self, r: DecodingResult) -> bool:
        """openai's skip rule: likely no speech, unless the text is confident anyway."""
        opt = self.options
        return (opt.no_speech_threshold is not None and r.no_speech_prob is not None
                and r.no_speech_prob > opt.no_speech_threshold
                and not (opt.logprob_threshold is not None and r.avg_logprob > opt.logprob_threshold))

    def _prompt(self, history: list[int], hotword_tokens: list[int]) -> list[int]:
        room = self.n_ctx // 2 - 1 - len(hotword_tokens)
        return hotword_tokens + (history[-room:] if room > 0 and history else [])

    def _split_segments(self, result: DecodingResult, time_offset: float, segment_size: int
                        ) -> tuple[list[dict], int, bool]:
        """Segments (dicts) of one window, the seek advance in frames, and whether it ended on a lone timestamp."""
        tb = self.tokenizer.timestamp_begin
        tokens = np.array(result.tokens, dtype=np.int64)
        segments: list[dict] = []

        def new(start: float, end: float, toks) -> dict:
            toks = [int(t) for t in toks]
            return {"start": round(start, 3), "end": round(end, 3), "tokens": toks,
                    "text": self.tokenizer.decode(toks).strip(), "result": result}

        if self.options.without_timestamps:
            return [new(time_offset, time_offset + segment_size / FRAMES_PER_SECOND, tokens)], segment_size, False
        is_ts = tokens >= tb
        single_ending = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
        consecutive = np.where(is_ts[:-1] & is_ts[1:])[0] + 1
        if len(consecutive) > 0:
            slices = consecutive.tolist()
            if single_ending:
                slices.append(len(tokens))
            last = 0
            for cur in slices:
                part = tokens[last:cur]
                segments.append(new(time_offset + float(part[0] - tb) * TIME_PRECISION,
                                    time_offset + float(part[-1] - tb) * TIME_PRECISION, part))
                last = cur
            advance = segment_size if single_ending else int(tokens[last - 1] - tb) * INPUT_STRIDE
        else:
            duration = segment_size / FRAMES_PER_SECOND
            stamps = tokens[is_ts]
            if len(stamps) > 0 and stamps[-1] != tb:
                duration = float(stamps[-1] - tb) * TIME_PRECISION
            segments.append(new(time_offset, time_offset + duration, tokens))
            advance = segment_size
        return segments, max(advance, 1), bool(single_ending)

    def _window_mel(self, mel: np.ndarray, seek: int, segment_size: int) -> np.ndarray:
        tail = self.options.encoder_tail_s
        if tail is None:
            return pad_or_trim(mel[:, seek:seek + segment_size])
        # Whole seconds (100 mel frames; even, as the encoder's stride-2 conv needs), padded with the
        # log-mel of real silence that follows the audio in ``mel`` (not zeros, which read as sound).
        return mel[:, seek:seek + reduced_window_frames(segment_size, tail)]

    def run(self, audio: np.ndarray, progress: ProgressCallback | None = None,
            max_windows: int | None = None, sample_len: int | None = None) -> tuple[list[dict], str, dict | None]:
        """Segments (dicts), language, language probabilities. ``max_windows`` stops after that many
        decoded windows (streaming decodes its < 30 s buffer once per update, never a tail window);
        ``sample_len`` caps the tokens decoded per window."""
        opt, tok, backend = self.options, self.tokenizer, self.backend
        windows = 0
        silence_peak = None if opt.silence_peak_db is None else 10 ** (opt.silence_peak_db / 20)
        mel = log_mel_spectrogram(audio, backend.manifest.dims.n_mels, padding=N_SAMPLES)
        content_frames = mel.shape[-1] - N_FRAMES
        content_duration = content_frames * HOP_LENGTH / SAMPLE_RATE
        language, language_probs = opt.language, None
        if language is None and not tok.multilingual:
            language = "en"
        if language is None:
            first = backend.encode(pad_or_trim(mel[:, :N_FRAMES])[None])
            langs, probs = DecodingTask(backend, tok, DecodingOptions(task=opt.task)).detect_language(first)
            language, language_probs = langs[0], probs[0]
        tok.sot_sequence(language, opt.task, True)  # validates language/task for this model
        hotword_tokens = tok.encode(" " + opt.hotwords.strip())[: self.n_ctx // 2 - 1] if opt.hotwords else []
        history: list[int] = tok.encode(" " + opt.initial_prompt.strip()) if opt.initial_prompt else []
        prompt_reset_since = 0
        last_speech_timestamp = 0.0
        threshold = opt.hallucination_silence_threshold
        want_words = opt.word_timestamps or threshold is not None
        all_segments: list[dict] = []
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
                continue
            state = None  # release the previous window's cross K/V before the encoder allocates new ones
            state = backend.encode(self._window_mel(mel, seek, segment_size)[None])
            prefix = opt.prefix if seek == 0 else None
            prompt = self._prompt(history[prompt_reset_since:], [] if prefix else hotword_tokens)
            result = self.decode_with_fallback(state, prompt, prefix, language, sample_len=sample_len)
            if progress is not None:
                progress(min(seek + segment_size, content_frames) / FRAMES_PER_SECOND, content_duration)
            if self.is_silence(result):
                seek += segment_size  # silence
                continue
            previous_seek = seek
            current, advance, single_ending = self._split_segments(result, time_offset, segment_size)
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
                from .timing import add_word_timestamps

                add_word_timestamps(segments=current, backend=backend, tokenizer=tok, state=state,
                                    num_frames=segment_size, language=language, task=opt.task,
                                    prepend_punctuations=opt.prepend_punctuations,
                                    append_punctuations=opt.append_punctuations,
                                    last_speech_timestamp=last_speech_timestamp, time_offset=time_offset)
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
            current = [s for s in current if s["start"] != s["end"] and s["text"]]
            all_segments.extend(current)
            history.extend(t for s in current for t in s["tokens"])
            if not opt.condition_on_previous_text or result.temperature > opt.prompt_reset_on_temperature:
                prompt_reset_since = len(history)
        return all_segments, language, language_probs


def _to_result(segments: list[dict], tokenizer: Tokenizer, language: str, language_probs, duration: float,
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
        from .batched import BatchedTranscriber

        segments, language, language_probs = BatchedTranscriber(backend, tokenizer, options).run(
            audio, options.batch_size, progress)
        return _to_result(segments, tokenizer, language, language_probs, duration, None)
    if options.batch_size < 1:
        raise DecodingError(f"batch_size must be at least 1, not {options.batch_size}")
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
    return _to_result(segments, tokenizer, language, language_probs, duration, time_map)
