"""The input stage of a live stream: fed PCM chunks → a thread-safe queue of 16 kHz mono float32.

``push`` may be called from any thread (an audio callback): it converts the chunk (any dtype, mono or
(frames, channels)), resamples it to 16 kHz when needed (one soxr stream, so chunk boundaries leave no
seams), and queues it. The decoding side ``take``s queued samples, measures its lag by what is still
queued, and, when it has fallen too far behind, drops the oldest backlog (``drop_backlog``).
"""

from __future__ import annotations

import threading

import numpy as np

from .audio import to_float32, to_mono
from .constants import SAMPLE_RATE
from .errors import StreamError


class StreamInput:
    """Thread-safe queue of received audio, in 16 kHz samples."""

    def __init__(self):
        self._lock = threading.Lock()  # guards _chunks, _pending and _received
        self._chunks: list[np.ndarray] = []
        self._pending = 0  # samples queued, not yet taken
        self._received = 0  # samples received in all (16 kHz)
        self._resampler = None
        self._in_rate: int | None = None

    def push(self, chunk, sample_rate: int = SAMPLE_RATE) -> None:
        """Queue PCM samples (any dtype, mono or (frames, channels), any rate, any chunk size).
        The rate may not change mid-stream once a resampled rate was seen."""
        samples = to_mono(to_float32(np.asarray(chunk)))
        if sample_rate != SAMPLE_RATE:
            if self._in_rate not in (None, sample_rate):
                raise StreamError(f"sample rate changed mid-stream ({self._in_rate} -> {sample_rate})")
            if self._resampler is None:
                import soxr

                self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            samples = self._resampler.resample_chunk(samples)
        self._in_rate = sample_rate
        self._queue(samples)

    def close(self) -> None:
        """End of input: queue what the resampler still holds."""
        if self._resampler is not None:
            self._queue(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))

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
