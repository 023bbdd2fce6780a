"""Batched long-form transcription: speech chunks of up to 30 s, encoded and decoded several at a time.

The sequential loop (transcribe.py) must decode one window before it knows where the next starts (it
seeks to the last timestamp) and prompts each window with the text before it, so it can never batch.
Here Silero VAD cuts the file into speech chunks first, neighbours are merged while they span at most
30 s (faster-whisper's BatchedInferencePipeline does the same), and ``batch_size`` chunks at a time go
through the encoder as one [B, n_mels, frames] tensor and through the decoder as B rows: the decoder's
weights (read once per step, the bottleneck of a token step on a CPU) then serve B windows at once.

What differs from sequential mode, by construction: no conditioning on previous text (``initial_prompt``
and ``hotwords`` prompt every chunk), ``prefix`` and ``hallucination_silence_threshold`` are refused
(they are defined on the sequential seek), and silence between chunks is never decoded. Temperature
fallback still applies, per chunk: a chunk that fails the thresholds is re-decoded alone, hotter.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import numpy as np

from .constants import FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE
from .decoding import DecodingResult
from .errors import DecodingError
from .features import window_features
from .gap_fill import fill_gaps
from .inference import DecoderState, OnnxBackend
from .memory import release_free_memory
from .options import ProgressCallback, TranscribeOptions
from .tokenizer import Tokenizer
from .vad import MIN_REMAINDER_S, speech_chunks, speech_in
from .window import WindowSteps, kept, reduced_window_frames, token_budget

_WORD_SHIFT_S = 2.0  # seconds word timing may move a window's first word before the window's start


# Neighbouring chunks further apart than this are not merged into one window. Measured (issue 18, the
# 60-minute timeline): a 1.5 s clip merged with the next across a 24 s pause came out with its words timed
# 3-4 s late, in the pause, and the next clip's too; Whisper saw few such silences in training. Costs
# ~1 % more windows on that timeline (110 -> 111; a 5 s limit: 121).
MAX_MERGE_GAP_S = 10.0


def speech_windows(chunks: list[dict]) -> list[tuple[int, int]]:
    """(start, end) samples of windows of at most 30 s that cover these speech chunks: neighbouring
    chunks are merged while the merged span (pauses between them included) fits and the pause between
    them is at most ``MAX_MERGE_GAP_S``."""
    windows: list[tuple[int, int]] = []
    for chunk in chunks:
        start, end = chunk["start"], chunk["end"]
        if (windows and end - windows[-1][0] <= N_SAMPLES
                and start - windows[-1][1] <= MAX_MERGE_GAP_S * SAMPLE_RATE):
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, min(end, start + N_SAMPLES)))
    return windows


class BatchedTranscriber:
    def __init__(self, backend: OnnxBackend, tokenizer: Tokenizer, options: TranscribeOptions):
        if options.prefix:
            raise DecodingError("prefix is defined on the first window of sequential decoding; "
                                "use batch_size=1 with prefix")
        if options.hallucination_silence_threshold is not None:
            raise DecodingError("hallucination_silence_threshold needs sequential decoding; use batch_size=1")
        self.backend = backend
        self.tokenizer = tokenizer
        self.options = options
        self.steps = WindowSteps(backend, tokenizer, options)

    def _mels(self, audio: np.ndarray, windows: list[tuple[int, int]]) -> tuple[np.ndarray, list[int]]:
        """[B, n_mels, frames] for these windows (each followed by silence, as the last window of a file
        is) and each window's number of audio frames. ``encoder_tail_s`` shortens the encoded length to the
        longest window of the batch plus that tail."""
        manifest = self.backend.manifest
        tail = self.options.encoder_tail_s
        # A full window is padded as the model expects (manifest), as the sequential loop pads a file's
        # last window; a reduced one with the log-mel of silence, as the sequential loop does (zeros read
        # as sound when the encoder sees only a few seconds).
        padding = manifest.mel_padding if tail is None else "audio"
        mels = [window_features(audio[start:end], manifest.dims.n_mels, padding) for start, end in windows]
        sizes = [min(N_FRAMES, (end - start) // HOP_LENGTH) for start, end in windows]
        frames = N_FRAMES if tail is None else reduced_window_frames(max(sizes), tail)
        return np.stack([m[:, :frames] for m in mels]), sizes

    def _decode_batch(self, state: DecoderState, prompt: list[int], language: str, seconds: float
                      ) -> list[DecodingResult]:
        """All windows at the first temperature together; those that need a fallback alone, hotter. The
        batch runs until its last row ends, so one looping row would hold all of them to 224 tokens:
        decoding stops at the token budget of the longest window (``seconds`` of audio)."""
        steps = self.steps
        budget = token_budget(seconds)
        results = steps.decode(state, prompt, language, sample_len=budget)
        for i, result in enumerate(results):
            if len(self.options.temperatures) > 1 and steps.needs_fallback(result):
                results[i] = steps.decode_with_fallback(self.backend.select(state, [i]), prompt, language, first=1,
                                                        sample_len=budget)
        return results

    def run(self, audio: np.ndarray, batch_size: int, progress: ProgressCallback | None = None
            ) -> tuple[list[dict], str, dict | None]:
        language, language_probs, batches = self.start(audio, batch_size, progress)
        return [s for batch in batches for s in batch], language, language_probs

    def start(self, audio: np.ndarray, batch_size: int, progress: ProgressCallback | None = None,
              chunks: list[dict] | None = None) -> tuple[str, dict | None, Iterator[list[dict]]]:
        """Language and language probabilities now (VAD and language detection run here; ``chunks``:
        speech chunks already found with these options), and a generator that decodes one batch per step
        and yields the segments (dicts) that are final in time order. Nothing is decoded until it is
        iterated; closing it stops after the current batch."""
        if chunks is None:
            chunks = speech_chunks(audio, self.options.vad_options)
        windows = speech_windows(chunks)
        # No detection mel when the manifest fixes the language (a fine-tune's): steps.language ignores it.
        needs_detection = (self.options.language is None and self.backend.manifest.language is None
                           and self.tokenizer.multilingual and windows)
        language, language_probs = self.steps.language(
            self._mels(audio, windows[:1])[0][0] if needs_detection else None)
        return language, language_probs, self._batches(audio, batch_size, progress, chunks, windows, language)

    def _batches(self, audio: np.ndarray, batch_size: int, progress: ProgressCallback | None, chunks: list[dict],
                 windows: list[tuple[int, int]], language: str) -> Iterator[list[dict]]:
        opt, backend, steps = self.options, self.backend, self.steps
        duration = len(audio) / SAMPLE_RATE
        prompt_hotwords = steps.hotword_tokens()
        prompt = steps.prompt(steps.text_tokens(opt.initial_prompt), prompt_hotwords)
        segments: list[dict] = []  # decoded, not yet yielded: a re-queued window tail may still come before them
        last_speech = 0.0
        done_s = 0.0
        queue = deque(windows)
        while queue:
            batch = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
            mels, sizes = self._mels(audio, batch)
            state = None  # release the previous batch's cross K/V before the encoder allocates new ones
            state = backend.encode(mels)
            for i, result in enumerate(self._decode_batch(state, prompt, language, max(sizes) / FRAMES_PER_SECOND)):
                if steps.is_silence(result):
                    continue
                start, end = batch[i]
                offset = start / SAMPLE_RATE
                current, advance, single_ending = steps.split_segments(result, offset, sizes[i])
                # Whisper may stop before the window's audio ends (an <|endoftext|> at a pause) or leave
                # the last sentence unfinished at the window's edge; the sequential loop then seeks to the
                # last timestamp. Here the rest of the window goes back in the queue as a window of its own.
                # A lone final timestamp means the model heard nothing more; when VAD disagrees (it found
                # a second or more of speech after that point), the rest is decoded too.
                rest = start + advance * HOP_LENGTH
                if single_ending and current:
                    rest = int(round(current[-1]["end"] * SAMPLE_RATE))
                requeued = (not opt.without_timestamps and start < rest < end
                            and speech_in(chunks, rest, end) >= MIN_REMAINDER_S * SAMPLE_RATE)
                if requeued:
                    queue.append((rest, end))
                # A window's timestamps cannot run past its audio (the decoder may place a final one
                # in the silence that pads it).
                limit = end / SAMPLE_RATE
                for s in current:
                    s["end"] = min(s["end"], limit)
                    s["start"] = min(s["start"], s["end"])
                if opt.word_timestamps:
                    steps.add_words(current, backend.select(state, [i]), sizes[i], language, offset, last_speech,
                                    speech_chunks=chunks)
                    for s in current:
                        for w in s.get("words") or []:
                            w["end"] = min(w["end"], limit)
                            w["start"] = min(w["start"], w["end"])
                        if s.get("words"):
                            s["end"] = min(max(s["end"], s["words"][-1]["end"]), limit)
                            s["start"] = min(s["start"], s["words"][0]["start"])
                    ends = [w["end"] for s in current for w in s.get("words") or []]
                    last_speech = ends[-1] if ends else last_speech
                    # Speech inside what this window covered (up to a re-queued rest) that no word covers:
                    # measured (issue 18), a whole 5 s clip between two others left out of a window.
                    current = fill_gaps(steps, audio, current, chunks, start, rest if requeued else end, language,
                                        prompt_hotwords)
                segments.extend(kept(current))
            state = None  # a suspended generator must not hold the batch's cross K/V
            release_free_memory()  # the batch's buffers back to the OS (memory.py)
            done_s = max(done_s, batch[-1][1] / SAMPLE_RATE)
            if progress is not None:
                progress(min(done_s, duration), duration)
            # Segments are returned in time order (a stable sort by start). A queued window's segments
            # start after its start less what word timing may move a first word back (at most 1.4 s: two
            # median word durations), so those before that horizon are final.
            segments.sort(key=lambda s: s["start"])
            horizon = min(start for start, _ in queue) / SAMPLE_RATE - _WORD_SHIFT_S if queue else float("inf")
            final = sum(1 for s in segments if s["start"] < horizon)
            yield segments[:final]
            segments = segments[final:]
        if progress is not None:
            progress(duration, duration)
