"""The streaming input stage and StreamingOptions' derivation from TranscribeOptions: no model."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asr.errors import StreamError
from edge_asr.stream_input import StreamInput
from edge_asr.streaming import StreamingOptions
from edge_asr.transcribe import TranscribeOptions


def test_input_queues_converts_and_takes_in_order():
    source = StreamInput()
    source.push(np.arange(4, dtype=np.float32))
    source.push((np.full((3, 2), 16384, np.int16)))  # stereo int16 -> mono float32
    assert source.pending == 7 and source.received == 7
    first = source.take(5)
    assert first.dtype == np.float32 and first.tolist() == [0.0, 1.0, 2.0, 3.0, 0.5]
    assert source.pending == 2
    assert source.take().tolist() == [0.5, 0.5] and source.pending == 0
    assert source.take().size == 0 and source.received == 7


def test_input_drops_the_oldest_backlog():
    source = StreamInput()
    source.push(np.arange(10, dtype=np.float32))
    assert source.drop_backlog(keep=20) == 0
    assert source.drop_backlog(keep=4) == 6
    assert source.take().tolist() == [6.0, 7.0, 8.0, 9.0]
    assert source.received == 10  # received counts what arrived, dropped or not


def test_input_resamples_to_16k_and_refuses_a_rate_change():
    source = StreamInput()
    for _ in range(10):
        source.push(np.zeros(4800, np.float32), sample_rate=48000)  # 1 s at 48 kHz
    source.close()
    assert source.received == pytest.approx(16000, abs=2)
    with pytest.raises(StreamError, match="sample rate changed"):
        source.push(np.zeros(100, np.float32), sample_rate=44100)


def test_streaming_options_derive_the_decode_from_transcribe_options():
    options = StreamingOptions.from_fields(language="de", beam_size=3, hotwords="Kubernetes", step_s=0.5,
                                           encoder_tail_s=4.0, no_speech_threshold=0.7)
    assert options.step_s == 0.5 and options.transcribe == TranscribeOptions(
        language="de", beam_size=3, hotwords="Kubernetes", encoder_tail_s=4.0, no_speech_threshold=0.7)
    decode = options.decode_options("de", 1.0)  # the prompt (committed text) is passed per decode
    assert (decode.temperature, decode.word_timestamps, decode.condition_on_previous_text) == (0.0, True, False)
    assert (decode.without_timestamps, decode.initial_prompt, decode.encoder_tail_s) == (True, None, 1.0)
    assert decode.compression_ratio_threshold == 2.4  # above it a live decode is cut at its first repeat
    assert (decode.beam_size, decode.hotwords, decode.no_speech_threshold, decode.logprob_threshold) == \
        (3, "Kubernetes", 0.7, -1.0)
    assert (decode.vad_filter, decode.batch_size, decode.prefix) == (False, 1, None)
    assert StreamingOptions().transcribe == TranscribeOptions()
    base = TranscribeOptions(task="translate")
    assert StreamingOptions.from_fields(transcribe=base, language="fr").transcribe == \
        TranscribeOptions(task="translate", language="fr")
    with pytest.raises(TypeError, match="no_such_field"):
        StreamingOptions.from_fields(no_such_field=1)
