"""The local server with real tiny.en (int8), where the text matters: the openai client's transcription in
every response_format, translation refused by an English-only model, and the live stream's text."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from conftest import REPO, SAMPLE, SAMPLE_TEXT, wer
from server_harness import openai_client, running_server

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")
websockets = pytest.importorskip("websockets", reason="the websockets client is in the test extra")
from websockets.sync.client import connect  # noqa: E402

from edge_asr.audio import load_audio  # noqa: E402


@pytest.fixture(scope="module")
def srv(pulled, real_cache):
    pulled("tiny.en")  # built once per test session into the private cache
    with running_server(model="tiny.en", cache_dir=str(real_cache)) as running:
        yield running


def readme_openai_example() -> str:
    """The README's three-line openai example (the python block that points the client at the server)."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(b for b in blocks if 'OpenAI(base_url="http://127.0.0.1:8000/v1"' in b)


def test_readme_openai_example_works_offline(srv, monkeypatch):
    code = readme_openai_example()
    assert len(code.strip().splitlines()) == 3
    monkeypatch.chdir(REPO)  # it opens edge_asr/assets/sample.flac
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace("http://127.0.0.1:8000", srv.url), {})
    assert wer(SAMPLE_TEXT, out.getvalue()) < 0.1, out.getvalue()


def test_openai_client_text_in_every_format(srv):
    client = openai_client(srv, timeout=120)
    text = client.audio.transcriptions.create(model="tiny.en", file=SAMPLE, response_format="text")
    assert text.endswith("\n") and wer(SAMPLE_TEXT, text) < 0.1
    srt = client.audio.transcriptions.create(model="tiny.en", file=SAMPLE, response_format="srt")
    cues = re.findall(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)$", srt, re.M)
    assert len(cues) >= 2 and [c[0] for c in cues] == [str(i) for i in range(1, len(cues) + 1)]
    assert wer(SAMPLE_TEXT, " ".join(c[3] for c in cues)) < 0.1
    vtt = client.audio.transcriptions.create(model="tiny.en", file=SAMPLE, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n") and len(re.findall(r"\d\d:\d\d\.\d{3} --> ", vtt)) == len(cues)
    verbose = client.audio.transcriptions.create(model="tiny.en-int8", file=SAMPLE, response_format="verbose_json",
                                                 timestamp_granularities=["word"])
    assert verbose.language == "en" and abs(verbose.duration - 15.52) < 0.01 and verbose.segments is None
    words = verbose.words
    assert wer(SAMPLE_TEXT, " ".join(w.word for w in words)) < 0.1
    assert all(a.start <= b.start for a, b in zip(words, words[1:])) and words[-1].end <= verbose.duration + 0.1
    with pytest.raises(openai.BadRequestError, match="English-only: it cannot translate"):
        client.audio.translations.create(model="tiny.en", file=SAMPLE)


def test_live_stream_text(srv):
    audio = load_audio(SAMPLE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    messages = []
    # All at once (far faster than real time): max_lag_s at its cap (max_pending_s / 2 = 15 s) keeps it all.
    with connect(f"{srv.ws_url}?language=en&max_lag_s=15", open_timeout=30) as ws:
        for i in range(0, len(pcm), 32000):
            ws.send(pcm[i:i + 32000])
        ws.send(json.dumps({"type": "finish"}))
        messages = [json.loads(m) for m in ws]
    done = messages[-1]
    assert done["type"] == "transcription.done" and wer(SAMPLE_TEXT, done["text"]) < 0.2, done["text"]
    deltas = [m["delta"] for m in messages if m["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = [m["transcript"] for m in messages if m["type"] == "conversation.item.input_audio_transcription.completed"]
    assert "".join(deltas).strip() == done["text"]
    assert " ".join(t for t in completed if t) == done["text"]
