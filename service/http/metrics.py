"""Prometheus metrics: requests by endpoint and status, latency per stage, batch sizes, in-flight requests.

Each app owns its registry (several apps can live in one process, e.g. in tests). The requests are counted by
:class:`service.http.middleware.metrics.MetricsMiddleware`.
"""

from __future__ import annotations

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

from service.inference.pipeline import StageTimes
from service.inference.runtime import Runtime

disable_created_metrics()  # no `*_created` series: half the exposition size, nothing a dashboard uses

STAGES: tuple[str, ...] = ("decode", "detect", "preprocess", "inference", "postprocess")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_PEOPLE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


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
            "Time per pipeline stage (decode and detect per image; preprocess, inference, postprocess per request).",
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
        self.people = Histogram(
            "pose_people_per_request",
            "People answered per prediction request (all its images; the whole-photo fallback not counted).",
            buckets=_PEOPLE_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("pose_http_requests_in_flight", "HTTP requests being served.", registry=self.registry)
        self.queued_images = Gauge(
            "pose_inference_queued_images",
            "Images waiting in the dynamic batcher for a model call (0 without batching).",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "pose_model_info",
            "The loaded models (1 each): pose model or detector, file version, engine, its version and precision, "
            "device.",
            ["role", "model", "version", "engine", "engine_version", "precision", "device"],
            registry=self.registry,
        )
        for stage in STAGES:  # export every stage from the start, with zero counts
            self.stage_seconds.labels(stage)

    def loaded(self, role: str, model: str, version: str, runtime: Runtime) -> None:
        """Record a loaded model (``role``: ``pose`` or ``detector``) and the engine that runs it."""
        self.model_info.labels(
            role, model, version, runtime.engine, runtime.version, runtime.precision, runtime.device
        ).set(1)

    def observe_stages(self, timings: Sequence[StageTimes]) -> None:
        """One request's stage times: each image's decode, and its batch's other stages once."""
        for t in timings:
            self.stage_seconds.labels("decode").observe(t.decode / 1000.0)
            if t.detect > 0:
                self.stage_seconds.labels("detect").observe(t.detect / 1000.0)
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
