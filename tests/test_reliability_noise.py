"""Silence, noise and music (issue 18): no words, and little compute. The full 10-minute set (silence,
dither, white/pink noise at three levels, hum, chords, sweeps, a melody, applause; default options and
with VAD; tiny.en and base) is `edge-asr bench reliability` (benchmarks/results/reliability-*.json); here
the rule that made noise cheap is checked on its own, and on the two signals that cost most before it
(applause and pink noise: the fallback ladder decoded up to 224 tokens x 5 samples per rung, ~1x real
time on two cores for no words)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asr.decoding import DecodingResult
from edge_asr.options import TranscribeOptions
from edge_asr.window import WindowSteps


def result(no_speech: float, ratio: float, logprob: float, text: str = "la la la la") -> DecodingResult:
    return DecodingResult(tokens=[1, 2, 3], text=text, language="en", avg_logprob=logprob,
                          no_speech_prob=no_speech, temperature=0.0, compression_ratio=ratio)


class _Steps(WindowSteps):
    def __init__(self, options):  # the rules only read the options
        self.options = options


def test_noise_hallucination_rule():
    steps = _Steps(TranscribeOptions())
    assert steps.is_noise_hallucination(result(0.9, 16.0, -0.2))  # loops while judging it non-speech
    assert steps.is_noise_hallucination(result(0.7, 1.2, -0.5, ". . . ."))  # no word at all
    assert not steps.is_noise_hallucination(result(0.5, 16.0, -0.2))  # the model hears speech: ladder as before
    assert not steps.is_noise_hallucination(result(0.9, 1.5, -0.3, "Thank you."))  # words, no loop
    assert not _Steps(TranscribeOptions(no_speech_threshold=None)).is_noise_hallucination(result(0.9, 16.0, -0.2))
    # openai's rule alone keeps the loop (confident) and asks for a fallback (repetitive)
    assert not steps.is_silence(result(0.9, 16.0, -0.2)) and steps.needs_fallback(result(0.9, 16.0, -0.2))


def _signals():
    from edge_asr_bench.reliability import applause, pink

    rng = np.random.default_rng(0)
    return [("applause", np.clip(applause(rng, 30), -1, 1).astype(np.float32)),
            ("pink noise", np.clip(pink(rng, 30), -1, 1).astype(np.float32))]


@pytest.mark.parametrize("name, signals", [("tiny.en", ("applause", "pink noise")), ("base", ("applause",))])
def test_applause_and_pink_noise_give_no_words_cheaply(real_model, name, signals):
    from edge_asr_bench.reliability import _Attempts, count_words

    model = real_model(name)
    for signal, audio in _signals():
        if signal not in signals:
            continue
        with _Attempts() as attempts:
            text = model.transcribe(audio).text
        assert count_words(text) <= 1, (signal, text)
        assert not any(t > 0 for t in attempts.temperatures), (signal, attempts.temperatures)  # no fallback ladder
