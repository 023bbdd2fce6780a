"""Who may talk to the server: Host, Origin and API key, checked before any request is read (ASGI middleware).

- Host: a server bound to loopback answers only Host names that mean this machine (127.x, ::1, localhost),
  so a web page cannot reach it through DNS rebinding.
- Origin: a browser request (HTTP or WebSocket) whose Origin is not in ``--cors-origins`` is refused;
  native clients send no Origin.
- API key: with ``--api-key`` every request but ``GET /health`` (and CORS preflights) needs
  ``Authorization: Bearer KEY``. Browsers cannot set headers on a WebSocket, so a stream may instead offer
  the subprotocols ``edge-asr, bearer.KEY`` (the server answers ``edge-asr``). Keys are compared in
  constant time.
"""

from __future__ import annotations

import hmac

from .config import ServerConfig, is_loopback
from .errors import AuthError, ForbiddenError

OPEN_PATHS = frozenset({"/health"})
SUBPROTOCOL = "edge-asr"
BEARER_SUBPROTOCOL = "bearer."


def _host_name(host: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1'."""
    host = host.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def offered_subprotocols(headers: dict[bytes, bytes]) -> list[str]:
    raw = headers.get(b"sec-websocket-protocol", b"").decode("latin-1")
    return [p.strip() for p in raw.split(",") if p.strip()]


def bearer_token(headers: dict[bytes, bytes], websocket: bool) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if websocket:
        for p in offered_subprotocols(headers):
            if p.startswith(BEARER_SUBPROTOCOL):
                return p[len(BEARER_SUBPROTOCOL):]
    return None


class Guard:
    """ASGI middleware: Host, Origin and API key checks; refusals go through ``respond``."""

    def __init__(self, app, config: ServerConfig, respond):
        self.app, self.respond = app, respond
        self.loopback_only = is_loopback(config.host)
        self.origins = set(config.origins)
        self.key = config.api_key.encode() if config.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        try:
            self.check(scope)
        except (AuthError, ForbiddenError) as e:
            return await self.respond(e, scope, receive, send)
        return await self.app(scope, receive, send)

    def check(self, scope) -> None:
        headers = dict(scope["headers"])
        websocket = scope["type"] == "websocket"
        host = headers.get(b"host", b"").decode("latin-1")
        if self.loopback_only and host and not is_loopback(_host_name(host)):
            raise ForbiddenError(f"this server is bound to loopback and answers only local host names, "
                                 f"not Host {host!r}")
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
        if origin and "*" not in self.origins and origin not in self.origins:
            raise ForbiddenError(f"Origin {origin!r} may not use this server; start it with "
                                 f"--cors-origins {origin} to allow that page")
        if self.key is None or scope["path"] in OPEN_PATHS or scope.get("method") == "OPTIONS":
            return
        token = bearer_token(headers, websocket)
        if token is None:
            raise AuthError("this server requires an API key: send 'Authorization: Bearer KEY'"
                            + (" (or offer the WebSocket subprotocols 'edge-asr, bearer.KEY')" if websocket else ""))
        if not hmac.compare_digest(token.encode(), self.key):
            raise AuthError("invalid API key")
