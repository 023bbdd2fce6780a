"""Decoding one batch of 30 s windows: options, token decoders and the decoding task.

Mirrors openai/whisper's decoding.py: a DecodingTask runs the inference backend step by step over the
KV cache, logit filters (logit_filters.py) shape each step, and a token decoder (greedy/sampling or
beam search) picks the next tokens. Language detection reads the language-token probabilities after
<|startoftranscript|>.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .constants import TIME_PRECISION
from .errors import DecodingError
from .inference import DecoderState, OnnxBackend
from .logit_filters import ApplyTimestampRules, LogitFilter, SuppressBlank, SuppressTokens, log_softmax, logsumexp
from .term_boost import DEFAULT_BOOST_WEIGHT, TermBoost, term_trie
from .tokenizer import Tokenizer


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"
    language: str | None = None  # None: detect (multilingual models) or "en" (English-only models)
    temperature: float = 0.0
    sample_len: int | None = None  # max tokens to sample; default n_text_ctx // 2 (224)
    best_of: int | None = None  # independent samples when temperature > 0
    beam_size: int | None = None  # beam search when temperature == 0
    patience: float | None = None  # beam search: stop after beam_size * patience finished candidates
    length_penalty: float | None = None  # None: rank by logprob / length; else Google NMT's penalty
    prompt: str | Sequence[int] | None = None  # previous text (<|startofprev|> context)
    prefix: str | Sequence[int] | None = None  # forced start of this window's text
    suppress_tokens: str | Sequence[int] | None = "-1"  # "-1": the model's list + control tokens
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    seed: int = 0  # sampling is deterministic per seed
    boost_terms: Sequence[str] = ()  # "TERM" or "TERM:WEIGHT": logit bonus on tokens continuing a term
    boost_weight: float = DEFAULT_BOOST_WEIGHT  # the terms' weight when none is given (term_boost.py)

    def __post_init__(self):
        if self.beam_size is not None and self.best_of is not None:
            raise DecodingError("best_of applies to sampling and beam_size to beam search: give one, not both")
        if self.temperature == 0 and self.best_of is not None:
            raise DecodingError("best_of needs temperature > 0 (it picks the best of several samples)")
        if self.patience is not None and self.beam_size is None:
            raise DecodingError("patience applies to beam search: give beam_size too")
        if self.length_penalty is not None and not 0 <= self.length_penalty <= 1:
            raise DecodingError("length_penalty must be between 0 and 1")
        if self.beam_size is not None and self.beam_size < 1 or self.best_of is not None and self.best_of < 1:
            raise DecodingError("beam_size and best_of must be at least 1")


@dataclass(frozen=True)
class DecodingResult:
    tokens: list[int]  # the forced prefix, then the sampled tokens (timestamps included; prompt and
    # <|endoftext|> excluded)
    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float | None
    temperature: float
    compression_ratio: float
    language_probs: dict[str, float] | None = field(default=None, compare=False)
    # With a stop rule: the alignment heads' cross-attention [heads, len(tokens) + 1, frames] of the
    # positions that predicted each token and the end (<|endoftext|>, or the token the rule refused):
    # what word timing needs, so no second decoder pass is run for it.
    alignment: np.ndarray | None = field(default=None, compare=False, repr=False)
    # With a stop rule: the probability of each token (1.0 for the forced prefix), for word confidence.
    token_probs: np.ndarray | None = field(default=None, compare=False, repr=False)


def compression_ratio(text: str) -> float:
    """Bytes / zlib-compressed bytes: repetition loops compress well (openai's hallucination signal)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


class TokenDecoder:
    def reset(self) -> None:
        pass

    def update(self, logits: np.ndarray, tokens: list[list[int]], sum_logprobs: np.ndarray):
        """Pick next tokens for every row; return (next tokens [rows], source row of each row or None, done)."""
        raise NotImplementedError

    def finalize(self, tokens: list[list[int]], sum_logprobs: np.ndarray) -> tuple[list[list[list[int]]], list[list[float]]]:
        """Candidate sequences and their sum-logprobs, per audio."""
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """Argmax at temperature 0, else sampling from softmax(logits / temperature)."""

    def __init__(self, temperature: float, eot: int, n_group: int, rng: np.random.Generator):
        self.temperature = temperature
        self.eot = eot
        self.n_group = n_group
        self.rng = rng

    def update(self, logits, tokens, sum_logprobs):
        if self.temperature == 0:
            next_tokens = logits.argmax(axis=-1)
        else:  # Gumbel-max: a categorical sample per row, vectorised
            gumbel = -np.log(-np.log(self.rng.uniform(1e-20, 1.0, logits.shape)))
            next_tokens = (logits / self.temperature + gumbel).argmax(axis=-1)
        # Only the picked tokens' log-probabilities are needed: logit - logsumexp, not a full log-softmax.
        logprobs = logits[np.arange(len(next_tokens)), next_tokens] - logsumexp(logits)
        for b, tok in enumerate(next_tokens):
            if tokens[b] and tokens[b][-1] == self.eot:
                next_tokens[b] = self.eot
                continue
            sum_logprobs[b] += logprobs[b]
            tokens[b].append(int(tok))
        done = all(seq and seq[-1] == self.eot for seq in tokens)
        return next_tokens, None, done

    def finalize(self, tokens, sum_logprobs):
        groups, scores = [], []
        for i in range(0, len(tokens), self.n_group):
            groups.append([list(t) for t in tokens[i:i + self.n_group]])
            scores.append([float(s) for s in sum_logprobs[i:i + self.n_group]])
        return groups, scores


class BeamSearchDecoder(TokenDecoder):
    """openai/whisper's beam search: keep beam_size live hypotheses per audio, collect finished ones until
    beam_size * patience are done."""

    def __init__(self, beam_size: int, eot: int, patience: float | None):
        self.beam_size = beam_size
        self.eot = eot
        self.patience = patience or 1.0
        self.max_candidates = round(beam_size * self.patience)
        if self.max_candidates <= 0:
            raise DecodingError(f"beam_size * patience must be at least 1 (got {beam_size} * {self.patience})")
        self.finished: list[dict[tuple, float]] | None = None

    def reset(self):
        self.finished = None

    def update(self, logits, tokens, sum_logprobs):
        n_audio = len(tokens) // self.beam_size
        if self.finished is None:
            self.finished = [{} for _ in range(n_audio)]
        logprobs = log_softmax(logits)
        next_tokens, source, new_tokens, new_sums = [], [], [], []
        for i in range(n_audio):
            scores, sources, finished = {}, {}, {}
            for j in range(self.beam_size):
                idx = i * self.beam_size + j
                prefix = tokens[idx]
                top = np.argpartition(-logprobs[idx], self.beam_size)[: self.beam_size + 1]
                for tok in top[np.argsort(-logprobs[idx, top])]:
                    seq = tuple(prefix + [int(tok)])
                    scores[seq] = float(sum_logprobs[idx] + logprobs[idx, tok])
                    sources[seq] = idx
            saved = 0
            for seq in sorted(scores, key=scores.get, reverse=True):
                if seq[-1] == self.eot:
                    finished[seq] = scores[seq]
                else:
                    new_sums.append(scores[seq])
                    new_tokens.append(list(seq))
                    source.append(sources[seq])
                    saved += 1
                    if saved == self.beam_size:
                        break
            for seq in sorted(finished, key=finished.get, reverse=True):
                if len(self.finished[i]) >= self.max_candidates:
                    break
                self.finished[i][seq] = finished[seq]
        tokens[:] = new_tokens
        sum_logprobs[:] = new_sums
        next_tokens = np.array([seq[-1] for seq in new_tokens], dtype=np.int64)
        done = all(len(f) >= self.max_candidates for f in self.finished)
        return next_tokens, np.array(source, dtype=np.int64), done

    def finalize(self, tokens, sum_logprobs):
        groups, scores = [], []
        for i, finished in enumerate(self.finished or [{} for _ in range(len(tokens) // self.beam_size)]):
            if len(finished) < self.beam_size:  # add the best live hypotheses when too few finished
                live = sorted(range(i * self.beam_size, (i + 1) * self.beam_size), key=lambda r: -sum_logprobs[r])
                for r in live:
                    finished.setdefault(tuple(tokens[r] + [self.eot]), float(sum_logprobs[r]))
                    if len(finished) >= self.beam_size:
                        break
            groups.append([list(seq) for seq in finished])
            scores.append(list(finished.values()))
        return groups, scores


def rank(sequences: list[list[int]], sum_logprobs: list[float], length_penalty: float | None) -> int:
    """Index of the best candidate: highest sum-logprob over (length, or Google NMT's length penalty)."""
    best, best_score = 0, -np.inf
    for i, (seq, lp) in enumerate(zip(sequences, sum_logprobs)):
        n = len(seq)
        penalty = n if length_penalty is None else ((5 + n) / 6) ** length_penalty
        score = lp / max(penalty, 1e-9)
        if score > best_score:
            best, best_score = i, score
    return best


class DecodingTask:
    """Decode a batch of windows whose cross-attention K/V are in ``state``."""

    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: DecodingOptions):
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        self.n_ctx = backend.manifest.dims.n_text_ctx
        self.time_precision = TIME_PRECISION  # seconds per timestamp step (30 s / 1500)

    def _encode_text(self, value: str | Sequence[int]) -> list[int]:
        if isinstance(value, str):
            return self.tokenizer.encode(" " + value.strip())
        return [int(t) for t in value]

    def _initial_tokens(self, language: str) -> tuple[list[int], int, list[int]]:
        """(prompt + start-of-transcript sequence, index of <|startoftranscript|>, forced prefix tokens).

        The prefix is fed as if it had been sampled (after <|0.00|> when timestamps are on, as
        faster-whisper does), so the timestamp rules see a well-formed start and the result keeps it."""
        opt, tok = self.options, self.tokenizer
        tokens = tok.sot_sequence(language, opt.task, not opt.without_timestamps)
        forced: list[int] = []
        if opt.prefix:
            forced = self._encode_text(opt.prefix)[-(self.n_ctx // 2):]
            if not opt.without_timestamps:
                forced = [tok.timestamp_begin] + forced
        sot_index = 0
        if opt.prompt:
            prompt = self._encode_text(opt.prompt)[-(self.n_ctx // 2 - 1):]
            tokens = [tok.special.sot_prev] + prompt + tokens
            sot_index = len(prompt) + 1
        return tokens, sot_index, forced

    def _suppress_ids(self) -> list[int]:
        opt, m, s = self.options, self.backend.manifest, self.tokenizer.special
        given = opt.suppress_tokens
        if given is None or given == "":
            return []
        if isinstance(given, str):
            ids = [int(t) for t in given.split(",") if t.strip()]
        else:
            ids = [int(t) for t in given]
        if -1 in ids:
            ids = [t for t in ids if t >= 0] + list(m.suppress_tokens)
        ids += [s.translate, s.transcribe, s.sot, s.sot_prev, s.sot_lm]
        if s.no_speech is not None:
            ids.append(s.no_speech)
        return sorted(set(ids))

    def _filters(self, language: str | None = None) -> list[LogitFilter]:
        m, tok, opt = self.backend.manifest, self.tokenizer, self.options
        filters: list[LogitFilter] = []
        if opt.suppress_blank:
            filters.append(SuppressBlank(list(m.begin_suppress_tokens) or [220, tok.eot]))
        suppress = self._suppress_ids()
        if suppress:
            filters.append(SuppressTokens(suppress))
        if opt.boost_terms:
            # After suppression (a suppressed token stays -inf) and before the timestamp rules, which then
            # weigh the boosted text against the timestamps and keep their structure either way.
            filters.append(TermBoost(term_trie(tok, tuple(opt.boost_terms), opt.boost_weight), tok, language))
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
        probs = np.exp(log_softmax(logits[:, 0, ids].astype(np.float64)))
        return ([codes[int(i)] for i in probs.argmax(-1)], [dict(zip(codes, map(float, p))) for p in probs])

    def run(self, state: DecoderState, stop_rule: Callable[[int, np.ndarray], bool] | None = None
            ) -> list[DecodingResult]:
        """Decode every window of ``state``. ``stop_rule`` (greedy decoding of one window only) sees each
        new token and the alignment heads' cross-attention [heads, frames] of the position that picked it,
        and returns True to end the text before that token (live decoding stops where the model attends
        past the audio it has, or back to audio it already transcribed)."""
        opt, tok = self.options, self.tokenizer
        if stop_rule is not None and (state.batch != 1 or opt.beam_size is not None or (opt.best_of or 1) > 1):
            raise DecodingError("an attention stop rule needs greedy decoding of one window")
        n_audio = state.batch
        language_probs: list[dict[str, float] | None] = [None] * n_audio
        if opt.language is None and tok.multilingual:
            languages, probs = self.detect_language(state)
            language_probs = list(probs)
        else:
            languages = [opt.language or "en"] * n_audio
        if len(set(languages)) > 1:  # one prefix for the batch: decode mixed languages one by one
            raise DecodingError("windows of one batch must share a language; pass language=")
        initial, sot_index, forced = self._initial_tokens(languages[0])
        sample_len = opt.sample_len or self.n_ctx // 2
        sample_len = min(sample_len, self.n_ctx - len(initial) - len(forced))
        if sample_len <= 0:
            raise DecodingError("the prompt and prefix leave no room to decode in the text context")
        if opt.beam_size is not None and opt.temperature == 0:
            n_group = opt.beam_size
            decoder: TokenDecoder = BeamSearchDecoder(opt.beam_size, tok.eot, opt.patience)
        else:
            n_group = opt.best_of or 1 if opt.temperature > 0 else 1
            decoder = GreedyDecoder(opt.temperature, tok.eot, n_group, np.random.default_rng(opt.seed))
        state = self.backend.repeat(state, n_group)
        rows = n_audio * n_group
        tokens: list[list[int]] = [list(forced) for _ in range(rows)]
        sum_logprobs = np.zeros(rows)
        filters = self._filters(languages[0])
        no_speech_probs: list[float | None] = [None] * n_audio
        step_input = np.array([initial + forced] * rows, dtype=np.int64)
        want_no_speech = tok.special.no_speech is not None
        attention = None
        rows: list[np.ndarray] = []  # attention of the positions that predict the prefix and new tokens
        picked: list[float] = []  # probability of each sampled token (stop rule: greedy, one row)
        for step in range(sample_len):
            logits_at = [sot_index, step_input.shape[1] - 1] if step == 0 and want_no_speech else None
            if stop_rule is None:
                logits, state = self.backend.decode(step_input, state, logits_at)
            else:
                logits, state, attention = self.backend.decode_with_alignment(step_input, state, logits_at)
                # Step 0 fed the prompt, start sequence and prefix: keep from the last start token on.
                rows.append(attention[0, :, len(initial) - 1:] if step == 0 else attention[0])
            if logits_at is not None:
                # Logits at <|startoftranscript|> (no-speech probability) and at the last prompt token.
                p = np.exp(log_softmax(logits[::n_group, 0].astype(np.float64)))
                no_speech_probs = [float(x) for x in p[:, tok.special.no_speech]]
            # float32, as openai/whisper's filters and log-softmax run (float64 doubled the per-token
            # numpy time); a copy, since the filters edit it in place.
            last = np.array(logits[:, -1], dtype=np.float32)
            live = [seq[:-1] if seq and seq[-1] == tok.eot else seq for seq in tokens]
            for f in filters:
                f.apply(last, live)
            next_tokens, source, done = decoder.update(last, tokens, sum_logprobs)
            if stop_rule is not None:
                picked.append(float(np.exp(last[0, next_tokens[0]] - logsumexp(last)[0])))
            if attention is not None and tokens[0][-1] != tok.eot and stop_rule(tokens[0][-1], attention[0, :, -1]):
                tokens[0][-1] = tok.eot  # the attention of the position that picked it says where it is
                done = True
            if source is not None:
                state = self.backend.reorder(state, source)
                for f in filters:
                    f.reorder(source)
            if done:
                break
            step_input = next_tokens[:, None].astype(np.int64)
        groups, scores = decoder.finalize(tokens, sum_logprobs)
        results = []
        for i in range(n_audio):
            candidates = [[t for t in seq if t != tok.eot] for seq in groups[i]]
            best = rank(candidates, scores[i], opt.length_penalty)
            seq = candidates[best]
            text = tok.decode(seq).strip()
            alignment = token_probs = None
            if rows:
                token_probs = np.array([1.0] * len(forced) + picked, dtype=np.float64)[:len(seq)]
                alignment = np.concatenate(rows, axis=1)[:, :len(seq) + 1]
                if alignment.shape[1] == len(seq):  # stopped by sample_len: no end row, repeat the last
                    alignment = np.concatenate([alignment, alignment[:, -1:]], axis=1)
            results.append(DecodingResult(
                tokens=seq, text=text, language=languages[i],
                avg_logprob=float(scores[i][best] / (len(seq) + 1)), no_speech_prob=no_speech_probs[i],
                temperature=opt.temperature, compression_ratio=compression_ratio(text),
                language_probs=language_probs[i], alignment=alignment,
                token_probs=token_probs))
        return results
