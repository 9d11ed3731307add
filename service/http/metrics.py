"""Prometheus metrics: requests by endpoint and status, latency per stage, batch sizes, in-flight requests.

Each app owns its registry (several apps can live in one process, e.g. in tests). The ASGI
middleware counts every HTTP request under its route template (``other`` for unmatched paths,
so clients cannot blow up label cardinality). A request whose client went away mid-upload is counted
under status ``499`` (as in the access log), not as a server error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.middleware import CLIENT_CLOSED_REQUEST
from service.inference.pipeline import StageTimes

disable_created_metrics()  # no `*_created` series: half the exposition size, nothing a dashboard uses

STAGES: tuple[str, ...] = ("decode", "preprocess", "inference", "postprocess")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The service's metric families in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "pose_http_requests",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "pose_http_request_duration_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "pose_stage_duration_seconds",
            "Time per pipeline stage (decode, preprocess, inference, postprocess).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "pose_inference_batch_size",
            "Images per model call (flip test doubles them).",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("pose_http_requests_in_flight", "HTTP requests being served.", registry=self.registry)
        for stage in STAGES:  # export every stage from the start, with zero counts
            self.stage_seconds.labels(stage)

    def observe_stages(self, timings: Sequence[StageTimes]) -> None:
        """One request's stage times: each image's decode, and its batch's other stages once."""
        for t in timings:
            if t.decode > 0:  # 0: the caller passed decoded images
                self.stage_seconds.labels("decode").observe(t.decode / 1000.0)
        if timings:
            batch = timings[0]
            for stage, ms in (
                ("preprocess", batch.preprocess),
                ("inference", batch.inference),
                ("postprocess", batch.postprocess),
            ):
                self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


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
