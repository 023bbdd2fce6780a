"""Word and character error rates after Whisper's text normalizers: the one scoring implementation of the
export validation, the benchmarks and the tests.

    from edge_asr.scoring import wer, cer, error_rate, normalize
    wer(["the cat sat down"], ["the cat sat up"])          # 0.25: corpus WER, Whisper English normalizer
    error_rate("ja", ["真っ昼間なのに"], ["真昼間なのに"])  # {"metric": "cer", "value": ..., ...}

- English: Whisper's English text normalizer (spelling, numbers, "Mr." → "mister", fillers removed).
- Other languages: Whisper's basic normalizer (lower case, symbols and brackets removed).
- Languages written without spaces between words (``NO_SPACE_LANGUAGES``): character error rate with the
  spaces removed (the basic normalizer puts spaces where it removed symbols).
- Corpus rates: total edits over total reference units (jiwer), not the mean of per-clip rates; pairs
  whose reference is empty after normalization are left out.

Needs jiwer and whisper-normalizer (``pip install 'edge-asr[score]'``; also in the bench, export and test
extras). They are imported inside the functions, so the runtime (``import edge_asr``) never loads them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

from .errors import EdgeASRError

NO_SPACE_LANGUAGES = frozenset({"ja", "zh", "yue", "th", "lo", "my"})
INSTALL_HINT = "pip install 'edge-asr[score]'"
ENGLISH_NORMALIZER = "whisper_normalizer.english.EnglishTextNormalizer"
BASIC_NORMALIZER = "whisper_normalizer.basic.BasicTextNormalizer"

__all__ = ["ScoringDependencyError", "NO_SPACE_LANGUAGES", "normalizer", "normalize", "wer", "cer",
           "word_error_rate", "error_rate"]


class ScoringDependencyError(EdgeASRError, ImportError):
    """jiwer or whisper-normalizer is not installed (``pip install 'edge-asr[score]'``)."""


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ScoringDependencyError(f"scoring needs the {package} package ({e}): {INSTALL_HINT}",
                                     name=e.name) from e


def _jiwer():
    return _require("jiwer", "jiwer")


@lru_cache(maxsize=None)
def normalizer(language: str | None = "en") -> tuple[Callable[[str], str], str]:
    """(normalize function, its dotted name): Whisper's English normalizer for ``"en"`` (and None),
    the basic one for every other language."""
    if language in (None, "en"):
        mod = _require("whisper_normalizer.english", "whisper-normalizer")
        return mod.EnglishTextNormalizer(), ENGLISH_NORMALIZER
    mod = _require("whisper_normalizer.basic", "whisper-normalizer")
    return mod.BasicTextNormalizer(), BASIC_NORMALIZER


def normalize(text: str, language: str | None = "en") -> str:
    """``text`` as the error rates compare it (spaces removed for languages written without them)."""
    norm, _ = normalizer(language)
    out = norm(text).strip()
    if language in NO_SPACE_LANGUAGES:
        out = out.replace(" ", "")
    return out


def _pairs(references: Sequence[str], hypotheses: Sequence[str], language: str | None) -> tuple[list[str], list[str]]:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("references and hypotheses are lists of texts (wrap a single text in a list)")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs, hyps = [], []
    for r, h in zip(references, hypotheses):
        r, h = normalize(r, language), normalize(h, language)
        if r:
            refs.append(r)
            hyps.append(h)
    return refs, hyps


def wer(references: Sequence[str], hypotheses: Sequence[str], language: str | None = "en") -> float:
    """Corpus word error rate after the language's Whisper normalizer (0.0 when no reference has words)."""
    refs, hyps = _pairs(references, hypotheses, language)
    return float(_jiwer().wer(refs, hyps)) if refs else 0.0


def cer(references: Sequence[str], hypotheses: Sequence[str], language: str | None = "en") -> float:
    """Corpus character error rate after the language's Whisper normalizer (spaces count as characters,
    except in ``NO_SPACE_LANGUAGES``, where they are removed)."""
    refs, hyps = _pairs(references, hypotheses, language)
    return float(_jiwer().cer(refs, hyps)) if refs else 0.0


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER after the Whisper English text normalizer (``wer(..., language="en")``)."""
    return wer(references, hypotheses, "en")


def error_rate(language: str, references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """The per-language figure the benchmarks report: ``{"metric": "wer"|"cer", "value": rate rounded to
    4 digits, "clips": pairs scored, "normalizer": dotted name}``; CER for languages without spaces."""
    refs, hyps = _pairs(references, hypotheses, language)
    use_cer = language in NO_SPACE_LANGUAGES
    value = 0.0
    if refs:
        jiwer = _jiwer()
        value = float(jiwer.cer(refs, hyps) if use_cer else jiwer.wer(refs, hyps))
    return {"metric": "cer" if use_cer else "wer", "value": round(value, 4), "clips": len(refs),
            "normalizer": normalizer(language)[1]}
