"""The local speech server (`edge-asr serve`, extra `edge-asr[server]`): OpenAI-compatible REST for uploads
and a WebSocket for live audio, bound to loopback and limited by default.

Modules, one concern each: config (ServerConfig: settings and their flags), errors (server errors, the
error -> HTTP mapping), fields (request fields derived from the option dataclasses), security (Host,
Origin, API key), limits (body size, per-model decode slots and queue, option caps), models (ModelPool:
naming, loading once, sharing), uploads (checking and decoding uploaded audio), formats (response_format),
transcription (the REST endpoints), stream_audio (live PCM/encoded input), realtime (the WebSocket
session and its event mapping), app (the Starlette app, start-up and drain), serve (uvicorn).

Importing this package imports nothing outside the standard library: `from edge_asr.server.app import
create_app` needs the extra.
"""
