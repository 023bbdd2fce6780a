"""Term recall: how many occurrences of the domain terms a transcription keeps.

The number a domain fine-tune is made for ("Zorvexa" heard as "Zorvexa", not "Sorvexa"): for every
term, its occurrences in the reference text count, and a hypothesis recalls at most as many as it
holds. Matching is on word sequences after Whisper's English normalizer (edge_asr.scoring, as the WER),
so "Zorvexa's" and "Zorvexa," count for "Zorvexa", "Mr. Brondax" for "Mister Brondax", and a
multi-word term must appear with its words in order. `edge-asr bench boost` (benchmarks/term_boost.py)
counts with the same functions, and term lists are read as ``--boost-file`` reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edge_asr.cli_options import read_lines_file
from edge_asr.errors import EdgeASRError, OptionError


class TermListError(EdgeASRError, ValueError):
    """The term list cannot be read or holds no term."""


def load_terms(path: str | Path) -> list[str]:
    """Terms from a text file: one per line; blank lines and # comments (a whole line, or after a space)
    are skipped: the same reading as ``--boost-file``, so one file serves both."""
    try:
        terms = read_lines_file(str(path))
    except OptionError as e:
        raise TermListError(f"cannot read the term list {path}: {e}") from None
    if not terms:
        raise TermListError(f"the term list {path} holds no term (one term per line)")
    return list(dict.fromkeys(terms))


def words(text: str) -> list[str]:
    """``text`` as term matching compares it: Whisper's English normalizer, then words."""
    from edge_asr.scoring import normalize

    return normalize(text, "en").split()


def positions(haystack: list[str], needle: list[str]) -> list[int]:
    """Where the word sequence ``needle`` starts in ``haystack`` (normalized words, see :func:`words`)."""
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if haystack[i:i + n] == needle] if n else []


def _count(haystack: list[str], needle: list[str]) -> int:
    return len(positions(haystack, needle))


def term_hits(reference: str, hypothesis: str, terms: Sequence[str]) -> dict[str, tuple[int, int]]:
    """{term: (occurrences in the reference, of those recalled by the hypothesis)} for terms the reference holds."""
    ref, hyp = words(reference), words(hypothesis)
    out = {}
    for term in terms:
        t = words(term)
        total = _count(ref, t)
        if total:
            out[term] = (total, min(total, _count(hyp, t)))
    return out


def term_recall(references: Sequence[str], hypotheses: Sequence[str], terms: Sequence[str]) -> dict:
    """Corpus term recall: {"recall", "found", "total", "missed": [{"term", "index"}]}; recall is None
    when the references hold no term."""
    found = total = 0
    missed = []
    for i, (ref, hyp) in enumerate(zip(references, hypotheses)):
        for term, (n, k) in term_hits(ref or "", hyp or "", terms).items():
            total += n
            found += k
            missed += [{"term": term, "index": i}] * (n - k)
    return {"recall": found / total if total else None, "found": found, "total": total, "missed": missed}
