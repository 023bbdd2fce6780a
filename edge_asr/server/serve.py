"""`edge-asr serve` / `python -m edge_asr.server`: run the app under uvicorn (h11 HTTP, the websockets
library's sans-I/O WebSocket implementation).

Graceful shutdown (SIGINT/SIGTERM): ``EdgeServer`` first drains the app (new requests get 503, queued
uploads that have not started get 503, live streams flush and get their final text and close 1001),
then uvicorn stops accepting, waits for running requests (``--shutdown-timeout-s``, after which it
cancels them) and the app releases its models.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import uvicorn

from ..errors import EdgeASRError
from .app import create_app
from .config import DESCRIPTION, ServerConfig, add_arguments, config_from_args

log = logging.getLogger("edge_asr.server")


class EdgeServer(uvicorn.Server):
    """uvicorn's server with the app drained before connections are closed."""

    def __init__(self, config: uvicorn.Config, runtime):
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets=None) -> None:
        await self.runtime.drain()
        await super().shutdown(sockets=sockets)


def build_server(config: ServerConfig, app=None, **uvicorn_options) -> EdgeServer:
    """An EdgeServer for ``config`` (not started: ``.run()``, or ``.run(sockets=[...])`` for a bound socket)."""
    app = app or create_app(config)
    uv = uvicorn.Config(app, host=config.host, port=config.port, ws="websockets-sansio", http="h11",
                        ws_max_size=config.max_message_kb * 1024, timeout_graceful_shutdown=int(config.shutdown_timeout_s),
                        log_level=config.log_level, lifespan="on", server_header=False, **uvicorn_options)
    return EdgeServer(uv, app.state.runtime)


def serve(config: ServerConfig) -> int:
    """Load the models, then serve until SIGINT/SIGTERM. Exit status 0, or 2 when it cannot start."""
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s:     %(message)s")
    try:
        server = build_server(config)
        server.runtime.start()  # here, so a missing or broken model is one clear line, not a traceback
    except EdgeASRError as e:
        print(f"edge-asr serve: error: {e}", file=sys.stderr)
        return 2
    where = f"http://{'[' + config.host + ']' if ':' in config.host else config.host}:{config.port}"
    log.info("edge-asr serve: %s (OpenAI base URL %s/v1, live stream ws%s/v1/audio/stream)%s", where, where,
             where[4:], "; API key required" if config.api_key else "")
    server.run()  # a port in use and other start-up failures: uvicorn logs them and exits with status 3
    return 0 if server.started else 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-asr serve", description=DESCRIPTION)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def run_from_args(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except EdgeASRError as e:
        print(f"edge-asr serve: error: {e}", file=sys.stderr)
        return 2
    return serve(config)
