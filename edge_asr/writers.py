"""Output writers: turn a TranscriptionResult into txt or json text, and name output files."""

from __future__ import annotations

import json
from pathlib import Path

from .results import TranscriptionResult

FORMATS = ("txt", "json")


def result_json(result: TranscriptionResult, source: str | None = None) -> dict:
    d = result.to_dict()
    if source is not None:
        d = {"file": source, **d}
    return d


def format_result(result: TranscriptionResult, fmt: str, source: str | None = None, indent: int | None = 2) -> str:
    if fmt == "txt":
        return result.text + "\n"
    if fmt == "json":
        return json.dumps(result_json(result, source), ensure_ascii=False, indent=indent) + "\n"
    raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")


def output_path(audio: str, output_dir: Path, fmt: str) -> Path:
    """``clip.flac`` -> ``output_dir/clip.<fmt>``."""
    return Path(output_dir) / f"{Path(audio).stem}.{fmt}"


def write_result(result: TranscriptionResult, audio: str, output_dir: Path, fmt: str) -> Path:
    path = output_path(audio, output_dir, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # never leave a half-written transcript behind
    tmp.write_text(format_result(result, fmt, audio), encoding="utf-8")
    tmp.replace(path)
    return path
