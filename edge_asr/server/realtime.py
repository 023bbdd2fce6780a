"""``WebSocket /v1/audio/stream``: live audio in, the streaming transcriber's events out as JSON.

Connect with the input and options in the query string::

    ws://127.0.0.1:8000/v1/audio/stream?format=pcm_s16le&sample_rate=16000&channels=1&language=en

``model`` (as for uploads), ``format`` (pcm_s16le | pcm_f32le | encoded, stream_audio.py), ``sample_rate``
and ``channels`` (PCM), and any StreamingOptions field or TranscribeOptions field a live decode honours
(``language``, ``task``, ``beam_size``, ``hotwords``, ``step_s``, ``max_lag_s``, ...; derived from the
dataclasses, as `edge-asr listen`'s flags are). Then send audio as binary messages (or OpenAI-style
``{"type": "input_audio_buffer.append", "audio": BASE64}`` text messages) and ``{"type": "finish"}`` at the
end; the server flushes everything, sends ``transcription.done`` with the whole text and closes (1000).

Every server message is JSON with ``type`` and the fields of `edge-asr listen`'s JSON events (``kind``,
``text``, ``start``, ``end``, ``emitted_at``, ``compute_s``, ``words``), following OpenAI's realtime
transcription events where the shapes fit:

| StreamEvent kind | type | OpenAI fields added |
|---|---|---|
| committed | conversation.item.input_audio_transcription.delta | item_id, content_index, delta (append-only) |
| end_of_utterance | conversation.item.input_audio_transcription.completed | item_id, content_index, transcript |
| tentative | transcription.tentative (no OpenAI equivalent: it may still change) | item_id |
| dropped, lag, other kinds | transcription.<kind> | |
| error | error | error {type, code, message} |

plus ``transcription_session.created`` first (model, input, options, limits) and ``transcription.done``
last (``text``, ``duration``, ``language``, ``reason``). An utterance still open at the end gets its
``completed`` before ``done``. Limits per connection (config.py): session length (wall clock and audio),
idle time, message size, undecoded audio (the stream's ``max_lag_s`` is capped at half of
``max_pending_s`` and drops with ``dropped`` events; a client that still reaches ``max_pending_s`` is
disconnected with an ``error`` and close code 1008). Server shutdown ends streams with ``done`` and 1001.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, replace

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import EdgeASRError, StreamError
from ..options import TranscribeOptions
from ..streaming import STREAMED_TRANSCRIBE_FIELDS, StreamEvent, StreamingOptions, StreamingTranscriber
from .errors import RequestError, api_error
from .fields import list_name, parse_fields, request_fields
from .limits import GatedModel, check_request_options
from .security import SUBPROTOCOL, offered_subprotocols
from .stream_audio import FORMATS, EncodedInput, PcmInput, PendingAudioError, check_format

log = logging.getLogger("edge_asr.server")

STREAM_FIELDS = {**request_fields(StreamingOptions),
                 **request_fields(TranscribeOptions, only=STREAMED_TRANSCRIBE_FIELDS)}
INPUT_FIELDS = {"model": "a cached model (GET /v1/models); none: the server's default",
                "format": f"one of {', '.join(FORMATS)} (default pcm_s16le)",
                "sample_rate": "PCM sample rate in Hz (default 16000)",
                "channels": "PCM channels, interleaved (default 1)"}
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
POLL_S = 0.25


@dataclass(frozen=True)
class StreamRequest:
    model: str | None
    format: str
    sample_rate: int
    channels: int
    options: StreamingOptions
    given: dict  # the option fields the client set (echoed in transcription_session.created)


def parse_query(items: list[tuple[str, str]], config) -> StreamRequest:
    texts: dict[str, list[str]] = {}
    listed: set[str] = set()  # list fields given as name[] (one item per value, as in uploads)
    for k, v in items:
        base = list_name(k, STREAM_FIELDS)
        if base is not None:
            k = base
            listed.add(base)
        texts.setdefault(k, []).append(v)
    unknown = sorted(set(texts) - set(STREAM_FIELDS) - set(INPUT_FIELDS))
    if unknown:
        raise RequestError(f"unknown query field(s) {', '.join(map(repr, unknown))}; valid: "
                           f"{', '.join(sorted({*INPUT_FIELDS, *STREAM_FIELDS}))}", param=unknown[0])

    def one(name: str, default: str) -> str:
        values = texts.pop(name, [default])
        if len(values) != 1:
            raise RequestError(f"query field {name!r} given {len(values)} times", param=name)
        return values[0].strip()

    def integer(name: str, default: int) -> int:
        text = one(name, str(default))
        try:
            return int(text)
        except ValueError:
            raise RequestError(f"query field {name!r} must be an integer, not {text!r}", param=name) from None

    model = one("model", "") or None
    fmt = one("format", "pcm_s16le")
    rate, channels = integer("sample_rate", 16000), integer("channels", 1)
    check_format(fmt, rate, channels)
    given = parse_fields(texts, STREAM_FIELDS, listed)
    options = StreamingOptions.from_fields(**given)
    cap = config.max_pending_s / 2
    if options.max_lag_s > cap:
        options = replace(options, max_lag_s=cap)
    check_request_options(options.transcribe, config)
    return StreamRequest(model, fmt, rate, channels, options, given)


def describe() -> dict:
    return {"input": [{"name": k, "help": v} for k, v in INPUT_FIELDS.items()],
            "options": [f.describe() for f in STREAM_FIELDS.values()]}


@dataclass
class Ending:
    """Why a session ends: the error to report (None: a normal finish), its code, the close code."""

    reason: str
    close_code: int = 1000
    message: str | None = None
    client_gone: bool = False


class RealtimeEvents:
    """StreamEvents -> the JSON messages above (runs on the event loop: it keeps per-utterance state)."""

    def __init__(self):
        self.item = 0
        self.deltas: list[str] = []
        self.start: float | None = None

    @property
    def item_id(self) -> str:
        return f"item_{self.item}"

    def messages(self, e: StreamEvent) -> list[dict]:
        fields = e.to_dict()
        if e.kind == "committed":
            raw = "".join(w for _, _, w in e.words) if e.words else " " + e.text
            delta = raw.lstrip() if not self.deltas else raw
            self.deltas.append(delta)
            self.start = e.start if self.start is None else self.start
            return [{"type": DELTA, "item_id": self.item_id, "content_index": 0, "delta": delta, **fields}]
        if e.kind == "end_of_utterance":
            return [self._completed(fields)]
        if e.kind == "tentative":
            return [{"type": "transcription.tentative", "item_id": self.item_id, **fields}]
        if e.kind == "error":
            return [error_message("stream_error", e.text, fields, error_type="server_error")]
        return [{"type": f"transcription.{e.kind}", **fields}]

    def _completed(self, fields: dict) -> dict:
        message = {"type": COMPLETED, "item_id": self.item_id, "content_index": 0,
                   "transcript": "".join(self.deltas).strip(), **fields}
        self.item += 1
        self.deltas, self.start = [], None
        return message

    def close(self, at: float) -> list[dict]:
        """``completed`` for an utterance with committed text that no end-of-utterance closed."""
        if not self.deltas:
            return []
        return [self._completed({"kind": "end_of_utterance", "text": "", "start": self.start or 0.0, "end": at,
                                 "emitted_at": at, "compute_s": 0.0})]


def error_message(code: str, message: str, fields: dict | None = None, error_type: str = "invalid_request_error") -> dict:
    fields = fields or {"kind": "error", "text": message, "start": 0.0, "end": 0.0, "emitted_at": 0.0, "compute_s": 0.0}
    return {"type": "error", "error": {"type": error_type, "code": code, "message": message}, **fields}


async def deny(websocket: WebSocket, exc: BaseException) -> None:
    """Refuse the handshake with an HTTP status and the OpenAI-shaped error body (the denial-response
    extension), or by closing with 1008 where the server lacks it."""
    from starlette.responses import JSONResponse

    err = api_error(exc)
    try:
        await websocket.send_denial_response(JSONResponse(err.body(), err.status, headers=err.headers))
    except RuntimeError:
        await websocket.close(code=1008, reason=err.message[:120])


async def stream_endpoint(websocket: WebSocket) -> None:
    runtime = websocket.app.state.runtime
    try:
        runtime.check_open()
        request = parse_query(websocket.query_params.multi_items(), runtime.config)
        entry = await run_in_threadpool(runtime.models.get, request.model)
        lease = runtime.open_stream(entry)
    except Exception as e:  # noqa: BLE001 - every refusal is answered with its status (500 for the unexpected)
        return await deny(websocket, e)
    try:
        session = StreamSession(websocket, runtime, entry, request)
        try:
            session.open()  # options the model cannot honour (a language it lacks) are refused here
        except EdgeASRError as e:
            return await deny(websocket, e)
        await session.run()
    finally:
        lease.release()


class StreamSession:
    """One connection: receive audio, feed the transcriber, send its events, enforce the limits."""

    def __init__(self, websocket: WebSocket, runtime, entry, request: StreamRequest):
        self.ws, self.runtime, self.entry, self.request = websocket, runtime, entry, request
        self.config = runtime.config
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue = asyncio.Queue()
        self.events = RealtimeEvents()
        self.stream: StreamingTranscriber | None = None
        self.input = None
        self.input_error: EdgeASRError | None = None
        self.started = time.monotonic()

    # ---- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """The transcriber and the input decoder (before the handshake is accepted)."""
        self.stream = StreamingTranscriber(GatedModel(self.entry.model, self.entry.slot.gate), self.request.options,
                                           on_event=self._on_event, background=True)
        rq = self.request
        self.input = EncodedInput(self.stream.feed, self.config.max_pending_s) if rq.format == "encoded" \
            else PcmInput(rq.format, rq.sample_rate, rq.channels, self.stream.feed)

    async def run(self) -> None:
        """Accept, then receive until the client finishes (or a limit, shutdown or the client leaving ends
        the session); flush, send the final events and close. The transcriber is always finished."""
        sender = None
        text = None
        try:
            offered = offered_subprotocols(dict(self.ws.scope["headers"]))
            await self.ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
            self.out.put_nowait(self._created())
            sender = asyncio.create_task(self._send_loop())
            ending = await self._receive_loop()
            if ending.message is not None:
                self.out.put_nowait(error_message(ending.reason, ending.message, self._fields(ending.message)))
            text = await run_in_threadpool(self._finish)
            if ending.client_gone:
                return
            error = self.input_error
            if error is not None and ending.reason != api_error(error).code:  # found only at the end
                self.out.put_nowait(error_message(api_error(error).code, str(error), self._fields(str(error))))
                ending = Ending(api_error(error).code, 1007)
            self.out.put_nowait(("done", text, ending))
            await sender
            await self.ws.close(code=ending.close_code)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left while we were sending
        finally:
            if text is None:  # left early (or failed): stop the transcriber's thread all the same
                await run_in_threadpool(self._finish)
            if sender is not None and not sender.done():
                sender.cancel()

    def _finish(self) -> str:
        """End of input: decode what is left (blocking: a worker thread). The transcriber's errors are
        already queued as events; the input's is kept in ``input_error``."""
        try:
            self.input.close()
        except EdgeASRError as e:
            self.input_error = e
        try:
            return self.stream.finish()
        except StreamError:  # its "error" event is already queued; the text committed before it is kept
            return self.stream.committed_text

    def _on_event(self, event: StreamEvent) -> None:  # the transcriber's thread: hand over, nothing else
        self.loop.call_soon_threadsafe(self.out.put_nowait, event)

    # ---- sending ------------------------------------------------------------------------------
    async def _send_loop(self) -> None:
        try:
            await self._send_all()
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left: nothing more to send

    async def _send_all(self) -> None:
        while True:
            item = await self.out.get()
            if isinstance(item, tuple):  # ("done", text, ending)
                _, text, ending = item
                at = round(self.stream.received_s, 3)
                for message in self.events.close(at):
                    await self.ws.send_json(message)
                await self.ws.send_json({"type": "transcription.done", "text": text, "duration": at,
                                         "language": self.stream.language, "reason": ending.reason})
                return
            for message in (self.events.messages(item) if isinstance(item, StreamEvent) else [item]):
                await self.ws.send_json(message)

    def _created(self) -> dict:
        rq, c = self.request, self.config
        return {"type": "transcription_session.created",
                "session": {"model": self.entry.id, "format": rq.format, "sample_rate": rq.sample_rate,
                            "channels": rq.channels, "options": rq.given,
                            "max_lag_s": rq.options.max_lag_s,
                            "limits": {"max_session_s": c.max_session_s, "max_pending_s": c.max_pending_s,
                                       "idle_timeout_s": c.idle_timeout_s, "max_message_kb": c.max_message_kb}}}

    def _fields(self, text: str) -> dict:
        at = round(self.stream.received_s, 3) if self.stream else 0.0
        return {"kind": "error", "text": text, "start": at, "end": at, "emitted_at": at, "compute_s": 0.0}

    # ---- receiving ----------------------------------------------------------------------------
    async def _receive_loop(self) -> Ending:
        c = self.config
        receive: asyncio.Future | None = None
        last = time.monotonic()
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(self.ws.receive())
                done, _ = await asyncio.wait({receive}, timeout=POLL_S)
                now = time.monotonic()
                if self.runtime.draining:
                    return Ending("server_shutdown", 1001)
                if self.stream.error is not None:
                    return Ending("stream_error", 1011)
                if self.input.error is not None:  # an encoded stream that cannot be decoded
                    return Ending(api_error(self.input.error).code, 1007, str(self.input.error))
                if now - self.started > c.max_session_s:
                    return Ending("session_limit", 1008, f"the session reached this server's limit of "
                                                         f"{c.max_session_s:g} s (--max-session-s)")
                if not done:
                    if now - last > c.idle_timeout_s:
                        return Ending("idle_timeout", 1008, f"nothing received for {c.idle_timeout_s:g} s "
                                                            "(--idle-timeout-s)")
                    continue
                message, receive, last = receive.result(), None, now
                ending = self._handle(message)
                if ending is not None:
                    return ending
        finally:
            if receive is not None and not receive.done():
                receive.cancel()

    def _handle(self, message: dict) -> Ending | None:
        if message["type"] == "websocket.disconnect":
            return Ending("client_closed", 1000, client_gone=True)
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            return self._audio(data)
        try:
            command = json.loads(text or "")
            kind = command.get("type") if isinstance(command, dict) else None
        except ValueError:
            kind = None
        if kind == "finish":
            return Ending("finished", 1000)
        if kind == "input_audio_buffer.append":
            try:
                return self._audio(base64.b64decode(command.get("audio") or "", validate=True))
            except (binascii.Error, ValueError):
                self.out.put_nowait(error_message("invalid_audio", "'audio' must be base64 of the declared format"))
                return None
        self.out.put_nowait(error_message(
            "unknown_message", "text messages are JSON with type 'input_audio_buffer.append' (audio: base64) or "
                               "'finish'; audio may also be sent as binary messages"))
        return None

    def _audio(self, data: bytes) -> Ending | None:
        c = self.config
        try:
            self.input.write(data)
        except PendingAudioError as e:
            return Ending("pending_audio_limit", 1008, str(e))
        except StreamError:
            return Ending("stream_error", 1011)
        except EdgeASRError as e:
            return Ending(api_error(e).code, 1007, str(e))
        if self.stream.received_s > c.max_session_s:
            return Ending("session_limit", 1008, f"the stream's audio reached this server's limit of "
                                                 f"{c.max_session_s:g} s (--max-session-s)")
        if self.stream.lag_s > c.max_pending_s:
            return Ending("pending_audio_limit", 1008,
                          f"{self.stream.lag_s:.1f} s of audio are waiting to be decoded, over this server's limit "
                          f"of {c.max_pending_s:g} s (--max-pending-s): send at the audio's own pace")
        return None
