"""Whisper log-mel spectrogram in numpy (matches transformers' WhisperFeatureExtractor within 1e-4).

Periodic Hann window of 400 samples, hop 160, reflect padding (center=True), power spectrum,
Slaney-scale mel filters, log10 clamped at 1e-10, floor at (max - 8), then (x + 4) / 4.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .constants import HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE

# How a window with less than 30 s of audio is filled up to N_FRAMES (manifest field ``mel_padding``):
# "log-mel": zeros appended to the normalized log-mel (openai/whisper's transcribe); "audio": the log-mel
# of zero samples after the audio (transformers' WhisperFeatureExtractor pads the waveform, so every
# fine-tune made with it trained on this; the export's validation and fidelity check decode this way).
MEL_PADDINGS = ("log-mel", "audio")


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney scale: linear below 1 kHz, logarithmic above (librosa's htk=False).
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    f = np.asarray(f, dtype=np.float64)
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney-normalised triangular mel filter bank, shape [n_mels, n_fft // 2 + 1]."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    ramps = hz[:, None] - fft_freqs[None, :]
    fdiff = np.diff(hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return weights


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def _reflect_padded(audio: np.ndarray, zeros: int) -> np.ndarray:
    """float32 [N_FFT/2 reflected | audio | zeros | N_FFT/2 reflected] in one allocation (what
    np.pad(np.pad(audio, (0, zeros)), N_FFT // 2, mode="reflect") gives, without two full copies)."""
    half = N_FFT // 2
    core = max(audio.size + zeros, half + 1)  # reflect padding needs a few samples
    x = np.zeros(core + 2 * half, dtype=np.float32)
    x[half:half + audio.size] = audio
    x[:half] = x[half + 1:2 * half + 1][::-1]
    x[half + core:] = x[core - 1:half + core - 1][::-1]
    return x


def log_mel_spectrogram(audio: np.ndarray, n_mels: int = 80, padding: int = 0,
                        chunk_frames: int = 1000) -> np.ndarray:
    """Log-mel spectrogram [n_mels, n_frames] of 16 kHz audio, after appending ``padding`` zero samples.

    n_frames = (len(audio) + padding) // 160. Frames are processed ``chunk_frames`` at a time so an hour
    of audio does not allocate gigabytes of STFT frames. Frames that see only the zero padding all
    have the same value (the log floor), so they are filled in rather than computed: the 30 s of
    padding every transcription appends would otherwise cost as much as 30 s of audio.
    """
    audio = np.asarray(audio, dtype=np.float32)
    n_out = (audio.size + padding) // HOP_LENGTH  # Whisper drops the last STFT frame
    # Zeros actually transformed: enough that every frame touching audio sees real samples.
    real_pad = min(padding, 2 * N_FFT)
    x = _reflect_padded(audio, real_pad)
    n_computed = min(n_out, 1 + (x.size - N_FFT) // HOP_LENGTH)
    if real_pad < padding:
        # The last computed frames may see reflect padding of the (shorter) zero tail: drop them,
        # they are pure zeros in the full signal too and get the floor value below.
        n_computed = min(n_computed, max(0, (audio.size + real_pad - N_FFT) // HOP_LENGTH))
    frames = np.lib.stride_tricks.as_strided(x, shape=(max(n_computed, 0), N_FFT),
                                             strides=(x.strides[0] * HOP_LENGTH, x.strides[0]))
    filters = mel_filters(n_mels)
    window = _window()
    out = np.empty((n_mels, n_out), dtype=np.float32)
    for start in range(0, n_computed, chunk_frames):
        stop = min(start + chunk_frames, n_computed)
        # float64 per chunk only (the samples are float32, so this is exact): an hour of audio as
        # float64 would be 460 MB, and even a minute's copies were ~50 MB of peak memory.
        spec = np.abs(np.fft.rfft(frames[start:stop].astype(np.float64) * window, n=N_FFT)) ** 2
        out[:, start:stop] = np.log10(np.maximum(filters @ spec.T, 1e-10))
    out[:, n_computed:] = -10.0  # log10 of the 1e-10 floor: silence
    np.maximum(out, out.max() - 8.0, out=out)
    out += 4.0
    out /= 4.0
    return out


def pad_or_trim(mel: np.ndarray, length: int = N_FRAMES) -> np.ndarray:
    """Pad (with zeros, as openai/whisper does) or trim the frame axis of [n_mels, frames] to ``length``."""
    if mel.shape[-1] > length:
        return mel[..., :length]
    if mel.shape[-1] < length:
        return np.pad(mel, [(0, 0)] * (mel.ndim - 1) + [(0, length - mel.shape[-1])])
    return mel


def mel_window(mel: np.ndarray, start: int, frames: int, padding: str = "log-mel") -> np.ndarray:
    """The N_FRAMES window of ``mel`` starting at ``start`` whose first ``frames`` frames are audio,
    padded as ``padding`` says (MEL_PADDINGS). ``mel`` must be computed with ``padding=N_SAMPLES`` zero
    samples after the audio (as every caller does), so the frames after the audio are zero audio's log-mel."""
    if padding == "audio":
        window = mel[..., start:start + N_FRAMES]
        if window.shape[-1] == N_FRAMES:
            return window
        # fewer frames than a window (mel made without the 30 s padding): extend with zero audio's value,
        # the log floor max(-10, max - 8) after the (x + 4) / 4 scaling
        floor = max(-1.5, float(mel.max()) - 2.0) if mel.size else -1.5
        fill = np.full(mel.shape[:-1] + (N_FRAMES - window.shape[-1],), floor, mel.dtype)
        return np.concatenate([window, fill], axis=-1)
    return pad_or_trim(mel[..., start:start + frames])


def window_features(audio: np.ndarray, n_mels: int, padding: str = "log-mel") -> np.ndarray:
    """[n_mels, N_FRAMES] of the first 30 s of ``audio``, the rest padded as ``padding`` says: what one
    window of that audio is encoded from (batched windows, export validation, a fine-tune's training)."""
    audio = np.asarray(audio, dtype=np.float32)[:N_SAMPLES]
    mel = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES)
    return mel_window(mel, 0, min(N_FRAMES, mel.shape[-1] - N_FRAMES), padding)
