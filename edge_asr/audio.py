"""Audio input: files, bytes or arrays of any rate, dtype and channel count -> 16 kHz mono float32.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus and mp3 directly; PyAV, when installed
(``pip install edge-asr[av]``), decodes everything else (m4a, aac, webm, video containers).
Resampling uses soxr (high quality, no torch).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np

from .constants import SAMPLE_RATE
from .errors import AudioError, AudioTypeError


AudioInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to [-1, 1] floats; floats pass through as float32."""
    a = np.asarray(samples)
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    if a.dtype.kind == "i":
        return (a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))).astype(np.float32)
    if a.dtype.kind == "u":
        half = float(2 ** (8 * a.dtype.itemsize - 1))
        return ((a.astype(np.float32) - half) / half).astype(np.float32)
    raise AudioError(f"unsupported sample dtype {a.dtype}: give int or float PCM")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels. 2-D input is (frames, channels); (channels, frames) is detected when the
    first axis is much shorter, as from libraries that store channels first."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(f"audio array must be 1-D or 2-D (frames, channels), got shape {samples.shape}")
    if samples.shape[0] < samples.shape[1] and samples.shape[0] <= 16:
        samples = samples.T
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return samples
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate}")
    import soxr

    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32, copy=False)


def _decode_soundfile(src) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(src, dtype="float32", always_2d=True)
    return data, rate


def _decode_av(src) -> tuple[np.ndarray, int]:
    import av  # optional dependency: edge-asr[av]

    chunks = []
    with av.open(src, mode="r") as container:
        if not container.streams.audio:
            raise AudioError("the file has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data.astype(np.float32)[:, None], SAMPLE_RATE


def _decode(src, name: str) -> tuple[np.ndarray, int]:
    try:
        return _decode_soundfile(src)
    except Exception as sf_error:  # libsndfile reports corrupt and unknown formats alike
        if isinstance(src, io.BytesIO):
            src.seek(0)
        try:
            import av  # noqa: F401
        except ImportError:
            raise AudioError(
                f"cannot decode {name}: not a readable wav/flac/ogg/mp3 file ({sf_error}). If it is another "
                "format (m4a, aac, webm, ...) install the optional decoder: pip install 'edge-asr[av]'"
            ) from None
        try:
            return _decode_av(src)
        except AudioError:
            raise
        except Exception as av_error:
            raise AudioError(f"cannot decode {name}: corrupt or unsupported audio ({av_error})") from None


def load_audio(source: AudioInput, sample_rate: int | None = None) -> np.ndarray:
    """Return 16 kHz mono float32 samples.

    ``source`` is a file path, the bytes of an encoded file, or an array of samples. For arrays,
    ``sample_rate`` is the array's rate (default 16000); for files and bytes it is read from the file.
    """
    if isinstance(source, np.ndarray):
        samples = to_mono(to_float32(source))
        rate = SAMPLE_RATE if sample_rate is None else int(sample_rate)
        name = "audio array"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = "audio bytes"
        if len(source) == 0:
            raise AudioError("audio bytes are empty")
        data, rate = _decode(io.BytesIO(bytes(source)), name)
        samples = to_mono(data)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise AudioError(f"audio file not found: {path}")
        if path.is_dir():
            raise AudioError(f"expected an audio file, got a directory: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"audio file is empty (0 bytes): {path}")
        data, rate = _decode(str(path), name)
        samples = to_mono(data)
    else:
        raise AudioTypeError(f"audio must be a path, bytes or a numpy array, not {type(source).__name__}")
    if samples.size == 0:
        raise AudioError(f"{name} contains no samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name} contains NaN or infinite samples")
    return resample(np.ascontiguousarray(samples, dtype=np.float32), rate)
