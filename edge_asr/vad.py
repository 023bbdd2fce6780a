"""Voice activity detection with the vendored Silero VAD "sequence" ONNX model (numpy + onnxruntime only).

``get_speech_timestamps`` finds speech chunks in 16 kHz mono audio, ``collect_chunks`` concatenates them,
and ``SpeechTimestampsMap`` maps times in that concatenation back to the original audio (so a transcriber
can skip long silences and still report original timestamps).
"""

# Framing and the probabilities → timestamps state machine are ported from silero-vad 6.2.3
# (sequence_vad.py, utils_vad.get_speech_timestamps_from_probs), MIT licence, (c) Silero Team.
# SpeechTimestampsMap follows faster-whisper's (MIT, (c) SYSTRAN).

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .constants import SAMPLE_RATE
from .option_field import option
from .errors import AudioError, OptionError

FRAME_SAMPLES = 512  # one probability per 32 ms frame at 16 kHz
CONTEXT_SAMPLES = 64  # the streaming model prepends the previous frame's tail; the sequence model wants it explicitly
STATE_SIZE = 128
MAX_FRAMES = 512  # frames per ONNX call (~16.4 s): bounds transient memory, few Python iterations
# Silero's LSTM state can stick after speech: measured (issue 18, a 60-minute timeline of real clips), the
# 4 s after one speaker's last words left the state where a 26 s clip of another speaker scored ~0 in every
# frame (0.92 median alone), so VAD-driven modes lost the whole clip. After this much audio the model calls
# quiet, the state is reset (a fresh state is how every file starts; in silence it changes nothing else).
QUIET_PROB = 0.1
RESET_AFTER_QUIET_FRAMES = 32  # ~1 s
DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "silero_vad_16k_sequence.onnx"


@dataclass(frozen=True)
class VadOptions:
    """Speech detection settings (faster-whisper's defaults, tuned for feeding Whisper rather than
    silero's own, which cut far more eagerly: 100 ms silence, 30 ms padding).

    threshold: a frame whose speech probability is >= this starts or continues speech.
    neg_threshold: speech ends only below this (hysteresis); None -> max(threshold - 0.15, 0.01).
    min_speech_duration_ms: chunks this short or shorter are dropped.
    max_speech_duration_s: longer speech is split, at the longest silence (> 98 ms) seen in it if any,
        else at the frame that reaches the limit; padded chunks stay within the limit.
    min_silence_duration_ms: silence must last this long to end a chunk.
    speech_pad_ms: chunks grow by this much on each side (neighbours closer than twice this share the gap).
    """

    threshold: float = option(0.5, "speech probability threshold", flag="--vad-threshold")
    neg_threshold: float | None = option(None, "speech ends below this probability (default: threshold - 0.15)",
                                         cli=False)
    min_speech_duration_ms: int = option(0, "drop speech chunks this short or shorter", cli=False)
    max_speech_duration_s: float = option(float("inf"), "split speech longer than this (default: never; 30 in "
                                                         "batched mode)", flag="--vad-max-speech-s")
    min_silence_duration_ms: int = option(2000, "silence that splits speech (160 in batched mode)",
                                          flag="--vad-min-silence-ms")
    speech_pad_ms: int = option(400, "padding around speech", flag="--vad-speech-pad-ms")


def _as_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioError(f"VAD needs 16 kHz mono audio as a 1-D array, got shape {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)


class SileroVad:
    """Per-frame speech probabilities from the Silero VAD sequence model.

    The sequence model runs many frames in one ONNX call (the LSTM loop is inside the graph), so a minute
    of audio costs a handful of Python iterations instead of ~1900; results are identical to the stock
    frame-by-frame model.
    """

    def __init__(self, path: str | Path | None = None):
        options = ort.SessionOptions()
        # One thread: the model is tiny (per-frame work far below threading overhead) and VAD may run
        # alongside the Whisper sessions, which should keep the cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.path = Path(path) if path is not None else DEFAULT_MODEL
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=["CPUExecutionProvider"])

    def speech_probs(self, audio: np.ndarray, max_frames: int = MAX_FRAMES) -> np.ndarray:
        """16 kHz mono float32 audio -> float32 [ceil(len / 512)]: speech probability of each 512-sample
        frame (the last frame zero-padded). ``max_frames`` (frames per ONNX call) does not change the result."""
        audio = _as_audio(audio)
        if max_frames < 1:
            raise OptionError("max_frames must be >= 1")
        n_frames = -(-audio.size // FRAME_SAMPLES)
        padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.float32)
        padded[:audio.size] = audio
        state = _LstmState.initial()
        probs = [self.run_frames(padded[i * FRAME_SAMPLES:(i + max_frames) * FRAME_SAMPLES], state)
                 for i in range(0, n_frames, max_frames)]
        return np.concatenate(probs) if probs else np.empty(0, np.float32)

    def run_frames(self, samples: np.ndarray, state: "_LstmState") -> np.ndarray:
        """Probabilities of whole frames ``samples`` (a multiple of 512) following ``state``, which is
        advanced: the context and LSTM state cross calls, so splitting audio does not change the output.
        The LSTM state is reset after every ``RESET_AFTER_QUIET_FRAMES`` quiet frames (see QUIET_PROB)."""
        frames = samples.reshape(-1, FRAME_SAMPLES)
        out = []
        start = 0
        while start < len(frames):
            # Run up to the frame where a reset could next fall due, so the reset lands exactly there
            # whatever the call boundaries are.
            step = min(len(frames) - start, max(1, RESET_AFTER_QUIET_FRAMES - state.quiet))
            probs = self._run(frames[start:start + step], state)
            loud = np.flatnonzero(probs >= QUIET_PROB)
            state.quiet = state.quiet + step if loud.size == 0 else step - 1 - int(loud[-1])
            if state.quiet >= RESET_AFTER_QUIET_FRAMES:
                state.h = np.zeros_like(state.h)
                state.c = np.zeros_like(state.c)
                state.quiet = 0
            out.append(probs)
            start += step
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def _run(self, frames: np.ndarray, state: "_LstmState") -> np.ndarray:
        block = np.empty((len(frames), CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        block[0, :CONTEXT_SAMPLES] = state.context
        block[1:, :CONTEXT_SAMPLES] = frames[:-1, -CONTEXT_SAMPLES:]
        block[:, CONTEXT_SAMPLES:] = frames
        out, state.h, state.c = self.session.run(["speech_probs", "hn", "cn"],
                                                 {"input": block, "h": state.h, "c": state.c})
        state.context = frames[-1, -CONTEXT_SAMPLES:].copy()
        return out.reshape(-1).astype(np.float32, copy=False)


@dataclass
class _LstmState:
    h: np.ndarray
    c: np.ndarray
    context: np.ndarray  # the previous frame's last samples (zeros before the very first frame)
    quiet: int = 0  # quiet frames since the last reset or loud frame

    @classmethod
    def initial(cls) -> "_LstmState":
        return cls(np.zeros((1, 1, STATE_SIZE), np.float32), np.zeros((1, 1, STATE_SIZE), np.float32),
                   np.zeros(CONTEXT_SAMPLES, np.float32))


class SpeechProbStream:
    """Speech probabilities of a live stream, computed once per frame as audio arrives (the same values
    as :meth:`SileroVad.speech_probs` over the whole stream): a streaming update asks for the frames of
    its buffer instead of re-running VAD over the whole buffer each time."""

    def __init__(self, vad: SileroVad):
        self.vad = vad
        self._state = _LstmState.initial()
        self._pending = np.zeros(0, np.float32)  # samples of an incomplete frame
        self._probs = np.zeros(0, np.float32)  # frames [first_frame, first_frame + len)
        self.first_frame = 0

    @property
    def frames(self) -> int:
        """Whole frames seen so far."""
        return self.first_frame + self._probs.size

    def push(self, audio: np.ndarray) -> None:
        samples = np.concatenate([self._pending, _as_audio(audio)])
        whole = samples.size // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = samples[whole:]
        for i in range(0, whole, MAX_FRAMES * FRAME_SAMPLES):
            chunk = samples[i:min(whole, i + MAX_FRAMES * FRAME_SAMPLES)]
            self._probs = np.concatenate([self._probs, self.vad.run_frames(chunk, self._state)])

    def since(self, sample: int) -> np.ndarray:
        """Probabilities of the whole frames from the one holding ``sample`` on; older ones are forgotten."""
        frame = max(sample // FRAME_SAMPLES, self.first_frame)
        self._probs = self._probs[frame - self.first_frame:]
        self.first_frame = frame
        return self._probs

    def skip(self, samples: int) -> None:
        """A gap in the stream (dropped audio): start afresh after it."""
        self.__init__(self.vad)
        self.first_frame = samples // FRAME_SAMPLES


@lru_cache(maxsize=1)
def default_vad() -> SileroVad:
    """The process-wide SileroVad on the vendored model (created once: a session costs ~tens of ms)."""
    return SileroVad()


def get_speech_timestamps(audio: np.ndarray, options: VadOptions | None = None,
                          model: SileroVad | None = None) -> list[dict]:
    """[{'start': sample, 'end': sample}, ...] at 16 kHz, padded by speech_pad_ms (silero's algorithm incl.
    max_speech_duration splitting at the longest silence and padding/merging of neighbours)."""
    audio = _as_audio(audio)
    options = options or VadOptions()
    probs = (model or default_vad()).speech_probs(audio)
    return speech_timestamps_from_probs(probs, options, audio.size)


# faster-whisper's batched defaults: split at short pauses, so chunks can be packed up to 30 s windows.
MAX_CHUNK_S = 30.0
CHUNK_VAD = VadOptions(max_speech_duration_s=MAX_CHUNK_S, min_silence_duration_ms=160)
# Speech that Whisper skipped (it ended a window early) and that is at least this long is decoded again.
MIN_REMAINDER_S = 1.0


def speech_chunks(audio: np.ndarray, vad_options: VadOptions | None = None) -> list[dict]:
    """Silero VAD's speech chunks ({"start", "end"} in samples), none longer than 30 s."""
    options = vad_options or CHUNK_VAD
    if options.max_speech_duration_s > MAX_CHUNK_S:
        options = replace(options, max_speech_duration_s=MAX_CHUNK_S)
    return get_speech_timestamps(audio, options)


def speech_in(chunks: list[dict], start: int, end: int) -> int:
    """Samples of speech (per the chunks) between sample positions start and end."""
    return sum(max(0, min(end, c["end"]) - max(start, c["start"])) for c in chunks)


def speech_timestamps_from_probs(probs: np.ndarray, options: VadOptions, audio_length_samples: int) -> list[dict]:
    """Silero's state machine over per-frame probabilities (use_max_poss_sil_at_max_speech=True,
    min_silence_at_max_speech=98 ms); sample positions at 16 kHz."""
    sr, window = SAMPLE_RATE, FRAME_SAMPLES
    threshold = options.threshold
    neg_threshold = options.neg_threshold
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    min_speech_samples = sr * options.min_speech_duration_ms / 1000
    speech_pad_samples = sr * options.speech_pad_ms / 1000
    # Leaves room for the padding on both sides (and one frame of cut slack) inside the limit.
    max_speech_samples = sr * options.max_speech_duration_s - window - 2 * speech_pad_samples
    min_silence_samples = sr * options.min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sr * 98 / 1000  # only silences longer than this are split points

    triggered = False
    speeches: list[dict] = []
    current: dict = {}
    temp_end = 0  # start of the silence currently tolerated inside speech (0: none)
    next_start = 0
    possible_ends: list[tuple[int, int]] = []  # (silence start, silence length) inside the current chunk

    for i, prob in enumerate(probs.tolist()):  # a Python float list: per-element numpy indexing is slow
        cur_sample = window * i

        if prob >= threshold and temp_end:  # speech resumes after a tolerated silence
            sil_dur = cur_sample - temp_end
            if sil_dur > min_silence_samples_at_max_speech:
                possible_ends.append((temp_end, sil_dur))
            temp_end = 0

        if prob >= threshold and not triggered:
            triggered = True
            current["start"] = cur_sample
            continue

        if triggered and cur_sample - current["start"] > max_speech_samples:
            if possible_ends:
                # Cut at the longest silence; the next chunk starts where speech resumed after it.
                prev_end, dur = max(possible_ends, key=lambda x: x[1])
                current["end"] = prev_end
                speeches.append(current)
                next_start = prev_end + dur
                current = {"start": next_start}
                temp_end = 0
                possible_ends = []
            else:
                # No usable silence: cut right here.
                current["end"] = cur_sample
                speeches.append(current)
                current = {}
                temp_end = 0
                triggered = False
                possible_ends = []
                continue

        if prob < neg_threshold and triggered:
            if not temp_end:
                temp_end = cur_sample
            if cur_sample - temp_end < min_silence_samples:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech_samples:
                speeches.append(current)
            current = {}
            temp_end = 0
            triggered = False
            possible_ends = []
            continue

    if current and audio_length_samples - current["start"] > min_speech_samples:
        current["end"] = audio_length_samples
        speeches.append(current)

    # Pad each chunk; neighbours closer than two pads split the gap between them instead (no overlap).
    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * speech_pad_samples:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - speech_pad_samples))
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
    return [{"start": int(s["start"]), "end": int(s["end"])} for s in speeches]


def collect_chunks(audio: np.ndarray, chunks: list[dict]) -> np.ndarray:
    """The speech chunks of ``audio`` concatenated (an empty float32 array when there are none)."""
    audio = _as_audio(audio)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([audio[c["start"]:c["end"]] for c in chunks])


class SpeechTimestampsMap:
    """Maps times in the concatenated speech audio (``collect_chunks``) back to the original audio."""

    def __init__(self, chunks: list[dict], sampling_rate: int = SAMPLE_RATE, time_precision: int = 2):
        self.sampling_rate = sampling_rate
        self.time_precision = time_precision
        self.chunk_end_sample: list[int] = []  # each chunk's end, in concatenated samples
        self.total_silence_before: list[float] = []  # seconds removed before each chunk
        previous_end = 0
        silent_samples = 0
        for chunk in chunks:
            silent_samples += chunk["start"] - previous_end
            previous_end = chunk["end"]
            self.chunk_end_sample.append(chunk["end"] - silent_samples)
            self.total_silence_before.append(silent_samples / sampling_rate)

    def get_original_time(self, time: float, chunk_index: int | None = None, is_end: bool = False) -> float:
        """Original-audio seconds for ``time`` seconds into the concatenated audio. ``is_end``: a time exactly
        on a chunk boundary belongs to the chunk it ends (not the next one's start)."""
        if not self.chunk_end_sample:
            return round(time, self.time_precision)  # nothing removed
        if chunk_index is None:
            chunk_index = self.get_chunk_index(time, is_end)
        return round(self.total_silence_before[chunk_index] + time, self.time_precision)

    def get_chunk_index(self, time: float, is_end: bool = False) -> int:
        """Index of the chunk that contains ``time`` (seconds in concatenated audio); past the end: the last."""
        sample = int(time * self.sampling_rate)
        if is_end and sample in self.chunk_end_sample:
            return self.chunk_end_sample.index(sample)
        return min(bisect.bisect(self.chunk_end_sample, sample), len(self.chunk_end_sample) - 1)
