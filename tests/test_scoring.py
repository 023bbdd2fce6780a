"""edge_asr.scoring: the one WER/CER implementation (export validation, benchmarks, tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import have

needs_scoring = pytest.mark.skipif(not (have("jiwer") and have("whisper_normalizer")),
                                   reason="needs jiwer and whisper-normalizer (edge-asr[score])")


@needs_scoring
def test_known_values():
    from edge_asr.scoring import cer, error_rate, normalize, wer, word_error_rate

    assert wer(["the cat sat down"], ["the cat sat up"]) == pytest.approx(0.25)  # 1 substitution / 4 words
    assert word_error_rate(["the cat sat down"], ["the cat sat up"]) == pytest.approx(0.25)
    assert wer(["a b c d", "e f"], ["a b c d", "x y"]) == pytest.approx(2 / 6)  # corpus, not mean of clips
    assert normalize("Mr. Smith") == normalize("mister smith")  # Whisper's English normalizer
    assert wer(["Mr. Smith paid $20."], ["Mister Smith paid twenty dollars"]) == 0.0
    assert wer(["", "  "], ["something", "else"]) == 0.0  # empty references are left out
    assert cer(["abcd"], ["abce"]) == pytest.approx(0.25)
    ja = error_rate("ja", ["真っ昼間なのに"], ["真昼間なのに"])  # one character of seven dropped
    assert ja == {"metric": "cer", "value": round(1 / 7, 4), "clips": 1,
                  "normalizer": "whisper_normalizer.basic.BasicTextNormalizer"}
    de = error_rate("de", ["Guten Tag, Welt!"], ["guten tag welt"])
    assert de["metric"] == "wer" and de["value"] == 0.0 and de["normalizer"].endswith("BasicTextNormalizer")
    en = error_rate("en", ["Hello, World!"], ["hello world"])
    assert en["value"] == 0.0 and en["normalizer"].endswith("EnglishTextNormalizer")
    with pytest.raises(TypeError):
        wer("the cat", "the cat")  # lists of texts, not strings


@needs_scoring
def test_bench_and_export_use_the_same_scoring():
    import edge_asr.scoring as scoring
    from edge_asr_bench import corpus

    assert corpus.error_rate is scoring.error_rate and corpus.NO_SPACE_LANGUAGES is scoring.NO_SPACE_LANGUAGES
    if have("torch"):
        from edge_asr_export import validate

        assert validate.word_error_rate is scoring.word_error_rate


def test_missing_dependency_names_the_extra(monkeypatch):
    from edge_asr import scoring

    monkeypatch.setitem(sys.modules, "jiwer", None)  # as if jiwer were not installed
    scoring.normalizer.cache_clear()
    with pytest.raises(scoring.ScoringDependencyError, match=r"pip install 'edge-asr\[score\]'") as e:
        scoring.wer(["a"], ["a"]) if have("whisper_normalizer") else scoring.normalize("a")
    assert isinstance(e.value, ImportError)


def test_runtime_does_not_import_scoring():
    code = ("import sys, edge_asr; bad = [m for m in ('jiwer', 'whisper_normalizer', 'edge_asr.scoring') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
