"""Contextual biasing without training: a bonus on the logits of tokens that continue a listed term.

``boost_terms`` ("Zorvexa", "Draxiphen:30") are spelled in their common forms (as written, lowercase,
Capitalized, UPPER; with and without a leading space) into one trie, read with the model's tokens (any
token that spells the next characters continues a match, so every tokenization of a term counts). Every
decoding row keeps a position in that trie, advanced by the tokens it actually chose; at each step the
tokens that continue the row's partial match, or start a term, get a bonus on their logit that grows
with the match depth (Moonshine's key-term boost: a first subword is nudged a little, a match already
under way is pushed to completion). When the row picks anything else the match is broken and its bonus
withdrawn: the row is back at the root, where only word starts are boosted, so the rest of a broken word
gets nothing. A term a row has written is not started again by a bonus in that row.

Why logits, not log-probabilities: the filter runs where every other logit filter runs, before the
softmax, so greedy, sampling and beam search see one consistent distribution. A bonus b on a logit
raises that token's log-probability by at most b and by less the likelier it already is (p -> 1 gains
~0), so a term the model already says is left alone, and no hypothesis can run away on repeated
bonuses (where prompt hotwords caused repetition loops). Timestamp and special tokens are never in the
trie, and the forced prefix is fed, not sampled, so it never gets a bonus (it only sets the match state).
The bonus counts in the hypothesis' score (shallow fusion): scoring without it (measured, issue 17 review)
cut tiny.en's term recall 13/36 -> 7/36, the term-led text falling under the log-probability threshold.

Languages written without spaces (tokenizer.NO_SPACE_LANGUAGES) have no word boundaries to wait for, so
there a term may start after any token. Limitation: the trie is walked with decoded token texts, so a
character the vocabulary spells as several byte tokens (each decodes to U+FFFD; base's tokenizer splits
some CJK characters, "索" of "深度求索") breaks the match: such a term is boosted only up to that character.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import OptionError
from .logit_filters import LogitFilter
from .tokenizer import NO_SPACE_LANGUAGES, Tokenizer

DEFAULT_BOOST_WEIGHT = 24.0  # logit bonus of a whole match (chosen with `edge-asr bench boost`, README)
# The bonus at a share p of a term matched is weight * p ** PROGRESS_EXPONENT, and a start token counts at
# most START_PROGRESS_CAP of the term: nothing checks a start, the continuations do. Measured (12 made-up
# terms, 36 espeak-ng clips, greedy): exponent 1 turned common word starts into term starts (U-WER 38 ->
# 47 % on a third of the clips); without the cap, weight 24 wrote "Brondax" 16 times where it was not said
# (its start " Bron" holds 4 of 7 letters); with it, tiny.en 0 -> 36 % term recall (3 false alarms), base
# 3 -> 50 % (none), both with fewer errors on the other words.
PROGRESS_EXPONENT = 1.5
START_PROGRESS_CAP = 0.34
MAX_BOOST_TERMS = 1000  # a request's list is bounded (the trie's build cost grows with it)
MAX_TERM_CHARS = 100
MAX_CACHED_TRIES = 8  # per tokenizer: the tries of the last few term lists (a server's requests reuse them)


@dataclass(frozen=True)
class BoostTerm:
    text: str
    weight: float


def parse_term(spec: str, default_weight: float) -> BoostTerm:
    """"TERM" or "TERM:WEIGHT" (the weight after the last colon, when it is a number) -> BoostTerm."""
    if not isinstance(spec, str):
        raise OptionError(f"a boost term must be text, not {type(spec).__name__}: {spec!r}")
    text, weight = spec.strip(), default_weight
    head, sep, tail = text.rpartition(":")
    if sep and head.strip():
        try:
            weight = float(tail)
            text = head.strip()
        except ValueError:
            pass  # a colon inside the term ("C:3PO")
    if not text:
        raise OptionError(f"empty boost term {spec!r}: give the term's text, optionally TERM:WEIGHT")
    if len(text) > MAX_TERM_CHARS:
        raise OptionError(f"boost term {text[:30]!r}... is longer than {MAX_TERM_CHARS} characters; "
                          "list the term itself, not a sentence")
    if not math.isfinite(weight) or weight <= 0:
        raise OptionError(f"boost term {text!r}: the weight must be a positive number, not {weight}")
    return BoostTerm(text, float(weight))


def parse_terms(specs: Iterable[str], default_weight: float) -> tuple[BoostTerm, ...]:
    specs = list(specs)
    if isinstance(default_weight, bool) or not isinstance(default_weight, (int, float)) or not (
            math.isfinite(default_weight) and default_weight > 0):
        raise OptionError(f"boost_weight must be a positive number, not {default_weight!r}")
    if len(specs) > MAX_BOOST_TERMS:
        raise OptionError(f"{len(specs)} boost terms: at most {MAX_BOOST_TERMS} are accepted")
    return tuple(parse_term(s, default_weight) for s in specs)


def term_forms(text: str) -> list[str]:
    """The spellings a transcript may use: as written, lowercase, Capitalized, UPPER; each with and
    without a leading space (a word mid-sentence vs at the start or after punctuation). Capitalized twice:
    first letter up and the rest as written ("iPhone" -> "IPhone"), and the rest lowercase, so a term
    listed in capitals ("ZORVEXA") still matches the name as the model writes it ("Zorvexa")."""
    cased = dict.fromkeys([text, text.lower(), text[:1].upper() + text[1:], text[:1].upper() + text[1:].lower(),
                           text.upper()])
    return [p + form for form in cased for p in (" ", "")]


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: the vocabulary character that stands for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


BYTE_ALPHABET = _byte_alphabet()


class TokenTexts:
    """Text <-> text-token lookups on the byte-level vocabulary, one string at a time (indexing all 51k
    tokens up front cost ~0.3 s): ``id(text)`` is the token spelling exactly ``text`` (None if there is
    none), ``text(token)`` a token's text (None for special and timestamp tokens); kept on the tokenizer."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._texts: dict[int, str | None] = {}

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> "TokenTexts":
        return tokenizer.__dict__.setdefault("_token_texts", cls(tokenizer))

    def id(self, text: str) -> int | None:
        t = self.tokenizer.token_id("".join(BYTE_ALPHABET[b] for b in text.encode("utf-8")))
        return t if t is not None and t < self.tokenizer.eot else None

    def text(self, token: int) -> str | None:
        text = self._texts.get(token, "")
        if text == "":
            text = self.tokenizer.decode([token]) if 0 <= token < self.tokenizer.eot else None
            self._texts[token] = text  # a dict write is atomic: threads may share the cache
        return text


class TermTrie:
    """Character trie over the forms of every term, read with the model's tokens: a token continues a
    match when its text spells the next characters of some form, so every tokenization of a term
    matches (tiny.en writes "Zorvexa" as " Z" "or" "ve" "x" "a", not the tokenizer's " Z" "or" "ve" "xa").
    Node 0 is the root. A token reaching node n gets ``weight * progress(n) ** PROGRESS_EXPONENT``, with
    progress the share of a form's characters matched there (leading space not counted), the largest such
    bonus among the terms through the node: the bonus grows with the match, and a one-letter start
    (" Z") gets little, a long one at most that of a third of the term (START_PROGRESS_CAP). Starts come
    from the forms as written, Capitalized and UPPER (see below)."""

    def __init__(self, tokenizer: Tokenizer, terms: Sequence[BoostTerm]):
        self.texts = TokenTexts.of(tokenizer)
        self.terms = tuple(terms)
        self.children: list[dict[str, int]] = [{}]
        self.progress = [0.0]
        # Per node, the largest bonus any one term gives there (weight x progress ** exponent of the same
        # term): maxima of weight and of progress taken apart would mix terms (["Bron:2", "Brondax:40"]
        # gave " Bron" Brondax's weight at Bron's full progress, 40 instead of 40 x (4/7) ** 1.5).
        self.node_bonus = [0.0]
        self.ends: dict[int, frozenset[int]] = {}  # node -> the terms a form of which ends there
        starts: list[dict[int, tuple[float, bool]]] = []  # per term: start token -> (bonus, space-led)
        for index, term in enumerate(self.terms):
            own: dict[int, tuple[float, bool]] = {}
            for form in term_forms(term.text):
                letters = len(form.lstrip(" "))
                node = 0
                for k, ch in enumerate(form, 1):
                    child = self.children[node].get(ch)
                    if child is None:
                        child = len(self.children)
                        self.children[node][ch] = child
                        self.children.append({})
                        self.progress.append(0.0)
                        self.node_bonus.append(0.0)
                    progress = max(0, k - (len(form) - letters)) / letters  # of the term's own characters
                    self.progress[child] = max(self.progress[child], progress)
                    self.node_bonus[child] = max(self.node_bonus[child],
                                                 term.weight * progress ** PROGRESS_EXPONENT)
                    # Lowercase forms of a name only continue a match the model started: their prefixes
                    # are common words (" to" of "torvalin" made "moved the database" "moved to make").
                    may_start = form.strip() != term.text.lower() or term.text == term.text.lower()
                    t = self.texts.id(form[:k]) if progress > 0 and may_start else None
                    start = progress if START_PROGRESS_CAP is None else min(progress, START_PROGRESS_CAP)
                    bonus = term.weight * start ** PROGRESS_EXPONENT
                    if t is not None and bonus > own.get(t, (0.0,))[0]:
                        own[t] = (bonus, form.startswith(" "))
                    node = child
                self.ends[node] = self.ends.get(node, frozenset()) | {index}
            starts.append(own)
        self._starts = starts
        self._cont: dict[int, dict[int, float]] = {}
        self._roots: dict[tuple[bool, frozenset[int]], dict[int, float]] = {}
        self._merged: dict[tuple[int, bool, frozenset[int]], tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _arrays(table: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        return (np.fromiter(table, dtype=np.int64, count=len(table)),
                np.fromiter(table.values(), dtype=np.float32, count=len(table)))

    @property
    def size(self) -> int:
        return len(self.children)

    def bonus(self, node: int) -> float:
        return self.node_bonus[node]

    def walk(self, node: int, text: str) -> int | None:
        """The node ``text`` leads to from ``node``, None when it leaves the trie."""
        for ch in text:
            node = self.children[node].get(ch)
            if node is None:
                return None
        return node

    def _continuations(self, node: int) -> dict[int, float]:
        """token -> bonus for every vocabulary token whose text is a path from ``node`` (lazily, per node)."""
        table = self._cont.get(node)
        if table is None:
            table = {}
            stack = [(node, "")]
            while stack:  # the subtree's strings: at most the remaining characters of the forms through it
                n, text = stack.pop()
                for ch, child in self.children[n].items():
                    s = text + ch
                    t = self.texts.id(s)
                    if t is not None and self.bonus(child) > 0:
                        table[t] = max(table.get(t, 0.0), self.bonus(child))
                    stack.append((child, s))
            if len(self._cont) < 4096:
                self._cont[node] = table
        return table

    def _root(self, at_boundary: bool, used: frozenset[int]) -> dict[int, float]:
        """Start tokens of the terms not in ``used`` (all at a word boundary, else the space-led ones)."""
        key = (at_boundary, used)
        table = self._roots.get(key)
        if table is None:
            table = {}
            for index, own in enumerate(self._starts):
                if index in used:
                    continue
                for t, (b, space) in own.items():
                    if (at_boundary or space) and b > table.get(t, 0.0):
                        table[t] = b
            if len(self._roots) < 1024:
                self._roots[key] = table
        return table

    def advance(self, node: int, at_boundary: bool, token: int) -> int:
        """The match state after ``token``: deeper on a continuation; else a new match when the token starts
        a term here (with a leading space anywhere; without one only at a word boundary); else the root
        (the match is broken)."""
        text = self.texts.text(token)
        if not text:
            return 0
        if node != 0:
            deeper = self.walk(node, text)
            if deeper is not None:
                return deeper
        if at_boundary or text.startswith(" "):
            return self.walk(0, text) or 0
        return 0

    def candidates(self, node: int, at_boundary: bool, used: frozenset[int] = frozenset()
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, bonuses) boosted in this state: the node's continuations, and the starts of the terms
        not ``used`` yet (all at a word boundary, else only the space-led ones); the larger where both."""
        key = (node, at_boundary, used)
        hit = self._merged.get(key)
        if hit is not None:
            return hit
        table = dict(self._root(at_boundary, used))
        # A node where only the space before a term has matched (byte-level vocabularies spell " Z" as
        # " " then "Z") is a start: the root's table at a boundary covers it, without the used terms.
        if node != 0 and self.progress[node] > 0:
            for t, b in self._continuations(node).items():
                table[t] = max(table.get(t, 0.0), b)
        merged = self._arrays(table)
        if len(self._merged) < 4096:  # bounded: the states decoding reaches, not all of them
            self._merged[key] = merged
        return merged


def term_trie(tokenizer: Tokenizer, specs: Sequence[str], default_weight: float) -> TermTrie:
    """The trie of these term specs for this tokenizer, built once and kept on the tokenizer (a decode
    per window and temperature reuses it; a dict read/write is atomic, so threads may share it)."""
    key = (tuple(specs), float(default_weight))
    cache: dict = tokenizer.__dict__.setdefault("_term_tries", {})
    trie = cache.get(key)
    if trie is None:
        trie = TermTrie(tokenizer, parse_terms(specs, default_weight))
        for old in list(cache)[:max(0, len(cache) - MAX_CACHED_TRIES + 1)]:  # a copy: threads share it
            cache.pop(old, None)
    else:
        # Least recently used goes first: a hit moves to the end (insertion order), so a server's steady
        # list is not rebuilt after MAX_CACHED_TRIES other lists pass by.
        cache.pop(key, None)
    cache[key] = trie
    return trie


class TermBoost(LogitFilter):
    """The per-step filter: each row's trie state, advanced over the tokens it gained since the last
    step (the forced prefix on the first), reordered with the rows when beam search reselects them.
    A term a row has written is not started by a bonus again in that row: its own text now prompts a
    repeat, and boosting repeats turned Whisper's repetition loops into term loops ("to Ostravane lean to
    Ostravane lean ..." at weight 12 with beam search). A term counts as written when the word ends there
    (the next token starts another word): " artist" does not write the term "Art".

    ``language``: the decode language. In languages written without spaces (NO_SPACE_LANGUAGES: zh, ja,
    th, ...) every position is a word boundary, so a term may start anywhere."""

    def __init__(self, trie: TermTrie, tokenizer: Tokenizer, language: str | None = None):
        self.trie = trie
        self.tokenizer = tokenizer
        self.no_spaces = language in NO_SPACE_LANGUAGES
        self.node = np.zeros(0, dtype=np.int64)
        self.boundary = np.zeros(0, dtype=bool)
        self.seen = np.zeros(0, dtype=np.int64)  # tokens of each row already folded into its state
        self.used: list[frozenset[int]] = []  # terms each row has completed
        self.pending: list[frozenset[int]] = []  # terms whose form ended at the row's last token

    def _ends_word(self, token: int) -> bool:
        """Whether a term without a leading space may start after ``token``: after a timestamp or
        special token, or text that ends in neither a letter nor a digit (punctuation, a hyphen);
        anywhere in a language written without spaces."""
        if self.no_spaces:
            return True
        text = self.trie.texts.text(token)
        return not (text and text[-1].isalnum())

    def _starts_word(self, token: int) -> bool:
        """Whether ``token`` begins a new word (so a form that ended just before it was a whole word):
        a leading space, punctuation, a timestamp or special token; always without spaces."""
        if self.no_spaces:
            return True
        text = self.trie.texts.text(token)
        return not (text and text[0].isalnum())

    def apply(self, logits, tokens):
        rows = len(tokens)
        if len(self.node) != rows:
            self.node = np.zeros(rows, dtype=np.int64)
            self.boundary = np.ones(rows, dtype=bool)
            self.seen = np.zeros(rows, dtype=np.int64)
            self.used = [frozenset()] * rows
            self.pending = [frozenset()] * rows
        trie = self.trie
        all_ids, all_bonus, all_rows = [], [], []
        for b, seq in enumerate(tokens):
            node, boundary, used, pending = int(self.node[b]), bool(self.boundary[b]), self.used[b], self.pending[b]
            for t in seq[self.seen[b]:]:
                if pending and self._starts_word(t):  # the form that ended was the whole word
                    used = used | pending
                pending = frozenset()
                node = trie.advance(node, boundary, t)
                boundary = self._ends_word(t)
                if node in trie.ends:
                    pending = trie.ends[node]
            self.node[b], self.boundary[b], self.seen[b] = node, boundary, len(seq)
            self.used[b], self.pending[b] = used, pending
            ids, bonus = trie.candidates(node, boundary, used)
            if len(ids):
                all_ids.append(ids)
                all_bonus.append(bonus)
                all_rows.append(np.full(len(ids), b, dtype=np.int64))
        if all_ids:  # (row, token) pairs are unique per row, so one fancy-indexed add covers every row
            logits[np.concatenate(all_rows), np.concatenate(all_ids)] += np.concatenate(all_bonus)

    def reorder(self, source: np.ndarray) -> None:
        if len(self.node):
            self.node, self.boundary, self.seen = self.node[source], self.boundary[source], self.seen[source]
            self.used = [self.used[int(i)] for i in source]
            self.pending = [self.pending[int(i)] for i in source]
