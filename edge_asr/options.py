"""`TranscribeOptions`: the one definition of every transcription option.

Each field carries its help text in ``metadata["help"]``; the CLI flags (cli_options.py), the streaming
options (which hold a TranscribeOptions) and the per-attempt `DecodingOptions` (`decoding_options`)
are all derived from here, so a default changes in one line. Defaults follow openai/whisper (greedy,
temperature fallback on).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Sequence

from .decoding import DecodingOptions
from .errors import DecodingError, OptionError
from .languages import normalize_language
from .option_field import option
from .term_boost import DEFAULT_BOOST_WEIGHT, parse_terms
from .vad import VadOptions


ProgressCallback = Callable[[float, float], None]  # (seconds processed, total seconds)


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything that shapes a transcription."""

    language: str | None = option(None, "language code (en, de, ja, ...) or name (English, german); None detects "
                                        "it on the first 30 s (multilingual models)")
    # None: the model's default (a fine-tune's generation_config task, carried in its manifest), else
    # transcribe; resolved per model in WindowSteps, so a translate fine-tune translates by default.
    task: str | None = option(None, "translate = speech in any language to English text (multilingual models); "
                                    "default: the model's own (transcribe unless its fine-tune says otherwise)",
                              choices=("transcribe", "translate"))
    temperature: float | Sequence[float] = option(
        (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "temperature, or a fallback ladder tried in order while the result is "
                                        "too repetitive or unsure")
    beam_size: int | None = option(None, "beam search width at temperature 0 (None: greedy)")
    best_of: int | None = option(5, "samples per fallback temperature > 0 (the most likely is kept)")
    patience: float | None = option(None, "beam search: stop after beam_size x patience finished candidates "
                                          "(None: 1.0)")
    length_penalty: float | None = option(None, "0..1: Google NMT length penalty for ranking beams "
                                                "(None: divide by length)")
    compression_ratio_threshold: float | None = option(
        2.4, "retry hotter when the text compresses better than this (repetition)")
    logprob_threshold: float | None = option(-1.0, "retry hotter when the average token log-probability is "
                                                   "below this")
    no_speech_threshold: float | None = option(
        0.6, "skip a window as silence above this no-speech probability (when the log-probability is also "
             "below logprob_threshold)")
    condition_on_previous_text: bool = option(True, "feed the previous window's text as the prompt")
    prompt_reset_on_temperature: float = option(
        0.5, "stop conditioning on previous text after a window decoded above this temperature")
    initial_prompt: str | None = option(None, "text to prime the first window (vocabulary, style)")
    prefix: str | None = option(None, "forced beginning of the first window's text")
    hotwords: str | None = option(None, "terms to favour, put in every window's prompt (domain vocabulary)")
    boost_terms: tuple[str, ...] = option(
        (), "terms to favour by a logit bonus on the tokens that continue them (no prompt, no training): "
            "TERM or TERM:WEIGHT; repeat the flag for more", flag="--boost", metavar="TERM[:WEIGHT]",
        file_flag="--boost-file", file_help="read boost terms from a file: one TERM[:WEIGHT] a line, # comments")
    boost_weight: float = option(DEFAULT_BOOST_WEIGHT, "logit bonus of a boost term without its own :WEIGHT "
                                                       "(a whole match; a partial one gets less)")
    word_timestamps: bool = option(False, "time every word (cross-attention alignment, DTW)")
    prepend_punctuations: str = option("\"'“¿([{-", "punctuation merged into the next word (word timing)",
                                       cli=False)
    append_punctuations: str = option("\"'.。,，!！?？:：”)]}、", "punctuation merged into the previous word "
                                                              "(word timing)", cli=False)
    hallucination_silence_threshold: float | None = option(
        None, "seconds: with word timing, skip silent gaps longer than this around likely hallucinations",
        metavar="SECONDS")
    without_timestamps: bool = option(False, "decode without timestamp tokens (segments are whole 30 s windows)")
    max_initial_timestamp: float | None = option(1.0, "latest time the first timestamp may take (seconds)")
    suppress_tokens: str | Sequence[int] | None = option(
        "-1", "token ids never sampled; '-1' = the model's list plus control tokens", cli=False)
    suppress_blank: bool = option(True, "never start a window with a blank", cli=False)
    # Whisper answers digital silence with "you" or "Thank you." even at a high no-speech probability.
    silence_peak_db: float | None = option(
        -60.0, "skip 30 s windows whose loudest sample is below this level (dBFS; none disables)",
        metavar="DBFS")
    # whisper.cpp's audio_ctx, sherpa-onnx's sliced positions; the model was trained on 30 s windows.
    encoder_tail_s: float | None = option(
        None, "reduced encoder window: encode the audio plus this much silence (rounded up to whole seconds) "
              "instead of a full 30 s window; much faster on short clips, costs accuracy (README)",
        flag="--encoder-tail", metavar="SECONDS", group="speed")
    vad_filter: bool = option(False, "transcribe only the speech Silero VAD finds", group="vad")
    vad_options: VadOptions | None = option(None, "Silero VAD settings (None: each mode's defaults)", cli=False)
    seed: int = option(0, "seed of temperature sampling (same seed, same text)")
    batch_size: int = option(
        1, "N > 1: batched mode: VAD speech windows of up to 30 s, N at a time through the encoder and decoder "
           "(faster on long files; no conditioning on previous text); 1: the sequential 30 s window loop",
        metavar="N", group="speed")
    # A tiny file can claim hours (a corrupt header), and a server must bound what one request costs.
    max_duration: float | None = option(
        86400.0, "refuse audio longer than this many seconds (counted while decoding, on what the file holds; "
                 "none: no limit)", metavar="SECONDS")

    def __post_init__(self):
        if self.language is not None:  # a name ("English", "german") or any case of a code -> the code
            object.__setattr__(self, "language", normalize_language(self.language))
        if self.max_duration is not None and (isinstance(self.max_duration, bool) or not isinstance(
                self.max_duration, (int, float)) or not self.max_duration > 0):
            raise DecodingError(f"max_duration must be a positive number of seconds or None, not {self.max_duration}")
        if not self.temperatures:
            raise DecodingError("temperature must be a number or a non-empty sequence")
        if self.batch_size < 1:
            raise DecodingError(f"batch_size must be at least 1, not {self.batch_size}")
        # One term given as a string is one term, not its characters; a tuple keeps the options hashable.
        try:
            terms = (self.boost_terms,) if isinstance(self.boost_terms, str) else tuple(self.boost_terms or ())
        except TypeError:  # boost_terms=5: the typed error the other option checks raise, not tuple()'s
            raise OptionError(f"boost_terms must be a term or a sequence of terms, not {self.boost_terms!r}") from None
        if not all(isinstance(t, str) for t in terms):
            raise OptionError(f"boost terms must be strings (TERM or TERM:WEIGHT), not {terms!r}")
        object.__setattr__(self, "boost_terms", terms)
        parse_terms(terms, self.boost_weight)  # a bad term or weight fails here, not mid-decode

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The fallback ladder (a single temperature is a ladder of one)."""
        t = self.temperature
        return (float(t),) if isinstance(t, (int, float)) else tuple(float(x) for x in t)

    def decoding_options(self, temperature: float, *, language: str, prompt: Sequence[int] | None = None,
                         prefix: str | Sequence[int] | None = None, sample_len: int | None = None) -> DecodingOptions:
        """One decoding attempt at ``temperature``: beam search (with patience) at 0, best_of sampling above."""
        t = temperature
        return DecodingOptions(
            task=self.task, language=language, temperature=t, prompt=list(prompt) if prompt else None, prefix=prefix,
            beam_size=self.beam_size if t == 0 else None, patience=self.patience if t == 0 else None,
            best_of=self.best_of if t > 0 else None, length_penalty=self.length_penalty,
            suppress_tokens=self.suppress_tokens, suppress_blank=self.suppress_blank,
            without_timestamps=self.without_timestamps, max_initial_timestamp=self.max_initial_timestamp,
            seed=self.seed, sample_len=sample_len, boost_terms=self.boost_terms, boost_weight=self.boost_weight)
