"""One live update's decode: the stream's audio buffer as one window, continued from the committed words.

The committed words still in the buffer are the decode's forced prefix (their tokens, fed in one decoder
call), so committed text is never decoded again and the decoder's work per update follows the new text.
Words are timed from the alignment heads' cross-attention of this decode (as word timestamps), which is
what the :class:`~edge_asr.commit_policy.AlignAtt` policy commits by. The window is the whole 30 s
encoder window or, with ``encoder_tail_s``, the buffer plus that much silence (cheaper for short buffers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .commit_policy import TimedWord
from .constants import N_FRAMES, N_SAMPLES
from .decoding import compression_ratio
from .features import log_mel_spectrogram, mel_window, pad_or_trim
from .options import TranscribeOptions
from .window import WindowSteps, reduced_window_frames

BACKTRACK_FRAMES = 50  # 1 s of encoder frames: alignment jitter is far smaller, a repeat jumps back further


@dataclass(frozen=True)
class BufferHypothesis:
    """What one decode of the buffer said after the committed prefix."""

    words: tuple[TimedWord, ...]  # on the stream's timeline, each with its tokens
    language: str
    looping: bool = False  # the new text compresses like a repetition loop (compression_ratio_threshold)
    silent: bool = False  # openai's silence rule: likely no speech and an unsure text (no words then)


class AttentionStop:
    """Stop rule of a live decode, from where each new token's alignment-heads attention (averaged over
    the heads) peaks: the text ends before the first token that
    - peaks at or after ``limit`` encoder frames, past the audio the buffer holds, or
    - starts a word and peaks more than ``backtrack`` frames before the furthest frame a new word has
      reached: Whisper reads audio left to right, and a jump back is a repeat of what it already said.
    On a buffer that ends mid-speech, and most of all in a reduced encoder window, Whisper goes on after the
    audio with repeats of what it heard or of the prompt ("words. We're just saying some words. We're
    just..."); measured, each repeat's first word attends back to where the original was. Punctuation
    is not judged: it often attends to the window's start; neither is the first new token (see below)."""

    def __init__(self, tokenizer, limit: int, backtrack: int):
        self.tokenizer = tokenizer
        self.limit = limit
        self.backtrack = backtrack
        self.furthest = -1
        self.seen = False  # a new text token was judged (or exempted) already
        self.stopped_at: int | None = None  # the peak frame that stopped the decode

    def __call__(self, token: int, attention: np.ndarray) -> bool:
        peak = int(attention.mean(axis=0).argmax())
        starts_word = self.tokenizer.starts_word(token)
        # The first new token is not judged: base's alignment heads put the first text token's peak near
        # the end of the window (measured: every probe of an utterance start stopped before "So"). A flag,
        # not "a word was seen" (furthest >= 0): in unspaced languages (zh, ja) almost no token starts a
        # word, which left the whole rule, the limit included, off for them.
        judged, self.seen = self.seen, True
        if judged and (peak >= self.limit or (starts_word and peak < self.furthest - self.backtrack)):
            self.stopped_at = peak
            return True
        if starts_word:
            self.furthest = max(self.furthest, peak)
        return False


class BufferDecoder:
    """Decodes buffers for one model (backend + tokenizer); stateless between calls."""

    def __init__(self, backend, tokenizer):
        self.backend = backend
        self.tokenizer = tokenizer

    def decode(self, audio: np.ndarray, offset: float, options: TranscribeOptions, *,
               prefix: Sequence[int] = (), prompt: str | None = None, sample_len: int | None = None
               ) -> BufferHypothesis:
        """``audio`` (16 kHz, at most 30 s, starting at stream time ``offset``) decoded after ``prefix``
        (committed tokens in this audio), prompted with ``prompt`` (earlier committed text), with
        ``options`` (one temperature; ``encoder_tail_s`` picks the window; language None: detected)."""
        steps = WindowSteps(self.backend, self.tokenizer, options)
        mel = log_mel_spectrogram(audio, self.backend.manifest.dims.n_mels, padding=N_SAMPLES)
        content = min(N_FRAMES, mel.shape[-1] - N_FRAMES)
        detect = options.language is None and self.tokenizer.multilingual
        language, _ = steps.language(pad_or_trim(mel[:, :N_FRAMES]) if detect else None)
        tail = options.encoder_tail_s
        window = (mel_window(mel, 0, content, self.backend.manifest.mel_padding) if tail is None
                  else mel[:, :reduced_window_frames(content, tail)])
        state = self.backend.encode(window[None])
        prompt_tokens = steps.prompt(steps.text_tokens(prompt), steps.hotword_tokens())
        greedy = options.beam_size is None and options.temperatures[0] == 0
        stop = AttentionStop(self.tokenizer, content // 2, BACKTRACK_FRAMES) if greedy else None
        result = steps.decode(state, prompt_tokens, language, prefix=list(prefix), sample_len=sample_len,
                              stop_rule=stop)[0]
        new_tokens = [t for t in result.tokens[len(prefix):] if t < self.tokenizer.eot]
        if steps.is_silence(result) or not new_tokens:
            return BufferHypothesis((), language, silent=steps.is_silence(result))
        threshold = options.compression_ratio_threshold
        looping = threshold is not None and compression_ratio(self.tokenizer.decode(new_tokens)) > threshold
        segments, _, _ = steps.split_segments(result, 0.0, content)
        steps.add_words(segments, state, content, language, 0.0, 0.0, attention=result.alignment,
                        token_probs=result.token_probs)
        words = [w for s in segments for w in s.get("words") or []]
        return BufferHypothesis(tuple(self._after_prefix(words, len(prefix), offset)), language, looping)

    def _after_prefix(self, words: list[dict], n_prefix: int, offset: float) -> list[TimedWord]:
        """The timed words made of tokens after the first ``n_prefix``; a word that straddles the prefix
        (punctuation merged into the last committed word) keeps only its new tokens."""
        out, seen = [], 0
        for w in words:
            tokens = list(w.get("tokens") or [])
            new = tokens[max(0, n_prefix - seen):]
            seen += len(tokens)
            if not new:
                continue
            text = w["word"] if len(new) == len(tokens) else self.tokenizer.decode(new)
            probability = w.get("probability")
            out.append(TimedWord(text, offset + w["start"], offset + w["end"], tuple(new),
                                 1.0 if probability is None or np.isnan(probability) else float(probability)))
        return out
