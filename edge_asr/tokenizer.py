"""Whisper tokenizer on the ``tokenizers`` library (no transformers), driven by the manifest's token table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import DecodingError


@dataclass(frozen=True)
class SpecialTokens:
    eot: int
    sot: int
    translate: int
    transcribe: int
    sot_lm: int
    sot_prev: int
    no_speech: int | None
    no_timestamps: int
    timestamp_begin: int
    languages: dict[str, int]

    @classmethod
    def from_dict(cls, d: dict) -> "SpecialTokens":
        return cls(**{k: d[k] if k != "languages" else dict(d[k]) for k in cls.__dataclass_fields__})


class Tokenizer:
    """Encodes text, decodes token ids and builds the start-of-transcript prefix."""

    def __init__(self, path: Path, specials: SpecialTokens, multilingual: bool):
        from tokenizers import Tokenizer as _HFTokenizer

        self._tok = _HFTokenizer.from_file(str(path))
        self.special = specials
        self.multilingual = multilingual

    @property
    def eot(self) -> int:
        return self.special.eot

    @property
    def timestamp_begin(self) -> int:
        return self.special.timestamp_begin

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids, skipping special and timestamp tokens."""
        return self._tok.decode([int(i) for i in ids if i < self.special.eot], skip_special_tokens=False)

    def language_token(self, language: str) -> int:
        if not self.multilingual:
            if language != "en":
                raise DecodingError(
                    f"this model is English-only and cannot transcribe language {language!r}; "
                    "use a multilingual model (e.g. 'base') or language='en'")
            return -1
        try:
            return self.special.languages[language]
        except KeyError:
            known = ", ".join(sorted(self.special.languages))
            raise DecodingError(f"unknown language code {language!r}; this model knows: {known}") from None

    def sot_sequence(self, language: str | None, task: str, timestamps: bool) -> list[int]:
        """<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]. English-only models take no
        language or task token (their vocabulary has them, but they were never trained with them)."""
        if task not in ("transcribe", "translate"):
            raise DecodingError(f"unknown task {task!r}: use 'transcribe' or 'translate'")
        seq = [self.special.sot]
        if self.multilingual:
            seq.append(self.language_token(language or "en"))
            seq.append(self.special.transcribe if task == "transcribe" else self.special.translate)
        else:
            if task == "translate":
                raise DecodingError("this model is English-only: it cannot translate; use a multilingual model")
            if language not in (None, "en"):
                self.language_token(language)  # raises the English-only error
        if not timestamps:
            seq.append(self.special.no_timestamps)
        return seq

    def language_codes(self) -> list[str]:
        return list(self.special.languages) if self.multilingual else ["en"]
