"""The sequential loop's second look at speech no word covers (issue 18).

Whisper sometimes leaves a sentence out of the middle of a window while timing the words around it
right. Here the prompted decode is made to do exactly that (its second sentence removed, on the real
tiny.en and the bundled sample), so the test does not depend on when a model happens to skip."""

import pytest

from decode_edits import edit_prompted_batch_decodes, edit_prompted_decodes
from edge_asr import load_model
from edge_asr.scoring import word_error_rate
from edge_asr.gap_fill import uncovered_speech

SR = 16000


def test_uncovered_speech_is_vad_speech_minus_widened_words():
    chunks = [{"start": 0, "end": 10 * SR}, {"start": 12 * SR, "end": 13 * SR}]
    words = [(0.5, 1.0), (1.0, 1.5), (6.0, 6.5)]
    # 0-1.9 s covered (slack 0.4 s), 1.9-5.6 s not, 5.6-6.9 covered, 6.9-10 not; 12-13 s not (1 s: kept)
    gaps = uncovered_speech(chunks, words, 0, 14 * SR)
    assert [(round(a / SR, 1), round(b / SR, 1)) for a, b in gaps] == [(1.9, 5.6), (6.9, 10.0), (12.0, 13.0)]
    # only the seek range counts, and pieces under a second are not worth a decode
    assert [(a / SR, b / SR) for a, b in uncovered_speech(chunks, words, 0, 6 * SR)] == [(1.9, 5.6)]
    assert uncovered_speech(chunks, words, 6 * SR, 7.5 * SR) == []
    assert uncovered_speech([], words, 0, 14 * SR) == []


def _drop_second_segment(tokens, pairs, tb):
    # the first segment, then everything after the second one's closing timestamp
    return list(tokens[:pairs[0] + 1]) + list(tokens[pairs[1] + 1:]) if len(pairs) >= 2 else list(tokens)


def _dropping_middle_sentence(monkeypatch, calls):
    edit_prompted_decodes(monkeypatch, calls, _drop_second_segment)


@pytest.fixture(scope="module")
def tiny(tiny_en_dir):
    return load_model(tiny_en_dir)


def test_a_sentence_left_out_mid_window_is_decoded_on_its_own(tiny, sample_audio, monkeypatch):
    plain = tiny.transcribe(sample_audio, language="en", word_timestamps=True)
    assert len(plain.segments) >= 3
    middle = plain.segments[1].text
    calls: list[int] = []
    _dropping_middle_sentence(monkeypatch, calls)
    without = tiny.transcribe(sample_audio, language="en", initial_prompt="Hello.")  # no word times: no check
    assert middle not in without.text and 0 not in calls
    out = tiny.transcribe(sample_audio, language="en", word_timestamps=True, initial_prompt="Hello.")
    assert 0 in calls, "the gap was never decoded"
    assert calls.count(0) == 1  # one gap, one decode of it
    starts = [s.start for s in out.segments]
    assert starts == sorted(starts)
    # the sentence is back, between its neighbours, once (decoded alone: its wording may differ a little)
    assert len(out.segments) == len(plain.segments)
    assert [s.text for i, s in enumerate(out.segments) if i != 1] == [s.text for s in without.segments]
    gap_segment = out.segments[1]
    assert word_error_rate([middle], [gap_segment.text]) <= 0.25
    assert out.segments[0].words[-1].end - 0.5 <= gap_segment.words[0].start
    assert gap_segment.words[-1].end <= out.segments[2].words[0].start + 0.5


def test_batched_windows_get_the_same_second_look(tiny, sample_audio, monkeypatch):
    # The bundled sample is one batched window (VAD merges its sentences); prompted with an initial
    # prompt, its decode is made to leave out the middle sentence. The gap's decode has no prompt.
    plain = tiny.transcribe(sample_audio, language="en", word_timestamps=True, batch_size=2)
    assert len(plain.segments) >= 3
    middle = plain.segments[1].text
    calls: list[int] = []
    edit_prompted_batch_decodes(monkeypatch, calls, _drop_second_segment)
    out = tiny.transcribe(sample_audio, language="en", word_timestamps=True, batch_size=2, initial_prompt="Hello.")
    assert 0 in calls, "the gap was never decoded"
    starts = [s.start for s in out.segments]
    assert starts == sorted(starts)
    texts = [s.text for s in out.segments]
    assert len(texts) == len(plain.segments)
    assert word_error_rate([middle], [texts[1]]) <= 0.25
    assert out.segments[0].words[-1].end - 0.5 <= out.segments[1].words[0].start
    assert out.segments[1].words[-1].end <= out.segments[2].words[0].start + 0.5
