"""Make the sequential loop's prompted decodes leave speech out, on a real model, so the loop's second
looks (tests/test_skipped_start_retry.py, tests/test_gap_fill.py) are tested without waiting for a
model to skip something by itself."""

import dataclasses
from typing import Callable

import numpy as np

from edge_asr.window import WindowSteps


def edit_prompted_decodes(monkeypatch, calls: list[int], edit: Callable[[np.ndarray, np.ndarray, int], list[int]]):
    """Every decode records its prompt length in ``calls``; a prompted one's tokens become
    ``edit(tokens, pairs, timestamp_begin)`` (``pairs``: indices i where tokens i and i+1 are both
    timestamps, i.e. segment boundaries) when it has a segment boundary. Unprompted decodes (the loop's
    own second looks) are left as they are."""
    real = WindowSteps.decode_with_fallback

    def decode_with_fallback(self, state, prompt, language, **kw):
        result = real(self, state, prompt, language, **kw)
        calls.append(len(prompt))
        tb = self.tokenizer.timestamp_begin
        tokens = np.array(result.tokens)
        pairs = np.flatnonzero((tokens[:-1] >= tb) & (tokens[1:] >= tb))
        if not prompt or len(pairs) == 0:
            return result
        kept = [int(t) for t in edit(tokens, pairs, tb)]
        return dataclasses.replace(result, tokens=kept, text=self.tokenizer.decode([t for t in kept if t < tb]))

    monkeypatch.setattr(WindowSteps, "decode_with_fallback", decode_with_fallback)
