"""Word-level timestamps from cross-attention (openai/whisper's timing.py, in numpy).

The decoder is run once more over a window's text tokens with the alignment heads' cross-attention
weights bound as an output; those weights, normalised and median-filtered, form a token x frame cost
matrix whose dynamic-time-warping path gives each token its audio frames. Tokens are grouped into
words and punctuation is merged into its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import ENCODER_FRAMES_PER_SECOND, SAMPLE_RATE
from .inference import DecoderState, OnnxBackend
from .logit_filters import log_softmax
from .tokenizer import Tokenizer



@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a sliding window of odd ``width`` along the last axis, reflect-padded (as openai)."""
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    pad = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic path through ``cost`` [N, M]; returns (row indices, column indices).

    Computed one anti-diagonal at a time (cells on a diagonal are independent), so the Python loop
    runs N + M times instead of N * M. Ties break like openai's dtw_cpu: diagonal, then up, then left.
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    trace = np.full((n + 1, m + 1), -1, dtype=np.int8)
    acc[0, 0] = 0.0
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        c0, c1, c2 = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        t = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        acc[i, j] = cost[i - 1, j - 1] + np.choose(t, [c0, c1, c2])
        trace[i, j] = t
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = n, m
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    path_arr = np.array(path[::-1])
    return path_arr[:, 0], path_arr[:, 1]


def speech_frames(chunks: list[dict], start_sample: int, num_frames: int) -> np.ndarray:
    """One bool per encoder frame of a window that starts at ``start_sample`` and holds ``num_frames`` mel
    frames: True where a VAD speech chunk ({"start", "end"} in samples) overlaps the frame."""
    samples_per_frame = SAMPLE_RATE // ENCODER_FRAMES_PER_SECOND
    n = num_frames // 2
    mask = np.zeros(n, dtype=bool)
    for chunk in chunks:
        lo = max(0, (chunk["start"] - start_sample) // samples_per_frame)
        hi = min(n, -(-(chunk["end"] - start_sample) // samples_per_frame))
        if lo < hi:
            mask[lo:hi] = True
    return mask


def find_alignment(backend: OnnxBackend, tokenizer: Tokenizer, state: DecoderState, text_tokens: list[int],
                   num_frames: int, language: str, task: str, medfilt_width: int = 7,
                   speech: np.ndarray | None = None) -> list[WordTiming]:
    """Word timings (seconds from the window start) for ``text_tokens`` decoded from this window: one
    forced decoder pass binding the alignment heads' attention, then :func:`words_from_attention`."""
    if not text_tokens:
        return []
    sot_seq = tokenizer.sot_sequence(language, task, timestamps=False)  # ends with <|notimestamps|>
    tokens = np.array([sot_seq + text_tokens + [tokenizer.eot]], dtype=np.int64)
    fresh = backend.empty_state(state.cross_k, state.cross_v, 1)
    logits, _, attn = backend.decode_with_alignment(tokens, fresh, np.arange(tokens.shape[1]))
    sampled = logits[0, len(sot_seq) - 1:-1, : tokenizer.eot].astype(np.float64)
    probs = np.exp(log_softmax(sampled))
    text_token_probs = probs[np.arange(len(text_tokens)), text_tokens]
    # Rows from <|notimestamps|> (which predicts the first text token) to the last text token: one
    # per predicted token, <|endoftext|> included, as openai slices them.
    return words_from_attention(tokenizer, text_tokens, attn[0, :, len(sot_seq) - 1: -1], num_frames, language,
                                text_token_probs, medfilt_width, speech)


def words_from_attention(tokenizer: Tokenizer, text_tokens: list[int], attention: np.ndarray, num_frames: int,
                         language: str, token_probs: np.ndarray | None = None, medfilt_width: int = 7,
                         speech: np.ndarray | None = None) -> list[WordTiming]:
    """Word timings from the alignment heads' attention ``attention`` [heads, len(text_tokens) + 1, frames]
    (softmax over the window's encoder frames) of the positions that predicted each text token and the
    end: normalised, median-filtered, then the DTW path through the token x frame matrix. Without
    ``token_probs`` the words' probabilities are NaN (a live decode that kept its own attention).

    ``speech`` (one bool per encoder frame, :func:`speech_frames`) confines the path to the frames VAD
    heard speech in: the DTW runs over those frames only, so no word is stretched over a pause or timed
    inside one. Measured (issue 18, a 60-minute timeline): in a window whose text ran on across three
    clips, one word ("she") took 7 s of pauses and the clip's other words landed on the next clip, which
    was then counted lost. Ignored when VAD kept no more frames than there are tokens (speech it
    missed)."""
    if not text_tokens:
        return []
    # Re-normalise over the frames that hold audio: the same as openai's softmax over the cropped
    # pre-softmax scores, from the post-softmax weights the graph emits.
    weights = attention[:, :, : num_frames // 2].astype(np.float64)
    weights = weights / np.maximum(weights.sum(axis=-1, keepdims=True), 1e-12)
    keep = np.arange(weights.shape[-1])
    if speech is not None:
        heard = np.flatnonzero(np.asarray(speech[: weights.shape[-1]], dtype=bool))
        if len(text_tokens) < heard.size < keep.size:
            keep = heard
            weights = weights[..., keep]
    mean = weights.mean(axis=-2, keepdims=True)
    std = weights.std(axis=-2, keepdims=True)
    weights = (weights - mean) / np.maximum(std, 1e-12)
    weights = median_filter(weights, medfilt_width)
    matrix = weights.mean(axis=0)

    text_indices, time_indices = dtw(-matrix)
    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot], language)
    if len(word_tokens) <= 1:
        return []  # only <|endoftext|>: nothing to time
    if token_probs is None:
        token_probs = np.full(len(text_tokens), np.nan)
    word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_frames = time_indices[jumps]  # the (kept) frame where each token's path starts
    starts, ends = jump_frames[word_boundaries[:-1]], jump_frames[word_boundaries[1:]]
    if keep.size == 0 or keep[-1] - keep[0] + 1 == keep.size:  # contiguous frames: openai's rule,
        first = keep[0] if keep.size else 0  # a word ends where the next one starts
        start_times = (starts + first) / ENCODER_FRAMES_PER_SECOND
        end_times = (ends + first) / ENCODER_FRAMES_PER_SECOND
    else:
        start_times, end_times = _times_in_speech(keep, starts, ends)
    word_probabilities = [float(np.mean(token_probs[i:j])) for i, j in zip(word_boundaries[:-1], word_boundaries[1:])]
    return [WordTiming(word, tokens, float(start), float(end), probability)
            for word, tokens, start, end, probability in zip(words, word_tokens, start_times, end_times,
                                                              word_probabilities)]


def _times_in_speech(keep: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (seconds) of words whose path covers kept frames ``keep[starts[i]:ends[i]]``: the
    longest unbroken run of them, so a word whose frames straddle a pause (the last frames of VAD's
    padding before it, the first after) is timed on one side, never across it."""
    start_times, end_times = np.empty(len(starts)), np.empty(len(starts))
    for i, (a, b) in enumerate(zip(starts, ends)):
        frames = keep[a:b]
        if frames.size == 0:  # a word with no frame of its own: a point where the next word starts
            start_times[i] = end_times[i] = keep[a]
            continue
        runs = np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1)
        longest = max(runs, key=len)
        start_times[i], end_times[i] = longest[0], longest[-1] + 1
    return start_times / ENCODER_FRAMES_PER_SECOND, end_times / ENCODER_FRAMES_PER_SECOND


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Attach leading punctuation to the next word and trailing punctuation to the previous one."""
    i = len(alignment) - 2
    j = len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            following.word = previous.word + following.word
            following.tokens = previous.tokens + following.tokens
            previous.word = ""
            previous.tokens = []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous.word.endswith(" ") and following.word in appended:
            previous.word = previous.word + following.word
            previous.tokens = previous.tokens + following.tokens
            following.word = ""
            following.tokens = []
        else:
            i = j
        j += 1


SENTENCE_END_MARKS = ".。!！?？"


def _ends_sentence(word: str) -> bool:
    """The word ends with a sentence mark ("?", "done.", "1813...")."""
    word = word.strip()
    return bool(word) and word[-1] in SENTENCE_END_MARKS


def add_word_timestamps(*, segments: list[dict], backend: OnnxBackend, tokenizer: Tokenizer, state: DecoderState,
                        num_frames: int, language: str, task: str, prepend_punctuations: str,
                        append_punctuations: str, last_speech_timestamp: float, time_offset: float,
                        attention: np.ndarray | None = None, token_probs: np.ndarray | None = None,
                        speech: np.ndarray | None = None) -> None:
    """Add "words" ([{word, start, end, probability, tokens}]) to this window's segment dicts, in place,
    and tighten segment bounds to their words (openai/whisper's heuristics for long or misplaced words).
    ``attention``: the decode's own alignment attention of these tokens (:func:`words_from_attention`);
    without it a forced decoder pass computes it. ``speech``: the window's VAD frames
    (:func:`words_from_attention`)."""
    if not segments:
        return
    text_tokens_per_segment = [[t for t in s["tokens"] if t < tokenizer.eot] for s in segments]
    text_tokens = [t for seg in text_tokens_per_segment for t in seg]
    if attention is None:
        alignment = find_alignment(backend, tokenizer, state, text_tokens, num_frames, language, task,
                                   speech=speech)
    else:
        alignment = words_from_attention(tokenizer, text_tokens, attention, num_frames, language, token_probs,
                                         speech=speech)
    word_durations = np.array([t.end - t.start for t in alignment])
    word_durations = word_durations[word_durations.nonzero()]
    median_duration = float(np.median(word_durations)) if len(word_durations) > 0 else 0.0
    median_duration = min(0.7, median_duration)
    max_duration = median_duration * 2

    # Long words at sentence boundaries are usually cut-off pauses: truncate them. openai tests whether
    # the word *is* a mark, which in spaced languages it never is ("1813..." is one word), so there the
    # DTW gave the pause after a sentence to its last word (measured, issue 18: "In 1813..." stretched
    # 3-4.5 s over a pause, then the first-word rule below moved both words into it, 2-4 s late, and the
    # clip was lost). A word that ends with a mark ends a sentence too.
    if len(word_durations) > 0:
        for i in range(1, len(alignment)):
            if alignment[i].end - alignment[i].start > max_duration:
                if _ends_sentence(alignment[i].word):
                    alignment[i].end = alignment[i].start + max_duration
                elif _ends_sentence(alignment[i - 1].word):
                    alignment[i].start = alignment[i].end - max_duration

    merge_punctuations(alignment, prepend_punctuations, append_punctuations)

    saved_tokens = 0
    word_index = 0
    for segment, seg_tokens in zip(segments, text_tokens_per_segment):
        saved_tokens = 0
        words = []
        while word_index < len(alignment) and saved_tokens < len(seg_tokens):
            timing = alignment[word_index]
            if timing.word:
                words.append({"word": timing.word, "start": round(time_offset + timing.start, 2),
                              "end": round(time_offset + timing.end, 2), "probability": timing.probability,
                              "tokens": list(timing.tokens)})  # streaming continues from committed tokens
            saved_tokens += len(timing.tokens)
            word_index += 1

        if len(words) > 0:
            # A first word that starts long after the last speech, or is very long, is mostly silence.
            if words[0]["end"] - last_speech_timestamp > median_duration * 4 and (
                    words[0]["end"] - words[0]["start"] > max_duration
                    or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)):
                if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
                    boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
                    words[0]["end"] = words[1]["start"] = boundary
                words[0]["start"] = max(0, words[0]["end"] - max_duration)
            # Prefer the segment-level start/end when the words stray outside it.
            if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
                words[0]["start"] = max(0, min(words[0]["end"] - median_duration, segment["start"]))
            else:
                segment["start"] = words[0]["start"]
            if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
                words[-1]["end"] = max(words[-1]["start"] + median_duration, segment["end"])
            else:
                segment["end"] = words[-1]["end"]
            last_speech_timestamp = segment["end"]
        segment["words"] = words
