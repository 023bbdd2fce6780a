"""The sequential loop's retry of a window whose prompted decode skipped the speech at its start (issue 18).

Conditioned on the previous text, Whisper sometimes leaves out a window's first sentence yet still opens
with <|0.00|>; only the word times show the skip. Here the prompted decode is made to do exactly that (its
first sentence removed, the rest kept, on the real tiny.en and the bundled sample), so the test does not
depend on when a model happens to skip."""

import pytest

from decode_edits import edit_prompted_decodes
from edge_asr import load_model


def _skipping(monkeypatch, calls):
    # <|0.00|>, then everything after the first segment's closing timestamp
    edit_prompted_decodes(monkeypatch, calls, lambda tokens, pairs, tb: [tb] + list(tokens[pairs[0] + 2:]))


@pytest.fixture(scope="module")
def tiny(tiny_en_dir):
    return load_model(tiny_en_dir)


def test_a_skipped_first_sentence_is_decoded_again_without_the_prompt(tiny, sample_audio, monkeypatch):
    plain = tiny.transcribe(sample_audio, language="en", word_timestamps=True)
    first_sentence = plain.segments[0].text
    calls: list[int] = []
    _skipping(monkeypatch, calls)
    out = tiny.transcribe(sample_audio, language="en", word_timestamps=True, initial_prompt="Hello.")
    assert 0 in calls, "the retry without the prompt never ran"
    assert first_sentence in out.text
    assert out.segments[0].words[0].start < 1.0


def test_no_retry_without_word_times_or_previous_text(tiny, sample_audio, monkeypatch):
    first_sentence = tiny.transcribe(sample_audio, language="en").segments[0].text
    calls: list[int] = []
    _skipping(monkeypatch, calls)
    tiny.transcribe(sample_audio, language="en", word_timestamps=True)  # one window, no previous text
    assert calls == [0]
    calls.clear()
    out = tiny.transcribe(sample_audio, language="en", initial_prompt="Hello.")  # no word times: no check
    assert len(calls) == 1 and calls[0] > 0
    assert first_sentence not in out.text  # the skip stands: the check needs word times
