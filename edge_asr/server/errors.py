"""The server's own errors and the one mapping from any error to an HTTP status and an OpenAI-shaped body.

Every ``EdgeASRError`` a request can cause is a 4xx carrying the error's message (a bad upload, an unknown
option, a language the model lacks); capacity is 503 with Retry-After, a required device that cannot run
(``ProviderError``) 503; anything unexpected is a 500 whose
body says only "internal error" (the traceback goes to the server log, never to the client).
Bodies follow OpenAI's ``{"error": {"message", "type", "param", "code"}}`` so its clients show the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import (AudioError, DecodingError, EdgeASRError, ModelError, ModelNotFoundError, OptionError,
                      ProviderError, StreamError, UnknownOptionError)

log = logging.getLogger("edge_asr.server")


class ServerError(EdgeASRError):
    """An error of the server layer; ``status`` and ``code`` say how it is answered."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class RequestError(ServerError, ValueError):
    """A malformed request: not multipart, a missing or misnamed field, a value of the wrong type."""


class AuthError(ServerError, PermissionError):
    """Missing or wrong API key."""

    status = 401
    code = "invalid_api_key"


class ForbiddenError(ServerError, PermissionError):
    """A Host or Origin this server does not answer (DNS rebinding, another web page)."""

    status = 403
    code = "forbidden"


class PayloadTooLargeError(ServerError, ValueError):
    """The request body or the audio in it is over the server's limit."""

    status = 413
    code = "payload_too_large"


class ServerBusyError(ServerError, RuntimeError):
    """No room now (decode queue full, too many streams or models); try again after ``retry_after`` s."""

    status = 503
    code = "server_busy"

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class ShuttingDownError(ServerBusyError):
    """The server is shutting down and takes no new work."""

    code = "shutting_down"


@dataclass(frozen=True)
class ApiError:
    """How an exception is answered: status, OpenAI error fields, extra headers."""

    status: int
    message: str
    type: str
    code: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# Library errors a request can cause -> (status, code). First match wins (subclasses before bases).
_LIBRARY_ERRORS: tuple[tuple[type[BaseException], int, str], ...] = (
    (ModelNotFoundError, 404, "model_not_found"),
    (ModelError, 500, "model_error"),  # the server's own model folder is broken: not the client's fault
    # A model loaded on demand under --require-device whose device cannot run here: the server's
    # state, not the request's (a retry may succeed once the device is back).
    (ProviderError, 503, "device_unavailable"),
    (AudioError, 400, "invalid_audio"),
    (UnknownOptionError, 400, "unknown_parameter"),
    (OptionError, 400, "invalid_parameter"),
    (DecodingError, 400, "unsupported_option"),
    (StreamError, 400, "stream_error"),
    (EdgeASRError, 400, "invalid_request"),
)


def _type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def api_error(exc: BaseException) -> ApiError:
    """The answer to ``exc``: its status and message for every error a client can cause, a generic 500
    (logged with its traceback) for anything else."""
    if isinstance(exc, ServerError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServerBusyError) else {}
        if isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = "Bearer"
        return ApiError(exc.status, str(exc), _type_for(exc.status), exc.code, exc.param, headers)
    for cls, status, code in _LIBRARY_ERRORS:
        if isinstance(exc, cls):
            if status >= 500:
                log.error("model error: %s", exc)
            return ApiError(status, str(exc), _type_for(status), code)
    try:  # Starlette's own (malformed multipart, 404/405 routes) without importing it here
        from starlette.exceptions import HTTPException
    except ImportError:  # pragma: no cover - the server extra is installed when this runs
        HTTPException = ()  # type: ignore[assignment]
    if isinstance(exc, HTTPException):
        status = exc.status_code
        return ApiError(status, str(exc.detail), _type_for(status), "http_error", None, dict(exc.headers or {}))
    log.error("internal error", exc_info=exc)
    return ApiError(500, "internal error (the server log has the details)", "server_error", "internal_error")
