"""Validation clips from the command line: audio files (reference text from a same-named .txt beside
each, when present) or JSON-lines lists of {"audio": path, "text": reference} (paths relative to the
list's folder; ../shared/audio/manifest.jsonl has this shape)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_asr.audio import load_audio
from edge_asr.errors import EdgeASRError

from .validate import Clip


class ClipListError(EdgeASRError, ValueError):
    """A validation clip list that cannot be read."""


def _from_jsonl(path: Path) -> list[Clip]:
    clips = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ClipListError(f"cannot read the clip list {path}: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            audio = entry.get("audio") or entry["path"]
        except (ValueError, KeyError, AttributeError, TypeError):
            raise ClipListError(f"{path}:{n} is not a JSON object with an \"audio\" (or \"path\") field "
                                "(the list is JSON lines: one object a line)") from None
        reference = entry.get("text", entry.get("reference"))
        # Checked here: {"audio": 5} would otherwise fail as a TypeError in Path(), outside this message.
        if not isinstance(audio, str) or not (reference is None or isinstance(reference, str)):
            raise ClipListError(f"{path}:{n}: \"audio\" must be a path (string) and \"text\" a string")
        file = (path.parent / audio) if not Path(audio).is_absolute() else Path(audio)
        clips.append(Clip(entry.get("id") or file.stem, load_audio(file), reference))
    if not clips:
        raise ClipListError(f"the clip list {path} lists no clip")
    return clips


def load_clips(paths: list[str]) -> list[Clip]:
    """Clips for ``edge-asr export --validate-audio``."""
    clips = []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() in (".jsonl", ".json"):
            clips += _from_jsonl(path)
            continue
        text = path.with_suffix(".txt")
        try:
            reference = text.read_text(encoding="utf-8").strip() if text.is_file() else None
        except (OSError, UnicodeDecodeError) as e:
            raise ClipListError(f"cannot read the reference text {text} (UTF-8 expected): {e}") from None
        clips.append(Clip(path.name, load_audio(path), reference))
    return clips
