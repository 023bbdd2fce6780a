"""Whisper tokenizer on the ``tokenizers`` library (no transformers), driven by the manifest's token table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .constants import TIME_PRECISION
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


# Languages written without spaces between words: word timing splits them at unicode boundaries.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


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

    def starts_word(self, token: int) -> bool:
        """A text token that begins a new word (a leading space and a letter or digit): punctuation
        and word pieces do not. Cached per token (a dict write is atomic, so threads may share it)."""
        cache = self.__dict__.setdefault("_starts_word", {})
        if token not in cache:
            text = self.decode([token]) if token < self.special.eot else ""
            cache[token] = text[:1] == " " and any(c.isalnum() for c in text)
        return cache[token]

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

    def decode_with_timestamps(self, ids: Sequence[int]) -> str:
        """Text with timestamp tokens rendered as <|1.08|> (for debugging and verbose output)."""
        out, text = [], []
        for t in ids:
            if t >= self.special.timestamp_begin:
                out.append(self.decode(text))
                text = []
                out.append(f"<|{(t - self.special.timestamp_begin) * TIME_PRECISION:.2f}|>")
            else:
                text.append(t)
        out.append(self.decode(text))
        return "".join(out)

    def split_to_word_tokens(self, tokens: list[int], language: str | None) -> tuple[list[str], list[list[int]]]:
        """Group text tokens into words (openai/whisper's rule): at spaces and punctuation, or at every
        decodable unicode boundary for ``language`` when it is written without spaces. The language is
        an argument, not tokenizer state: one model serves concurrent calls in different languages."""
        if language in NO_SPACE_LANGUAGES:
            return self._split_on_unicode(tokens)
        return self._split_on_spaces(tokens)

    def _split_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        decoded_full = self.decode_raw(tokens)
        replacement = "\ufffd"
        words, word_tokens, current = [], [], []
        unicode_offset = 0
        for token in tokens:
            current.append(token)
            decoded = self.decode_raw(current)
            if replacement not in decoded or decoded_full[unicode_offset + decoded.index(replacement)] == replacement:
                words.append(decoded)
                word_tokens.append(current)
                current = []
                unicode_offset += len(decoded)
        return words, word_tokens

    def _split_on_spaces(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        import string

        subwords, subword_tokens_list = self._split_on_unicode(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for subword, subword_tokens in zip(subwords, subword_tokens_list):
            special = subword_tokens[0] >= self.special.eot
            with_space = subword.startswith(" ")
            punctuation = subword.strip() in string.punctuation
            if special or with_space or punctuation or len(words) == 0:
                words.append(subword)
                word_tokens.append(list(subword_tokens))
            else:
                words[-1] = words[-1] + subword
                word_tokens[-1].extend(subword_tokens)
        return words, word_tokens

    def decode_raw(self, ids: Sequence[int]) -> str:
        """Decode keeping partial UTF-8 sequences as U+FFFD and special tokens as text (word splitting)."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def vocab_size(self) -> int:
        """Tokens the file defines, special tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def token_text(self, token: int) -> str | None:
        """The token's string in the vocabulary (e.g. "<|endoftext|>"), None when the id is unknown."""
        return self._tok.id_to_token(int(token))

    def token_id(self, piece: str) -> int | None:
        """The id of the vocabulary entry spelled ``piece`` (byte-level form, e.g. "Ġthe"), None if absent."""
        return self._tok.token_to_id(piece)

    def language_codes(self) -> list[str]:
        return list(self.special.languages) if self.multilingual else ["en"]
