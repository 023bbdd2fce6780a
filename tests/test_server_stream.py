"""The local server's WebSocket stream with a real client library (websockets), on loopback.

Runs on the committed tiny random model: these tests check the protocol, the event shapes and the
limits; tests/test_server_real.py checks the text with real tiny.en."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from conftest import SAMPLE
from server_harness import running_server

websockets = pytest.importorskip("websockets", reason="the websockets client is in the test extra")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from edge_asr.audio import load_audio  # noqa: E402

LISTEN_FIELDS = {"kind", "text", "start", "end", "emitted_at", "compute_s"}  # edge-asr listen -f json events
# Decodes of the random model are cheap with one temperature and no probes.
FAST = "language=en&logprob_threshold=none&compression_ratio_threshold=none&step_s=2"
KEY = "stream-key-0123456789"


@pytest.fixture(scope="module")
def audio():
    return load_audio(SAMPLE)[: 16000 * 2]  # 2 s of the bundled sample


@pytest.fixture(scope="module")
def srv(runtime_model_dir, tmp_path_factory):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache"))) as running:
        yield running


def session(url, chunks, *, finish=True, **connect_args):
    """Send ``chunks`` (bytes, or str for text messages), then finish; return (messages, close code)."""
    messages = []
    with connect(url, open_timeout=30, **connect_args) as ws:
        for chunk in chunks:
            ws.send(chunk)
        if finish:
            ws.send(json.dumps({"type": "finish"}))
        messages += rest(ws)
        return messages, ws.protocol.close_code, ws


def rest(ws) -> list[dict]:
    """Every message until the server closes (with any close code)."""
    out = []
    try:
        for raw in ws:
            out.append(json.loads(raw))
    except ConnectionClosed:  # closed with an error code (a limit): the messages before it are kept
        pass
    return out


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def test_pcm16_stream_gives_listen_events_with_openai_types(srv, audio):
    data = pcm16(audio)
    chunks = [data[i:i + 3001] for i in range(0, len(data), 3001)]  # odd sizes: frames split across messages
    messages, code, _ = session(f"{srv.ws_url}?format=pcm_s16le&sample_rate=16000&channels=1&{FAST}", chunks)
    assert code == 1000
    created, *events, done = messages
    assert created["type"] == "transcription_session.created" and created["session"]["model"] == "tiny-model"
    assert done["type"] == "transcription.done" and done["reason"] == "finished"
    assert abs(done["duration"] - 2.0) < 0.01 and done["language"] == "en"
    kinds = {"committed": "conversation.item.input_audio_transcription.delta",
             "end_of_utterance": "conversation.item.input_audio_transcription.completed",
             "tentative": "transcription.tentative"}
    for m in events:
        assert LISTEN_FIELDS <= set(m), m
        assert m["type"] == kinds.get(m["kind"], f"transcription.{m['kind']}")
    assert {m["kind"] for m in events} <= {"tentative", "committed", "end_of_utterance", "dropped", "lag"}
    # (delta/completed/done text consistency: test_server_real.py, where the text is real)


def test_float32_stereo_48k_base64_messages(srv, audio):
    import soxr

    stereo = np.repeat(soxr.resample(audio, 16000, 48000)[:, None], 2, axis=1).astype("<f4")
    data = stereo.tobytes()
    chunks = [json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data[i:i + 96000]).decode()})
              for i in range(0, len(data), 96000)]
    messages, code, _ = session(f"{srv.ws_url}?format=pcm_f32le&sample_rate=48000&channels=2&{FAST}", chunks)
    assert code == 1000 and abs(messages[-1]["duration"] - 2.0) < 0.01


def test_encoded_stream(srv, audio):
    import io

    pytest.importorskip("av", reason="format=encoded decodes with PyAV (edge-asr[av])")
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="OGG", subtype="VORBIS")  # what a browser's MediaRecorder sends, in kind
    data = buf.getvalue()
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    messages, code, _ = session(f"{srv.ws_url}?format=encoded&{FAST}", chunks)
    assert code == 1000 and abs(messages[-1]["duration"] - 2.0) < 0.05
    corrupt, code, _ = session(f"{srv.ws_url}?format=encoded&{FAST}", [b"\x00garbage" * 1000])
    assert code == 1007 and [m["error"]["code"] for m in corrupt if m["type"] == "error"] == ["invalid_audio"]


def test_bad_requests_are_refused_at_the_handshake(srv):
    for query, status, message in [("format=mp3", 400, "format must be one of"),
                                   ("sample_rate=0", 400, "sample_rate must be"),
                                   ("step=1", 400, "unknown query field(s) 'step'"),
                                   ("language=xx", 400, "unknown language code 'xx'"),
                                   ("beam_size=99", 400, "over this server's limit"),
                                   ("model=large-v9", 404, "is not available")]:
        with pytest.raises(InvalidStatus) as info:
            connect(f"{srv.ws_url}?{query}", open_timeout=30)
        assert info.value.response.status_code == status, query
        assert message in json.loads(info.value.response.body)["error"]["message"], query


@pytest.fixture(scope="module")
def tight(runtime_model_dir, tmp_path_factory):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                        max_streams=2, max_pending_s=2.0, idle_timeout_s=1.5) as running:
        yield running


def test_limits_streams_idle_pending_and_bad_messages(tight, audio):
    srv = tight
    url = f"{srv.ws_url}?{FAST}"
    with connect(url, open_timeout=30), connect(url, open_timeout=30):  # max_streams=2
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=30)
        assert info.value.response.status_code == 503 and "retry-after" in info.value.response.headers
    # idle: nothing sent for idle_timeout_s (1.5 s)
    messages, code, _ = session(url, [b"\0\0" * 1600, "not json"], finish=False)
    assert code == 1008
    errors = [m["error"]["code"] for m in messages if m["type"] == "error"]
    assert errors == ["unknown_message", "idle_timeout"] and messages[-1]["reason"] == "idle_timeout"
    # pending: the model is busy (gate held), the client sends far faster than real time
    gate = srv.entry().slot.gate
    gate.acquire()
    try:
        with connect(url, open_timeout=30) as ws:
            for _ in range(3):  # 6 s against max_pending_s=2
                ws.send(pcm16(audio))
            first = json.loads(ws.recv())
            assert first["type"] == "transcription_session.created"
            error = json.loads(ws.recv(timeout=10))
            while error["type"] == "transcription.dropped":  # the stream's own max_lag_s drops come first
                error = json.loads(ws.recv(timeout=10))
            assert error["type"] == "error" and error["error"]["code"] == "pending_audio_limit"
            assert "--max-pending-s" in error["error"]["message"]
            gate.release()
            gate = None
            assert rest(ws)[-1]["type"] == "transcription.done" and ws.protocol.close_code == 1008
    finally:
        if gate is not None:
            gate.release()


def test_session_length_limit(runtime_model_dir, tmp_path, audio):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path), max_session_s=2.0) as small:
        messages, code, _ = session(f"{small.ws_url}?{FAST}", [pcm16(audio), pcm16(audio[:8000])], finish=False)
        assert code == 1008 and messages[-1]["reason"] == "session_limit"
        assert any(m["type"] == "error" and "--max-session-s" in m["error"]["message"] for m in messages)


def test_stream_auth(runtime_model_dir, tmp_path, audio):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path), api_key=KEY) as srv:
        url = f"{srv.ws_url}?{FAST}"
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=30)
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=30, additional_headers={"Authorization": "Bearer nope-nope-nope"})
        assert info.value.response.status_code == 401
        messages, code, _ = session(url, [pcm16(audio[:8000])], additional_headers={"Authorization": f"Bearer {KEY}"})
        assert code == 1000 and messages[-1]["type"] == "transcription.done"
        # browsers cannot set headers: the key as a subprotocol, answered with "edge-asr"
        messages, code, ws = session(url, [pcm16(audio[:8000])], subprotocols=["edge-asr", f"bearer.{KEY}"])
        assert code == 1000 and ws.subprotocol == "edge-asr"
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=30, origin="http://evil.example",
                    additional_headers={"Authorization": f"Bearer {KEY}"})
        assert info.value.response.status_code == 403


def test_shutdown_ends_streams_with_their_text(runtime_model_dir, tmp_path, audio):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path)) as srv:
        with connect(f"{srv.ws_url}?{FAST}", open_timeout=30) as ws:
            ws.send(pcm16(audio))
            assert json.loads(ws.recv(timeout=30))["type"] == "transcription_session.created"
            t0 = time.monotonic()
            srv.server.should_exit = True
            last = rest(ws)[-1]
            assert last["type"] == "transcription.done" and last["reason"] == "server_shutdown"
            assert ws.protocol.close_code == 1001 and time.monotonic() - t0 < 20
        srv.thread.join(30)
        assert not srv.thread.is_alive()
