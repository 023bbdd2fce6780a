"""Logit filters applied at every decoding step (openai/whisper's LogitFilter family, in numpy).

Each filter edits the [batch, vocab] logits of the next position in place. ``tokens`` holds, per row,
only the tokens sampled so far (no prompt, no start-of-transcript prefix).
"""

from __future__ import annotations

import numpy as np

from .tokenizer import Tokenizer


def logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, in x's precision (-inf for an all -inf row)."""
    m = x.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m)[..., 0]


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - logsumexp(x)[..., None]


class LogitFilter:
    def apply(self, logits: np.ndarray, tokens: list[list[int]]) -> None:
        """Modify logits [B, vocab] in place."""
        raise NotImplementedError

    def reorder(self, source: np.ndarray) -> None:
        """Rows were reselected (beam search): row i now continues row ``source[i]``. Filters that keep
        per-row state (term_boost.TermBoost) follow it here; stateless ones need nothing."""


class SuppressTokens(LogitFilter):
    def __init__(self, ids):
        self.ids = np.array(sorted(set(ids)), dtype=np.int64)

    def apply(self, logits, tokens):
        logits[:, self.ids] = -np.inf


class SuppressBlank(LogitFilter):
    """At the first sampled position, forbid a blank (space) or an immediate <|endoftext|>."""

    def __init__(self, ids):
        self.ids = np.array(ids, dtype=np.int64)

    def apply(self, logits, tokens):
        for b, seq in enumerate(tokens):
            if not seq:
                logits[b, self.ids] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """Timestamps come in pairs, never decrease, the first is at most ``max_initial_index`` steps in,
    and a timestamp is forced when its total probability beats every text token (openai/whisper)."""

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
                # Monotonic; after a closed pair the next start may equal the last end, else strictly later.
                floor = stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1
                row[tb:floor] = -np.inf
            if not seq:
                row[:tb] = -np.inf  # a window starts with a timestamp
                if self.max_initial_index is not None:
                    row[tb + self.max_initial_index + 1:] = -np.inf
        # Total timestamp probability vs the best text token: the softmax normaliser is common to both
        # sides, so the comparison needs only the logits (no log-softmax over the whole vocabulary,
        # which was a third of the per-token Python time).
        ts_total = logsumexp(logits[:, tb:])
        text_max = logits[:, :tb].max(axis=-1)
        logits[ts_total > text_max, :tb] = -np.inf
