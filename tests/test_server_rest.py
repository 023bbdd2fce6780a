"""The local server's REST API on loopback with real clients: the official openai package and raw multipart.

Runs on the committed tiny random model (multilingual, so translation works; its text is noise, so these
tests check shapes, statuses and messages; tests/test_server_real.py checks text with real tiny.en)."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from server_harness import openai_client, post_audio, request, running_server

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")

KEY = "test-key-0123456789"


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    noise = (np.random.default_rng(0).normal(0, 0.05, int(seconds * rate))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, noise, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


SHORT_WAV = wav_bytes(1.0)
# The random model's text fails every fallback check; one temperature keeps each request well under a second.
FAST = {"logprob_threshold": "none", "compression_ratio_threshold": "none"}


@pytest.fixture(scope="module")
def srv(runtime_model_dir, tmp_path_factory):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                        max_upload_mb=1.0, max_audio_s=20.0) as running:
        yield running


@pytest.fixture(scope="module")
def client(srv):
    return openai_client(srv)


def test_openai_client_every_response_format(client, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(2.0))
    with open(clip, "rb") as f:  # exactly the client's documented call, a file object
        res = client.audio.transcriptions.create(model="whisper-1", file=f, language="en", extra_body=FAST)
    assert isinstance(res, openai.types.audio.Transcription) and isinstance(res.text, str)
    for fmt in ("text", "srt", "vtt"):
        out = client.audio.transcriptions.create(model="tiny-model", file=clip, response_format=fmt, language="en",
                                                 extra_body=FAST)
        assert isinstance(out, str), fmt
    assert out.startswith("WEBVTT")
    verbose = client.audio.transcriptions.create(model="tiny-model", file=clip, response_format="verbose_json",
                                                 language="en", timestamp_granularities=["word", "segment"],
                                                 extra_body=FAST)
    assert isinstance(verbose, openai.types.audio.TranscriptionVerbose)
    assert verbose.language == "en" and abs(verbose.duration - 2.0) < 0.01
    assert verbose.segments is not None and verbose.words is not None
    for s in verbose.segments:
        assert 0 <= s.start <= s.end <= verbose.duration + 0.5 and isinstance(s.tokens, list)
    only_segments = client.audio.transcriptions.create(model="tiny-model", file=clip, response_format="verbose_json",
                                                       language="en", extra_body=FAST)
    assert only_segments.words is None and only_segments.segments is not None


def test_openai_client_translation(client):
    res = client.audio.translations.create(model="tiny-model", file=("a.wav", SHORT_WAV), extra_body=FAST)
    assert isinstance(res, openai.types.audio.Translation)
    verbose = client.audio.translations.create(model="tiny-model", file=("a.wav", SHORT_WAV),
                                               response_format="verbose_json", extra_body=FAST)
    assert verbose.task == "translate"
    srt = client.audio.translations.create(model="tiny-model", file=("a.wav", SHORT_WAV), response_format="srt",
                                           extra_body=FAST)
    assert isinstance(srt, str)


def test_edge_asr_fields_through_extra_body(client):
    out = client.audio.transcriptions.create(
        model="tiny-model", file=("a.wav", SHORT_WAV), language="de", prompt="Hallo", temperature=0.4,
        extra_body={"beam_size": 2, "vad_filter": True, "vad_threshold": 0.3, "hotwords": "edge-asr",
                    "condition_on_previous_text": False, "silence_peak_db": "none", **FAST})
    assert isinstance(out.text, str)
    with pytest.raises(openai.BadRequestError, match="beam_size=64 is over this server's limit of 8"):
        client.audio.transcriptions.create(model="tiny-model", file=("a.wav", SHORT_WAV), extra_body={"beam_size": 64})
    with pytest.raises(openai.BadRequestError, match="unknown language code 'xx'"):
        client.audio.transcriptions.create(model="tiny-model", file=("a.wav", SHORT_WAV), language="xx")


def test_models_health_and_unknown_model(client, srv):
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert ids == ["tiny-model"]
    assert listed.data[0].model_extra["loaded"] is True and listed.data[0].model_extra["default"] is True
    assert client.models.retrieve("whisper-1").id == "tiny-model"
    with pytest.raises(openai.NotFoundError, match="model 'large-v9' is not available; this server has: tiny-model"):
        client.audio.transcriptions.create(model="large-v9", file=("a.wav", SHORT_WAV))
    with pytest.raises(openai.NotFoundError):  # never a path on the server's disk
        client.audio.transcriptions.create(model="/etc", file=("a.wav", SHORT_WAV))
    health = request(srv, "GET", "/health")
    assert health.status == 200 and health.json["status"] == "ok"
    options = request(srv, "GET", "/v1/options").json
    assert {"beam_size", "vad_filter", "hotwords", "prompt"} <= {f["name"] for f in options["transcriptions"]["options"]}
    assert "step_s" in {f["name"] for f in options["stream"]["options"]}


@pytest.mark.parametrize("fields, files, status, message", [
    ({}, [("file", "empty.wav", b"")], 400, "the uploaded file is empty"),
    ({}, [("file", "bad.wav", b"RIFF\x00\x00garbage" * 50)], 400, "cannot decode"),
    ({}, [("audio", "a.wav", SHORT_WAV)], 400, "the audio goes in the 'file' field"),
    ({"model": "tiny-model"}, [], 400, "missing the audio"),
    ({"file": "not a file"}, [], 400, "must be a file upload"),
    ({"beam_sise": "5"}, [("file", "a.wav", SHORT_WAV)], 400, "unknown field(s) 'beam_sise'; valid:"),
    ({"beam_size": "five"}, [("file", "a.wav", SHORT_WAV)], 400, "field 'beam_size' expects an integer"),
    ({"response_format": "xml"}, [("file", "a.wav", SHORT_WAV)], 400, "response_format must be one of"),
    ({"timestamp_granularities[]": "char"}, [("file", "a.wav", SHORT_WAV)], 400, "timestamp_granularities[]"),
    ({"stream": "true"}, [("file", "a.wav", SHORT_WAV)], 400, "/v1/audio/stream"),
    ({"model": "whisper-1"}, [("file", "a.wav", SHORT_WAV), ("file", "b.wav", SHORT_WAV)], 400, "Too many files"),
])
def test_malformed_uploads_get_4xx_with_the_message(srv, fields, files, status, message):
    reply = post_audio(srv, fields, files)
    assert reply.status == status, reply.body
    assert message in reply.error["message"]
    assert "Traceback" not in reply.body.decode()


def test_not_multipart_and_unknown_routes(srv):
    reply = request(srv, "POST", "/v1/audio/transcriptions", b'{"file": "x"}', {"Content-Type": "application/json"})
    assert reply.status == 400 and "multipart/form-data" in reply.error["message"]
    assert request(srv, "GET", "/v1/audio/transcriptions").status == 405
    assert request(srv, "GET", "/nothing").status == 404


def test_size_and_duration_limits(srv):
    big = b"\0" * 1_200_000  # over max_upload_mb=1
    declared = post_audio(srv, {}, [("file", "big.wav", big)])
    assert declared.status == 413 and "limit of 1 MB" in declared.error["message"]
    chunked = post_audio(srv, {}, [("file", "big.wav", big)], chunked=True)  # no Content-Length: counted
    assert chunked.status == 413
    long = post_audio(srv, {}, [("file", "long.wav", wav_bytes(25.0, rate=8000))])
    assert long.status == 413 and "at most 20 s" in long.error["message"]


def test_busy_model_answers_503_with_retry_after_and_finishes_running_work(runtime_model_dir, tmp_path):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path), queue_size=0) as srv:
        slot = srv.entry().slot
        results = {}
        slot.gate.acquire()  # the model is "decoding": the next request runs but waits for the gate
        try:
            first = threading.Thread(target=lambda: results.setdefault("first", post_audio(srv, FAST, [("file", "a.wav", SHORT_WAV)])))
            first.start()
            deadline = time.monotonic() + 30
            while slot.admitted < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            busy = post_audio(srv, {}, [("file", "a.wav", SHORT_WAV)])
            assert busy.status == 503 and busy.error["code"] == "server_busy"
            assert int(busy.headers["retry-after"]) >= 1
        finally:
            slot.gate.release()
        first.join(60)
        assert results["first"].status == 200


def test_graceful_shutdown_finishes_running_and_refuses_queued(runtime_model_dir, tmp_path):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path), queue_size=1) as srv:
        slot = srv.entry().slot
        results = {}

        def send(name):
            results[name] = post_audio(srv, FAST, [("file", "a.wav", SHORT_WAV)])

        slot.gate.acquire()
        threads = []
        for n, name in enumerate(("running", "queued"), 1):
            threads.append(threading.Thread(target=send, args=(name,)))
            threads[-1].start()
            deadline = time.monotonic() + 30
            while slot.admitted < n:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        srv.server.should_exit = True  # as SIGTERM does
        while not srv.runtime.draining:
            time.sleep(0.01)
        slot.gate.release()
        for t in threads:
            t.join(60)
        srv.thread.join(30)
        assert not srv.thread.is_alive()
        assert results["running"].status == 200
        assert results["queued"].status == 503 and results["queued"].error["code"] == "shutting_down"


def test_api_key_and_origin(runtime_model_dir, tmp_path):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path), api_key=KEY) as srv:
        with pytest.raises(openai.AuthenticationError, match="invalid API key"):
            openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong-key-000", max_retries=0).models.list()
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
        assert isinstance(good.audio.transcriptions.create(model="whisper-1", file=("a.wav", SHORT_WAV),
                                                         extra_body=FAST).text, str)
        missing = post_audio(srv, {}, [("file", "a.wav", SHORT_WAV)])
        assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer KEY" in missing.error["message"]
        assert request(srv, "GET", "/health").status == 200  # open for liveness probes
        foreign = request(srv, "GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}",
                                                             "Origin": "http://evil.example"})
        assert foreign.status == 403 and "--cors-origins" in foreign.error["message"]
        rebinding = request(srv, "GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}", "Host": "evil.example"})
        assert rebinding.status == 403


def test_network_binding_requires_an_api_key(runtime_model_dir, capsys):
    from edge_asr.cli import main
    from edge_asr.server.config import ServerConfig, ServerConfigError

    with pytest.raises(ServerConfigError, match="set an API key"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", api_key=KEY).api_key == KEY
    assert ServerConfig(host="::1").host == "::1"  # loopback needs none
    assert main(["serve", "--host", "0.0.0.0", "--model", str(runtime_model_dir)]) == 2
    assert "exposes the server beyond this machine" in capsys.readouterr().err
