"""Decoding one 30 s window: options, logit filters and the greedy token decoder over the KV cache.

Mirrors openai/whisper's decoding.py: a DecodingTask runs the inference backend step by step, logit
filters shape each step's distribution (suppress lists, blank at the start, timestamp rules) and a
token decoder picks the next token. Language detection reads the language-token probabilities after
<|startoftranscript|>.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DecodingError
from .inference import DecoderState, OnnxBackend
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"
    language: str | None = None  # None: detect (multilingual models) or "en" (English-only models)
    without_timestamps: bool = False
    max_initial_timestamp: float = 1.0  # seconds; bounds the first timestamp of a window
    suppress_blank: bool = True
    max_new_tokens: int | None = None  # default: fill the text context (448 tokens incl. the prefix)


@dataclass(frozen=True)
class DecodingResult:
    tokens: list[int]  # sampled tokens (timestamps included, prefix and <|endoftext|> excluded)
    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float | None
    language_probs: dict[str, float] | None = field(default=None, compare=False)


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    y = x - m
    return y - np.log(np.exp(y).sum(axis=-1, keepdims=True))


class LogitFilter:
    def apply(self, logits: np.ndarray, tokens: list[list[int]]) -> None:
        """Modify logits [B, vocab] in place; ``tokens`` are the sampled tokens so far, per batch item."""
        raise NotImplementedError


class SuppressTokens(LogitFilter):
    def __init__(self, ids: list[int]):
        self.ids = np.array(sorted(set(ids)), dtype=np.int64)

    def apply(self, logits, tokens):
        logits[:, self.ids] = -np.inf


class SuppressBlank(LogitFilter):
    """At the first sampled position, forbid a blank (space) or an immediate <|endoftext|>."""

    def __init__(self, ids: list[int]):
        self.ids = np.array(ids, dtype=np.int64)

    def apply(self, logits, tokens):
        for b, seq in enumerate(tokens):
            if not seq:
                logits[b, self.ids] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """openai/whisper's timestamp rules: timestamps come in pairs, never decrease, the first one is at
    most ``max_initial_index`` steps in, and a timestamp is forced when its total probability beats
    every text token."""

    def __init__(self, tokenizer: Tokenizer, max_initial_index: int | None):
        self.tb = tokenizer.timestamp_begin
        self.eot = tokenizer.eot
        self.no_timestamps = tokenizer.special.no_timestamps
        self.max_initial_index = max_initial_index

    def apply(self, logits, tokens):
        tb = self.tb
        logits[:, self.no_timestamps] = -np.inf
        for b, seq in enumerate(tokens):
            row = logits[b]
            last_ts = len(seq) >= 1 and seq[-1] >= tb
            penultimate_ts = len(seq) < 2 or seq[-2] >= tb
            if last_ts:
                if penultimate_ts:  # a pair closed: text must follow
                    row[tb:] = -np.inf
                else:  # an open timestamp: close it, or end
                    row[: self.eot] = -np.inf
            stamps = [t for t in seq if t >= tb]
            if stamps:
                # Monotonic: never go back; after a closed pair the next start may equal the last end.
                floor = stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1
                row[tb:floor] = -np.inf
            if not seq:
                row[:tb] = -np.inf  # a window starts with a timestamp
                if self.max_initial_index is not None:
                    row[tb + self.max_initial_index + 1:] = -np.inf
        logprobs = log_softmax(logits)
        for b in range(logits.shape[0]):
            ts_logprob = np.logaddexp.reduce(logprobs[b, self.tb:])
            if ts_logprob > logprobs[b, : self.tb].max():
                logits[b, : self.tb] = -np.inf


class GreedyDecoder:
    """Pick the most likely token; accumulate its log-probability."""

    def __init__(self, eot: int):
        self.eot = eot

    def update(self, logits: np.ndarray, tokens: list[list[int]], sum_logprobs: np.ndarray,
               finished: np.ndarray) -> np.ndarray:
        next_tokens = logits.argmax(axis=-1)
        logprobs = log_softmax(logits)
        for b, tok in enumerate(next_tokens):
            if finished[b]:
                continue
            if tok != self.eot:
                tokens[b].append(int(tok))
            sum_logprobs[b] += logprobs[b, tok]
            finished[b] = tok == self.eot
        return next_tokens


class DecodingTask:
    """Decode a batch of windows whose cross-attention K/V are in ``state``."""

    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: DecodingOptions):
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        m = backend.manifest
        self.n_ctx = m.dims.n_text_ctx
        self.time_precision = 0.02  # seconds per timestamp step (30 s / 1500)

    def _filters(self) -> list[LogitFilter]:
        m, tok, opt = self.backend.manifest, self.tokenizer, self.options
        filters: list[LogitFilter] = []
        if opt.suppress_blank:
            filters.append(SuppressBlank(list(m.begin_suppress_tokens) or [220, tok.eot]))
        suppress = set(m.suppress_tokens)
        s = tok.special
        suppress |= {s.translate, s.transcribe, s.sot, s.sot_prev, s.sot_lm}
        if s.no_speech is not None:
            suppress.add(s.no_speech)
        filters.append(SuppressTokens(sorted(suppress)))
        if not opt.without_timestamps:
            max_initial = None
            if opt.max_initial_timestamp is not None:
                max_initial = int(round(opt.max_initial_timestamp / self.time_precision))
            filters.append(ApplyTimestampRules(tok, max_initial))
        return filters

    def detect_language(self, state: DecoderState) -> tuple[list[str], list[dict[str, float]]]:
        tok = self.tokenizer
        if not tok.multilingual:
            return ["en"] * state.batch, [{"en": 1.0}] * state.batch
        sot = np.full((state.batch, 1), tok.special.sot, dtype=np.int64)
        logits, _ = self.backend.decode(sot, state)
        codes = list(tok.special.languages)
        ids = np.array([tok.special.languages[c] for c in codes])
        lang_logits = logits[:, 0, ids]
        probs = np.exp(log_softmax(lang_logits))
        return ([codes[int(i)] for i in probs.argmax(-1)],
                [dict(zip(codes, map(float, p))) for p in probs])

    def run(self, state: DecoderState) -> list[DecodingResult]:
        opt, tok = self.options, self.tokenizer
        language_probs: list[dict[str, float] | None] = [None] * state.batch
        if opt.language is None and tok.multilingual:
            languages, probs = self.detect_language(state)
            language_probs = list(probs)
        else:
            languages = [opt.language or "en"] * state.batch
        prefixes = [tok.sot_sequence(lang, opt.task, not opt.without_timestamps) for lang in languages]
        prefix = np.array(prefixes, dtype=np.int64)  # same length for every item
        sot_index = 0
        max_new = opt.max_new_tokens or (self.n_ctx - prefix.shape[1])
        max_new = min(max_new, self.n_ctx - prefix.shape[1])
        filters = self._filters()
        decoder = GreedyDecoder(tok.eot)
        tokens: list[list[int]] = [[] for _ in range(state.batch)]
        sum_logprobs = np.zeros(state.batch)
        finished = np.zeros(state.batch, dtype=bool)
        no_speech_probs: list[float | None] = [None] * state.batch
        step_input = prefix
        for step in range(max_new):
            logits, state = self.backend.decode(step_input, state)
            if step == 0 and tok.special.no_speech is not None:
                p = np.exp(log_softmax(logits[:, sot_index].astype(np.float64)))
                no_speech_probs = [float(x) for x in p[:, tok.special.no_speech]]
            last = logits[:, -1].astype(np.float64)
            for f in filters:
                f.apply(last, tokens)
            next_tokens = decoder.update(last, tokens, sum_logprobs, finished)
            if finished.all():
                break
            step_input = np.where(finished, tok.eot, next_tokens)[:, None].astype(np.int64)
        results = []
        for b in range(state.batch):
            n = len(tokens[b]) + 1  # count <|endoftext|> as openai does for the average
            results.append(DecodingResult(
                tokens=tokens[b], text=tok.decode(tokens[b]).strip(), language=languages[b],
                avg_logprob=float(sum_logprobs[b] / n), no_speech_prob=no_speech_probs[b],
                language_probs=language_probs[b]))
        return results
