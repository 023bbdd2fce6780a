"""A real edge-asr server on a loopback port, in a thread of the test process, and a raw HTTP client.

Tests talk to it as clients would (the openai package, websockets, raw multipart over http.client), so
the server's HTTP/WebSocket stack, middleware and limits are all exercised."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass

import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'edge-asr[server]'")
pytest.importorskip("uvicorn", reason="needs the server extra: pip install 'edge-asr[server]'")

from edge_asr.server.app import create_app  # noqa: E402
from edge_asr.server.config import ServerConfig  # noqa: E402
from edge_asr.server.serve import build_server  # noqa: E402
from edge_asr_bench.server_load import multipart  # noqa: E402  (the load test's client builds the same requests)


@dataclass
class Running:
    host: str
    port: int
    server: object  # EdgeServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/audio/stream"

    @property
    def runtime(self):
        return self.server.runtime

    def entry(self, name=None):
        return self.runtime.models.get(name)

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "server did not stop"


@contextlib.contextmanager
def running_server(**settings):
    """Start a server with ServerConfig(**settings) (port chosen by the OS); stop it afterwards."""
    settings.setdefault("warmup", False)
    settings.setdefault("log_level", "warning")
    config = ServerConfig(**settings)
    server = build_server(config, create_app(config))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "server failed to start"
        assert time.monotonic() < deadline, "server did not start within 60 s"
        time.sleep(0.02)
    running = Running("127.0.0.1", port, server, thread)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
        sock.close()


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json["error"]


def request(srv: Running, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            chunked: bool = False, timeout: float = 60) -> Reply:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=timeout)
    try:
        if chunked:
            conn.putrequest(method, path)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for i in range(0, len(body), 65536):
                    piece = body[i:i + 65536]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) before the body ended
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def post_audio(srv: Running, fields: dict | list, files: list[tuple[str, str, bytes]] = (), *,
               path: str = "/v1/audio/transcriptions", headers: dict | None = None, chunked: bool = False) -> Reply:
    body, ctype = multipart(fields, files)
    return request(srv, "POST", path, body, {"Content-Type": ctype, **(headers or {})}, chunked=chunked)


def openai_client(srv, api_key: str = "unused", timeout: float = 60):
    """The official openai client pointed at a running test server (no retries: a failure shows at once)."""
    import openai

    return openai.OpenAI(base_url=srv.url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)
