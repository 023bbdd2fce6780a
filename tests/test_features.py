import numpy as np
import pytest

from conftest import have
from edge_asr.constants import N_FRAMES, N_SAMPLES
from edge_asr.features import log_mel_spectrogram, pad_or_trim


def _signals(sample_audio):
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 3) / 16000
    return {
        "speech": sample_audio,
        "sine": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "noise": rng.normal(0, 0.2, 16000 * 7).astype(np.float32),
        "short": rng.normal(0, 0.1, 100).astype(np.float32),
    }


@pytest.mark.skipif(not have("transformers"), reason="parity reference needs transformers (export extra)")
@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_transformers(sample_audio, n_mels):
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=n_mels)
    for name, audio in _signals(sample_audio).items():
        ref = fe(audio, sampling_rate=16000, return_tensors="np").input_features[0]
        ours = log_mel_spectrogram(audio, n_mels, padding=N_SAMPLES - len(audio))
        assert ours.shape == ref.shape == (n_mels, N_FRAMES), name
        assert np.abs(ours - ref).max() < 1e-4, name


def test_long_audio_frames_and_chunking_are_consistent(sample_audio):
    audio = np.tile(sample_audio, 8)  # > 60 s: several STFT chunks
    whole = log_mel_spectrogram(audio, 80, padding=N_SAMPLES, chunk_frames=10**7)
    chunked = log_mel_spectrogram(audio, 80, padding=N_SAMPLES, chunk_frames=997)
    assert whole.shape == (80, (len(audio) + N_SAMPLES) // 160)
    np.testing.assert_allclose(whole, chunked, atol=1e-6)


def test_pad_or_trim():
    m = np.ones((80, 10), np.float32)
    assert pad_or_trim(m, 20).shape == (80, 20) and pad_or_trim(m, 20)[:, 10:].sum() == 0
    assert pad_or_trim(np.ones((80, 50)), 20).shape == (80, 20)
