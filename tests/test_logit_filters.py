"""The per-token logit filters against their definitions (openai/whisper's, on log-probabilities)."""

from __future__ import annotations

import types

import numpy as np

from edge_asr.logit_filters import ApplyTimestampRules, log_softmax, logsumexp


def _reference_force_timestamp(logits: np.ndarray, tb: int) -> np.ndarray:
    """openai/whisper: a timestamp is forced when the total timestamp probability beats every text token."""
    logprobs = log_softmax(logits.astype(np.float64))
    return np.logaddexp.reduce(logprobs[:, tb:], axis=-1) > logprobs[:, :tb].max(axis=-1)


def test_logsumexp_matches_the_definition_and_handles_all_masked_rows():
    x = np.random.default_rng(0).normal(0, 5, (3, 1000)).astype(np.float32)
    x[2] = -np.inf
    got = logsumexp(x)
    assert np.allclose(got[:2], np.log(np.exp(x[:2].astype(np.float64)).sum(-1)), atol=1e-4)
    assert got[2] == -np.inf


def test_timestamp_forcing_equals_openai_rule_without_a_full_log_softmax():
    tb = 900
    tokenizer = types.SimpleNamespace(timestamp_begin=tb, eot=800, special=types.SimpleNamespace(no_timestamps=899))
    rule = ApplyTimestampRules(tokenizer, max_initial_index=None)
    rng = np.random.default_rng(1)
    forced_rows = free_rows = 0
    for _ in range(200):
        logits = rng.normal(0, 3, (4, 1000)).astype(np.float32)
        logits[:, tb:] += rng.normal(0, 3)  # shift timestamps up or down so both outcomes occur
        tokens = [[5, 6], [tb + 3, 7], [], [tb + 1, 10, 11]]
        got = logits.copy()
        rule.apply(got, tokens)
        # The same masks the pair/monotonic rules set for these rows, then openai's decision on them.
        check = logits.copy()
        check[:, 899] = -np.inf
        check[2, :tb] = -np.inf  # an empty row starts with a timestamp
        check[1, tb:tb + 4] = -np.inf  # monotonic after <|0.06|>
        check[3, tb:tb + 2] = -np.inf
        want = _reference_force_timestamp(check, tb)
        forced = np.isneginf(got[:, :tb]).all(axis=-1)
        assert (forced == (want | np.isneginf(check[:, :tb]).all(axis=-1))).all()
        forced_rows += int(want[[0, 1, 3]].sum())
        free_rows += int((~want[[0, 1, 3]]).sum())
    assert forced_rows > 0 and free_rows > 0  # both outcomes were exercised
