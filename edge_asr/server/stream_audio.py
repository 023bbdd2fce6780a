"""Audio of a live stream, as the client sends it, into ``StreamingTranscriber.feed``.

``format``: ``pcm_s16le`` (16-bit little-endian integers) or ``pcm_f32le`` (32-bit floats), interleaved
``channels`` at ``sample_rate``; messages may split frames anywhere (the remainder waits for the next).
``encoded``: one encoded stream (ogg/opus, webm, mp3, flac, wav, ...: a browser's MediaRecorder output)
sent in pieces; PyAV (``edge-asr[av]``) decodes it on its own thread as bytes arrive. Formats that need
seeking (mp4/m4a with the index at the end) cannot be streamed.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import AudioError, EdgeASRError
from .errors import RequestError

PCM_DTYPES = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}
FORMATS = (*PCM_DTYPES, "encoded")
MIN_RATE, MAX_RATE, MAX_CHANNELS = 8_000, 384_000, 8
# The encoded stream's undecoded bytes are bounded like PCM of 48 kHz stereo 16-bit (compressed audio
# holds far more seconds per byte).
ENCODED_BYTES_PER_S = 48_000 * 2 * 2

Feed = Callable[[np.ndarray, int], None]


class PendingAudioError(AudioError):
    """The client sends audio faster than the server can take it in."""


def check_format(fmt: str, sample_rate: int, channels: int) -> None:
    if fmt not in FORMATS:
        raise RequestError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", param="format")
    if fmt == "encoded":
        try:
            import av  # noqa: F401
        except ImportError:
            raise RequestError("format=encoded needs PyAV on the server: pip install 'edge-asr[av]'; or send PCM "
                               "(format=pcm_s16le or pcm_f32le)", param="format") from None
        return
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise RequestError(f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz, not {sample_rate}", param="sample_rate")
    if not 1 <= channels <= MAX_CHANNELS:
        raise RequestError(f"channels must be 1..{MAX_CHANNELS}, not {channels}", param="channels")


class PcmInput:
    """Raw interleaved PCM -> (frames, channels) arrays fed at the declared rate."""

    def __init__(self, fmt: str, sample_rate: int, channels: int, feed: Feed):
        self.dtype, self.rate, self.channels, self.feed = PCM_DTYPES[fmt], sample_rate, channels, feed
        self.frame_bytes = self.dtype.itemsize * channels
        self._rest = b""
        self.error = None  # PCM cannot be malformed (any bytes are samples)

    def write(self, data: bytes) -> None:
        data = self._rest + data
        usable = len(data) - len(data) % self.frame_bytes
        self._rest = data[usable:]
        if usable:
            samples = np.frombuffer(data[:usable], dtype=self.dtype).reshape(-1, self.channels)
            if self.dtype.kind == "f" and not np.all(np.isfinite(samples)):
                samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
            self.feed(samples if self.channels > 1 else samples[:, 0], self.rate)

    def close(self) -> None:
        self._rest = b""  # a partial last frame is not audio


class _Pipe:
    """A blocking, read-only file object over the byte chunks the session writes."""

    def __init__(self):
        self.chunks: queue.Queue = queue.Queue()
        self._buffer = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._buffer and not self._eof:
            chunk = self.chunks.get()
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
        if n is None or n < 0:
            n = len(self._buffer)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


class EncodedInput:
    """One encoded audio stream, decoded by PyAV on a thread as it arrives; 16 kHz mono fed out."""

    def __init__(self, feed: Feed, max_pending_s: float):
        self.feed = feed
        self.max_pending_bytes = int(max_pending_s * ENCODED_BYTES_PER_S)
        self._pipe = _Pipe()
        self._pending = 0
        self._lock = threading.Lock()
        self.error: EdgeASRError | None = None  # why decoding stopped (bad data, or the stream failed)
        self._thread = threading.Thread(target=self._run, name="edge-asr-stream-decode", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        with self._lock:
            if self._pending + len(data) > self.max_pending_bytes:
                raise PendingAudioError(f"more than {self.max_pending_bytes} bytes of encoded audio are waiting to be "
                                        "decoded: send at the audio's own pace")
            self._pending += len(data)
        self._pipe.chunks.put(bytes(data))

    def close(self) -> None:
        """End of the stream: decode what is left (blocks; call from a worker thread)."""
        self._pipe.chunks.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        import av

        pipe = self._pipe
        original_read = pipe.read

        def read(n: int = -1) -> bytes:
            out = original_read(n)
            with self._lock:
                self._pending -= len(out)
            return out

        pipe.read = read  # type: ignore[method-assign]
        try:
            with av.open(pipe, mode="r") as container:
                if not container.streams.audio:
                    raise AudioError("the encoded stream has no audio track")
                resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        self.feed(out.to_ndarray().reshape(-1), SAMPLE_RATE)
                for out in resampler.resample(None):
                    self.feed(out.to_ndarray().reshape(-1), SAMPLE_RATE)
        except EdgeASRError as e:
            self.error = e
        except Exception as e:  # noqa: BLE001 - PyAV's errors: corrupt or unsupported data
            self.error = AudioError(f"cannot decode the encoded stream: {e}")
        finally:
            while not pipe._eof:  # unblock the writer side: drain what is still queued
                if pipe.chunks.get() is None:
                    pipe._eof = True
