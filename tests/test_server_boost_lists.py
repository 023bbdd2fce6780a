"""Server: boost_terms lists from the openai client (``boost_terms[]`` parts, items kept whole),
the per-request cap on boost terms, ProviderError -> 503, and the list form in stream query strings."""

from __future__ import annotations

import pytest

from edge_asr.errors import ProviderError
from edge_asr.server import realtime, transcription
from edge_asr.server.config import ServerConfig
from edge_asr.server.errors import api_error

from server_harness import openai_client, post_audio, running_server
from test_server_rest import FAST, SHORT_WAV

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")


@pytest.fixture(scope="module")
def srv(runtime_model_dir, tmp_path_factory):
    with running_server(model=str(runtime_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                        max_boost_terms=3, max_boost_chars=40) as running:
        yield running


@pytest.fixture(scope="module")
def client(srv):
    return openai_client(srv)


def test_openai_client_boost_list_arrives_whole(client, monkeypatch):
    seen = []
    parse = transcription.parse_form
    monkeypatch.setattr(transcription, "parse_form", lambda *a: seen.append(parse(*a)) or seen[-1])
    out = client.audio.transcriptions.create(model="tiny-model", file=("a.wav", SHORT_WAV), language="en",
                                             extra_body={"boost_terms": ["Acme, Inc.", "Zorvexa:30"], **FAST})
    assert isinstance(out.text, str)
    assert seen[-1].options.boost_terms == ("Acme, Inc.", "Zorvexa:30")


def test_repeated_plain_field_keeps_items_whole_and_one_value_still_splits(srv, monkeypatch):
    seen = []
    parse = transcription.parse_form
    monkeypatch.setattr(transcription, "parse_form", lambda *a: seen.append(parse(*a)) or seen[-1])
    fields = [("boost_terms", "Acme, Inc."), ("boost_terms", "Zorvexa"), *FAST.items()]
    assert post_audio(srv, fields, [("file", "a.wav", SHORT_WAV)]).status == 200
    assert seen[-1].options.boost_terms == ("Acme, Inc.", "Zorvexa")
    assert post_audio(srv, {"boost_terms": "Acme,Zorvexa", **FAST}, [("file", "a.wav", SHORT_WAV)]).status == 200
    assert seen[-1].options.boost_terms == ("Acme", "Zorvexa")


def test_boost_list_over_the_cap_is_a_400_naming_the_limit(client):
    with pytest.raises(openai.BadRequestError, match="4 terms is over this server's limit of 3 .max_boost_terms"):
        client.audio.transcriptions.create(model="tiny-model", file=("a.wav", SHORT_WAV),
                                           extra_body={"boost_terms": ["a", "b", "c", "d"]})
    with pytest.raises(openai.BadRequestError, match="limit of 40 .max_boost_chars"):
        client.audio.transcriptions.create(model="tiny-model", file=("a.wav", SHORT_WAV),
                                           extra_body={"boost_terms": ["x" * 30, "y" * 30]})


def test_stream_query_takes_the_list_form():
    config = ServerConfig()
    request = realtime.parse_query([("boost_terms[]", "Acme, Inc."), ("boost_terms[]", "Zorvexa")], config)
    assert request.options.transcribe.boost_terms == ("Acme, Inc.", "Zorvexa")
    with pytest.raises(Exception, match="max_boost_terms"):
        realtime.parse_query([("boost_terms", ",".join("t%d" % i for i in range(101)))], config)


def test_provider_error_is_503_device_unavailable():
    answer = api_error(ProviderError("CUDAExecutionProvider is not available: libcudnn.so.9 is missing"))
    assert (answer.status, answer.code, answer.type) == (503, "device_unavailable", "server_error")
