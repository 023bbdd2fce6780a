"""Result types returned by transcription (frozen dataclasses; ``to_dict`` gives JSON-ready data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .options import TranscribeOptions


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the audio
    end: float
    word: str  # with its leading space, as decoded
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float  # seconds from the start of the audio
    end: float
    text: str
    tokens: tuple[int, ...] = field(repr=False)
    avg_logprob: float = 0.0
    no_speech_prob: float | None = None
    temperature: float = 0.0
    compression_ratio: float = 0.0
    words: tuple[Word, ...] | None = None  # with word_timestamps=True


@dataclass(frozen=True)
class TranscriptionResult:
    text: str
    language: str
    duration: float  # seconds of audio
    segments: tuple[Segment, ...]
    language_probs: dict[str, float] | None = field(default=None, repr=False)  # when detected

    @property
    def language_probability(self) -> float | None:
        return None if self.language_probs is None else self.language_probs.get(self.language)

    def to_dict(self, language_probs: bool = False) -> dict:
        """JSON-ready dict; the full language distribution (100 entries) only when asked for."""
        d = asdict(self)
        for s in d["segments"]:
            s["tokens"] = list(s["tokens"])
            if s["words"] is None:
                del s["words"]
        d["language_probability"] = self.language_probability
        if not language_probs:
            del d["language_probs"]
        return d


@dataclass(frozen=True)
class TranscriptionInfo:
    """What is known before the first segment is decoded (``WhisperModel.transcribe_segments``): the
    language (given, or detected on the first 30 s of speech), the audio's length and how much of it is
    decoded after the VAD filter, and the options in effect."""

    language: str
    duration: float  # seconds of audio
    duration_after_vad: float  # seconds that are decoded: == duration without vad_filter in sequential
    # mode; in batched mode (which always uses VAD) the length of its speech windows
    options: "TranscribeOptions" = field(repr=False)
    language_probs: dict[str, float] | None = field(default=None, repr=False)  # when detected

    @property
    def language_probability(self) -> float | None:
        """Probability of the detected language; None when it was given (or the model is English-only)."""
        return None if self.language_probs is None else self.language_probs.get(self.language)
