"""The per-window steps every transcription mode shares (sequential, batched, streaming window).

Language resolution, prompt encoding, decoding with temperature fallback, the silence rule, splitting a
window's tokens into segments at timestamp pairs, word timing and the final segment filter: each exactly
once, as openai/whisper's transcribe() defines them. The loops that decide which audio each window
covers live in transcribe.py (sequential seek), batched.py (VAD windows) and streaming.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from .constants import FRAMES_PER_SECOND, INPUT_STRIDE, N_FRAMES, SAMPLE_RATE, TIME_PRECISION
from .decoding import DecodingOptions, DecodingResult, DecodingTask
from .errors import WORD_TIMESTAMPS_UNAVAILABLE, DecodingError
from .inference import DecoderState, OnnxBackend
from .options import TranscribeOptions
from .tokenizer import Tokenizer

BUDGET_TOKENS_PER_SECOND = 12  # fast speech is ~5 words, ~7 tokens, a second
BUDGET_EXTRA_TOKENS = 16  # timestamps and punctuation of a short window


def token_budget(seconds: float) -> int:
    """Most tokens worth decoding for ``seconds`` of audio (timestamps included). A decode that loops
    (repetition, or text invented after the speech) otherwise runs to the 224-token limit: in streaming
    that stalls the stream (1.3 s for base on two cores), in a batch every row waits for it."""
    return int(BUDGET_TOKENS_PER_SECOND * seconds) + BUDGET_EXTRA_TOKENS


def reduced_window_frames(audio_frames: int, tail_s: float) -> int:
    """Mel frames the reduced encoder window encodes for ``audio_frames`` of audio: the audio plus
    ``tail_s`` of silence, rounded up to whole seconds (100 frames; even, as the encoder's stride-2 conv
    needs), never more than a 30 s window."""
    return min(N_FRAMES, int(np.ceil((audio_frames + tail_s * FRAMES_PER_SECOND) / 100.0)) * 100)


class WindowSteps:
    """The steps of one window for a model (backend + tokenizer) and a set of options. Stateless across
    windows: the loops keep their own history, so one model serves concurrent transcriptions."""

    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: TranscribeOptions):
        if (options.word_timestamps or options.hallucination_silence_threshold) and not backend.has_alignment:
            raise DecodingError(WORD_TIMESTAMPS_UNAVAILABLE)
        if options.task is None:
            # The model's default task: a fine-tune's generation_config task (manifest), as its language
            # is the default language; English-only models only transcribe. Resolved once here, so the
            # language check, every decode and word timing use the same task.
            task = backend.manifest.task if tokenizer.multilingual else None
            options = replace(options, task=task or "transcribe")
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        self.n_ctx = backend.manifest.dims.n_text_ctx

    # -- before the first window ----------------------------------------------------------------
    def language(self, first_mel: np.ndarray | None) -> tuple[str, dict[str, float] | None]:
        """The options' language, "en" for English-only models, else detected on ``first_mel``
        ([n_mels, frames] of the first window; None when nothing was heard: "en"). Validates the
        language/task combination for this model."""
        opt, tok = self.options, self.tokenizer
        # A fine-tune's generation_config language (manifest) is the default: it was trained to it.
        language, probs = opt.language or self.backend.manifest.language, None
        if language is None and not tok.multilingual:
            language = "en"
        if language is None:
            if first_mel is None:
                language = "en"  # nothing was heard to detect a language from
            else:
                state = self.backend.encode(first_mel[None])
                langs, all_probs = DecodingTask(self.backend, tok, DecodingOptions(task=opt.task)).detect_language(state)
                language, probs = langs[0], all_probs[0]
        tok.sot_sequence(language, opt.task, not opt.without_timestamps)
        return language, probs

    def text_tokens(self, text: str | None) -> list[int]:
        """Tokens of prompt text (initial prompt, hotwords), as Whisper saw text mid-sentence."""
        return self.tokenizer.encode(" " + text.strip()) if text else []

    def hotword_tokens(self) -> list[int]:
        return self.text_tokens(self.options.hotwords)[: self.n_ctx // 2 - 1]

    def prompt(self, history: Sequence[int], hotword_tokens: Sequence[int]) -> list[int]:
        """Hotwords, then as much of the previous text as the prompt half of the context holds."""
        room = self.n_ctx // 2 - 1 - len(hotword_tokens)
        return list(hotword_tokens) + (list(history[-room:]) if room > 0 and history else [])

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, state: DecoderState, prompt: Sequence[int], language: str, *,
               prefix: str | Sequence[int] | None = None, temperature: float | None = None,
               sample_len: int | None = None, stop_rule=None) -> list[DecodingResult]:
        """Every window in ``state`` at one temperature (default: the ladder's first); ``stop_rule``: see
        :meth:`DecodingTask.run`."""
        t = self.options.temperatures[0] if temperature is None else temperature
        options = self.options.decoding_options(t, language=language, prompt=prompt, prefix=prefix,
                                                sample_len=sample_len)
        return DecodingTask(self.backend, self.tokenizer, options).run(state, stop_rule)

    def decode_with_fallback(self, state: DecoderState, prompt: Sequence[int], language: str, *,
                             prefix: str | None = None, first: int = 0, sample_len: int | None = None,
                             no_speech_heard: Callable[[], bool] | None = None) -> DecodingResult:
        """One window, climbing the temperature ladder from rung ``first`` while the result needs a
        fallback; at most ``sample_len`` tokens (None: the model's limit, 224). ``no_speech_heard()``
        (the caller's VAD verdict on this window's audio) stops the ladder at a noise hallucination
        (:meth:`is_noise_hallucination`): the caller then skips the window."""
        result = None
        for t in self.options.temperatures[first:]:
            result = self.decode(state, prompt, language, prefix=prefix, temperature=t, sample_len=sample_len)[0]
            if no_speech_heard is not None and self.is_noise_hallucination(result) and no_speech_heard():
                break
            if not self.needs_fallback(result):
                break
        assert result is not None
        return result

    def is_noise_hallucination(self, r: DecodingResult) -> bool:
        """Whisper's tell of text invented on noise or music: it judges the window non-speech (no-speech
        probability above the threshold) and still loops (compression ratio above the threshold) or gives
        no word at all (". . ."). openai's silence rule keeps such text when its log-probability is high,
        which a loop's is, and the fallback ladder then decodes the window up to five more times at up to
        224 tokens and five samples each (measured, issue 18: applause cost 1-1.7x real time, pink noise
        ~0.2x, for no words). Callers treat it as silence only where Silero VAD hears no speech, so a real
        utterance the model doubts still gets the whole ladder."""
        opt = self.options
        if opt.no_speech_threshold is None or r.no_speech_prob is None or r.no_speech_prob <= opt.no_speech_threshold:
            return False
        looping = opt.compression_ratio_threshold is not None and r.compression_ratio > opt.compression_ratio_threshold
        return looping or not any(ch.isalnum() for ch in r.text)

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

    # -- after decoding -------------------------------------------------------------------------
    def split_segments(self, result: DecodingResult, time_offset: float, segment_size: int
                       ) -> tuple[list[dict], int, bool]:
        """Segments (dicts: start, end, tokens, text, result) of one window of ``segment_size`` mel
        frames, the seek advance in frames, and whether the text ended on a lone timestamp."""
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

    def add_words(self, segments: list[dict], state: DecoderState, num_frames: int, language: str,
                  time_offset: float, last_speech_timestamp: float, attention: np.ndarray | None = None,
                  token_probs: np.ndarray | None = None, speech_chunks: list[dict] | None = None) -> None:
        """Word timing for the segments of one window (``state`` holds that window alone); ``attention``:
        the decode's own (``DecodingResult.alignment``), else a forced pass computes it. ``speech_chunks``
        (VAD, samples of the same audio as ``time_offset``) keep words on the speech
        (:func:`edge_asr.timing.words_from_attention`)."""
        from .timing import add_word_timestamps, speech_frames

        speech = (None if speech_chunks is None
                  else speech_frames(speech_chunks, round(time_offset * SAMPLE_RATE), num_frames))

        opt = self.options
        add_word_timestamps(segments=segments, backend=self.backend, tokenizer=self.tokenizer, state=state,
                            num_frames=num_frames, language=language, task=opt.task,
                            prepend_punctuations=opt.prepend_punctuations,
                            append_punctuations=opt.append_punctuations,
                            last_speech_timestamp=last_speech_timestamp, time_offset=time_offset,
                            attention=attention, token_probs=token_probs, speech=speech)


def kept(segments: list[dict]) -> list[dict]:
    """The segments worth returning: with text and a duration."""
    return [s for s in segments if s["start"] != s["end"] and s["text"]]
