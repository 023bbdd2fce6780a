"""The commit policies (AlignAtt, LocalAgreement) driven by scripted hypotheses: no model, no audio.

Hypotheses are what a decode said after the committed text (the driver forces the decoder through it)."""

from __future__ import annotations

import pytest

from edge_asr.commit_policy import POLICIES, AlignAtt, LocalAgreement, PolicyUpdate, TimedWord, cut_repetition, starting_before, text_of


def hyp(text: str, start: float = 0.0, step: float = 0.5) -> list[TimedWord]:
    """A hypothesis: one word every ``step`` seconds from ``start``."""
    return [TimedWord(" " + w, start + i * step, start + (i + 1) * step) for i, w in enumerate(text.split())]


END = 100.0  # audio end for LocalAgreement (it does not look at times)


def texts(words) -> list[str]:
    return [w.text.strip() for w in words]


def test_two_agreeing_hypotheses_commit_their_common_prefix():
    policy = LocalAgreement()
    first = policy.update(hyp("the cat sat"), END)
    assert first.committed == () and texts(first.tentative) == ["the", "cat", "sat"]
    assert not policy.idle
    second = policy.update(hyp("the cat sat on the"), END)
    assert texts(second.committed) == ["the", "cat", "sat"]
    assert texts(second.tentative) == ["on", "the"]
    assert texts(policy.committed) == ["the", "cat", "sat"] and texts(policy.tentative) == ["on", "the"]


def test_a_changed_word_stays_tentative_until_two_hypotheses_agree_on_it():
    policy = LocalAgreement()
    policy.update(hyp("the cat sat"), END)
    update = policy.update(hyp("the cat sits"), END)
    assert texts(update.committed) == ["the", "cat"] and texts(update.tentative) == ["sits"]
    # The next decodes continue after "the cat" (the committed prefix).
    update = policy.update(hyp("sits down", 1.0), END)
    assert texts(update.committed) == ["sits"] and texts(update.tentative) == ["down"]
    update = policy.update(hyp("upright", 1.5), END)
    assert update.committed == () and texts(update.tentative) == ["upright"]
    assert texts(policy.committed) == ["the", "cat", "sits"]


def test_agreement_ignores_case_and_punctuation_and_commits_the_newest_spelling():
    policy = LocalAgreement()
    policy.update(hyp("Hello world"), END)
    update = policy.update(hyp("hello, world."), END)
    assert [w.text for w in update.committed] == [" hello,", " world."]


def test_committed_text_is_never_rewritten():
    policy = LocalAgreement()
    policy.update(hyp("she sells sea shells"), END)
    policy.update(hyp("she sells sea shells by"), END)
    committed = policy.committed
    assert texts(committed) == ["she", "sells", "sea", "shells"]
    assert texts(policy.update(hyp("by the", 2.0), END).committed) == ["by"]
    policy.update(hyp("the shore", 2.5), END)
    assert policy.committed[:4] == committed
    assert texts(policy.committed) == ["she", "sells", "sea", "shells", "by", "the"]
    assert texts(policy.tentative) == ["shore"]


def test_committed_times_are_monotonic():
    policy = LocalAgreement()
    words = [TimedWord(" a", 0.0, 0.4), TimedWord(" b", 0.3, 0.35), TimedWord(" c", 0.5, 0.9)]
    policy.update(words, END)
    update = policy.update(words, END)
    assert [(w.start, w.end) for w in update.committed] == [(0.0, 0.4), (0.4, 0.4), (0.5, 0.9)]


def test_flush_commits_the_tentative_rest():
    policy = LocalAgreement()
    policy.update(hyp("one two three"), END)
    policy.update(hyp("one two four five"), END)
    assert texts(policy.tentative) == ["four", "five"]
    flushed = policy.flush()
    assert texts(flushed.committed) == ["four", "five"] and flushed.tentative == ()
    assert texts(policy.committed) == ["one", "two", "four", "five"]
    assert policy.idle and policy.tentative == ()
    assert policy.flush() == PolicyUpdate()  # nothing left


def test_flush_with_a_final_hypothesis_commits_it():
    policy = LocalAgreement()
    policy.update(hyp("good morning every"), END)
    policy.update(hyp("good morning everyone"), END)
    final = policy.flush(hyp("everyone here", 1.0))
    assert texts(final.committed) == ["everyone", "here"]
    assert text_of(policy.committed) == "good morning everyone here"
    assert policy.flush([]).committed == ()  # an empty final hypothesis commits nothing


def test_a_preview_is_shown_but_does_not_count_towards_agreement():
    policy = LocalAgreement()
    shown = policy.preview(hyp("quick probe"))
    assert shown.committed == () and texts(shown.tentative) == ["quick", "probe"] and not policy.idle
    assert policy.update(hyp("quick probe"), END).committed == ()  # the first full hypothesis
    assert texts(policy.update(hyp("quick probe"), END).committed) == ["quick", "probe"]


def test_agreement_three_needs_three_hypotheses():
    policy = LocalAgreement(agreement=3)
    assert policy.update(hyp("a b c"), END).committed == ()
    assert policy.update(hyp("a b c"), END).committed == ()
    assert texts(policy.update(hyp("a b d"), END).committed) == ["a", "b"]
    with pytest.raises(ValueError):
        LocalAgreement(agreement=0)


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


def test_alignatt_commits_after_one_decode_the_words_that_end_before_the_delay():
    policy = AlignAtt(delay_s=0.4)
    assert policy.idle
    # Words end at 0.5, 1.0, 1.5, 2.0; the audio ends at 1.8: only words ending by 1.4 are final.
    update = policy.update(hyp("the cat sat down"), audio_end=1.8)
    assert texts(update.committed) == ["the", "cat"] and texts(update.tentative) == ["sat", "down"]
    assert not policy.idle
    # The next decode continues after "the cat"; more audio makes "sat" final, "down" still too close.
    update = policy.update([TimedWord(" sat", 1.0, 1.5), TimedWord(" down", 1.5, 2.2)], audio_end=2.4)
    assert texts(update.committed) == ["sat"] and texts(update.tentative) == ["down"]
    assert texts(policy.committed) == ["the", "cat", "sat"]


def test_alignatt_commits_in_order_only():
    # A later word that ends early (timing jitter) is not committed past an earlier word still too close.
    words = [TimedWord(" a", 0.0, 0.5), TimedWord(" b", 0.5, 1.9), TimedWord(" c", 0.6, 1.0)]
    update = AlignAtt(0.3).update(words, audio_end=2.0)
    assert texts(update.committed) == ["a"] and texts(update.tentative) == ["b", "c"]


def test_alignatt_delay_zero_commits_everything_and_negative_is_refused():
    assert texts(AlignAtt(0.0).update(hyp("x y"), audio_end=1.0).committed) == ["x", "y"]
    with pytest.raises(ValueError):
        AlignAtt(-0.1)


def test_policies_keep_tokens_and_the_registry_names_both():
    words = [TimedWord(" hi", 0.0, 0.3, (123, 4)), TimedWord(" there", 0.3, 0.6, (77,))]
    committed = AlignAtt(0.1).update(words, audio_end=2.0).committed
    assert [w.tokens for w in committed] == [(123, 4), (77,)]
    assert set(POLICIES) == {"alignatt", "local-agreement"}
