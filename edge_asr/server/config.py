"""`ServerConfig`: every setting of `edge-asr serve` with its default and help, in one place.

The `serve` flags are generated from these fields (edge_asr/cli_options.py), as the `transcribe` flags are
from TranscribeOptions. This module imports nothing outside the standard library and edge_asr, so
`edge-asr serve --help` works without the server extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, fields

from ..errors import OptionError
from ..option_field import option

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
API_KEY_ENV = "EDGE_ASR_API_KEY"


class ServerConfigError(OptionError):
    """A server setting that is unsafe or contradictory (e.g. a network address without an API key)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """What the local server listens on, which models it serves and the limits that keep it safe."""

    host: str = option("127.0.0.1", "address to bind; any non-loopback address requires --api-key",
                       group="network")
    port: int = option(8000, "TCP port", group="network")
    api_key: str | None = option(None, f"require 'Authorization: Bearer KEY' on every request except /health "
                                       f"(also read from ${API_KEY_ENV})", metavar="KEY", group="network")
    cors_origins: str | None = option(None, "comma-separated browser origins allowed to call the server "
                                            "(CORS and WebSocket Origin check), e.g. http://localhost:5173; "
                                            "none: requests that carry another Origin are refused",
                                      metavar="ORIGINS", group="network")
    model: str = option("base", "default model (a cached name such as base or tiny.en-int8, or a model folder); "
                                "loaded at start-up", metavar="NAME", group="models")
    preload: str | None = option(None, "comma-separated other models to load at start-up (requests may also "
                                       "name any cached model by the 'model' field)", metavar="NAMES",
                                 group="models")
    cache_dir: str | None = option(None, "model cache to serve from; none: edge-asr's cache "
                                         "($EDGE_ASR_CACHE or ~/.cache/edge-asr)", metavar="DIR", group="models")
    max_models: int = option(2, "models kept loaded at once; the least recently used idle one is unloaded "
                                "to make room", metavar="N", group="models")
    device: str = option("auto", "execution device", choices=("auto", "cpu", "cuda"), group="models")
    require_device: bool = option(False, "refuse to start (naming the missing package or library) instead of "
                                  "serving on the CPU when the CUDA device is unavailable (--device cuda, or auto on an onnxruntime "
                                  "build with CUDA); models loaded on demand fail their request with 503", group="models")
    threads: int | None = option(None, "onnxruntime threads per model; none: physical cores",
                                 metavar="N", group="models")
    warmup: bool = option(True, "decode the bundled sample once after loading a model, so the first request "
                                "is not slow", group="models")
    concurrency: int = option(1, "decodes running at once per model (uploads and live streams share them)",
                              metavar="N", group="limits")
    queue_size: int = option(8, "requests waiting per model beyond those running; more get 503 with "
                                "Retry-After", metavar="N", group="limits")
    max_upload_mb: float = option(25.0, "largest request body (MB); larger ones get 413", metavar="MB",
                                  group="limits")
    max_audio_s: float = option(1800.0, "longest audio accepted per upload (seconds); longer gets 413",
                                metavar="SECONDS", group="limits")
    max_beam_size: int = option(8, "largest beam_size and best_of a request may ask for", metavar="N",
                                group="limits")
    max_batch_size: int = option(8, "largest batch_size a request may ask for", metavar="N", group="limits")
    # The boost trie's build time and memory grow with the terms (1000 terms of 100 characters: ~5 s CPU,
    # ~190 MB per request), so a request's list is capped by count and by total characters.
    max_boost_terms: int = option(100, "most boost_terms a request may give", metavar="N", group="limits")
    max_boost_chars: int = option(4000, "most characters in a request's boost_terms, all terms together",
                                  metavar="N", group="limits")
    max_streams: int = option(4, "live WebSocket streams at once; more get 503", metavar="N", group="limits")
    max_session_s: float = option(3600.0, "longest live stream (wall clock and audio, seconds)",
                                  metavar="SECONDS", group="limits")
    max_pending_s: float = option(30.0, "audio a live stream may have received but not decoded (seconds); the "
                                        "stream's own max_lag_s (drops with a 'dropped' event) is capped at it, "
                                        "and a client that outruns it is disconnected", metavar="SECONDS",
                                  group="limits")
    idle_timeout_s: float = option(60.0, "close a live stream that sends nothing for this long (seconds)",
                                   metavar="SECONDS", group="limits")
    max_message_kb: int = option(1024, "largest WebSocket message (KB)", metavar="KB", group="limits")
    shutdown_timeout_s: float = option(30.0, "on shutdown, wait this long for running decodes and streams "
                                             "before cancelling them", metavar="SECONDS", group="limits")
    log_level: str = option("info", "server log level", choices=("critical", "error", "warning", "info", "debug"),
                            group="network")

    def __post_init__(self):
        if not is_loopback(self.host) and not self.api_key:
            raise ServerConfigError(
                f"binding {self.host!r} exposes the server beyond this machine: set an API key with --api-key "
                f"or ${API_KEY_ENV} (clients then send 'Authorization: Bearer KEY'), or bind 127.0.0.1")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ServerConfigError("the API key must be at least 8 characters long")
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(f"port must be 0..65535, not {self.port}")
        for name in ("concurrency", "max_models", "max_streams", "max_beam_size", "max_batch_size",
                     "max_boost_terms", "max_boost_chars", "max_message_kb"):
            if getattr(self, name) < 1:
                raise ServerConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.queue_size < 0:
            raise ServerConfigError(f"queue_size must be >= 0, not {self.queue_size}")
        for name in ("max_upload_mb", "max_audio_s", "max_session_s", "max_pending_s", "idle_timeout_s",
                     "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ServerConfigError(f"{name} must be > 0, not {getattr(self, name)}")

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in (self.cors_origins or "").split(",") if o.strip())

    @property
    def preload_models(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in (self.preload or "").split(",") if m.strip())


DESCRIPTION = ("Local speech server: OpenAI-compatible POST /v1/audio/transcriptions and /v1/audio/translations, "
               "GET /v1/models, GET /health, and live transcription over the WebSocket /v1/audio/stream. "
               "Binds 127.0.0.1; any other address needs an API key. Needs edge-asr[server].")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags, one per ServerConfig field (type, default, choices and help from the field)."""
    from ..cli_options import add_option_flags

    groups = {name: parser.add_argument_group(name) for name in ("network", "models", "limits")}
    add_option_flags(parser, ServerConfig, groups=groups)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig of parsed `serve` flags; the API key from $EDGE_ASR_API_KEY when no flag gives it."""
    from ..cli_options import values_from_args

    values = values_from_args(args, ServerConfig)
    if not values.get("api_key"):
        values["api_key"] = os.environ.get(API_KEY_ENV) or None
    return ServerConfig(**values)
