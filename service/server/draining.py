"""The uvicorn server the service runs: graceful on SIGTERM, with the connection limits and the JSON access log."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from service.inference.readiness import Readiness
from service.server.connections import connection_limits, guarded_protocol
from service.settings import Settings


class DrainingServer(uvicorn.Server):
    """uvicorn server whose shutdown signal first marks the service not ready."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness) -> None:
        super().__init__(config)
        self.readiness = readiness

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.readiness.drain()
        super().handle_exit(sig, frame)


def serve(app: ASGIApp, settings: Settings, readiness: Readiness) -> bool:
    """Serve ``app`` until SIGTERM or SIGINT has drained it; False when the server never started."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # service.http.middleware.RequestContext writes one JSON line per request instead
        server_header=False,  # no "server: uvicorn" banner
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        http=guarded_protocol(
            connection_limits(settings.max_header_bytes, settings.header_timeout_s, settings.max_connections)
        ),
    )
    server = DrainingServer(config, readiness)
    # uvicorn restores the previous handler after a graceful stop and re-raises the signal through it;
    # with the default handler a drained SIGTERM would end the process with status 143 instead of 0
    signal.signal(signal.SIGTERM, server.handle_exit)
    server.run()
    return server.started
