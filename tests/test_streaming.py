"""Streaming transcription and the listen command (fake microphone, real models)."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

import edge_asr
from conftest import SAMPLE, SAMPLE_TEXT, wer
from edge_asr.commit_policy import TimedWord
from edge_asr.streaming import StreamingOptions, StreamingTranscriber

# Tests on real weights skip by themselves without the export extra (the real_model/pulled fixtures);
# the others run on the committed tiny model (runtime only, no torch).


def stream(model, audio, chunk: int, **opts):
    events = []
    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", **opts), on_event=events.append)
    for i in range(0, len(audio), chunk):
        st.feed(audio[i:i + chunk])
    text = st.finish()
    return st, text, events


def test_lag_drops_oldest_audio_with_an_event_and_keeps_committed_text(runtime_model_dir):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    events = []
    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", max_lag_s=2.0, vad=False),
                              on_event=events.append, background=True)
    st.policy.flush([TimedWord(" kept", 0.0, 0.5)])  # committed before the gap
    st.feed(np.zeros(16000 * 10, np.float32))  # 10 s arrive at once: 8 s over the lag budget
    for _ in range(100):
        if any(e.kind == "dropped" for e in events):
            break
        time.sleep(0.05)
    dropped = [e for e in events if e.kind == "dropped"]
    assert len(dropped) == 1 and dropped[0].end - dropped[0].start == pytest.approx(8.0, abs=0.01)
    assert st.finish().startswith("kept")
    with pytest.raises(RuntimeError, match="finished"):
        st.feed(np.zeros(100, np.float32))


def test_any_dtype_rate_and_channels_are_accepted(runtime_model_dir, sample_audio):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=5.0))
    pcm = (sample_audio[:16000 * 2] * 32767).astype(np.int16)
    stereo_48k = np.repeat(np.stack([pcm, pcm], axis=1), 3, axis=0)  # (frames, 2) at 48 kHz
    for i in range(0, len(stereo_48k), 4800):
        st.feed(stereo_48k[i:i + 4800], sample_rate=48000)
    st.finish()
    assert st.received_s == pytest.approx(2.0, abs=0.01)


@pytest.mark.slow
def test_streamed_text_is_close_to_offline_and_never_rewritten(real_model, sample_audio):
    model = real_model("tiny.en")
    st, text, events = stream(model, sample_audio, chunk=1600)
    offline = model.transcribe(sample_audio, language="en").text
    # tiny.en on synthetic speech: measured 0.12-0.16 vs offline across runs (int8 kernels with 2 threads
    # are not bit-reproducible, and a committed early guess like "in the cyber" stays committed).
    assert wer(offline, text) <= 0.2 and wer(SAMPLE_TEXT, text) <= 0.25
    committed = [e for e in events if e.kind == "committed"]
    assert " ".join(e.text for e in committed).split() == text.split()  # events only ever append
    assert any(e.kind == "tentative" for e in events)
    words = [w for e in committed for w in e.words]
    assert [w[0] for w in words] == sorted(w[0] for w in words)  # monotonic word starts
    assert all(e.emitted_at >= e.end - 1e-6 for e in committed)  # nothing committed before it was heard
    assert st.stats.updates >= 10 and st.stats.max_buffer_s <= 15.0 + 1.0


@pytest.mark.slow
def test_chunk_size_does_not_change_the_result(real_model, sample_audio):
    model = real_model("tiny.en")
    # decodes fall on step boundaries of received audio, whatever the chunks: a 0.6 s step shows it at half
    # the cost of the default
    results = [stream(model, sample_audio[:16000 * 6], chunk=c, step_s=0.6)[1] for c in (160, 7777)]
    assert results[0] == results[1] and results[0]


@pytest.mark.slow
def test_long_session_keeps_the_buffer_bounded(real_model, sample_audio):
    model = real_model("tiny.en")
    gap = np.zeros(16000 * 20, np.float32)
    session = np.concatenate([sample_audio, gap, sample_audio, sample_audio, gap])  # ~1.6 min
    st, text, events = stream(model, session, chunk=3200, max_buffer_s=12.0, encoder_tail_s=3.0, step_s=0.6)
    assert st.stats.max_buffer_s <= 12.0 + 1.0  # bounded by the force-commit, not by session length
    assert st.stats.skipped_silent >= 20  # the silent stretches were not decoded
    assert sum(e.kind == "end_of_utterance" for e in events) >= 2
    assert wer(" ".join([SAMPLE_TEXT] * 3), text) < 0.25


class FakeSoundDevice(types.ModuleType):
    """Just enough of sounddevice: one input device that plays ``audio`` then disappears."""

    def __init__(self, audio: np.ndarray | None, inputs: bool = True):
        super().__init__("sounddevice")
        self.audio, self.inputs = audio, inputs
        self.default = types.SimpleNamespace(device=(0, 1))
        fake = self

        class InputStream:
            def __init__(self, device, channels, samplerate, dtype, blocksize, callback, finished_callback):
                self.callback, self.finished, self.block = callback, finished_callback, blocksize
                self.stopped = threading.Event()

            def start(self):
                def run():
                    for i in range(0, len(fake.audio), self.block):
                        if self.stopped.is_set():
                            return
                        self.callback(fake.audio[i:i + self.block, None], self.block, None, None)
                        time.sleep(0.001)
                    self.finished()  # the device vanished mid-session

                threading.Thread(target=run, daemon=True).start()

            def stop(self):
                self.stopped.set()

            def close(self):
                pass

        self.InputStream = InputStream

    def query_devices(self):
        return [{"name": "Fake Mic", "max_input_channels": 1 if self.inputs else 0, "default_samplerate": 16000.0},
                {"name": "Fake Speaker", "max_input_channels": 0, "default_samplerate": 48000.0}]


@pytest.mark.slow
def test_listen_with_a_fake_microphone_keeps_text_when_the_device_disappears(pulled, sample_audio, tmp_path,
                                                                             monkeypatch, capsys):
    from edge_asr.cli import main

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice(sample_audio))
    assert main(["listen", "--list-devices"]) == 0
    assert "Fake Mic" in capsys.readouterr().out
    code = main(["listen", "--model", str(pulled("tiny.en")), "--language", "en", "-o", str(tmp_path), "-f", "json"])
    err = capsys.readouterr().err
    assert code == 1 and "input device failed" in err and "kept" in err
    out = next(tmp_path.glob("listen-*.json"))
    import json

    data = json.loads(out.read_text())
    assert wer(SAMPLE_TEXT, data["text"]) < 0.3
    assert {"kind", "text", "start", "end", "emitted_at"} <= set(data["events"][0])


def test_listen_without_input_device_is_a_clear_error(runtime_model_dir, monkeypatch, capsys):
    from edge_asr.cli import main

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice(None, inputs=False))
    assert main(["listen", "--model", str(runtime_model_dir)]) == 2
    assert "no audio input device" in capsys.readouterr().err


def test_listen_file_json_has_events(runtime_model_dir, capsys):
    from edge_asr.cli import main

    assert main(["listen", "--file", str(SAMPLE), "--model", str(runtime_model_dir), "--language", "en",
                 "-f", "json", "--no-vad", "--step", "2"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["duration"] == pytest.approx(15.52, abs=0.05) and isinstance(data["events"], list)


@pytest.mark.slow
def test_probes_show_first_words_from_a_reduced_window_and_commits_come_from_full_windows(real_model, sample_audio):
    model = real_model("tiny.en")
    audio = sample_audio[:16000 * 8]
    frames: list[int] = []  # mel frames of every encoder call, in order
    encode = model.backend.encode

    def recording_encode(mel):
        frames.append(mel.shape[-1])
        return encode(mel)

    texts = {}
    for tail in (1.0, None):
        frames.clear()
        seen: list[tuple[str, int]] = []  # (event kind, frames of the encode that preceded it)
        model.backend.encode = recording_encode
        try:
            # step_s 0.6: probes happen at the utterance start (first_step_s), later steps only cost time
            st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", probe_tail_s=tail,
                                                                          step_s=0.6),
                                      on_event=lambda e: seen.append((e.kind, frames[-1])))
            for i in range(0, len(audio), 1600):
                st.feed(audio[i:i + 1600])
            texts[tail] = st.finish()
        finally:
            model.backend.encode = encode
        if tail is None:
            assert set(frames) == {3000}  # no probes: every decode is a full 30 s window
            continue
        assert st.stats.probes >= 1
        first_tentative = next(f for kind, f in seen if kind == "tentative")
        assert first_tentative < 3000  # the first words came from a reduced-window probe
        assert all(f == 3000 for kind, f in seen if kind == "committed")  # commits: full windows only
    assert wer(texts[None], texts[1.0]) <= 0.2


def test_decoding_stops_at_the_token_cap(runtime_model_dir, sample_audio):
    """Streaming caps each update's decode (a looping decode must not stall the stream)."""
    from edge_asr.transcribe import TranscribeOptions, Transcriber

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    opts = TranscribeOptions(language="en", temperature=0.0, logprob_threshold=None, no_speech_threshold=None,
                             compression_ratio_threshold=None, silence_peak_db=None)
    for cap in (3, 7):
        segments, _, _ = Transcriber(model.backend, model.tokenizer, opts).run(sample_audio[:16000 * 4], max_windows=1,
                                                                              sample_len=cap)
        assert segments and len(segments[0]["result"].tokens) <= cap


# ---- robustness of the streaming API (each runs on the committed tiny model) -------------------------

def _failing(st: StreamingTranscriber) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("decoder exploded")
    st._decoder.decode = boom


@pytest.mark.parametrize("background", [True, False])
def test_a_decoding_error_reaches_the_caller_and_keeps_committed_text(runtime_model_dir, background):
    from edge_asr.errors import StreamError

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    events = []
    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=0.5),
                              on_event=events.append, background=background)
    st.policy.flush([TimedWord(" kept", 0.0, 0.5)])  # committed before the failure
    _failing(st)
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    if background:
        st.feed(noise)
        for _ in range(200):  # the worker fails on its first update
            if st.error is not None:
                break
            time.sleep(0.02)
    with pytest.raises(StreamError, match="decoder exploded") as failure:
        st.feed(noise)  # inline: this decode fails; background: the worker already has
        st.finish()
    assert isinstance(failure.value, RuntimeError)  # StreamError is also a RuntimeError
    errors = [e for e in events if e.kind == "error"]
    assert len(errors) == 1 and "decoder exploded" in errors[0].text
    with pytest.raises(StreamError):  # feed after the failure: refused, not silently queued
        st.feed(noise)
    with pytest.raises(StreamError):
        st.finish()
    assert st.committed_text == "kept"
    if background:
        assert not st._worker.is_alive()


def test_events_nobody_reads_are_bounded(runtime_model_dir):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    seen = []
    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", max_queued_events=5),
                              on_event=seen.append)
    for i in range(40):  # a callback-only app: events() is never iterated
        st._emit("tentative", f"w{i}", 0.0, 0.1)
    assert len(seen) == 40  # callbacks see everything
    assert st._events.qsize() == 5 and st.events_discarded == 35
    st.finish()
    assert [e.text for e in st.events(timeout=0.1)] == [f"w{i}" for i in range(36, 40)]  # newest kept, then the end


def test_options_are_checked_when_the_stream_is_created(runtime_model_dir):
    from edge_asr.errors import DecodingError, OptionError

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    language = "de" if not model.multilingual else "xx"
    with pytest.raises(DecodingError, match=language):
        StreamingTranscriber(model, StreamingOptions.from_fields(language=language))
    for bad in ({"step_s": 0}, {"policy": "magic"}, {"max_buffer_s": 60}, {"commit_delay_s": -1},
                {"trim_s": 20, "max_buffer_s": 15}, {"vad_threshold": 1.5}):
        with pytest.raises(OptionError):
            StreamingOptions.from_fields(**bad)


@pytest.mark.parametrize("realtime", [False, True])
def test_listen_with_a_language_the_model_lacks_is_a_clear_error(runtime_model_dir, capsys, realtime):
    from edge_asr.cli import main

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    language = "de" if not model.multilingual else "xx"
    args = ["listen", "--file", str(SAMPLE), "--model", str(runtime_model_dir), "--language", language]
    code = main(args + (["--realtime"] if realtime else []))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and language in err


def test_background_callbacks_run_on_the_worker_thread_and_the_api_is_exported(runtime_model_dir, sample_audio):
    assert edge_asr.StreamingTranscriber is StreamingTranscriber and edge_asr.StreamingOptions is StreamingOptions
    assert edge_asr.StreamEvent is not None
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    threads = set()
    from edge_asr.buffer_decoder import BufferHypothesis

    def decode(audio, offset, options, **kwargs):  # the random tiny model says nothing: say one word
        return BufferHypothesis((TimedWord(" word", offset, offset + 0.2, (1,)),), "en")

    with StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False),
                              on_event=lambda e: threads.add(threading.current_thread().name),
                              background=True) as st:
        st._decoder.decode = decode
        st.feed(sample_audio[:16000 * 3])
    assert st.error is None and threads <= {"edge-asr-stream"} and threads


def test_close_stops_at_once_and_keeps_the_shown_text(runtime_model_dir):
    from edge_asr.buffer_decoder import BufferHypothesis

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    calls = []

    def slow_decode(audio, offset, options, **kwargs):  # each update takes 0.2 s and says one late word
        calls.append(offset)
        time.sleep(0.2)
        end = offset + audio.size / 16000
        return BufferHypothesis((TimedWord(" shown", end - 0.1, end, (1,)),), "en")

    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=0.5),
                              background=True)
    st._decoder.decode = slow_decode
    st.feed(np.zeros(16000 * 30, np.float32))  # far more than one update's worth
    while not calls:
        time.sleep(0.01)
    start = time.perf_counter()
    text = st.close()
    assert time.perf_counter() - start < 1.0 and not st._worker.is_alive()  # no draining of 30 s of audio
    assert text.startswith("shown") and st.close() == text
    with pytest.raises(edge_asr.StreamError):
        st.feed(np.zeros(10, np.float32))


def test_an_exception_in_the_with_block_closes_the_stream_and_commits_the_shown_text(runtime_model_dir):
    """An exception leaving ``with`` stops the stream as close() does; only flagging it left the worker
    running, and at exit it was killed mid-update with the shown text never committed."""
    from edge_asr.buffer_decoder import BufferHypothesis

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    shown = threading.Event()

    def slow_decode(audio, offset, options, **kwargs):
        time.sleep(0.2)
        end = offset + audio.size / 16000
        return BufferHypothesis((TimedWord(" shown", end - 0.1, end, (1,)),), "en")

    with pytest.raises(KeyboardInterrupt):
        with StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=0.5),
                                  on_event=lambda e: shown.set() if e.kind == "tentative" else None,
                                  background=True) as st:
            st._decoder.decode = slow_decode
            st.feed(np.zeros(16000 * 30, np.float32))
            assert shown.wait(10)
            raise KeyboardInterrupt
    assert not st._worker.is_alive() and st.committed_text.startswith("shown")
    assert [e.kind for e in st.events(timeout=1)][-1] == "committed"  # then the end of events()


def test_close_with_a_timeout_leaves_a_blocked_worker_and_a_later_close_commits(runtime_model_dir):
    """close(timeout) (the exit hook's) does not wait forever for a worker stuck in a callback, and does
    not commit under it; once the worker is free, close() ends the stream as usual."""
    from edge_asr.buffer_decoder import BufferHypothesis

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    release, blocked = threading.Event(), threading.Event()

    def decode(audio, offset, options, **kwargs):
        end = offset + audio.size / 16000
        return BufferHypothesis((TimedWord(" shown", end - 0.1, end, (1,)),), "en")

    def on_event(event):  # e.g. a full queue.Queue(maxsize=1).put that only the main thread drains
        blocked.set()
        release.wait(30)

    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=0.5),
                              on_event=on_event, background=True)
    st._decoder.decode = decode
    st.feed(np.zeros(16000 * 2, np.float32))
    assert blocked.wait(10)
    start = time.perf_counter()
    assert st.close(timeout=0.3) == "" and time.perf_counter() - start < 2.0
    assert st._worker.is_alive()
    release.set()
    assert st.close().startswith("shown") and not st._worker.is_alive()


def test_inline_backlog_is_decoded_in_buffers_of_at_most_max_buffer_s(runtime_model_dir):
    """feed(60 s) inline: the backlog goes through buffers of max_buffer_s (plus a step at most), not one
    60 s buffer of which the encoder hears 30 s."""
    from edge_asr.buffer_decoder import BufferHypothesis

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    sizes = []

    def decode(audio, offset, options, **kwargs):
        sizes.append(audio.size / 16000)
        end = offset + audio.size / 16000
        return BufferHypothesis((TimedWord(" w", end - 0.3, end - 0.1, (1,)),), "en")

    st = StreamingTranscriber(model, StreamingOptions.from_fields(language="en", vad=False, step_s=0.5))
    st._decoder.decode = decode
    st.feed(np.zeros(16000 * 60, np.float32))
    assert len(sizes) > 4 and max(sizes) <= 15.0 + 0.5
    assert st.lag_s < 0.5  # less than a step waits


def test_attention_stop_ends_the_text_past_the_audio_or_at_a_jump_back(runtime_model_dir):
    from edge_asr.buffer_decoder import AttentionStop

    tok = edge_asr.load_model(runtime_model_dir, device="cpu").tokenizer
    piece = tok.encode(".")[0]
    assert not tok.starts_word(piece)

    class Words:  # the rule asks the tokenizer only whether a token starts a word
        def starts_word(self, token):
            return token == 1

    word = 1
    tok = Words()

    def at(frame: int, frames: int = 200) -> np.ndarray:  # two heads peaking at ``frame``
        a = np.full((2, frames), 0.001, np.float32)
        a[:, frame] = 1.0
        return a

    stop = AttentionStop(tok, limit=150, backtrack=50)
    assert not stop(word, at(10)) and not stop(word, at(100)) and not stop(word, at(120))
    assert not stop(piece, at(0))  # punctuation often attends to the start: not judged
    assert not stop(word, at(80))  # jitter within 1 s (50 frames) of the furthest word
    assert stop(word, at(60)) and stop.stopped_at == 60  # a jump back: a repeat starts
    past = AttentionStop(tok, limit=150, backtrack=50)
    assert not past(word, at(170))  # the first new word is not judged (its attention is unreliable)
    assert past(piece, at(160)) and past.stopped_at == 160  # past the buffered audio: any token


def test_attention_stop_judges_unspaced_languages_after_the_first_token():
    """zh/ja text has almost no token that starts a word (no leading space): only the first new token is
    exempt, so the limit still ends a decode that runs past the buffered audio."""
    from edge_asr.buffer_decoder import AttentionStop

    class Unspaced:
        def starts_word(self, token):
            return False

    def at(frame: int, frames: int = 200) -> np.ndarray:
        a = np.full((2, frames), 0.001, np.float32)
        a[:, frame] = 1.0
        return a

    stop = AttentionStop(Unspaced(), limit=150, backtrack=50)
    assert not stop(7, at(170))  # the first new token: not judged
    assert not stop(8, at(40)) and not stop(9, at(120))  # within the audio (no word starts: no backtrack rule)
    assert stop(10, at(160)) and stop.stopped_at == 160  # past the buffered audio
