"""Make the loops' prompted decodes leave speech out, on a real model, so their second looks
(tests/test_skipped_start_retry.py, tests/test_gap_fill.py) are tested without waiting for a model to
skip something by itself. Decodes without a prompt (the second looks themselves) are left alone."""

import dataclasses
from typing import Callable

import numpy as np

from edge_asr.window import WindowSteps


def _edited(steps: WindowSteps, result, edit):
    tb = steps.tokenizer.timestamp_begin
    tokens = np.array(result.tokens)
    pairs = np.flatnonzero((tokens[:-1] >= tb) & (tokens[1:] >= tb))
    if len(pairs) == 0:
        return result
    kept = [int(t) for t in edit(tokens, pairs, tb)]
    return dataclasses.replace(result, tokens=kept, text=steps.tokenizer.decode([t for t in kept if t < tb]))


def edit_prompted_decodes(monkeypatch, calls: list[int], edit: Callable[[np.ndarray, np.ndarray, int], list[int]]):
    """Every sequential decode (``decode_with_fallback``) records its prompt length in ``calls``; a
    prompted one's tokens become ``edit(tokens, pairs, timestamp_begin)`` (``pairs``: indices i where
    tokens i and i+1 are both timestamps, i.e. segment boundaries) when it has a segment boundary."""
    real = WindowSteps.decode_with_fallback

    def decode_with_fallback(self, state, prompt, language, **kw):
        result = real(self, state, prompt, language, **kw)
        calls.append(len(prompt))
        return _edited(self, result, edit) if prompt else result

    monkeypatch.setattr(WindowSteps, "decode_with_fallback", decode_with_fallback)


def edit_prompted_batch_decodes(monkeypatch, calls: list[int], edit: Callable[[np.ndarray, np.ndarray, int], list[int]]):
    """The same for the batched loop's decodes (``decode``, every row of a batch): each call records its
    prompt length in ``calls``, and each row of a prompted one is edited."""
    real = WindowSteps.decode

    def decode(self, state, prompt, language, **kw):
        results = real(self, state, prompt, language, **kw)
        calls.append(len(prompt))
        return [_edited(self, r, edit) for r in results] if prompt else results

    monkeypatch.setattr(WindowSteps, "decode", decode)
