"""Output writers: turn a TranscriptionResult into txt, json, srt, vtt or tsv text, and name output files.

The subtitle formats follow openai/whisper's ``utils`` writers (timestamps, cue layout, word-level line
breaking and ``highlight_words``). Segments may carry ``words`` (``Word(start, end, word, probability)``);
the code reads them with ``getattr`` so segments without the field work too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import OptionError
from .results import TranscriptionResult

FORMATS = ("txt", "json", "srt", "vtt", "tsv")
ALL_FORMATS = FORMATS  # what "all" expands to; the caller handles "all" itself
SUBTITLE_FORMATS = ("srt", "vtt")

_Timing = tuple[float, float, str]  # one word of a cue: start, end, text (leading "\n" = line break)


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """``[HH:]MM:SS<marker>mmm`` like openai/whisper: hours only when asked for or nonzero."""
    if not seconds >= 0:
        raise OptionError(f"non-negative timestamp expected, got {seconds!r}")
    ms = round(seconds * 1000.0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1_000)
    hours_marker = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_marker}{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def result_json(result: TranscriptionResult, source: str | None = None) -> dict:
    """``result.to_dict()``, with ``"file": source`` first when a source is given."""
    d = result.to_dict()
    if source is not None:
        d = {"file": source, **d}
    return d


def _word_subtitles(segments: Sequence[Any], max_line_width: int | None,
                    max_line_count: int | None) -> Iterator[list[_Timing]]:
    """Group words into cues as openai/whisper's SubtitlesWriter does.

    Lines are broken so that none exceeds ``max_line_width`` characters (a single longer word still gets
    its own line). With both limits set, cues span segments and hold at most ``max_line_count`` lines (a
    pause over 3 s also starts a cue); otherwise every segment starts a new cue.
    """
    preserve_segments = max_line_count is None or max_line_width is None
    width = max_line_width or 1000
    line_len, line_count = 0, 1
    subtitle: list[_Timing] = []
    last = next((w.start for s in segments for w in s.words), segments[0].start if segments else 0.0)
    for seg in segments:
        for i, w in enumerate(seg.words):
            text = w.word
            long_pause = not preserve_segments and w.start - last > 3.0
            has_room = line_len + len(text) <= width
            seg_break = i == 0 and bool(subtitle) and preserve_segments
            if line_len > 0 and has_room and not long_pause and not seg_break:
                line_len += len(text)  # line continuation
            else:
                text = text.strip()
                if (subtitle and max_line_count is not None
                        and (long_pause or line_count >= max_line_count)) or seg_break:
                    yield subtitle  # cue break
                    subtitle, line_count = [], 1
                elif line_len > 0:
                    line_count += 1  # line break
                    text = "\n" + text
                line_len = len(text.strip())
            subtitle.append((w.start, w.end, text))
            last = w.start
    if subtitle:
        yield subtitle


def subtitle_cues(result: TranscriptionResult, always_include_hours: bool = False, decimal_marker: str = ".",
                  *, max_line_width: int | None = None, max_line_count: int | None = None,
                  highlight_words: bool = False) -> Iterator[tuple[str, str, str]]:
    """(start, end, text) cues with formatted timestamps; text stripped, "-->" escaped, empty cues skipped.

    Word-level cues are used when every non-empty segment has ``words`` and ``max_line_width`` or
    ``highlight_words`` is set; otherwise one cue per segment (``max_line_count`` needs a width).
    """
    if max_line_width is not None and max_line_width < 1:
        raise OptionError(f"max_line_width must be at least 1, got {max_line_width}")
    if max_line_count is not None and max_line_count < 1:
        raise OptionError(f"max_line_count must be at least 1, got {max_line_count}")

    def ts(seconds: float) -> str:
        return format_timestamp(seconds, always_include_hours, decimal_marker)

    def raw() -> Iterator[tuple[str, str, str]]:
        segments = [s for s in result.segments if s.text.strip()]
        by_words = (max_line_width is not None or highlight_words) and bool(segments) and all(
            getattr(s, "words", None) is not None for s in segments)
        if not by_words:
            for s in segments:
                yield ts(s.start), ts(s.end), s.text
            return
        for subtitle in _word_subtitles(segments, max_line_width, max_line_count):
            words = [t for _, _, t in subtitle]
            start, end, text = ts(subtitle[0][0]), ts(subtitle[-1][1]), "".join(words)
            if not highlight_words:
                yield start, end, text
                continue
            last = start
            for i, (w_start, w_end, _) in enumerate(subtitle):
                ws, we = ts(w_start), ts(w_end)
                if last != ws:
                    yield last, ws, text  # the gap before this word, nothing underlined
                yield ws, we, "".join(re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w) if j == i else w
                                      for j, w in enumerate(words))
                last = we

    for start, end, text in raw():
        text = text.strip().replace("-->", "->")
        if text:
            yield start, end, text


def format_srt(result: TranscriptionResult, **options: Any) -> str:
    """Numbered SRT cues, ``HH:MM:SS,mmm`` timestamps (hours always)."""
    return "".join(f"{i}\n{start} --> {end}\n{text}\n\n"
                   for i, (start, end, text) in enumerate(subtitle_cues(result, True, ",", **options), start=1))


def format_vtt(result: TranscriptionResult, **options: Any) -> str:
    """WebVTT: ``WEBVTT`` header, ``[HH:]MM:SS.mmm`` timestamps (hours only when nonzero)."""
    return "WEBVTT\n\n" + "".join(f"{start} --> {end}\n{text}\n\n"
                                  for start, end, text in subtitle_cues(result, False, ".", **options))


def format_tsv(result: TranscriptionResult) -> str:
    """``start\\tend\\ttext`` header, then one row per non-empty segment, times in integer milliseconds."""
    rows = ["start\tend\ttext"]
    for s in result.segments:
        text = s.text.strip().replace("\t", " ").replace("\n", " ")
        if text:
            rows.append(f"{round(1000 * s.start)}\t{round(1000 * s.end)}\t{text}")
    return "\n".join(rows) + "\n"


def format_result(result: TranscriptionResult, fmt: str, source: str | None = None, indent: int | None = 2, *,
                  max_line_width: int | None = None, max_line_count: int | None = None,
                  highlight_words: bool = False) -> str:
    """The text of ``result`` in ``fmt``; the subtitle options apply to srt/vtt and are ignored otherwise."""
    if fmt == "txt":
        return result.text + "\n"
    if fmt == "json":
        return json.dumps(result_json(result, source), ensure_ascii=False, indent=indent) + "\n"
    if fmt == "tsv":
        return format_tsv(result)
    if fmt in SUBTITLE_FORMATS:
        options = dict(max_line_width=max_line_width, max_line_count=max_line_count, highlight_words=highlight_words)
        return format_srt(result, **options) if fmt == "srt" else format_vtt(result, **options)
    raise OptionError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")


def output_path(audio: str, output_dir: Path, fmt: str) -> Path:
    """``clip.flac`` -> ``output_dir/clip.<fmt>``."""
    return Path(output_dir) / f"{Path(audio).stem}.{fmt}"


def write_result(result: TranscriptionResult, audio: str, output_dir: Path, fmt: str, **writer_options: Any) -> Path:
    """Write ``result`` as ``output_dir/<stem>.<fmt>`` atomically (temporary file, then rename)."""
    text = format_result(result, fmt, audio, **writer_options)  # format first: a bad option writes nothing
    path = output_path(audio, output_dir, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # never leave a half-written transcript behind
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
