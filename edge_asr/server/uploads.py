"""Uploaded audio: checked before it waits for a decode slot, decoded only once it has one.

``check_upload`` runs before queueing: an empty, corrupt or over-long file is answered at once (400/413)
and never holds a queue place. Its duration comes from the container header (soundfile, else PyAV)
without decoding; a file neither can open is decoded right away, so the client gets the decoder's own
message. ``decode_upload`` runs on the decode thread (so queued requests hold only their upload, not
decoded samples) and checks the decoded length again (headers can lie).
"""

from __future__ import annotations

import inspect
import io
from typing import BinaryIO

import numpy as np

from ..audio import load_audio
from ..constants import SAMPLE_RATE
from ..errors import AudioError
from .errors import PayloadTooLargeError

# Bounded decoding (load_audio's max_duration: the decode stops at the limit, whatever the header claims)
# where this edge-asr has it; the decoded length is checked here in any case.
_BOUNDED_DECODE = "max_duration" in inspect.signature(load_audio).parameters


def read_upload(file: BinaryIO) -> bytes:
    file.seek(0)
    return file.read()


def _too_long(seconds: float, limit: float) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the audio is {seconds:.1f} s long; this server accepts at most {limit:g} s per "
                                f"request (--max-audio-s): split it, or stream it over the WebSocket")


def header_seconds(data: bytes) -> float | None:
    """The audio's duration from its container header, without decoding; None when no reader can tell."""
    try:
        import soundfile as sf

        info = sf.info(io.BytesIO(data))
        if info.samplerate > 0 and info.frames >= 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - not a libsndfile format (or corrupt): try PyAV
        pass
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except Exception:  # noqa: BLE001 - unreadable: the decoder says why
        return None
    return None


def check_upload(file: BinaryIO, max_audio_s: float) -> None:
    """AudioError for an empty or undecodable file, PayloadTooLargeError for one over ``max_audio_s``."""
    data = read_upload(file)
    if not data:
        raise AudioError("the uploaded file is empty (0 bytes)")
    seconds = header_seconds(data)
    if seconds is None:  # no header reader knows it: decode now, for the decoder's own error message
        seconds = decode_upload(file, max_audio_s).size / SAMPLE_RATE
    if seconds > max_audio_s:
        raise _too_long(seconds, max_audio_s)


def decode_upload(file: BinaryIO, max_audio_s: float) -> np.ndarray:
    """16 kHz mono float32 samples of the upload; PayloadTooLargeError when longer than ``max_audio_s``."""
    data = read_upload(file)
    if not data:
        raise AudioError("the uploaded file is empty (0 bytes)")
    bound = {"max_duration": max_audio_s + 1.0} if _BOUNDED_DECODE else {}
    samples = load_audio(data, **bound)
    if samples.size > max_audio_s * SAMPLE_RATE:
        raise _too_long(samples.size / SAMPLE_RATE, max_audio_s)
    return samples
