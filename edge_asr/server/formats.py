"""OpenAI's ``response_format`` values rendered from a TranscriptionResult (subtitles by edge_asr.writers).

- ``json``: ``{"text", "usage"}``
- ``text``: the text and a newline (text/plain)
- ``srt``, ``vtt``: subtitles, one cue per segment (word-level cues are the CLI's ``--max-line-width``)
- ``verbose_json``: ``task``, ``language`` (ISO code), ``duration``, ``text``, ``segments`` (OpenAI's fields;
  ``seek`` is the segment start in 10 ms frames) when segment granularity is asked for or none is, and
  ``words`` [{word, start, end}] with ``timestamp_granularities[]=word``.
"""

from __future__ import annotations

from ..results import TranscriptionResult
from ..writers import format_srt, format_vtt

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "srt": "text/plain; charset=utf-8",
               "vtt": "text/vtt; charset=utf-8"}


def verbose_json(result: TranscriptionResult, task: str, granularities: tuple[str, ...]) -> dict:
    out = {"task": task, "language": result.language, "duration": round(result.duration, 3),
           "text": result.text.strip()}
    if "segment" in granularities or not granularities:
        out["segments"] = [{"id": s.id, "seek": int(round(s.start * 100)), "start": s.start, "end": s.end,
                            "text": s.text, "tokens": list(s.tokens), "temperature": s.temperature,
                            "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
                            "no_speech_prob": float(s.no_speech_prob or 0.0)} for s in result.segments]
    if "word" in granularities:
        out["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end}
                        for s in result.segments for w in (s.words or ())]
    out["usage"] = {"type": "duration", "seconds": round(result.duration, 3)}
    return out


def render(result: TranscriptionResult, response_format: str, task: str,
           granularities: tuple[str, ...] = ()) -> tuple[str | dict, str]:
    """(body, media type): a dict for the JSON formats, text for the others."""
    if response_format == "json":
        return {"text": result.text.strip(),
                "usage": {"type": "duration", "seconds": round(result.duration, 3)}}, "application/json"
    if response_format == "verbose_json":
        return verbose_json(result, task, granularities), "application/json"
    if response_format == "text":
        return result.text.strip() + "\n", MEDIA_TYPES["text"]
    if response_format == "srt":
        return format_srt(result), MEDIA_TYPES["srt"]
    if response_format == "vtt":
        return format_vtt(result), MEDIA_TYPES["vtt"]
    raise ValueError(response_format)  # the request parser only lets the formats above through
