"""Batched long-form mode (batch_size > 1) and the reduced encoder window, on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLE_TEXT, norm, shared_clip, wer
from edge_asr.batched import speech_windows
from edge_asr.errors import DecodingError

# Tests on real weights skip by themselves without the export extra (the real_model/pulled fixtures);
# the others run on the committed tiny model (runtime only, no torch).


def test_speech_windows_merge_neighbours_up_to_30_s():
    s = 16000
    chunks = [{"start": 0, "end": 10 * s}, {"start": 11 * s, "end": 25 * s}, {"start": 26 * s, "end": 40 * s},
              {"start": 41 * s, "end": 45 * s}]
    assert speech_windows(chunks) == [(0, 25 * s), (26 * s, 45 * s)]
    assert speech_windows([]) == []
    # a long pause is not merged over even when the span would fit in 30 s
    far = [{"start": 0, "end": 2 * s}, {"start": 14 * s, "end": 16 * s}, {"start": 20 * s, "end": 22 * s}]
    assert speech_windows(far) == [(0, 2 * s), (14 * s, 22 * s)]


def test_options_that_need_the_sequential_loop_are_refused(runtime_model_dir, sample_audio):
    import edge_asr

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    with pytest.raises(DecodingError, match="batch_size=1"):
        model.transcribe(sample_audio, batch_size=4, prefix="Hello")
    with pytest.raises(DecodingError, match="batch_size must be at least 1"):
        model.transcribe(sample_audio, batch_size=0)


def test_batched_long_form_matches_sequential(real_model, shared_manifest, sample_audio):
    """Several clips with pauses between them (one window each, plus one longer than 30 s) in batches of
    3: the transcript is as accurate as the sequential loop's and segments are ordered and in bounds."""
    from edge_asr.audio import load_audio

    model = real_model("tiny.en")
    ids = ["en_jfk", "en_librivox_sonnet001", "en_ls_61-70968-0000"]
    clips = [shared_clip(shared_manifest, i) for i in ids]
    gap = np.zeros(16000 * 2, np.float32)
    parts, refs = [], []
    for path, text in clips:
        parts += [load_audio(path), gap]
        refs.append(text)
    audio = np.concatenate([sample_audio, gap] + parts)
    reference = " ".join([SAMPLE_TEXT] + refs)
    sequential = model.transcribe(audio, language="en")
    progress = []
    # word timing on: it does not change the text, and one run checks both (the suite's time budget)
    batched = model.transcribe(audio, language="en", batch_size=3, word_timestamps=True,
                               progress=lambda d, t: progress.append((d, t)))
    assert wer(norm(reference), norm(batched.text)) <= wer(norm(reference), norm(sequential.text)) + 0.03
    assert wer(norm(reference), norm(batched.text)) < 0.2
    starts = [s.start for s in batched.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= s.end <= batched.duration for s in batched.segments)
    assert progress[-1] == (pytest.approx(batched.duration, abs=0.01), pytest.approx(batched.duration, abs=0.01))
    # Word timing works in batched mode, inside each segment.
    for s in batched.segments:
        assert s.words and s.start - 1e-6 <= s.words[0].start <= s.words[-1].end <= s.end + 1e-6


def test_batched_mode_on_silence_and_on_one_short_clip(real_model, shared_manifest):
    model = real_model("tiny.en")
    silence = np.zeros(16000 * 20, np.float32)
    assert model.transcribe(silence, batch_size=4).text == ""
    path, ref = shared_clip(shared_manifest, "en_jfk")
    assert wer(norm(ref), norm(model.transcribe(path, batch_size=4).text)) < 0.1


def test_reduced_encoder_window_on_short_clips(real_model, shared_manifest):
    """encoder_tail_s encodes the audio plus a little silence instead of 30 s: on short clips the
    transcript stays as accurate (the benchmark reports the measured WER on all clips)."""
    model = real_model("base")
    for clip in ["en_jfk", "en_ls_61-70968-0000"]:
        path, ref = shared_clip(shared_manifest, clip)
        plain = model.transcribe(path, language="en")
        reduced = model.transcribe(path, language="en", encoder_tail_s=2.0)
        assert wer(norm(ref), norm(reduced.text)) <= wer(norm(ref), norm(plain.text)) + 0.05
        assert all(s.end <= reduced.duration for s in reduced.segments)
