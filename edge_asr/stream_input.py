"""The input stage of a live stream: fed PCM chunks → a thread-safe queue of 16 kHz mono float32.

``push`` may be called from any thread (an audio callback): it converts the chunk (any dtype, mono or
(frames, channels)), resamples it to 16 kHz when needed (one soxr stream, so chunk boundaries leave no
seams), and queues it. The decoding side ``take``s queued samples, measures its lag by what is still
queued, and, when it has fallen too far behind, drops the oldest backlog (``drop_backlog``).

A live stream must survive odd input (issue 18): an empty chunk of any shape queues nothing; NaN or
infinite samples (and absurd ones, beyond 32-bit PCM scale) become 0 (silence) with an
:class:`~edge_asr.errors.AudioWarning` (once per stream; ``samples_replaced`` counts them) instead of
poisoning the resampler and the rest of the utterance; float chunks at integer scale are rescaled (warned
once, the divisor then fixed). Arguments that cannot be audio raise typed
errors: :class:`~edge_asr.errors.AudioTypeError` for a chunk that is not an array of samples,
:class:`~edge_asr.errors.AudioError` for an invalid rate, :class:`~edge_asr.errors.StreamError` when the
rate changes mid-stream.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from .audio import FLOAT_HEADROOM, check_sample_rate, integer_scale, to_float32, to_mono
from .constants import SAMPLE_RATE
from .errors import AudioError, AudioTypeError, AudioWarning, StreamError

_ABSURD = 2.0 ** 31 * 1.0001  # beyond 32-bit PCM scale: no source produces it, a glitch does


def chunk_samples(chunk) -> np.ndarray:
    """A fed chunk as a 1-D array of its own dtype (channels averaged later), or a typed error."""
    if chunk is None or isinstance(chunk, (str, bytes, bytearray, memoryview, dict, set)):
        hint = (" (raw PCM bytes: numpy.frombuffer(chunk, numpy.int16))"
                if isinstance(chunk, (bytes, bytearray, memoryview)) else "")
        raise AudioTypeError(f"a stream chunk must be an array of samples, not {type(chunk).__name__}{hint}")
    try:
        a = np.asarray(chunk)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise AudioTypeError(f"a stream chunk must be an array of samples: {e}") from None
    if a.dtype.kind not in "fiu":
        raise AudioError(f"unsupported sample dtype {a.dtype} in a stream chunk: give int or float PCM")
    if a.ndim == 0:
        a = a.reshape(1)
    return a


class StreamInput:
    """Thread-safe queue of received audio, in 16 kHz samples."""

    def __init__(self):
        self._lock = threading.Lock()  # guards _chunks, _pending and _received
        self._convert = threading.Lock()  # one push at a time through the resampler and the rate checks
        self._chunks: list[np.ndarray] = []
        self._pending = 0  # samples queued, not yet taken
        self._received = 0  # samples received in all (16 kHz)
        self._resampler = None
        self._in_rate: int | float | None = None
        self._layout: tuple[int, int] | None = None  # (channel axis, channels) once a chunk showed them
        self._scale: float | None = None  # divisor for integer-scale float chunks, fixed once seen
        self.samples_replaced = 0  # NaN, infinite or absurd input samples replaced by 0

    def push(self, chunk, sample_rate: int | float = SAMPLE_RATE) -> None:
        """Queue PCM samples (any dtype, mono or (frames, channels), any rate, any chunk size).
        The rate is fixed by the first chunk: a different one later raises StreamError."""
        rate = check_sample_rate(sample_rate, "a stream chunk", from_header=False)
        raw = chunk_samples(chunk)
        with self._convert:
            if self._in_rate is not None and rate != self._in_rate:
                raise StreamError(f"sample rate changed mid-stream ({self._in_rate} -> {rate} Hz): feed one rate "
                                  "per stream, or start a new stream")
            samples = self._clean(raw)
            if samples.size == 0:
                return  # an empty chunk queues nothing and does not fix the stream's rate
            self._in_rate = rate
            if rate != SAMPLE_RATE:
                if self._resampler is None:
                    import soxr

                    self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                samples = self._resampler.resample_chunk(samples)
            self._queue(samples)

    def _clean(self, raw: np.ndarray) -> np.ndarray:
        """Mono float32: NaN, infinite and absurd (beyond 32-bit PCM scale) samples zeroed, integer-scale
        floats rescaled by a divisor fixed at the first such chunk (so one glitch cannot change the level
        of everything after it); other floats pass unchanged."""
        if raw.size == 0:
            return np.zeros(0, np.float32)
        if raw.dtype.kind != "f":
            return np.ascontiguousarray(self._mono(to_float32(raw)), np.float32)
        a = raw.astype(np.float32) if raw.dtype.itemsize < 4 else raw
        good = np.isfinite(a)
        with np.errstate(invalid="ignore"):
            good &= np.abs(a) <= _ABSURD
        if not good.all():
            bad = int(a.size - np.count_nonzero(good))
            if self.samples_replaced == 0:
                warnings.warn(f"stream input: {bad} NaN, infinite or absurd sample(s) replaced by silence (the source "
                              "is glitching; later ones are counted in samples_replaced, not warned)",
                              AudioWarning, stacklevel=4)
            self.samples_replaced += bad
            a = np.where(good, a, 0)
        peak = float(max(a.max(), -a.min()))
        if self._scale is None and peak > 64:
            self._scale = integer_scale(peak)
            warnings.warn(f"stream input: float samples reach {peak:.6g}, far outside [-1, 1]; treated as "
                          f"integer-scale PCM and divided by {self._scale:.6g} from now on. Feed floats in "
                          "[-1, 1] (or the integer array itself).", AudioWarning, stacklevel=4)
        if self._scale is not None:
            a = np.clip(a / a.dtype.type(self._scale), -FLOAT_HEADROOM, FLOAT_HEADROOM)
        return np.ascontiguousarray(self._mono(a.astype(np.float32, copy=False)), np.float32)

    def _mono(self, a: np.ndarray) -> np.ndarray:
        """Channels averaged. A 2-D chunk's layout is guessed (the shorter axis is the channels) until one
        chunk shows it unambiguously; later chunks keep that channel count and axis, so a one-frame
        stereo chunk (1, 2) is one frame, not two."""
        if a.ndim == 2 and self._layout is not None:
            axis, channels = self._layout
            if a.shape[axis] == channels:
                return to_mono(a if axis == 1 else a.T, channels_last=True)
        if a.ndim == 2 and a.shape[0] != a.shape[1]:
            axis = 1 if a.shape[0] > a.shape[1] else 0
            if self._layout is None and min(a.shape) > 0 and max(a.shape) > 16:
                self._layout = (axis, a.shape[axis])
        return to_mono(a)

    def close(self) -> None:
        """End of input: queue what the resampler still holds."""
        with self._convert:
            if self._resampler is not None:
                self._queue(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                self._resampler = None

    def _queue(self, samples: np.ndarray) -> None:
        with self._lock:
            if samples.size:
                self._chunks.append(np.ascontiguousarray(samples, np.float32))
                self._pending += samples.size
            self._received += samples.size

    def take(self, limit: int | None = None) -> np.ndarray:
        """Up to ``limit`` queued samples (all when None), oldest first."""
        with self._lock:
            if limit is None or limit >= self._pending:
                chunks, self._chunks, self._pending = self._chunks, [], 0
                return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            joined = np.concatenate(self._chunks)
            self._chunks, self._pending = [joined[limit:]], joined.size - limit
            return joined[:limit]

    def drop_backlog(self, keep: int) -> int:
        """Drop the oldest queued samples beyond the newest ``keep``; return how many were dropped."""
        with self._lock:
            excess = self._pending - keep
            if excess <= 0:
                return 0
            joined = np.concatenate(self._chunks)
            self._chunks, self._pending = [joined[excess:]], joined.size - excess
            return excess

    @property
    def pending(self) -> int:
        """Samples queued and not yet taken (the decoder's backlog)."""
        with self._lock:
            return self._pending

    @property
    def received(self) -> int:
        """Samples received since the start (16 kHz)."""
        return self._received

    @property
    def received_s(self) -> float:
        return self._received / SAMPLE_RATE
