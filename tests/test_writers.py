"""Writers: exact txt/json/srt/vtt/tsv text, word-level cue breaking and highlighting, output files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_asr import writers
from edge_asr.results import Segment, TranscriptionResult
from edge_asr.writers import ALL_FORMATS, FORMATS, format_result, format_timestamp, output_path, write_result


@dataclass(frozen=True)
class FakeWord:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass(frozen=True)
class FakeSegment:
    """Segment's fields plus ``words``, so these tests do not depend on results.py gaining the field."""
    id: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float | None = None
    words: tuple[FakeWord, ...] | None = None


def _result(*segments) -> TranscriptionResult:
    text = "".join(s.text for s in segments).strip()
    return TranscriptionResult(text=text, language="en", duration=3730.0, segments=tuple(segments))


@pytest.fixture
def result() -> TranscriptionResult:
    return _result(
        Segment(0, 1.0, 4.5, " Hello there. ", (1, 2), -0.2, 0.01),
        Segment(1, 5.0, 6.0, "   ", (), -1.0, 0.9),  # empty: never a cue
        Segment(2, 3725.25, 3727.0, " A --> B", (3,), -0.3, 0.02),  # over an hour
    )


def _words(*spec: tuple[float, float, str]) -> tuple[FakeWord, ...]:
    return tuple(FakeWord(s, e, w) for s, e, w in spec)


@pytest.fixture
def worded() -> TranscriptionResult:
    w1 = _words((0.0, 0.3, " The"), (0.3, 0.6, " quick"), (0.6, 0.9, " brown"), (0.9, 1.2, " fox"),
                (1.2, 1.6, " jumps"))
    w2 = _words((2.0, 2.3, " over"), (2.3, 2.6, " it."))
    return _result(FakeSegment(0, 0.0, 1.8, " The quick brown fox jumps", words=w1),
                   FakeSegment(1, 1.8, 3.0, " over it.", words=w2))


def test_formats_constants():
    assert FORMATS == ("txt", "json", "srt", "vtt", "tsv")
    assert ALL_FORMATS == FORMATS and "all" not in FORMATS


@pytest.mark.parametrize("seconds,hours,marker,expected", [
    (0.0, False, ".", "00:00.000"),
    (0.0, True, ",", "00:00:00,000"),
    (4.5, False, ".", "00:04.500"),
    (61.0015, True, ",", "00:01:01,002"),
    (3725.25, False, ".", "01:02:05.250"),
    (36000.0, True, ",", "10:00:00,000"),
])
def test_format_timestamp(seconds, hours, marker, expected):
    assert format_timestamp(seconds, hours, marker) == expected


def test_format_timestamp_rejects_negative():
    with pytest.raises(ValueError):
        format_timestamp(-0.1)


def test_srt(result):
    assert format_result(result, "srt") == (
        "1\n00:00:01,000 --> 00:00:04,500\nHello there.\n\n"
        "2\n01:02:05,250 --> 01:02:07,000\nA -> B\n\n")


def test_vtt(result):
    assert format_result(result, "vtt") == (
        "WEBVTT\n\n"
        "00:01.000 --> 00:04.500\nHello there.\n\n"
        "01:02:05.250 --> 01:02:07.000\nA -> B\n\n")


def test_tsv(result):
    assert format_result(result, "tsv") == "start\tend\ttext\n1000\t4500\tHello there.\n3725250\t3727000\tA --> B\n"


def test_tsv_replaces_tabs_and_newlines():
    r = _result(Segment(0, 0.0, 1.0, " a\tb\nc ", ()))
    assert format_result(r, "tsv") == "start\tend\ttext\n0\t1000\ta b c\n"


def test_txt_and_json_unchanged(result):
    assert format_result(result, "txt") == result.text + "\n"
    d = json.loads(format_result(result, "json", "clip.flac"))
    assert list(d)[0] == "file" and d["file"] == "clip.flac"
    assert d["segments"][2]["text"] == " A --> B" and d["segments"][0]["tokens"] == [1, 2]
    assert "\n" not in format_result(result, "json", indent=None).rstrip("\n")


def test_options_ignored_by_txt_json_tsv(result):
    opts = dict(max_line_width=5, max_line_count=1, highlight_words=True)
    for fmt in ("txt", "json", "tsv"):
        assert format_result(result, fmt, **opts) == format_result(result, fmt)


def test_unknown_format_and_bad_options(result):
    with pytest.raises(ValueError, match="unknown output format"):
        format_result(result, "all")
    with pytest.raises(ValueError):
        format_result(result, "srt", max_line_width=0)
    with pytest.raises(ValueError):
        format_result(result, "vtt", max_line_count=0)
    with pytest.raises(TypeError):
        format_result(result, "srt", max_words=3)


def test_empty_result():
    r = _result()
    assert format_result(r, "srt") == ""
    assert format_result(r, "vtt") == "WEBVTT\n\n"
    assert format_result(r, "tsv") == "start\tend\ttext\n"


def test_options_without_words_fall_back_to_segment_cues(result):
    plain = format_result(result, "srt")
    assert format_result(result, "srt", max_line_width=5, max_line_count=1, highlight_words=True) == plain
    none_words = _result(*(FakeSegment(s.id, s.start, s.end, s.text) for s in result.segments))
    assert format_result(none_words, "srt", max_line_width=5, highlight_words=True) == plain


def test_words_without_options_use_segment_cues(worded):
    assert format_result(worded, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,800\nThe quick brown fox jumps\n\n"
        "2\n00:00:01,800 --> 00:00:03,000\nover it.\n\n")


def test_line_width_keeps_segments(worded):
    assert format_result(worded, "srt", max_line_width=10) == (
        "1\n00:00:00,000 --> 00:00:01,600\nThe quick\nbrown fox\njumps\n\n"
        "2\n00:00:02,000 --> 00:00:02,600\nover it.\n\n")


def test_line_width_and_count_span_segments(worded):
    out = format_result(worded, "vtt", max_line_width=10, max_line_count=2)
    assert out == ("WEBVTT\n\n"
                   "00:00.000 --> 00:01.200\nThe quick\nbrown fox\n\n"
                   "00:01.200 --> 00:02.600\njumps over\nit.\n\n")
    for cue in out.split("\n\n")[1:-1]:
        lines = cue.split("\n")[1:]
        assert len(lines) <= 2 and all(len(line) <= 10 for line in lines)


def test_long_pause_starts_a_cue():
    r = _result(FakeSegment(0, 0.0, 1.0, " a b", words=_words((0.0, 0.4, " a"), (0.5, 1.0, " b"))),
                FakeSegment(1, 5.0, 6.0, " c", words=_words((5.0, 6.0, " c"))))
    assert format_result(r, "srt", max_line_width=40, max_line_count=3) == (
        "1\n00:00:00,000 --> 00:00:01,000\na b\n\n"
        "2\n00:00:05,000 --> 00:00:06,000\nc\n\n")


def test_highlight_words():
    r = _result(FakeSegment(0, 0.0, 1.0, " Hi there", words=_words((0.0, 0.5, " Hi"), (0.7, 1.0, " there"))))
    assert format_result(r, "vtt", highlight_words=True) == (
        "WEBVTT\n\n"
        "00:00.000 --> 00:00.500\n<u>Hi</u> there\n\n"
        "00:00.500 --> 00:00.700\nHi there\n\n"
        "00:00.700 --> 00:01.000\nHi <u>there</u>\n\n")


def test_highlight_words_with_line_breaks(worded):
    out = format_result(worded, "srt", max_line_width=10, max_line_count=2, highlight_words=True)
    cues = [c.split("\n", 2) for c in out.split("\n\n") if c]
    assert [c[0] for c in cues] == [str(i) for i in range(1, len(cues) + 1)]
    assert cues[0][1:] == ["00:00:00,000 --> 00:00:00,300", "<u>The</u> quick\nbrown fox"]
    assert cues[2][1:] == ["00:00:00,600 --> 00:00:00,900", "The quick\n<u>brown</u> fox"]
    assert cues[-1][1:] == ["00:00:02,300 --> 00:00:02,600", "jumps over\n<u>it.</u>"]
    assert sum("<u>" in c[2] for c in cues) == 7  # one cue per word, plus plain cues for the gaps
    assert ["00:00:01,600 --> 00:00:02,000", "jumps over\nit."] in [c[1:] for c in cues]


def test_word_cues_escape_arrow_and_skip_empty():
    r = _result(FakeSegment(0, 0.0, 1.0, " a --> b", words=_words((0.0, 0.3, " a"), (0.3, 0.6, " -->"),
                                                                    (0.6, 1.0, " b"))),
                FakeSegment(1, 1.0, 2.0, " ", words=()))
    assert format_result(r, "srt", max_line_width=42) == "1\n00:00:00,000 --> 00:00:01,000\na -> b\n\n"
    assert "<u>-></u>" in format_result(r, "vtt", highlight_words=True)


def test_output_path():
    assert output_path("some/dir/clip.flac", Path("out"), "srt") == Path("out/clip.srt")
    assert output_path("talk.v2.wav", Path("o"), "tsv") == Path("o/talk.v2.tsv")


def test_write_result_names_and_contents(result, tmp_path):
    out = tmp_path / "new" / "dir"
    for fmt in ALL_FORMATS:
        path = write_result(result, "audio/clip.flac", out, fmt)
        assert path == out / f"clip.{fmt}"
        assert path.read_text(encoding="utf-8") == format_result(result, fmt, "audio/clip.flac")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"clip.{f}" for f in ALL_FORMATS)


def test_write_result_passes_options(worded, tmp_path):
    path = write_result(worded, "clip.flac", tmp_path, "srt", max_line_width=10)
    assert path.read_text(encoding="utf-8") == format_result(worded, "srt", max_line_width=10)


def test_write_result_is_atomic(result, tmp_path, monkeypatch):
    target = tmp_path / "clip.srt"
    target.write_text("old\n", encoding="utf-8")

    def fail(self, other):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_result(result, "clip.flac", tmp_path, "srt")
    assert target.read_text(encoding="utf-8") == "old\n"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["clip.srt"]  # and no .tmp is left behind
    monkeypatch.undo()
    with pytest.raises(ValueError):  # a bad option fails before anything is written
        write_result(result, "clip.flac", tmp_path, "srt", max_line_width=0)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.srt"]
    write_result(result, "clip.flac", tmp_path, "srt")
    assert target.read_text(encoding="utf-8") == format_result(result, "srt")
    assert not list(tmp_path.glob("*.tmp"))


def test_module_size():
    assert len(Path(writers.__file__).read_text().splitlines()) <= 250
