"""Word timing confined to VAD speech (issue 18): the DTW runs over the frames VAD heard speech in, so a
word is never stretched over a pause. Synthetic attention on the committed tiny model's tokenizer: the
token and frame choices are exact, no model output involved."""

import numpy as np
import pytest

from edge_asr import load_model
from edge_asr.timing import speech_frames, words_from_attention

SR = 16000
FRAMES = 200  # encoder frames (4 s); the window holds 2 * FRAMES mel frames


@pytest.fixture(scope="module")
def tok(runtime_model_dir):
    return load_model(runtime_model_dir).tokenizer


def test_speech_frames_marks_every_encoder_frame_a_chunk_touches():
    # encoder frames are 320 samples (20 ms); the window starts at sample 1600 (frame 0 = 1600-1920)
    chunks = [{"start": 1600 + 320 * 10, "end": 1600 + 320 * 20 + 1}, {"start": 0, "end": 1000},
              {"start": 1600 + 320 * 195, "end": 10 ** 9}]
    mask = speech_frames(chunks, 1600, 2 * FRAMES)
    assert mask.shape == (FRAMES,)
    assert np.flatnonzero(mask).tolist() == list(range(10, 21)) + list(range(195, 200))
    assert not speech_frames([], 0, 2 * FRAMES).any()


# "one" at 0.2-0.8 s, "two" at 0.9-1.5 s, 1.5 s of pause, "three" at 3.0-3.6 s, <|endoftext|> after.
# Spans of several frames per token: the median filter (7 frames) removes narrower peaks.
WORD_SPANS = [(10, 40), (45, 75), (150, 180)]
EOT_SPAN = (185, 200)


def _tokens_and_attention(tok) -> tuple[list[int], np.ndarray]:
    """Tokens of " one two three" and attention [1 head, tokens + 1, FRAMES] in which each word's tokens
    attend, in turn, to equal parts of its span (rows sum to 1, as after the graph's softmax)."""
    words, word_tokens = tok.split_to_word_tokens(tok.encode(" one two three") + [tok.eot], "en")
    assert [w.strip() for w in words[:-1]] == ["one", "two", "three"]
    rows = []
    for (a, b), ids in zip(WORD_SPANS, word_tokens[:-1]):
        edges = np.linspace(a, b, len(ids) + 1).round().astype(int)
        rows += [(edges[k], max(edges[k + 1], edges[k] + 1)) for k in range(len(ids))]
    att = np.full((1, len(rows) + 1, FRAMES), 1e-4)
    for row, (a, b) in enumerate(rows + [EOT_SPAN]):
        att[0, row, a:b] = 1.0
    return [t for ids in word_tokens[:-1] for t in ids], att / att.sum(axis=-1, keepdims=True)


def test_a_pause_between_words_is_given_to_no_word_when_vad_heard_it(tok):
    tokens, attention = _tokens_and_attention(tok)
    free = words_from_attention(tok, tokens, attention, 2 * FRAMES, "en")
    # openai's rule: a word ends where the next one starts, so one of "two"/"three" holds the pause
    assert max(w.end - w.start for w in free) > 0.9

    speech = np.zeros(FRAMES, dtype=bool)
    speech[5:80] = speech[145:200] = True  # VAD: speech 0.1-1.6 s and 2.9-4.0 s (padded chunks)
    held = words_from_attention(tok, tokens, attention, 2 * FRAMES, "en", speech=speech)
    assert [w.word for w in held] == [w.word for w in free]
    one, two, three = held
    assert 0.1 <= one.start <= 0.3 and 0.8 <= one.end <= 0.95
    assert 0.8 <= two.start <= 0.95 and two.end <= 1.6  # ends at the edge of the speech at the latest
    assert 2.9 <= three.start <= 3.05 and three.end <= 3.75
    assert all(w.end <= 1.6 or w.start >= 2.9 for w in held)  # nothing timed in the pause


def test_vad_that_heard_less_than_a_frame_per_token_is_ignored(tok):
    tokens, attention = _tokens_and_attention(tok)
    free = words_from_attention(tok, tokens, attention, 2 * FRAMES, "en")
    speech = np.zeros(FRAMES, dtype=bool)
    speech[50:50 + len(tokens)] = True  # a frame per token, not more: speech VAD missed, not a pause
    same = words_from_attention(tok, tokens, attention, 2 * FRAMES, "en", speech=speech)
    assert [(w.start, w.end) for w in same] == [(w.start, w.end) for w in free]
    everywhere = words_from_attention(tok, tokens, attention, 2 * FRAMES, "en", speech=np.ones(FRAMES, bool))
    assert [(w.start, w.end) for w in everywhere] == [(w.start, w.end) for w in free]
