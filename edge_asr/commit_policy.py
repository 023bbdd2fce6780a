"""Which words of a re-decoded audio buffer are final: the commit policy of live transcription.

The streaming driver (streaming.py) re-transcribes its audio buffer every step and hands each hypothesis,
as :class:`TimedWord`\\ s on the stream's timeline, to a :class:`CommitPolicy`. The policy says which words
are now committed (final: never rewritten or removed) and which are still tentative (may change with the
next hypothesis). It sees no model, audio or clock, so it can be tested with scripted hypotheses.

:class:`LocalAgreement` is whisper_streaming's LocalAgreement-n (its ``HypothesisBuffer``): a word is
committed once ``agreement`` consecutive hypotheses agree on it, i.e. the longest common prefix of their
uncommitted parts. The buffer still holds audio of committed words, so each hypothesis is first reduced
to what follows the committed text.

Two hypothesis filters the driver applies before the policy also live here: :func:`cut_repetition`
(looping decodes) and :func:`starting_before` (no words where VAD hears no speech, or after an endpoint).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

CLAUSE_END = ".,?!;:。，？！"  # a committed word ending in one of these ends a clause (a good place to cut)


@dataclass(frozen=True)
class TimedWord:
    """One word of a hypothesis, on the stream's timeline (seconds since the stream started)."""

    text: str  # as decoded, with its leading space (" hello,")
    start: float
    end: float

    @property
    def key(self) -> str:
        """What agreement compares: lower case, punctuation removed (apostrophes kept)."""
        return re.sub(r"[^\w']", "", self.text.lower())


def text_of(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


def cut_repetition(words: Sequence[TimedWord], min_phrase: int = 3) -> list[TimedWord]:
    """Truncate a looping hypothesis ("A B C. A B C. A B C.") before its first immediate repeat of a
    phrase of ``min_phrase``+ words. Only applied to decodes whose text compresses suspiciously well."""
    words = list(words)
    keys = [w.key for w in words]
    for i in range(min_phrase, len(keys)):
        for k in range(min_phrase, i + 1):
            if i + k <= len(keys) and keys[i:i + k] == keys[i - k:i]:
                return words[:i]
    return words


def starting_before(words: Sequence[TimedWord], t: float) -> list[TimedWord]:
    """The words that start before time ``t``."""
    return [w for w in words if w.start < t]


@dataclass(frozen=True)
class PolicyUpdate:
    """What one call to a policy changed."""

    committed: tuple[TimedWord, ...] = ()  # newly committed by this call, in order (times monotonic)
    tentative: tuple[TimedWord, ...] = ()  # the whole uncommitted tail after this call


class CommitPolicy(ABC):
    """Decides which words of successive hypotheses of one audio buffer are committed.

    Hypotheses are whole-buffer transcripts; the buffer may still hold audio of committed words, so the
    policy must recognise and skip them. Committed words are only ever appended.
    """

    @property
    @abstractmethod
    def committed(self) -> tuple[TimedWord, ...]:
        """Everything committed so far, in order."""

    @property
    @abstractmethod
    def tentative(self) -> tuple[TimedWord, ...]:
        """The current uncommitted tail (what the last hypothesis said after the committed text)."""

    @property
    @abstractmethod
    def idle(self) -> bool:
        """Nothing tentative and no hypothesis waiting for agreement (between utterances)."""

    @abstractmethod
    def update(self, words: Sequence[TimedWord]) -> PolicyUpdate:
        """A new hypothesis of the buffer: commit what is now agreed, the rest is tentative."""

    @abstractmethod
    def preview(self, words: Sequence[TimedWord]) -> PolicyUpdate:
        """A hypothesis to show but not to commit from (a cheap probe): it becomes the tentative tail
        and does not count towards agreement. Commits nothing."""

    @abstractmethod
    def flush(self, words: Sequence[TimedWord] | None = None) -> PolicyUpdate:
        """Commit the tentative tail, or, when given, ``words`` as the final hypothesis (after the
        committed text); then nothing is tentative or waiting for agreement."""

    @abstractmethod
    def trim_point(self, buffer_start: float) -> float:
        """Where the buffer (audio from ``buffer_start`` on) may be cut: a committed boundary, or
        ``buffer_start`` when there is none."""


class LocalAgreement(CommitPolicy):
    """LocalAgreement-n: commit the longest prefix the last ``agreement`` hypotheses share.

    ``agreement=2`` is whisper_streaming's LocalAgreement-2. Words are compared by :attr:`TimedWord.key`;
    committed times are made monotonic (word timing jitters between decodes).
    """

    def __init__(self, agreement: int = 2, overlap_words: int = 5):
        if agreement < 1:
            raise ValueError(f"agreement must be at least 1, not {agreement}")
        self.agreement = agreement
        self.overlap_words = overlap_words  # committed words a hypothesis may repeat at its start
        self._committed: list[TimedWord] = []
        self._tentative: list[TimedWord] = []
        self._history: list[list[TimedWord]] = []  # the previous hypotheses' uncommitted parts

    @property
    def committed(self) -> tuple[TimedWord, ...]:
        return tuple(self._committed)

    @property
    def tentative(self) -> tuple[TimedWord, ...]:
        return tuple(self._tentative)

    @property
    def idle(self) -> bool:
        return not self._tentative and not self._history

    def after_committed(self, words: Sequence[TimedWord]) -> list[TimedWord]:
        """The part of a hypothesis after the committed text (the buffer still holds committed audio)."""
        words = list(words)
        if not self._committed:
            return words
        # Word times jitter between decodes, so compare ends: a word straddling the boundary is kept,
        # then dropped below if it repeats the committed tail (up to overlap_words words).
        last_end = self._committed[-1].end
        words = [w for w in words if w.end > last_end - 0.05]
        n_tail = self.overlap_words
        tail = [w.key for w in self._committed[-n_tail:]]
        for n in range(min(n_tail, len(words), len(tail)), 0, -1):
            if [w.key for w in words[:n]] == tail[-n:]:
                return words[n:]
        return words

    def update(self, words: Sequence[TimedWord]) -> PolicyUpdate:
        words = self.after_committed(words)
        recent = (self._history + [words])[-self.agreement:]
        n_commit = 0
        if len(recent) == self.agreement:
            while all(n_commit < len(h) for h in recent) and \
                    all(h[n_commit].key == words[n_commit].key for h in recent):
                n_commit += 1
        newly = self._append(words[:n_commit])
        self._history = [h[n_commit:] for h in recent][-(self.agreement - 1):] if self.agreement > 1 else []
        self._tentative = words[n_commit:]
        return PolicyUpdate(tuple(newly), tuple(self._tentative))

    def preview(self, words: Sequence[TimedWord]) -> PolicyUpdate:
        self._tentative = self.after_committed(words)
        return PolicyUpdate((), tuple(self._tentative))

    def flush(self, words: Sequence[TimedWord] | None = None) -> PolicyUpdate:
        if words is not None:
            self._tentative = list(words)
        newly = self._append(self.after_committed(self._tentative))
        self._tentative, self._history = [], []
        return PolicyUpdate(tuple(newly), ())

    def trim_point(self, buffer_start: float) -> float:
        """The end of the last committed clause (.,?! ...) that leaves >= 1 s of committed context in
        the buffer, else the committed word ending about 1 s before the last. Cutting right at the last
        committed word would make the next decode start inside a word whose end time is uncertain."""
        words = [w for w in self._committed if w.end > buffer_start]
        if not words:
            return buffer_start
        limit = words[-1].end - 1.0
        candidates = [w for w in words if w.end <= limit]
        clause = [w for w in candidates if w.text.rstrip()[-1:] in CLAUSE_END]
        if clause:
            return clause[-1].end
        return candidates[-1].end if candidates else buffer_start

    def _append(self, words: Sequence[TimedWord]) -> list[TimedWord]:
        """Commit words with times made monotonic."""
        last = self._committed[-1].end if self._committed else 0.0
        out = []
        for w in words:
            start = max(w.start, last)
            last = max(w.end, start)
            out.append(TimedWord(w.text, start, last))
        self._committed.extend(out)
        return out
