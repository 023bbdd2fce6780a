"""Which words of a decoded audio buffer are final: the commit policy of live transcription.

The streaming driver (streaming.py) decodes its audio buffer every step, forcing the decoder through the
words already committed (their tokens are the decode's prefix), and hands what follows them, as
:class:`TimedWord`\\ s on the stream's timeline, to a :class:`CommitPolicy`. The policy says which of those
words are now committed (final: never rewritten or removed) and which stay tentative (may change with the
next hypothesis). It sees no model, audio or clock, so it can be tested with scripted hypotheses.

- :class:`AlignAtt` (the default; SimulStreaming's rule on word times): commit after a single decode every
  word that ends at least ``delay_s`` before the end of the audio the decode heard. The word times come from
  the alignment heads' cross-attention of that same decode, so a word whose audio may still be arriving
  (the model attends to the very end of the buffer) waits for the next update.
- :class:`LocalAgreement` (whisper_streaming's LocalAgreement-n, its ``HypothesisBuffer``): a word is
  committed once ``agreement`` consecutive hypotheses agree on it (their longest common prefix).

Two hypothesis filters the driver applies before the policy also live here: :func:`cut_repetition`
(looping decodes) and :func:`starting_before` (no words where VAD hears no speech, or after an endpoint).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

CLAUSE_END = ".,?!;:。，？！"  # a committed word ending in one of these ends a clause (a good place to cut)


@dataclass(frozen=True)
class TimedWord:
    """One word of a hypothesis, on the stream's timeline (seconds since the stream started)."""

    text: str  # as decoded, with its leading space (" hello,")
    start: float
    end: float
    # The decoder's tokens for it (when known): committed words still in the buffer are the next
    # decode's forced prefix, so committed text is never decoded again.
    tokens: tuple[int, ...] = field(default=(), compare=False)
    probability: float = field(default=1.0, compare=False)  # the decoder's mean token probability

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

    A hypothesis is what the decoder said after the committed text (it was forced through it); committed
    words are only ever appended, with times made monotonic. Subclasses say when words become final.
    """

    def __init__(self):
        self._committed: list[TimedWord] = []
        self._tentative: list[TimedWord] = []

    @property
    def committed(self) -> tuple[TimedWord, ...]:
        """Everything committed so far, in order."""
        return tuple(self._committed)

    @property
    def tentative(self) -> tuple[TimedWord, ...]:
        """The current uncommitted tail (what the last hypothesis said after the committed text)."""
        return tuple(self._tentative)

    @property
    def idle(self) -> bool:
        """Nothing tentative and nothing waiting to be confirmed (between utterances)."""
        return not self._tentative

    @abstractmethod
    def update(self, words: Sequence[TimedWord], audio_end: float) -> PolicyUpdate:
        """A new hypothesis of the words after the committed text, decoded from audio that ends at
        ``audio_end`` (stream time): commit what is now final, the rest is tentative."""

    def preview(self, words: Sequence[TimedWord]) -> PolicyUpdate:
        """A hypothesis to show but not to commit from (a cheap probe): it becomes the tentative tail
        and does not count towards any later decision. Commits nothing."""
        self._tentative = list(words)
        return PolicyUpdate((), tuple(self._tentative))

    def flush(self, words: Sequence[TimedWord] | None = None) -> PolicyUpdate:
        """Commit the tentative tail, or, when given, ``words`` as the final hypothesis; then nothing
        is tentative or waiting."""
        newly = self._append(self._tentative if words is None else words)
        self._tentative = []
        self._forget()
        return PolicyUpdate(tuple(newly), ())

    def trim_point(self, buffer_start: float) -> float:
        """Where the buffer (audio from ``buffer_start`` on) may be cut: the end of the last committed
        clause (.,?! ...) that leaves >= 1 s of committed context in the buffer, else the committed word
        ending about 1 s before the last; ``buffer_start`` when there is none. Cutting right at the last
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

    def _forget(self) -> None:
        """Drop any state kept between hypotheses (after a flush)."""

    def _append(self, words: Sequence[TimedWord]) -> list[TimedWord]:
        """Commit words with times made monotonic (word timing jitters between decodes)."""
        last = self._committed[-1].end if self._committed else 0.0
        out = []
        for w in words:
            start = max(w.start, last)
            last = max(w.end, start)
            out.append(TimedWord(w.text, start, last, w.tokens, w.probability))
        self._committed.extend(out)
        return out


class AlignAtt(CommitPolicy):
    """Commit after one decode: the words (in order) that end at least ``delay_s`` before the end of the
    audio the decode heard. SimulStreaming's AlignAtt stops decoding at the first token whose attention
    peak lies within a frame threshold of the audio's end; here the same attention gives each word its end
    (dynamic time warping over the alignment heads, as word timestamps), and the rule is applied to words,
    so a word is never committed half-decoded.

    Whisper's encoder hears both sides of a word, and a word decoded from little audio after it is
    sometimes a guess the next decode corrects ("a cold swipe" -> "a cold so I probably"). So a word the
    decoder was unsure of (mean token probability below ``min_probability``) waits until it ends
    ``unsure_delay_s`` before the audio's end."""

    def __init__(self, delay_s: float = 0.4, min_probability: float = 0.0, unsure_delay_s: float = 2.5):
        super().__init__()
        if not delay_s >= 0 or not unsure_delay_s >= 0:
            raise ValueError(f"delays must be >= 0, not {delay_s}, {unsure_delay_s}")
        self.delay_s = delay_s
        self.min_probability = min_probability
        self.unsure_delay_s = max(unsure_delay_s, delay_s)

    def final(self, word: TimedWord, audio_end: float) -> bool:
        delay = self.delay_s if word.probability >= self.min_probability else self.unsure_delay_s
        return word.end <= audio_end - delay

    def update(self, words: Sequence[TimedWord], audio_end: float) -> PolicyUpdate:
        words = list(words)
        n = 0
        while n < len(words) and self.final(words[n], audio_end):
            n += 1
        newly = self._append(words[:n])
        self._tentative = words[n:]
        return PolicyUpdate(tuple(newly), tuple(self._tentative))


class LocalAgreement(CommitPolicy):
    """LocalAgreement-n: commit the longest prefix the last ``agreement`` hypotheses share.

    ``agreement=2`` is whisper_streaming's LocalAgreement-2. Words are compared by :attr:`TimedWord.key`.
    """

    def __init__(self, agreement: int = 2):
        super().__init__()
        if agreement < 1:
            raise ValueError(f"agreement must be at least 1, not {agreement}")
        self.agreement = agreement
        self._history: list[list[TimedWord]] = []  # the previous hypotheses' uncommitted parts

    @property
    def idle(self) -> bool:
        return not self._tentative and not self._history

    def update(self, words: Sequence[TimedWord], audio_end: float) -> PolicyUpdate:
        words = list(words)
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

    def _forget(self) -> None:
        self._history = []


POLICIES = {"alignatt": AlignAtt, "local-agreement": LocalAgreement}
