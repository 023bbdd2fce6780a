"""LocalAgreement driven by scripted hypotheses: no model, no audio."""

from __future__ import annotations

import pytest

from edge_asr.commit_policy import LocalAgreement, PolicyUpdate, TimedWord, cut_repetition, starting_before, text_of


def hyp(text: str, start: float = 0.0, step: float = 0.5) -> list[TimedWord]:
    """A hypothesis: one word every ``step`` seconds from ``start``."""
    return [TimedWord(" " + w, start + i * step, start + (i + 1) * step) for i, w in enumerate(text.split())]


def texts(words) -> list[str]:
    return [w.text.strip() for w in words]


def test_two_agreeing_hypotheses_commit_their_common_prefix():
    policy = LocalAgreement()
    first = policy.update(hyp("the cat sat"))
    assert first.committed == () and texts(first.tentative) == ["the", "cat", "sat"]
    assert not policy.idle
    second = policy.update(hyp("the cat sat on the"))
    assert texts(second.committed) == ["the", "cat", "sat"]
    assert texts(second.tentative) == ["on", "the"]
    assert texts(policy.committed) == ["the", "cat", "sat"] and texts(policy.tentative) == ["on", "the"]


def test_a_changed_word_stays_tentative_until_two_hypotheses_agree_on_it():
    policy = LocalAgreement()
    policy.update(hyp("the cat sat"))
    update = policy.update(hyp("the cat sits"))
    assert texts(update.committed) == ["the", "cat"] and texts(update.tentative) == ["sits"]
    # The buffer still holds "the cat": those words are recognised as committed and skipped.
    update = policy.update(hyp("the cat sits down"))
    assert texts(update.committed) == ["sits"] and texts(update.tentative) == ["down"]
    update = policy.update(hyp("the cat sits upright"))
    assert update.committed == () and texts(update.tentative) == ["upright"]
    assert texts(policy.committed) == ["the", "cat", "sits"]


def test_agreement_ignores_case_and_punctuation_and_commits_the_newest_spelling():
    policy = LocalAgreement()
    policy.update(hyp("Hello world"))
    update = policy.update(hyp("hello, world."))
    assert [w.text for w in update.committed] == [" hello,", " world."]


def test_committed_text_is_never_rewritten():
    policy = LocalAgreement()
    policy.update(hyp("she sells sea shells"))
    policy.update(hyp("she sells sea shells by"))
    committed = policy.committed
    assert texts(committed) == ["she", "sells", "sea", "shells"]
    # A later hypothesis that disagrees about the committed part changes nothing there.
    policy.update(hyp("he sells see shells by the"))
    policy.update(hyp("he sells see shells by the shore"))
    assert policy.committed[:4] == committed
    assert texts(policy.committed) == ["she", "sells", "sea", "shells", "by", "the"]
    assert texts(policy.tentative) == ["shore"]


def test_committed_times_are_monotonic():
    policy = LocalAgreement()
    words = [TimedWord(" a", 0.0, 0.4), TimedWord(" b", 0.3, 0.35), TimedWord(" c", 0.5, 0.9)]
    policy.update(words)
    update = policy.update(words)
    assert [(w.start, w.end) for w in update.committed] == [(0.0, 0.4), (0.4, 0.4), (0.5, 0.9)]


def test_flush_commits_the_tentative_rest():
    policy = LocalAgreement()
    policy.update(hyp("one two three"))
    policy.update(hyp("one two four five"))
    assert texts(policy.tentative) == ["four", "five"]
    flushed = policy.flush()
    assert texts(flushed.committed) == ["four", "five"] and flushed.tentative == ()
    assert texts(policy.committed) == ["one", "two", "four", "five"]
    assert policy.idle and policy.tentative == ()
    assert policy.flush() == PolicyUpdate()  # nothing left


def test_flush_with_a_final_hypothesis_commits_what_follows_the_committed_text():
    policy = LocalAgreement()
    policy.update(hyp("good morning every"))
    policy.update(hyp("good morning everyone"))
    final = policy.flush(hyp("good morning everyone here"))
    assert texts(final.committed) == ["everyone", "here"]
    assert text_of(policy.committed) == "good morning everyone here"
    assert policy.flush([]).committed == ()  # an empty final hypothesis commits nothing


def test_a_preview_is_shown_but_does_not_count_towards_agreement():
    policy = LocalAgreement()
    shown = policy.preview(hyp("quick probe"))
    assert shown.committed == () and texts(shown.tentative) == ["quick", "probe"] and not policy.idle
    assert policy.update(hyp("quick probe")).committed == ()  # the first full hypothesis
    assert texts(policy.update(hyp("quick probe")).committed) == ["quick", "probe"]


def test_agreement_three_needs_three_hypotheses():
    policy = LocalAgreement(agreement=3)
    assert policy.update(hyp("a b c")).committed == ()
    assert policy.update(hyp("a b c")).committed == ()
    assert texts(policy.update(hyp("a b d")).committed) == ["a", "b"]
    with pytest.raises(ValueError):
        LocalAgreement(agreement=0)


def test_words_before_the_committed_end_are_dropped_and_a_repeated_tail_too():
    policy = LocalAgreement()
    policy.flush(hyp("alpha beta gamma"))  # committed, ending at 1.5 s
    # Jittered re-decode of the buffer: "beta" ends before the committed end (dropped by time),
    # "gamma" straddles it (kept by time, then recognised as the committed tail).
    words = [TimedWord(" beta", 0.5, 1.0), TimedWord(" gamma", 1.1, 1.6), TimedWord(" delta", 1.6, 2.0)]
    assert texts(policy.after_committed(words)) == ["delta"]
    assert texts(policy.update(words).tentative) == ["delta"]


def test_trim_point_is_the_last_clause_end_leaving_a_second_of_context():
    policy = LocalAgreement()
    policy.flush([TimedWord(" One,", 0.0, 0.5), TimedWord(" two", 0.5, 1.0), TimedWord(" three.", 1.0, 1.5),
                  TimedWord(" four", 1.5, 2.0), TimedWord(" five", 2.0, 2.6)])
    # Last committed end 2.6: cut points must end by 1.6; the last clause end there is "three." (1.5).
    assert policy.trim_point(0.0) == 1.5
    # Buffer starting at 1.2: the committed words still in it are "three." .. "five".
    assert policy.trim_point(1.2) == 1.5
    # Buffer starting at 1.6: "four" and "five" are in it, neither ends by 1.6: no cut (the buffer start).
    assert policy.trim_point(1.6) == 1.6
    # No clause end among the candidates: the last word ending a second before the end.
    plain = LocalAgreement()
    plain.flush(hyp("a b c d e"))  # ends 0.5 .. 2.5
    assert plain.trim_point(0.0) == 1.5
    assert LocalAgreement().trim_point(3.0) == 3.0  # nothing committed


def test_cut_repetition_and_starting_before():
    looping = hyp("thanks for watching thanks for watching thanks for watching")
    assert texts(cut_repetition(looping)) == ["thanks", "for", "watching"]
    assert texts(cut_repetition(hyp("a b a b a b"))) == ["a", "b", "a", "b", "a", "b"]  # phrases < 3 words stay
    assert texts(starting_before(hyp("x y z"), 1.0)) == ["x", "y"]  # starts 0.0, 0.5, 1.0
