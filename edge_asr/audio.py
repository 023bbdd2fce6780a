"""Audio input: files, bytes or arrays of any rate, dtype and channel count -> 16 kHz mono float32.

soundfile (libsndfile) reads wav, flac, ogg/vorbis, opus and mp3 directly; PyAV, when installed
(``pip install edge-asr[av]``), decodes everything else (m4a, aac, webm, video containers).
Resampling uses soxr (high quality, no torch).

Every input is checked before it costs anything (issue 18): the sample rate must be one a recording can
have (``MIN_SAMPLE_RATE``..``MAX_SAMPLE_RATE``: a header that claims 1 Hz would otherwise become hours
of audio and gigabytes of memory), the decoded length is bounded by ``max_duration`` (counted on what
the file actually holds, read block by block, never on what its header claims), and samples must be
finite. Float samples at integer scale (e.g. int16 values stored as float) are rescaled with an
:class:`~edge_asr.errors.AudioWarning`. Every refusal is an :class:`~edge_asr.errors.AudioError`
naming the problem.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np

from .constants import SAMPLE_RATE
from .errors import AudioError, AudioLimitError, AudioTypeError, AudioWarning


AudioInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

# No recording has a rate outside this range: below it a header is corrupt (1 Hz would turn a 32 KB WAV
# into 16,000 s of audio), above it the "audio" cannot be sound meant for a speech model.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 1_000_000
# Default bound on the decoded length (seconds); ``max_duration=None`` lifts it. At 16 kHz float32 a
# day of audio is 5.5 GB, so servers pass a far smaller bound.
MAX_DURATION_S = 24 * 3600.0
# A 2-D array's shorter axis is its channels; more than this many and the layout cannot be told.
MAX_CHANNELS = 256
# Float samples whose peak exceeds this are taken as integer-scale PCM (rescaled, with a warning).
FLOAT_HEADROOM = 2.0
_READ_BLOCK = 1 << 16  # frames per soundfile read: bounds memory whatever the header claims


def check_sample_rate(rate, what: str = "audio", *, from_header: bool = True) -> int | float:
    """``rate`` as a number of samples per second, or a typed error naming the problem (``from_header``:
    the rate was read from a file, not given by the caller)."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise AudioTypeError(f"sample rate of {what} must be a number (samples per second, e.g. 16000), "
                             f"not {type(rate).__name__}")
    value = float(rate)
    if not math.isfinite(value) or value <= 0:
        raise AudioError(f"invalid sample rate {rate!r} ({what}): give the samples' rate in Hz, e.g. 16000")
    if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        cause = "its header is corrupt" if from_header else "pass the samples' true rate"
        shown = f"{int(value)}" if value.is_integer() and value < 1e15 else f"{value:g}"
        raise AudioLimitError(
            f"{what}: a sample rate of {shown} Hz is outside the {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz that "
            f"recordings have ({cause})")
    return int(value) if value.is_integer() else value


def _check_duration(frames: int, rate: float, max_duration: float | None, what: str) -> None:
    if max_duration is not None and frames > max_duration * rate:
        raise AudioLimitError(
            f"{what} is longer than the {max_duration:g} s allowed (max_duration): at least {frames / rate:.1f} s; "
            "split it, or pass a larger max_duration (None for no limit)")


def to_float32(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to [-1, 1] floats; floats pass through as float32 (see :func:`sanitize` for their
    range)."""
    a = np.asarray(samples)
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    if a.dtype.kind == "i":
        return (a.astype(np.float32) / float(2 ** (8 * a.dtype.itemsize - 1))).astype(np.float32)
    if a.dtype.kind == "u":
        half = float(2 ** (8 * a.dtype.itemsize - 1))
        return ((a.astype(np.float32) - half) / half).astype(np.float32)
    raise AudioError(f"unsupported sample dtype {a.dtype}: give int or float PCM")


def integer_scale(peak: float) -> float:
    """The divisor that brings float samples of this peak back to [-1, 1]: 2**15 for int16-scale values,
    2**31 for int32-scale ones, else the peak itself."""
    for bits in (15, 31):
        if 64 < peak <= 2.0 ** bits * 1.0001:
            return 2.0 ** bits
    return peak


def sanitize(samples: np.ndarray, what: str, nonfinite: str = "error") -> np.ndarray:
    """Float32 samples that are finite and within a sane range.

    Floats whose peak exceeds ``FLOAT_HEADROOM`` are integer PCM stored as floats (or a gain gone wrong):
    rescaled by :func:`integer_scale`, with an AudioWarning. NaN/infinite samples raise an AudioError
    (``nonfinite="error"``) or become 0 (``"zero"``, a live stream: one bad sample must not end it; the
    caller warns). The check runs in the input's own dtype, so float64 values beyond float32's range are
    scaled, not turned into infinities."""
    a = np.asarray(samples)
    if a.dtype.kind != "f":
        return to_float32(a)
    if a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    if a.size == 0:
        return a.astype(np.float32, copy=False)
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        if nonfinite == "error":
            first = int(np.argmin(finite.reshape(-1)))
            raise AudioError(f"{what} contains {bad} NaN or infinite sample value(s) (the first at flat index "
                             f"{first}): the audio is corrupt; replace them (e.g. numpy.nan_to_num) or fix the source")
        a = np.where(finite, a, 0).astype(a.dtype, copy=False)
    peak = float(max(a.max(), -a.min()))
    if peak > FLOAT_HEADROOM:
        scale = integer_scale(peak)
        warnings.warn(f"{what}: float samples reach {peak:.6g}, far outside [-1, 1]; treated as integer-scale PCM "
                      f"and divided by {scale:.6g}. Pass floats in [-1, 1] (or the integer array itself).",
                      AudioWarning, stacklevel=3)
        a = a / a.dtype.type(scale)
    return a.astype(np.float32, copy=False)


def to_mono(samples: np.ndarray, channels_last: bool | None = None) -> np.ndarray:
    """Average channels. 2-D input is (frames, channels) when ``channels_last``; when None (arrays from
    callers) the shorter axis is taken as the channels, as libraries that store channels first give
    (channels, frames). Singleton axes beyond two are dropped ((1, 1, N) is N samples)."""
    if samples.ndim > 2:
        if samples.size == 0:
            return np.zeros(0, samples.dtype)
        squeezed = np.squeeze(samples)
        if squeezed.ndim > 2:
            raise AudioError(f"audio array must be 1-D (samples) or 2-D (frames, channels), got shape {samples.shape}")
        samples = squeezed.reshape(-1) if squeezed.ndim == 0 else squeezed
    if samples.ndim == 0:
        raise AudioError("audio array is a single number (0-D): give a 1-D array of samples")
    if samples.ndim == 1:
        return samples
    if samples.size == 0:
        return np.zeros(0, samples.dtype)
    if channels_last is None:
        frames_axis = 0 if samples.shape[0] >= samples.shape[1] else 1
        if samples.shape[1 - frames_axis] > MAX_CHANNELS:
            raise AudioError(
                f"audio array of shape {samples.shape} has more than {MAX_CHANNELS} frames on both axes: cannot "
                "tell frames from channels; give (frames, channels) or (channels, frames) with at most "
                f"{MAX_CHANNELS} channels")
        if frames_axis == 1:
            samples = samples.T
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: float, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return samples
    if not rate > 0:
        raise AudioError(f"invalid sample rate {rate}")
    import soxr

    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32, copy=False)


class _Bytes(io.BytesIO):
    """Encoded bytes for libsndfile's virtual IO. Probing a corrupt file can ask for a seek before the
    start; BytesIO raises, and soundfile's callback then prints an "Exception ignored" traceback to
    stderr that looks like a crash. Stay put instead (the decode fails or succeeds as before)."""

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:
            return self.tell()


def _decode_soundfile(src, what: str, max_duration: float | None) -> tuple[np.ndarray, int]:
    """Mono float samples (not yet sanitized) and the rate, read block by block: memory follows what the
    file holds, not what its header claims, and the duration bound stops a long file early."""
    import soundfile as sf

    with sf.SoundFile(src) as f:
        rate = check_sample_rate(f.samplerate, what)
        if f.channels < 1:
            raise AudioError(f"{what} declares {f.channels} channels: the file is corrupt")
        blocks, frames = [], 0
        while True:
            block = f.read(_READ_BLOCK, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            frames += block.shape[0]
            _check_duration(frames, rate, max_duration, what)
            blocks.append(block)
    data = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
    return data, rate


def _decode_av(src, what: str, max_duration: float | None) -> tuple[np.ndarray, int]:
    import av  # optional dependency: edge-asr[av]

    chunks, total = [], 0
    with av.open(src, mode="r") as container:
        if not container.streams.audio:
            raise AudioError(f"{what} has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context.sample_rate:
            check_sample_rate(stream.codec_context.sample_rate, what)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            if frame.sample_rate:
                check_sample_rate(frame.sample_rate, what)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                total += chunks[-1].size
                _check_duration(total, SAMPLE_RATE, max_duration, what)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data.astype(np.float32)[:, None], SAMPLE_RATE


def _decode(src, what: str, max_duration: float | None) -> tuple[np.ndarray, int]:
    try:
        return _decode_soundfile(src, what, max_duration)
    except AudioError:
        raise
    except Exception as sf_error:  # libsndfile reports corrupt and unknown formats alike
        if isinstance(src, io.BytesIO):
            src.seek(0)
        try:
            import av  # noqa: F401
        except ImportError:
            raise AudioError(
                f"cannot decode {what}: not a readable wav/flac/ogg/mp3 file ({sf_error}). If it is another "
                "format (m4a, aac, webm, ...) install the optional decoder: pip install 'edge-asr[av]'"
            ) from None
        try:
            return _decode_av(src, what, max_duration)
        except AudioError:
            raise
        except Exception as av_error:
            raise AudioError(f"cannot decode {what}: corrupt or unsupported audio ({av_error})") from None


def load_audio(source: AudioInput, sample_rate: int | float | None = None, *,
               max_duration: float | None = MAX_DURATION_S) -> np.ndarray:
    """Return 16 kHz mono float32 samples.

    ``source`` is a file path, the bytes of an encoded file (or a binary file object), or an array of
    samples. For arrays, ``sample_rate`` is the array's rate (default 16000); for files and bytes it is
    read from the file (a given ``sample_rate`` is still checked). ``max_duration`` (seconds, None for no
    limit) refuses longer audio with an AudioLimitError before it is all decoded.
    Raises AudioError (a ValueError) for anything unreadable, AudioTypeError (also a TypeError) for a
    source that is not audio at all.
    """
    if max_duration is not None:
        if isinstance(max_duration, bool) or not isinstance(max_duration, numbers.Real) \
                or not float(max_duration) > 0:
            raise AudioTypeError(f"max_duration must be a positive number of seconds or None, not {max_duration!r}")
        max_duration = float(max_duration)
    given_rate = None if sample_rate is None else check_sample_rate(sample_rate, "sample_rate", from_header=False)
    what = None
    if not isinstance(source, (np.ndarray, bytes, bytearray, memoryview, str, os.PathLike)) \
            and callable(getattr(source, "read", None)):
        name = getattr(source, "name", None)
        source = source.read()  # a binary file object: its bytes
        if not isinstance(source, (bytes, bytearray, memoryview)):
            raise AudioTypeError(f"a file object given as audio must be opened in binary mode ('rb'), "
                                 f"its read() gave {type(source).__name__}")
        what = f"audio from {name}" if isinstance(name, str) else "audio bytes"
    if isinstance(source, np.ndarray):
        what = "audio array"
        if source.dtype.kind not in "fiu":
            raise AudioError(f"unsupported sample dtype {source.dtype} of {what}: give int or float PCM")
        rate = SAMPLE_RATE if given_rate is None else given_rate
        samples = to_mono(sanitize(source, what))
        _check_duration(samples.size, rate, max_duration, what)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        what = what or "audio bytes"
        if len(source) == 0:
            raise AudioError(f"{what} are empty (0 bytes)")
        data, rate = _decode(_Bytes(bytes(source)), what, max_duration)
        samples = sanitize(to_mono(data, channels_last=True), what)
    elif isinstance(source, (str, os.PathLike)):
        try:
            path = Path(source)
        except TypeError as e:
            raise AudioTypeError(f"audio path is not a valid path: {e}") from None
        what = str(path)
        if str(source) == "":
            raise AudioError("audio path is empty")
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except (OSError, ValueError) as e:  # a NUL byte, a name too long
            raise AudioError(f"cannot open audio file {what!r}: {e}") from None
        if not exists:
            raise AudioError(f"audio file not found: {path}")
        if is_dir:
            raise AudioError(f"expected an audio file, got a directory: {path}")
        if not path.is_file():
            raise AudioError(f"audio path is not a regular file (a device, pipe or socket): {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"audio file is empty (0 bytes): {path}")
        if not os.access(path, os.R_OK):
            raise AudioError(f"audio file is not readable (permission denied): {path}")
        data, rate = _decode(str(path), what, max_duration)
        samples = sanitize(to_mono(data, channels_last=True), what)
    else:
        raise AudioTypeError(f"audio must be a path, bytes or a numpy array, not {type(source).__name__}")
    if samples.size == 0:
        raise AudioError(f"{what} contains no samples (zero-length audio)")
    return resample(np.ascontiguousarray(samples, dtype=np.float32), rate)
