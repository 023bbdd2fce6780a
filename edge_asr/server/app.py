"""The ASGI application (Starlette): routes, middleware, error answers, start-up and shutdown.

Routes: ``POST /v1/audio/transcriptions``, ``POST /v1/audio/translations`` (transcription.py),
``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /v1/options`` (every field uploads and streams take),
``GET /health``, ``WebSocket /v1/audio/stream`` (realtime.py).
Middleware, outermost first: CORS (only with --cors-origins), Guard (Host, Origin, API key: security.py),
BodyLimit (limits.py). Every error is answered by ``errors.api_error``.

``Runtime`` is the state requests share: the config, the ModelPool, the open streams and the shutdown
flag. Start-up loads (and warms up) the default and preloaded models before the first request; shutdown
(``drain``) refuses new work with 503, lets running decodes finish, ends live streams with their final
text, then releases the models.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from .. import __version__
from ..errors import EdgeASRError
from . import realtime, transcription
from .config import ServerConfig
from .errors import ServerBusyError, ShuttingDownError, api_error
from .limits import BodyLimit
from .models import ModelPool
from .security import Guard

log = logging.getLogger("edge_asr.server")


class StreamLease:
    def __init__(self, runtime: Runtime, entry):
        self.runtime, self.entry = runtime, entry

    def release(self) -> None:
        with self.runtime._lock:
            self.runtime.streams -= 1
            self.entry.slot.streams -= 1
            if self.runtime.streams == 0:
                self.runtime._no_streams.set()


class Runtime:
    """What every request shares."""

    def __init__(self, config: ServerConfig, pool: ModelPool | None = None):
        self.config = config
        self.models = pool or ModelPool(config)
        self.streams = 0
        self.draining = False
        self._lock = threading.Lock()
        self._no_streams = threading.Event()
        self._no_streams.set()

    def check_open(self) -> None:
        if self.draining:
            raise ShuttingDownError("the server is shutting down")

    def open_stream(self, entry) -> StreamLease:
        with self._lock:
            self.check_open()
            if self.streams >= self.config.max_streams:
                raise ServerBusyError(f"{self.streams} live streams are open, this server's limit "
                                      f"(--max-streams {self.config.max_streams}); try again later", retry_after=5)
            self.streams += 1
            entry.slot.streams += 1
            self._no_streams.clear()
        return StreamLease(self, entry)

    def start(self) -> None:
        """Load and warm up the default and preloaded models (blocking)."""
        self.models.get(None)
        for name in self.config.preload_models:
            self.models.get(name)

    async def drain(self) -> None:
        """Refuse new work, end live streams (they send their final text), wait for them (bounded)."""
        if self.draining:
            return
        self.draining = True
        self.models.begin_shutdown()
        log.info("shutting down: no new work; waiting for %d live stream(s)", self.streams)
        await run_in_threadpool(self._no_streams.wait, self.config.shutdown_timeout_s)

    async def close(self) -> None:
        await self.drain()
        await run_in_threadpool(self.models.close, True)


def _json_error(exc: BaseException) -> JSONResponse:
    err = api_error(exc)
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def respond_error(exc: BaseException, scope, receive, send) -> None:
    """Answer ``exc`` from middleware: a JSON response, or a WebSocket handshake refusal."""
    if scope["type"] == "websocket":
        from starlette.websockets import WebSocket

        return await realtime.deny(WebSocket(scope, receive, send), exc)
    await _json_error(exc)(scope, receive, send)


async def _error_handler(request: Request, exc: Exception) -> JSONResponse:
    return _json_error(exc)


async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse({"status": "shutting_down" if runtime.draining else "ok", "version": __version__},
                        status_code=503 if runtime.draining else 200)


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": request.app.state.runtime.models.listing()})


async def get_model(request: Request) -> JSONResponse:
    pool: ModelPool = request.app.state.runtime.models
    mid, _ = pool.resolve(request.path_params["model_id"])
    return JSONResponse(next(m for m in pool.listing() if m["id"] == mid))


async def options(request: Request) -> JSONResponse:
    return JSONResponse({"transcriptions": transcription.describe(), "stream": realtime.describe()})


def create_app(config: ServerConfig, pool: ModelPool | None = None, *, load_at_startup: bool = True) -> Starlette:
    runtime = Runtime(config, pool)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if load_at_startup:
            await run_in_threadpool(runtime.start)
        yield
        await runtime.close()

    middleware = []
    if config.origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.origins), allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"], max_age=600))
    middleware += [Middleware(Guard, config=config, respond=respond_error),
                   Middleware(BodyLimit, max_bytes=config.max_upload_bytes, respond=respond_error)]
    routes = [
        Route("/v1/audio/transcriptions", transcription.transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", transcription.translations, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/v1/options", options, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        WebSocketRoute("/v1/audio/stream", realtime.stream_endpoint),
    ]
    handlers = {EdgeASRError: _error_handler, HTTPException: _error_handler, Exception: _error_handler}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.runtime = runtime
    return app


__all__ = ["create_app", "Runtime", "ServerConfig"]
