"""The 60-minute reliability benchmark's accounting (benchmarks/long_session.account): which clips were
lost, which words were invented in pauses. Pure logic: no model."""

import numpy as np
import pytest

from benchmarks.long_session import Placed, account, build_timeline


def _placed():
    return [Placed("a", "In eighteen thirteen", 10.0, 11.5), Placed("b", "the red fox has read many books", 20.0, 24.0),
            Placed("c", "ask not what your country can do", 40.0, 44.0)]


def _pauses():
    return [(0.0, 10.0), (11.5, 20.0), (24.0, 40.0), (44.0, 60.0)]


def test_late_word_times_keep_the_clip_and_invent_nothing():
    # "1813," timed 1.1 s after clip a ends (DTW drift on a short clip): still clip a's word
    words = [(10.1, 10.3, " In"), (12.6, 13.0, " 1813,"),
             *[(20.2 + 0.5 * i, 20.6 + 0.5 * i, " " + w) for i, w in enumerate("the red fox has read many books".split())],
             *[(40.2 + 0.5 * i, 40.6 + 0.5 * i, " " + w) for i, w in enumerate("ask not what your country can do".split())]]
    out = account(words, _placed(), _pauses(), 60.0)
    assert out["clips_lost"] == 0 and out["unaccounted_s"] == 0.0
    assert out["words_in_pauses"] == 0
    assert out["timeline_labelled"] and out["wer"] == 0.0


def test_missing_clip_is_lost_and_invented_words_are_counted():
    words = [(10.1, 10.3, " In"), (10.4, 11.0, " 1813."),
             (30.0, 30.4, " Thank"), (30.5, 30.8, " you."),  # in a long pause, 6 s from clip b
             (40.2, 40.6, " ask"), (40.7, 41.0, " not")]  # clip c: 2 of 7 words
    out = account(words, _placed(), _pauses(), 60.0)
    assert [c["clip"] for c in out["lost"]] == ["b", "c"]
    assert out["unaccounted_s"] == 8.0
    assert [w["word"] for w in out["pause_words"]] == [" Thank", " you."]


def test_misrecognized_clip_is_covered_but_listed_poor():
    words = [(40.2 + 0.5 * i, 40.6 + 0.5 * i, " " + w) for i, w in enumerate("ass knot watt you're country can do".split())]
    out = account(words, _placed()[2:], [(0.0, 40.0), (44.0, 60.0)], 60.0)
    assert out["clips_lost"] == 0 and out["clips_poor"] == 1


def test_timeline_is_clips_and_pauses_only():
    rng = np.random.default_rng(0)
    clips = [(f"c{i}", "word " * 3, rng.normal(0, 0.1, 16000 * (2 + i)).astype(np.float32)) for i in range(3)]
    audio, placed, pauses = build_timeline(clips, 2, 5)
    speech = sum(p.end - p.start for p in placed)
    assert abs(speech + sum(e - s for s, e in pauses) - audio.size / 16000) < 1e-6
    assert np.abs(audio[-16000:]).max() > 0  # the tail is dither like every pause, not digital zero


def test_rss_floor_growth_reads_the_trend_not_a_swing():
    from benchmarks.long_session import _floor_growth, _growth

    swinging = [700.0, 760.0] * 30  # batched: each sample lands on a swing high or low, no leak
    assert _growth(swinging) > 5 and abs(_floor_growth(swinging)) < 0.01
    leaking = [500.0 + 2 * m for m in range(60)]  # +2 MB a minute
    assert _floor_growth(leaking) > 15
    assert _floor_growth(leaking[:10]) is None


def test_rss_trend_growth_ignores_dips_and_spikes_and_reads_a_leak():
    from benchmarks.long_session import _floor_growth, _trend_growth

    flat = [600.0] * 60
    dips = list(flat)
    dips[6] = dips[11] = 546.0  # malloc handed memory back at two samples (measured shape, seed 1)
    assert _floor_growth(dips) > 9  # the floor of minutes 5-10 caught a dip: reads as growth
    assert _trend_growth(dips) == 0.0
    spikes = [700.0] * 55 + [774.0] * 5  # batched: the last batch held more cross K/V
    assert _trend_growth(spikes) == 0.0
    leaking = [500.0 + 2 * m for m in range(60)]  # +2 MB a minute: 508 MB at minute 5, 618 at minute 60
    assert _trend_growth(leaking) == pytest.approx(100 * 110 / 508, abs=0.01)
    assert _trend_growth(dips[:13]) is None
