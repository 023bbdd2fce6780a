"""Limits that keep the server's memory and CPU bounded whatever clients send.

- ``BodyLimit``: ASGI middleware; a body over the limit is refused with 413 from its Content-Length,
  before it is read, or as soon as a chunked body passes it.
- ``DecodeSlot``: per model, at most ``concurrency`` decodes run and ``queue_size`` wait; one more is
  refused at once with 503 and a Retry-After estimated from recent decode times (never an unbounded
  queue). Its ``gate`` (a bounded semaphore) is also taken by live streams around every encoder/decoder
  run (``GatedModel``), so uploads and streams of one model never run more than ``concurrency`` graphs
  at once.
- ``check_request_options``: caps on the options that multiply memory (beam width, batch size) or build
  cost (the number and total length of boost terms).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from ..errors import OptionError
from ..options import TranscribeOptions
from .config import ServerConfig
from .errors import PayloadTooLargeError, ServerBusyError, ShuttingDownError

T = TypeVar("T")


class BodyLimit:
    """Refuse HTTP request bodies over ``max_bytes`` with 413 (declared or counted)."""

    def __init__(self, app, max_bytes: int, respond):
        self.app, self.max_bytes, self.respond = app, max_bytes, respond

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        message = f"request body is over this server's limit of {limit / 1e6:g} MB (--max-upload-mb)"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False
            if too_large:
                return await self.respond(PayloadTooLargeError(message), scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(message)
            return msg

        return await self.app(scope, counted, send)


class DecodeSlot:
    """Bounded decoding for one model: ``concurrency`` running, ``queue_size`` waiting, 503 beyond."""

    def __init__(self, name: str, concurrency: int, queue_size: int):
        self.name = name
        self.concurrency = concurrency
        self.capacity = concurrency + queue_size
        self.gate = threading.BoundedSemaphore(concurrency)
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"edge-asr-decode-{name}")
        self._lock = threading.Lock()
        self._admitted = 0
        self._closing: str | None = None  # why new work is refused
        self._mean_s = 2.0  # running mean of decode times (seconds), for Retry-After
        self.streams = 0  # live streams using this model (the pool keeps the model while any is open)

    @property
    def admitted(self) -> int:
        """Requests running or waiting."""
        return self._admitted

    @property
    def idle(self) -> bool:
        return self._admitted == 0 and self.streams == 0

    def retry_after(self) -> int:
        waves = math.ceil((self._admitted + 1) / self.concurrency)
        return max(1, math.ceil(waves * self._mean_s))

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a decode thread holding the gate; ServerBusyError at once when the queue is full."""
        with self._lock:
            if self._closing:
                raise ShuttingDownError(self._closing)
            if self._admitted >= self.capacity:
                raise ServerBusyError(f"model {self.name!r} is busy: {self.concurrency} decode(s) running and "
                                      f"{self.capacity - self.concurrency} waiting; try again later",
                                      retry_after=self.retry_after())
            self._admitted += 1
        try:
            return await asyncio.wrap_future(self._executor.submit(self._job, fn))
        finally:
            with self._lock:
                self._admitted -= 1

    def _job(self, fn: Callable[[], T]) -> T:
        if self._closing:  # queued before the slot closed: not started
            raise ShuttingDownError(f"{self._closing}; this request was not started")
        with self.gate:
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.perf_counter() - t0)

    def close(self, wait: bool = True, reason: str = "the server is shutting down") -> None:
        """Refuse new work and requests not yet started (503 with ``reason``); running decodes finish
        (waited for when ``wait``)."""
        with self._lock:
            self._closing = reason
        self._executor.shutdown(wait=wait)


class GatedBackend:
    """An OnnxBackend whose graph runs take the model's decode gate (the rest is the backend's own)."""

    def __init__(self, backend, gate: threading.BoundedSemaphore):
        self._backend, self._gate = backend, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def encode(self, *args, **kwargs):
        with self._gate:
            return self._backend.encode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        with self._gate:
            return self._backend.decode(*args, **kwargs)

    def decode_with_alignment(self, *args, **kwargs):
        with self._gate:
            return self._backend.decode_with_alignment(*args, **kwargs)


class GatedModel:
    """A WhisperModel view for live streams: the same weights and tokenizer, graph runs through the gate."""

    def __init__(self, model, gate: threading.BoundedSemaphore):
        self._model = model
        self.backend = GatedBackend(model.backend, gate)
        self.tokenizer = model.tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def check_request_options(options: TranscribeOptions, config: ServerConfig) -> None:
    """OptionError for options over the server's caps (they multiply decoder memory and time)."""
    for name, cap in (("beam_size", config.max_beam_size), ("best_of", config.max_beam_size),
                      ("batch_size", config.max_batch_size)):
        value = getattr(options, name, None)
        if value is not None and value > cap:
            raise OptionError(f"{name}={value} is over this server's limit of {cap}")
        if value is not None and value < 1:
            raise OptionError(f"{name} must be at least 1, got {value}")
    terms = tuple(getattr(options, "boost_terms", ()) or ())
    if len(terms) > config.max_boost_terms:
        raise OptionError(f"boost_terms: {len(terms)} terms is over this server's limit of {config.max_boost_terms} "
                          "(max_boost_terms)")
    chars = sum(len(t) for t in terms if isinstance(t, str))
    if chars > config.max_boost_chars:
        raise OptionError(f"boost_terms: {chars} characters in all is over this server's limit of "
                          f"{config.max_boost_chars} (max_boost_chars)")
