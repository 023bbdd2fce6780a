"""A second look at speech no word covers (issue 18), for the sequential and the batched loop.

Whisper sometimes leaves a sentence out of the middle of a window and times the words around it right
(measured: a 3 s sentence between two others, lost from a 60-minute transcript; batched, a whole 5 s
clip between two others). After a window is word-timed, the VAD speech in its range that no word covers
is decoded on its own, without the previous text, and its new words join the window's segments.
"""

from __future__ import annotations

import numpy as np

from .constants import HOP_LENGTH, N_FRAMES, SAMPLE_RATE
from .features import window_features
from .vad import MIN_REMAINDER_S
from .window import WindowSteps, kept, token_budget


GAP_WORD_SLACK_S = 0.4  # a word covers this much around its DTW times (VAD chunks are padded as much)


def uncovered_speech(chunks: list[dict], words: list[tuple[float, float]], start: int, end: int,
                     min_s: float = MIN_REMAINDER_S) -> list[tuple[int, int]]:
    """(start, end) samples of the speech in [start, end) (VAD ``chunks``) that no word covers (each
    word's times widened by ``GAP_WORD_SLACK_S``), pieces of at least ``min_s`` only."""
    slack = GAP_WORD_SLACK_S * SAMPLE_RATE
    covered = sorted((int(a * SAMPLE_RATE - slack), int(b * SAMPLE_RATE + slack)) for a, b in words)
    gaps = []
    for chunk in chunks:
        lo, hi = max(start, chunk["start"]), min(end, chunk["end"])
        if lo >= hi:  # a chunk outside this window's range (chunks cover the whole file)
            continue
        for a, b in covered:
            if lo >= hi or a >= hi:
                break
            if b > lo:
                if a - lo >= min_s * SAMPLE_RATE:
                    gaps.append((lo, a))
                lo = max(lo, b)
        if hi - lo >= min_s * SAMPLE_RATE:
            gaps.append((lo, hi))
    return gaps


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def _repeats_neighbours(segments: list[dict], current: list[dict], start: float, end: float) -> bool:
    """The gap's decode says nothing the words around the gap do not: its words, in order, are among
    the words just before or after it. Measured (issue 18): a short clip's words DTW-timed seconds late
    leave its own audio uncovered, and the gap's decode then wrote them a second time."""
    new = [p for s in segments for w in s.get("words") or [] if (p := _plain(w["word"]))]
    if not new:
        return True
    words = [w for s in current for w in s.get("words") or []]
    before = [_plain(w["word"]) for w in words if w["end"] <= start + GAP_WORD_SLACK_S][-len(new) - 2:]
    after = [_plain(w["word"]) for w in words if w["start"] >= end - GAP_WORD_SLACK_S][:len(new) + 2]
    around = [p for p in before + after if p]
    return any(around[i:i + len(new)] == new for i in range(len(around) - len(new) + 1))


def fill_gaps(steps: WindowSteps, audio: np.ndarray, current: list[dict], chunks: list[dict], start: int, end: int,
              language: str, hotword_tokens: list[int]) -> list[dict]:
    """``current`` (one window's word-timed segments) plus what the speech no word covers in [start, end)
    samples (the range the window is responsible for: up to the next seek, or to a re-queued rest) says,
    decoded alone. Only pieces of a second or more of VAD speech count. Cutting the window there instead
    moved the sequential seek and led the prompt into loops elsewhere, so the gap is decoded on its own,
    without the previous text, and its words join this window's segments but not the prompt history:
    the loop itself runs exactly as it would without it."""
    words = [(w["start"], w["end"]) for s in current for w in s.get("words") or []]
    gaps: list[tuple[int, int]] = []
    for lo, hi in uncovered_speech(chunks, words, start, end):
        if gaps and not any(gaps[-1][1] <= a * SAMPLE_RATE < lo for a, _ in words):
            gaps[-1] = (gaps[-1][0], hi)  # no word between two pieces (a VAD pause): one decode
        else:
            gaps.append((lo, hi))
    if not gaps:
        return current
    manifest = steps.backend.manifest
    slack = GAP_WORD_SLACK_S * SAMPLE_RATE
    filled = list(current)
    for gap_lo, gap_hi in gaps:
        lo, hi = gap_lo, gap_hi
        # From the start of the word before the gap to the end of the word after it: DTW times are
        # tight, so a decode cut at them heard the neighbours in part ("with a-" of "without");
        # heard whole, they are decoded again and dropped below, as words already there.
        before = [a for a, b in words if b * SAMPLE_RATE <= lo]
        after = [b for a, b in words if a * SAMPLE_RATE >= hi]
        lo = int(max(0, max(before) * SAMPLE_RATE if before else lo - slack))
        hi = int(min(audio.size, min(after) * SAMPLE_RATE if after else hi + slack))
        piece = audio[lo:hi]
        frames = min(N_FRAMES, piece.size // HOP_LENGTH)
        state = steps.backend.encode(window_features(piece, manifest.dims.n_mels, manifest.mel_padding)[None])
        # A noise hallucination ends the ladder here even though VAD heard speech: a second look
        # is worth one decode, not the whole ladder, and such text is dropped below anyway.
        result = steps.decode_with_fallback(state, steps.prompt([], hotword_tokens), language,
                                            sample_len=token_budget(piece.size / SAMPLE_RATE),
                                            no_speech_heard=lambda: True)
        if steps.is_silence(result) or steps.is_noise_hallucination(result):
            continue
        offset, limit = lo / SAMPLE_RATE, hi / SAMPLE_RATE
        segments = steps.split_segments(result, offset, frames)[0]
        steps.add_words(segments, state, frames, language, offset, offset, speech_chunks=chunks)
        for segment in segments:
            # Words already transcribed next to the gap (a fill word centred inside one) stay once.
            fresh = [w for w in segment.get("words") or []
                     if not any(a <= (w["start"] + w["end"]) / 2 <= b for a, b in words)
                     and start <= (w["start"] + w["end"]) / 2 * SAMPLE_RATE < end]  # the next window's
            for w in fresh:
                w["end"] = min(w["end"], limit)
                w["start"] = min(w["start"], w["end"])
            if fresh != segment.get("words"):
                segment["tokens"] = [t for w in fresh for t in w["tokens"]]
                segment["text"] = "".join(w["word"] for w in fresh).strip()
            segment["words"] = fresh
            if fresh:
                segment["start"], segment["end"] = fresh[0]["start"], fresh[-1]["end"]
            segment["end"] = min(segment["end"], limit)
        segments = [s for s in kept(segments) if s["words"]]
        if not _repeats_neighbours(segments, current, gap_lo / SAMPLE_RATE, gap_hi / SAMPLE_RATE):
            filled.extend(segments)
    filled.sort(key=lambda s: s["start"])
    return filled
