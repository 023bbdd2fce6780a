"""The lazy segment API (WhisperModel.transcribe_segments), file-object audio and language names, on real
tiny.en int8: segments arrive while the file is still being decoded, stopping the loop stops decoding,
and the lazy segments are exactly the eager result's."""

from __future__ import annotations

import io

import numpy as np
import pytest

import edge_asr
from edge_asr.errors import DecodingError

from conftest import SAMPLE, SAMPLE_TEXT, wer


@pytest.fixture(scope="module")
def model(tiny_en_dir):
    return edge_asr.load_model(tiny_en_dir, device="cpu")


@pytest.fixture(scope="module")
def long_audio(sample_audio):
    """~31 s: two sequential windows."""
    return np.concatenate([sample_audio, sample_audio])


@pytest.fixture(scope="module")
def eager(model, long_audio):
    return model.transcribe(long_audio)


class Counter:
    """Counts the encoder runs (one per decoded window or batch) of a model."""

    def __init__(self, model, monkeypatch):
        self.calls = 0
        encode = model.backend.encode

        def counted(*args, **kwargs):
            self.calls += 1
            return encode(*args, **kwargs)

        monkeypatch.setattr(model.backend, "encode", counted)


def test_segments_arrive_per_window_and_equal_the_eager_result(model, long_audio, eager, monkeypatch):
    encoded = Counter(model, monkeypatch)
    progress: list[tuple[float, float]] = []
    segments, info = model.transcribe_segments(long_audio, progress=lambda done, total: progress.append((done, total)))
    assert isinstance(info, edge_asr.TranscriptionInfo)
    assert (info.language, info.language_probability) == ("en", None)  # English-only: not detected
    assert info.duration == info.duration_after_vad == pytest.approx(len(long_audio) / 16000, abs=1e-3)
    assert info.options.language is None and encoded.calls == 0 and not progress  # nothing decoded yet

    first = next(segments)
    assert encoded.calls == 1 and len(progress) == 1  # one 30 s window decoded ...
    done, total = progress[0]
    assert done <= 30.0 < total  # ... of a longer file
    rest = list(segments)
    assert encoded.calls >= 2 and progress[-1][0] == pytest.approx(total)
    assert (first, *rest) == eager.segments  # the same Segment objects' values, ids, times and text
    assert [s.id for s in eager.segments] == list(range(len(eager.segments)))
    assert wer(SAMPLE_TEXT + " " + SAMPLE_TEXT, eager.text) < 0.15
    # Our segment texts are stripped; the transcript joins them with spaces (for a spaced language).
    assert " ".join(s.text for s in eager.segments) == eager.text


def test_stopping_the_loop_stops_decoding(model, long_audio, eager, monkeypatch):
    assert eager.segments[-1].end > 30  # there is a second window to skip
    encoded = Counter(model, monkeypatch)
    segments, _ = model.transcribe_segments(long_audio)
    for segment in segments:
        break
    assert encoded.calls == 1 and segment == eager.segments[0]
    segments.close()  # releases the loop's features and buffers
    assert next(segments, None) is None and encoded.calls == 1

    # close() before the first segment: nothing is ever decoded.
    segments, _ = model.transcribe_segments(long_audio)
    segments.close()
    assert list(segments) == [] and encoded.calls == 1


def test_batched_mode_yields_in_time_order(model, sample_audio, monkeypatch):
    """Batched mode yields a batch's segments once no queued window can start before them: the order is
    the time order the eager result always had (transcribe() drains this same generator). Three VAD
    windows in batches of two, so the first batch yields while a window is still queued (the horizon)."""
    audio = np.concatenate([sample_audio] * 4)  # ~62 s: three VAD windows
    encoded = Counter(model, monkeypatch)
    segments, info = model.transcribe_segments(audio, batch_size=2)
    first = next(segments)
    assert encoded.calls == 1  # yielded before the queued window was decoded
    lazy = [first, *segments]
    assert encoded.calls >= 2
    assert wer(" ".join([SAMPLE_TEXT] * 4), " ".join(s.text for s in lazy)) < 0.15
    # across batches too: what the generator yields is the global stable sort by start
    assert lazy == sorted(lazy, key=lambda s: s.start) and [s.id for s in lazy] == list(range(len(lazy)))
    assert lazy[-1].start > 55  # the third window's segments came after the first batch's
    assert 0 < info.duration_after_vad <= info.duration


def test_info_before_decoding_with_the_vad_filter(model, sample_audio, monkeypatch):
    """VAD runs before transcribe_segments returns: the speech duration is known with nothing decoded."""
    encoded = Counter(model, monkeypatch)
    padded = np.concatenate([np.zeros(16000 * 10, np.float32), sample_audio])
    segments, info = model.transcribe_segments(padded, vad_filter=True)
    assert encoded.calls == 0
    assert info.duration == pytest.approx(len(padded) / 16000, abs=1e-3)
    assert info.duration_after_vad < info.duration - 8
    first = next(segments)
    assert first.start >= 9.0 and encoded.calls == 1  # times are mapped back to the padded audio
    segments.close()


def test_file_objects_and_language_names(model, sample_audio):
    clip = sample_audio[:16000 * 5]
    buffer = io.BytesIO()
    import soundfile as sf

    sf.write(buffer, clip, 16000, format="WAV", subtype="FLOAT")
    from_array = model.transcribe(clip, language="en")
    from_bytes_io = model.transcribe(io.BytesIO(buffer.getvalue()), language="English")
    assert from_bytes_io.segments == from_array.segments and from_bytes_io.language == "en"
    with open(SAMPLE, "rb") as f:
        segments, info = model.transcribe_segments(f, language="ENGLISH")
    assert info.language == "en" and info.duration == pytest.approx(len(sample_audio) / 16000, abs=1e-3)
    assert next(segments).text == "This short recording was made by a speech synthesizer."
    segments.close()


def test_language_names_map_to_codes_with_typed_errors(model):
    assert edge_asr.TranscribeOptions(language="German").language == "de"
    assert edge_asr.TranscribeOptions(language="castilian").language == "es"  # Whisper's alias
    assert edge_asr.TranscribeOptions(language="EN").language == "en"
    # Unknown names fail before any audio is read, naming the closest languages.
    with pytest.raises(DecodingError, match="unknown language code 'Englsh'.*'english' \\(en\\)") as e:
        model.transcribe_segments("no-such-file.flac", language="Englsh")
    assert isinstance(e.value, ValueError)
    with pytest.raises(DecodingError, match="unknown language code 'xx'"):
        model.transcribe(SAMPLE, language="xx")
