"""edge_asr.compat: faster-whisper's README usage runs by changing only the import (real tiny.en int8 on a
real MP3 file), its return shapes, and typed errors for what edge-asr does not implement."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest

from edge_asr.compat import (BatchedInferencePipeline, Segment, TranscriptionInfo, UnsupportedArgumentError,
                             WhisperModel, Word)
from edge_asr.vad import VadOptions
from edge_asr.errors import EdgeASRError, ModelNotFoundError

from conftest import SAMPLE, SAMPLE_TEXT, wer

# faster-whisper's README (1.2.1), "Usage" / "Word-level timestamps" / "VAD filter", as written there
# except for the first import line.
README = '''
from edge_asr.compat import WhisperModel

model_size = "tiny.en"

# Run on CPU with INT8
model = WhisperModel(model_size, device="cpu", compute_type="int8")

segments, info = model.transcribe("audio.mp3", beam_size=5)

print("Detected language '%s' with probability %f" % (info.language, info.language_probability))

for segment in segments:
    print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text))

segments, _ = model.transcribe("audio.mp3", word_timestamps=True)

for segment in segments:
    for word in segment.words:
        print("[%.2fs -> %.2fs] %s" % (word.start, word.end, word.word))

segments, _ = model.transcribe(
    "audio.mp3",
    vad_filter=True,
    vad_parameters=dict(min_silence_duration_ms=500),
)
segments = list(segments)  # The transcription will actually run here.
'''


@pytest.fixture(scope="module")
def cache(tiny_en_dir):
    """EDGE_ASR_CACHE pointing at the cache that holds tiny.en, so names resolve as for a user."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGE_ASR_CACHE", str(tiny_en_dir.parent.parent))
    yield tiny_en_dir
    mp.undo()


@pytest.fixture(scope="module")
def model(cache):
    return WhisperModel("tiny.en", device="cpu", compute_type="int8")


def test_faster_whisper_readme_runs_unchanged(cache, tmp_path, monkeypatch, sample_audio):
    import soundfile as sf

    sf.write(tmp_path / "audio.mp3", sample_audio, 16000, format="MP3")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    scope: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(README, "faster-whisper-README", "exec"), scope)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Detected language 'en' with probability 1.000000"
    segment_lines = [ln for ln in lines[1:] if ln.count(" ") > 4]  # segments, then "[a -> b]  word" lines
    words = [ln for ln in lines[1:] if ln not in segment_lines]
    assert segment_lines[0].startswith("[0.00s -> ") and "This short recording" in segment_lines[0]
    assert wer(SAMPLE_TEXT, " ".join(ln.split("] ", 1)[1] for ln in segment_lines)) < 0.15
    assert wer(SAMPLE_TEXT, "".join(ln.split("] ", 1)[1] for ln in words)) < 0.15
    vad_segments = scope["segments"]
    assert vad_segments and all(isinstance(s, Segment) for s in vad_segments)
    assert wer(SAMPLE_TEXT, "".join(s.text for s in vad_segments)) < 0.15


def test_segments_and_info_have_faster_whispers_shape(model, sample_audio):
    segments, info = model.transcribe(sample_audio)
    assert isinstance(info, TranscriptionInfo)
    assert (info.language, info.language_probability, info.all_language_probs) == ("en", 1.0, None)
    assert info.duration == info.duration_after_vad == pytest.approx(len(sample_audio) / 16000, abs=1e-3)
    assert info.transcription_options.beam_size == 5  # faster-whisper's default, not edge-asr's greedy
    segments = list(segments)
    assert [s.id for s in segments] == list(range(1, len(segments) + 1))  # faster-whisper counts from 1
    first = segments[0]
    assert first.text.startswith(" This") and first.seek == 0 and first.tokens and first.words is None
    assert first.temperature == 0.0 and first.avg_logprob < 0 and first.compression_ratio > 0
    # Texts keep their leading space: joining them gives the transcript, as the eager API's text is
    # made (all tokens decoded at once), spaces included.
    joined = "".join(s.text for s in segments)
    assert joined.strip() == model.edge.tokenizer.decode([t for s in segments for t in s.tokens]).strip()
    assert "  " not in joined and wer(SAMPLE_TEXT, joined) < 0.15


def test_stopping_the_loop_stops_decoding(model, sample_audio, monkeypatch):
    calls = []
    encode = model.edge.backend.encode
    monkeypatch.setattr(model.edge.backend, "encode", lambda *a, **k: calls.append(1) or encode(*a, **k))
    long = np.concatenate([sample_audio, sample_audio])
    segments, info = model.transcribe(long, beam_size=1, language="English")
    assert info.language == "en" and not calls
    for segment in segments:
        break
    assert len(calls) == 1 and segment.id == 1
    segments.close()
    assert len(calls) == 1


def test_file_objects_and_batched_pipeline(model):
    with open(SAMPLE, "rb") as f:
        segments, info = BatchedInferencePipeline(model=model).transcribe(f, batch_size=4, beam_size=1)
        segments = list(segments)
    assert 0 < info.duration_after_vad <= info.duration
    assert wer(SAMPLE_TEXT, "".join(s.text for s in segments)) < 0.15


@pytest.mark.parametrize("arguments", [
    {"repetition_penalty": 1.2}, {"no_repeat_ngram_size": 3}, {"multilingual": True}, {"length_penalty": 0.8},
    {"max_new_tokens": 50}, {"chunk_length": 20}, {"clip_timestamps": "0,10"}, {"initial_prompt": [50, 51]},
    {"language_detection_segments": 2}, {"vad_parameters": {"threshold": 0.5, "window_size_samples": 512}},
])
def test_unsupported_arguments_raise_a_typed_error_naming_them(model, arguments):
    name = next(iter(arguments))
    named = name if name != "vad_parameters" else "window_size_samples"  # the VadOptions field it lacks
    with pytest.raises(UnsupportedArgumentError, match=named) as e:
        model.transcribe(SAMPLE, **arguments)
    assert isinstance(e.value, EdgeASRError) and isinstance(e.value, ValueError) and isinstance(e.value, TypeError)


def test_constructor_arguments(cache, tmp_path):
    for kwargs in ({"compute_type": "int8_float16"}, {"device_index": 1}, {"revision": "main"},
                   {"flash_attention": True}):
        with pytest.raises(UnsupportedArgumentError, match=next(iter(kwargs))):
            WhisperModel("tiny.en", **kwargs)
    root = tmp_path / "models"
    root.mkdir()
    os.symlink(cache, root / "tiny.en-int8")
    with pytest.raises(ModelNotFoundError, match="edge-asr pull tiny.en --quantize fp32"):
        WhisperModel("tiny.en", compute_type="float32", download_root=str(root))
    loaded = WhisperModel("tiny.en", device="cpu", compute_type="default", cpu_threads=1, num_workers=2,
                          download_root=str(root), local_files_only=True)
    assert loaded.supported_languages == ["en"]
    assert loaded.detect_language(np.zeros(16000, np.float32))[:2] == ("en", 1.0)
    with pytest.raises(UnsupportedArgumentError, match="is int8"):
        WhisperModel(str(cache), compute_type="float32")


def test_segment_and_word_are_mutable_with_deprecated_asdict():
    # faster-whisper 1.2.1's are plain dataclasses that keep a deprecated _asdict().
    word = Word(0.0, 0.5, " hi", 0.9)
    segment = Segment(id=1, seek=0, start=0.0, end=1.0, text=" hi", tokens=[1], avg_logprob=-0.1,
                      compression_ratio=1.0, no_speech_prob=0.0, words=[word], temperature=0.0)
    segment.text = " edited"
    word.end = 0.6
    with pytest.warns(DeprecationWarning, match="Segment._asdict"):
        as_dict = segment._asdict()
    assert as_dict["text"] == " edited" and as_dict["words"] == [{"start": 0.0, "end": 0.6, "word": " hi",
                                                                   "probability": 0.9}]
    with pytest.warns(DeprecationWarning, match="Word._asdict"):
        assert word._asdict()["word"] == " hi"


def test_info_vad_options_as_faster_whisper_fills_them(model, sample_audio):
    assert model.transcribe(sample_audio, beam_size=1)[1].vad_options is None
    assert model.transcribe(sample_audio, beam_size=1, vad_filter=True)[1].vad_options == VadOptions()
    given = model.transcribe(sample_audio, beam_size=1, vad_filter=True,
                             vad_parameters={"min_silence_duration_ms": 500})[1].vad_options
    assert given == VadOptions(min_silence_duration_ms=500)
    _, info = BatchedInferencePipeline(model=model).transcribe(sample_audio, beam_size=1)
    assert info.vad_options == VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)


def test_batched_pipeline_takes_faster_whispers_batched_arguments(model, sample_audio):
    pipeline = BatchedInferencePipeline(model=model)
    # Accepted and ignored, as faster-whisper's batched transcribe does; timestamps off by default and
    # only the first temperature kept.
    segments, info = pipeline.transcribe(sample_audio, beam_size=1, condition_on_previous_text=True,
                                         hallucination_silence_threshold=2.0)
    options = info.transcription_options
    assert options.without_timestamps and not options.condition_on_previous_text
    assert options.hallucination_silence_threshold is None and options.temperatures == (0.0,)
    assert wer(SAMPLE_TEXT, "".join(s.text for s in segments)) < 0.15
    # Without VAD: audio of at most 30 s is decoded whole; longer audio is refused.
    segments, info = pipeline.transcribe(sample_audio, beam_size=1, vad_filter=False)
    assert info.duration_after_vad == info.duration and info.vad_options is None
    assert wer(SAMPLE_TEXT, "".join(s.text for s in segments)) < 0.15
    with pytest.raises(UnsupportedArgumentError, match="vad_filter"):
        pipeline.transcribe(np.zeros(31 * 16000, np.float32), vad_filter=False)
