import io

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLE
from edge_asr.audio import load_audio
from edge_asr.errors import AudioError


def _tone(rate, seconds=1.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * 300 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_file_bytes_and_array_agree():
    from_file = load_audio(SAMPLE)
    from_bytes = load_audio(SAMPLE.read_bytes())
    data, rate = sf.read(SAMPLE, dtype="int16")
    from_array = load_audio(data, sample_rate=rate)
    assert from_file.dtype == np.float32 and from_file.ndim == 1
    np.testing.assert_array_equal(from_file, from_bytes)
    np.testing.assert_allclose(from_file, from_array, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_and_channels_become_16k_mono(tmp_path, rate):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(rate, 2.0, channels=2), rate)
    out = load_audio(path)
    assert abs(len(out) - 32000) <= 2
    assert 0.3 < np.abs(out).max() < 0.6  # level kept through downmix and resampling


def test_int_dtypes_and_channels_first():
    x = (_tone(16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(x), x / 32768, atol=1e-6)
    both = np.stack([x, x])  # (channels, frames)
    assert load_audio(both).shape == (16000,)


def test_ogg_in_memory_is_decoded():
    buf = io.BytesIO()
    sf.write(buf, _tone(16000), 16000, format="OGG", subtype="VORBIS")
    assert abs(len(load_audio(buf.getvalue())) - 16000) < 400


@pytest.mark.parametrize("case, match", [
    ("missing", "not found"),
    ("empty_file", "empty"),
    ("corrupt", "cannot decode"),
    ("directory", "directory"),
])
def test_bad_files_name_the_problem(tmp_path, case, match):
    path = tmp_path / "x.wav"
    if case == "empty_file":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage" * 50)
    elif case == "directory":
        path.mkdir()
    with pytest.raises(AudioError, match=match) as e:
        load_audio(path)
    assert str(path) in str(e.value)


def test_bad_arrays_and_bytes():
    with pytest.raises(AudioError, match="no samples"):
        load_audio(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        load_audio(np.array([0.1, np.nan], np.float32))
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(b"definitely not audio" * 10)
    with pytest.raises(AudioError, match="invalid sample rate"):
        load_audio(np.ones(100, np.float32), sample_rate=0)
    with pytest.raises(TypeError):
        load_audio(12345)
