"""Request counts by endpoint and status, latency and the in-flight gauge.

Every HTTP request is counted under its route template (``other`` for unmatched paths, so clients cannot blow up
label cardinality). A request whose client went away mid-upload is counted under status ``499`` (as in the access
log), not as a server error.
"""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.metrics import Metrics
from service.http.middleware.context import CLIENT_CLOSED_REQUEST


class MetricsMiddleware:
    """Pure ASGI middleware: request count by status, latency and the in-flight gauge."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self.metrics.in_flight.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - start)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the last byte leaves: a client that then reads /metrics sees this request
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        except ClientDisconnect:  # nobody to answer: not a server error, so no 5xx alert
            status = CLIENT_CLOSED_REQUEST
            raise
        finally:
            record()
