"""Term boosting (``boost_terms``): the trie, the per-row match state, and its effect on real decodes.

The tiny random model (tests/assets/tiny-model) has a byte-level vocabulary without merges, so every
character is a token and the expected choices can be stated exactly; one test checks a real word on
real tiny.en with an espeak-ng sentence.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

import numpy as np
import pytest

from edge_asr import load_model
from edge_asr.decoding import DecodingOptions, DecodingTask
from edge_asr.errors import EdgeASRError, OptionError
from edge_asr.features import log_mel_spectrogram, pad_or_trim
from edge_asr.options import TranscribeOptions
from edge_asr.term_boost import (PROGRESS_EXPONENT, START_PROGRESS_CAP, TermBoost, TermTrie, parse_term, parse_terms,
                                  term_forms, term_trie)

W = 7.0


def at(letters: int, of: int = 7, weight: float = W) -> float:
    """The bonus of a token that brings a match to ``letters`` of a term's ``of`` letters."""
    return round(weight * (letters / of) ** PROGRESS_EXPONENT, 3)


@pytest.fixture(scope="module")
def model(runtime_model_dir):
    return load_model(runtime_model_dir)


@pytest.fixture(scope="module")
def tok(model):
    return model.tokenizer


@pytest.fixture(scope="module")
def state(model, sample_audio):
    mel = pad_or_trim(log_mel_spectrogram(sample_audio[:16000 * 5], model.manifest.dims.n_mels, padding=480000))
    return mel[None]


def ids(tok, text):
    return tok.encode(text)


def bonuses(trie, tok, tokens, rows=None):
    """The bonus TermBoost adds to each vocabulary token after ``tokens`` (one row per sequence)."""
    seqs = tokens if rows else [tokens]
    logits = np.zeros((len(seqs), tok.vocab_size()), dtype=np.float32)
    TermBoost(trie, tok).apply(logits, [list(s) for s in seqs])
    return logits if rows else logits[0]


def boosted(tok, row):
    return {tok.decode([int(i)]): round(float(row[i]), 3) for i in np.nonzero(row)[0]}


# -- parsing and the trie -----------------------------------------------------------------------------

def test_term_specs_weights_and_errors():
    assert parse_term("Zorvexa", 4.0) == parse_term(" Zorvexa ", 4.0)
    assert parse_term("Draxiphen:6", 4.0).weight == 6.0 and parse_term("Draxiphen:6", 4.0).text == "Draxiphen"
    assert parse_term("C:3PO", 4.0).text == "C:3PO"  # the part after the colon is no number
    for bad in ("", "  ", "Zorvexa:-1", "Zorvexa:nan", "x" * 101):
        with pytest.raises(OptionError):
            parse_term(bad, 4.0)
    with pytest.raises(OptionError):
        parse_terms(["a"], 0.0)
    assert term_forms("Zorvexa") == [" Zorvexa", "Zorvexa", " zorvexa", "zorvexa", " ZORVEXA", "ZORVEXA"]
    assert term_forms("iPhone") == [" iPhone", "iPhone", " iphone", "iphone", " IPhone", "IPhone", " Iphone", "Iphone",
                                    " IPHONE", "IPHONE"]
    # A term listed in capitals also gets the name's usual spelling.
    assert term_forms("ZORVEXA") == [" ZORVEXA", "ZORVEXA", " zorvexa", "zorvexa", " Zorvexa", "Zorvexa"]


def test_trie_holds_every_form_and_shares_prefixes(tok):
    one = TermTrie(tok, parse_terms(["Zorvexa"], W))
    two = TermTrie(tok, parse_terms(["Zorvexa", "Zorvin"], W))
    for form in term_forms("Zorvexa"):
        node = one.walk(0, form)
        assert node is not None and one.ends[node] == {0}
    assert two.ends[two.walk(0, " Zorvin")] == {1}
    # "Zorv" is shared: the second term adds only its own tails ("in" in each cased form with/without space).
    assert two.size - one.size == 12  # two nodes ("in"/"IN") for each of its six forms
    assert one.walk(0, " Zorvx") is None
    # The bonus grows with the share of the term matched; the leading space counts for nothing.
    assert one.bonus(one.walk(0, " ")) == 0
    got = [round(one.bonus(one.walk(0, " Zorvexa"[:k])), 3) for k in range(2, 9)]
    assert got == [at(k) for k in range(1, 8)] and got == sorted(got) and got[-1] == W
    weighted = TermTrie(tok, parse_terms(["Zorvexa:14"], W))
    assert weighted.bonus(weighted.walk(0, "Zorvexa")) == 14.0
    # A start counts at most START_PROGRESS_CAP of the term: "Z" is half of "Zo", but starts it with less.
    short = TermTrie(tok, parse_terms(["Zo"], W))
    assert boosted(tok, bonuses(short, tok, [])) == {"Z": round(W * START_PROGRESS_CAP ** PROGRESS_EXPONENT, 3)}
    assert round(short.bonus(short.walk(0, "Z")), 3) == at(1, of=2)  # the match itself is not capped


def test_trie_is_cached_per_tokenizer_and_term_list(tok):
    assert term_trie(tok, ("Zorvexa",), W) is term_trie(tok, ("Zorvexa",), W)
    assert term_trie(tok, ("Zorvexa",), W) is not term_trie(tok, ("Zorvexa",), 2 * W)


# -- the match state ----------------------------------------------------------------------------------

def test_bonus_follows_the_match_and_is_withdrawn_when_it_breaks(tok):
    trie = TermTrie(tok, parse_terms(["Zorvexa"], W))
    tb = tok.timestamp_begin
    # At the start (a boundary): the first letter as written (= Capitalized, UPPER). The lowercase form
    # starts nothing (its prefixes are common words) but is continued once the model starts it.
    assert boosted(tok, bonuses(trie, tok, [tb])) == {"Z": at(1)}
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " zo"))) == {"r": at(3)}
    # Mid-match: the next letter, more the deeper the match.
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " Zorv")))["e"] == at(5)
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " ZORV")))["E"] == at(5)
    # Broken ("Zorx"): no bonus for the rest of the word, not even a new start inside it.
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " Zorx"))) == {}
    # A new word after the break may start the term again.
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " Zorx "))) == {"Z": at(1)}
    # A start without a space only at a boundary: after punctuation yes, inside a word no.
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, ' said "'))) == {"Z": at(1)}
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " said"))) == {}
    # Timestamps and special tokens are never boosted, and end a match.
    assert not bonuses(trie, tok, [tb] + ids(tok, " Zor"))[tok.eot:].any()
    assert boosted(tok, bonuses(trie, tok, [tb] + ids(tok, " Zor") + [tb + 10])) == {"Z": at(1)}


def test_a_written_term_is_not_started_again_by_a_bonus(tok):
    trie = TermTrie(tok, parse_terms(["Zorvexa", "Kalvoria"], W))
    after = boosted(tok, bonuses(trie, tok, ids(tok, " Zorvexa ")))
    assert after == {"K": at(1, of=8)}  # Kalvoria still starts; Zorvexa does not


def test_rows_are_independent_and_follow_beam_reordering(tok):
    trie = TermTrie(tok, parse_terms(["Zorvexa"], W))
    rows = [ids(tok, " Zor"), ids(tok, " said"), ids(tok, " Zorve")]
    f = TermBoost(trie, tok)
    logits = np.zeros((3, tok.vocab_size()), dtype=np.float32)
    f.apply(logits, [list(r) for r in rows])
    v, x = tok.encode("v")[0], tok.encode("x")[0]
    assert (round(float(logits[0, v]), 3), logits[1].any(), round(float(logits[2, x]), 3)) == (at(4), False, at(6))
    # Beam search keeps rows 2, 0, 2 and extends them: each new row continues its source's match.
    source = np.array([2, 0, 2])
    f.reorder(source)
    grown = [rows[2] + ids(tok, "x"), rows[0] + ids(tok, "v"), rows[2] + ids(tok, "y")]
    logits = np.zeros((3, tok.vocab_size()), dtype=np.float32)
    f.apply(logits, [list(r) for r in grown])
    a = tok.encode("a")[0]
    assert logits[0, a] == W and round(float(logits[1, tok.encode("e")[0]]), 3) == at(5)
    assert boosted(tok, logits[2]) == {}
    # The same states as a fresh filter computes from the whole sequences.
    assert np.array_equal(logits, bonuses(trie, tok, grown, rows=True))


# -- decoding on the tiny model: exact choices ----------------------------------------------------------

def decode(model, mel, **options):
    opts = DecodingOptions(language="en", **options)
    return DecodingTask(model.backend, model.tokenizer, opts).run(model.backend.encode(mel))


def test_greedy_decode_writes_the_term_only_with_the_boost(model, tok, state):
    plain = decode(model, state, without_timestamps=True, sample_len=24)[0]
    assert "zorvexa" not in plain.text.lower()
    big = decode(model, state, without_timestamps=True, sample_len=24, boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    # A bonus that beats any logit: the first tokens spell the term letter by letter, in one of its forms.
    assert tok.decode(big.tokens[:7]) in term_forms("Zorvexa")
    # Each choice is the model's own argmax once the bonus is added (a small weight shifts only ties).
    small = decode(model, state, without_timestamps=True, sample_len=24, boost_terms=("Zorvexa",), boost_weight=1e-3)[0]
    assert small.tokens == plain.tokens


def test_greedy_with_timestamps_and_a_forced_prefix(model, tok, state):
    res = decode(model, state, sample_len=24, boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    tb = tok.timestamp_begin
    assert res.tokens[0] >= tb and tok.decode(res.tokens[1:8]) in term_forms("Zorvexa")
    # The forced prefix is kept as given (it is fed, not sampled) ...
    pre = decode(model, state, sample_len=24, prefix="hello", boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    assert pre.tokens[:7] == [tb] + ids(tok, " hello")
    assert "zorvexa" in tok.decode(pre.tokens[7:]).lower()  # after the prefix (timestamps may come first)
    # ... and sets the match state: a prefix ending inside the term is continued to its end.
    part = decode(model, state, sample_len=24, prefix="Zorv", without_timestamps=True,
                  boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    assert tok.decode(part.tokens[:8]) == " Zorvexa"


def test_beam_search_states_follow_the_beams(model, tok, state, monkeypatch):
    checked = []
    original = TermBoost.apply

    def checking_apply(self, logits, tokens):
        fresh = logits.copy()
        original(self, logits, tokens)
        # Every row's bonus equals what a fresh filter computes from that row's whole sequence, so the
        # states were carried to the right rows when the beams were reselected.
        original(TermBoost(self.trie, self.tokenizer), fresh, tokens)
        assert np.array_equal(logits, fresh)
        checked.append(len(tokens))

    monkeypatch.setattr(TermBoost, "apply", checking_apply)
    decode(model, state, beam_size=3, sample_len=16, without_timestamps=True,
           boost_terms=("Zorvexa", "Kalvoria"), boost_weight=3.0)
    assert len(checked) > 3 and set(checked) == {3}
    monkeypatch.setattr(TermBoost, "apply", original)
    big = decode(model, state, beam_size=3, sample_len=16, without_timestamps=True,
                 boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    assert tok.decode(big.tokens[:7]) in term_forms("Zorvexa")


def test_batched_rows_decode_as_alone(model, tok, sample_audio):
    n_mels = model.manifest.dims.n_mels
    mels = [pad_or_trim(log_mel_spectrogram(sample_audio[a:a + 16000 * 4], n_mels, padding=480000))
            for a in (0, 16000 * 5)]
    opts = dict(without_timestamps=True, sample_len=12, boost_terms=("Zorvexa", "Kalvoria"), boost_weight=2.0)
    together = decode(model, np.stack(mels), **opts)
    alone = [decode(model, m[None], **opts)[0] for m in mels]
    assert [r.tokens for r in together] == [r.tokens for r in alone]


def test_boost_reaches_transcribe_batched_and_streaming(model, sample_audio):
    audio = sample_audio[:16000 * 3]
    kw = dict(language="en", temperature=0.0, boost_terms=("Zorvexa",), boost_weight=1000.0)
    assert "zorvexa" in model.transcribe(audio, **kw).text.lower()
    assert "zorvexa" in model.transcribe(audio, batch_size=2, vad_filter=True, **kw).text.lower()
    from edge_asr.streaming import StreamingOptions, StreamingTranscriber

    events = []
    # Few updates (the random model writes to its token budget each time): long steps, no probes.
    # Beam search: AttentionStop (greedy only) judges the random model's random attention, which stops
    # this one-character-per-token vocabulary inside the term.
    options = StreamingOptions.from_fields(step_s=1.5, first_step_s=1.5, probe_tail_s=None, beam_size=2, **kw)
    stream = StreamingTranscriber(model, options, on_event=events.append)
    stream.feed(audio)
    stream.finish()
    text = " ".join(e.text for e in events if e.kind == "committed")
    assert "zorvexa" in text.lower()


# -- options, CLI, server fields ----------------------------------------------------------------------

def test_options_cli_and_server_fields(tmp_path):
    assert TranscribeOptions(boost_terms="Zorvexa").boost_terms == ("Zorvexa",)
    assert TranscribeOptions(boost_terms=["A", "B:2"]).decoding_options(0.0, language="en").boost_terms == ("A", "B:2")
    with pytest.raises(EdgeASRError):
        TranscribeOptions(boost_terms=("Zorvexa:0",))
    with pytest.raises(ValueError):
        TranscribeOptions(boost_weight=-1)
    from edge_asr.cli_options import add_option_flags, values_from_args

    terms = tmp_path / "terms.txt"
    terms.write_text("# product names\nKalvoria:6\n\nC#  # a language\n")
    p = argparse.ArgumentParser()
    add_option_flags(p, TranscribeOptions)
    args = p.parse_args(["--boost", "Zorvexa", "--boost", "Draxiphen:5", "--boost-file", str(terms)])
    values = values_from_args(args, TranscribeOptions)
    assert values["boost_terms"] == ("Zorvexa", "Draxiphen:5", "Kalvoria:6", "C#")
    assert TranscribeOptions(**values).boost_terms[-1] == "C#"
    assert values_from_args(p.parse_args([]), TranscribeOptions)["boost_terms"] == ()
    with pytest.raises(SystemExit):  # a usage error while parsing, in every command that has the flag
        p.parse_args(["--boost-file", str(tmp_path / "missing.txt")])
    assert "--boost TERM[:WEIGHT]" in p.format_help() and "--boost-file" in p.format_help()
    from edge_asr.server.fields import parse_fields, request_fields

    specs = request_fields(TranscribeOptions)
    assert parse_fields({"boost_terms": ["Zorvexa, Draxiphen:5\nKalvoria"]}, specs)["boost_terms"] == (
        "Zorvexa", "Draxiphen:5", "Kalvoria")
    # Repeated (or name[]) values are one term each: a term may hold a comma.
    assert parse_fields({"boost_terms": ["Acme, Inc.", "Kalvoria"]}, specs)["boost_terms"] == ("Acme, Inc.", "Kalvoria")
    assert parse_fields({"boost_terms": ["Acme, Inc."]}, specs, whole={"boost_terms"})["boost_terms"] == ("Acme, Inc.",)


# -- real tiny.en --------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (scripts/system_deps.sh)")
def test_real_tiny_en_writes_a_made_up_term_with_the_boost(real_model, tmp_path):
    model = real_model("tiny.en")
    wav = tmp_path / "felquist.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav),
                    "Professor Felquist will give the lecture on rivers."], check=True, capture_output=True)
    stock = model.transcribe(str(wav), language="en").text
    boost = model.transcribe(str(wav), language="en", boost_terms=("Felquist", "Zorvexa", "Kalvoria")).text
    assert "felquist" not in stock.lower()
    assert "Felquist" in boost and "lecture" in boost


# -- review fixes ------------------------------------------------------------------------------------------

def test_one_bonus_per_node_from_one_term(tok):
    # Weight and progress come from the same term: " Bron" completes "Bron:2" (2 x 1) and is 4 of 7 letters
    # of "Brondax:40" (40 x (4/7) ** 1.5); mixing the two gave 40.
    trie = TermTrie(tok, parse_terms(["Bron:2", "Brondax:40"], W))
    assert round(trie.bonus(trie.walk(0, " Bron")), 3) == max(2.0, at(4, weight=40.0))
    assert round(trie.bonus(trie.walk(0, " Brondax")), 3) == 40.0


def test_a_term_inside_a_longer_word_is_not_written(tok):
    trie = TermTrie(tok, parse_terms(["Art"], W))
    start = tok.encode("A")[0]  # the term's start after punctuation (a boundary)
    # " artist." holds the form " art" but not the word: the term may still be started afterwards ...
    assert bonuses(trie, tok, ids(tok, " artist."))[start] > 0
    # ... while " art." wrote it (the next token started another word), so it is not started again.
    assert bonuses(trie, tok, ids(tok, " art."))[start] == 0


def test_languages_without_spaces_start_terms_anywhere(tok):
    trie = TermTrie(tok, parse_terms(["Zorvexa"], W))
    start = tok.encode("Z")[0]
    seq = [ids(tok, " ab")]
    english = np.zeros((1, tok.vocab_size()), dtype=np.float32)
    TermBoost(trie, tok, "en").apply(english, seq)
    chinese = np.zeros((1, tok.vocab_size()), dtype=np.float32)
    TermBoost(trie, tok, "zh").apply(chinese, [list(s) for s in seq])
    assert english[0, start] == 0 and chinese[0, start] > 0  # mid-word: only where words are not spaced


def test_trie_cache_keeps_the_recently_used_list(tok):
    from edge_asr.term_boost import MAX_CACHED_TRIES

    steady = term_trie(tok, ("Steady",), W)
    for i in range(MAX_CACHED_TRIES - 1):
        term_trie(tok, (f"Other{i}",), W)
    assert term_trie(tok, ("Steady",), W) is steady  # a hit: now the most recently used
    term_trie(tok, ("Newcomer",), W)  # evicts the least recently used, not the first built
    assert term_trie(tok, ("Steady",), W) is steady


def test_scores_include_the_boost(model, tok, state, monkeypatch):
    """Shallow fusion: a hypothesis' log-probability (avg_logprob, beam ranking, best-of) includes the bonus
    of the tokens it was given. Measured and not adopted: scoring without it (the model's own confidence)
    cut tiny.en's term recall from 13/36 to 7/36 in `bench boost` (the bonus-led text fell under the
    log-probability threshold, fell back to sampling, and best-of chose the samples without the term)."""
    before = []
    original = TermBoost.apply

    def recording_apply(self, logits, tokens):
        before.append(logits.copy())  # the step's logits as the model and suppression left them
        original(self, logits, tokens)

    monkeypatch.setattr(TermBoost, "apply", recording_apply)
    big = decode(model, state, without_timestamps=True, sample_len=7, boost_terms=("Zorvexa",), boost_weight=1000.0)[0]
    assert tok.decode(big.tokens) in term_forms("Zorvexa")  # the boost chose the tokens ...
    own = sum(float(logits[0, t] - np.logaddexp.reduce(logits[0].astype(np.float64)))
              for logits, t in zip(before, big.tokens))
    # ... and the score counts it: with a bonus of 1000 each step's log-probability is ~0, not the model's own.
    assert big.avg_logprob > own / (len(big.tokens) + 1) + 1.0
