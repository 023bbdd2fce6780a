"""Audio sources for live transcription: a microphone (sounddevice) or a file fed at real-time pace.

sounddevice (``pip install 'edge-asr[mic]'``, plus the PortAudio library on Linux) is imported only
here, and only when a microphone is used. Its callback runs on PortAudio's thread and only hands the
samples to ``StreamingTranscriber.feed``, which queues them.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from .constants import SAMPLE_RATE
from .errors import EdgeASRError

BLOCK_S = 0.1  # microphone block and file chunk length


class MicrophoneError(EdgeASRError, OSError):
    """No usable input device, PortAudio missing, or the device failed mid-session."""


def _sounddevice():
    try:
        import sounddevice as sd
    except ImportError:
        raise MicrophoneError("microphone input needs sounddevice: pip install 'edge-asr[mic]'") from None
    except OSError as e:  # the module imports, PortAudio's shared library does not
        raise MicrophoneError(f"microphone input needs the PortAudio library ({e}); on Debian/Ubuntu: "
                              "apt-get install libportaudio2") from None
    return sd


def list_input_devices(sd=None) -> list[dict]:
    """Input-capable devices: [{'index', 'name', 'channels', 'default_samplerate', 'default'}]."""
    sd = sd or _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0] if sd.default.device else None
    except Exception as e:
        raise MicrophoneError(f"cannot list audio devices: {e}") from None
    return [{"index": i, "name": d["name"], "channels": d["max_input_channels"],
             "default_samplerate": d["default_samplerate"], "default": i == default_in}
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def resolve_input_device(device: str | int | None, sd=None) -> tuple[int | None, dict]:
    """The device index to open (None: the system default) and its description; a clear error if none."""
    inputs = list_input_devices(sd)
    if not inputs:
        raise MicrophoneError("no audio input device found (no microphone connected, or no permission to use "
                              "it); use --file AUDIO to transcribe a file instead")
    if device is None:
        default = next((d for d in inputs if d["default"]), inputs[0])
        return None if default["default"] else default["index"], default
    if isinstance(device, int) or str(device).isdigit():
        match = [d for d in inputs if d["index"] == int(device)]
    else:
        match = [d for d in inputs if str(device).lower() in d["name"].lower()]
    if not match:
        names = "; ".join(f"{d['index']}: {d['name']}" for d in inputs)
        raise MicrophoneError(f"no input device matches {device!r}; available: {names}")
    return match[0]["index"], match[0]


class MicrophoneSource:
    """Capture from an input device into ``sink(samples, sample_rate)`` until ``stop()``.

    ``failed`` is set (with ``error``) when the device disappears or the stream reports an error, so
    the caller can stop and keep what was committed."""

    def __init__(self, sink: Callable[[np.ndarray, int], None], device: str | int | None = None, sd=None):
        self.sd = sd or _sounddevice()
        self.index, self.info = resolve_input_device(device, self.sd)
        self.rate = int(self.info["default_samplerate"]) or SAMPLE_RATE
        self.sink = sink
        self.failed = threading.Event()
        self.error: str | None = None
        self._stream = None

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and (status.input_overflow if hasattr(status, "input_overflow") else False):
            pass  # an overflow loses a few ms; the transcriber copes, so do not stop the session
        try:
            self.sink(np.array(indata[:, 0] if indata.ndim == 2 else indata, dtype=np.float32), self.rate)
        except Exception as e:  # never let an exception kill PortAudio's thread silently
            self.error = f"{type(e).__name__}: {e}"
            self.failed.set()

    def _finished(self) -> None:
        if not self.failed.is_set() and self._stream is not None and not getattr(self, "_stopping", False):
            self.error = self.error or "the input device stopped (disconnected?)"
            self.failed.set()

    def start(self) -> "MicrophoneSource":
        try:
            self._stream = self.sd.InputStream(device=self.index, channels=1, samplerate=self.rate, dtype="float32",
                                               blocksize=int(self.rate * BLOCK_S), callback=self._callback,
                                               finished_callback=self._finished)
            self._stream.start()
        except Exception as e:
            raise MicrophoneError(f"cannot open input device {self.info['name']!r}: {e}") from None
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:
                pass  # the device may already be gone; what was captured is kept either way


def feed_file(samples: np.ndarray, sink: Callable[[np.ndarray, int], None], realtime: bool,
              stop: threading.Event | None = None, chunk_s: float = BLOCK_S) -> None:
    """Feed 16 kHz samples in ``chunk_s`` chunks; at real-time pace when ``realtime``."""
    step = int(SAMPLE_RATE * chunk_s)
    start = time.monotonic()
    for i in range(0, len(samples), step):
        if stop is not None and stop.is_set():
            return
        if realtime:
            delay = start + i / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sink(samples[i:i + step], SAMPLE_RATE)
