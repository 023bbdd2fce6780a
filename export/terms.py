"""Term recall: how many occurrences of the domain terms a transcription keeps.

The number a domain fine-tune is made for ("Zorvexa" heard as "Zorvexa", not "Sorvexa"): for every
term, its occurrences in the reference text count, and a hypothesis recalls at most as many as it
holds. Matching is on lower-cased word sequences with punctuation removed, so "Zorvexa's" and
"Zorvexa," count for "Zorvexa" and a multi-word term must appear with its words in order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from edge_asr.errors import EdgeASRError

_NON_WORD = re.compile(r"[^\w]+")


class TermListError(EdgeASRError, ValueError):
    """The term list cannot be read or holds no term."""


def load_terms(path: str | Path) -> list[str]:
    """Terms from a text file: one per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TermListError(f"cannot read the term list {path}: {e}") from None
    terms = [t.strip() for t in lines if t.strip() and not t.strip().startswith("#")]
    if not terms:
        raise TermListError(f"the term list {path} holds no term (one term per line)")
    return list(dict.fromkeys(terms))


def words(text: str) -> list[str]:
    return _NON_WORD.sub(" ", text.lower().replace("_", " ")).split()


def _count(haystack: list[str], needle: list[str]) -> int:
    n = len(needle)
    return sum(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1)) if n else 0


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
