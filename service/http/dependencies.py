"""The services a route needs, built once at start-up and handed to routes as FastAPI dependencies.

The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, one more
thread hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from service.http.errors import ApiError
from service.http.metrics import Metrics
from service.http.uploads import UploadPace
from service.imaging.decode import DecodeWorkers
from service.inference.batching import DynamicBatcher
from service.inference.detector import PersonDetector
from service.inference.engine import Engine
from service.inference.pipeline import Pipeline
from service.inference.readiness import NotReady, Readiness, State
from service.settings import Settings


@dataclass
class Services:
    """One app's settings, metrics and readiness, and (once loaded) its engine, batcher and pipeline."""

    settings: Settings
    metrics: Metrics
    readiness: Readiness
    engine: Engine | None = None
    detector: PersonDetector | None = None  # None: no detector (POSE_DETECTOR_PATH empty) or not loaded yet
    batcher: DynamicBatcher | None = None  # None: the pipeline calls the model directly
    pipeline: Pipeline | None = None
    workers: DecodeWorkers | None = None  # decode worker processes, started and stopped by the lifespan

    @property
    def upload_pace(self) -> UploadPace:
        return UploadPace(self.settings.min_upload_rate, self.settings.upload_grace_s)


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def ready_pipeline(services: Annotated[Services, Depends(get_services)]) -> Pipeline:
    """The pipeline, or NotReady while the model is not ready.

    While draining (SIGTERM) requests still get answers: uvicorn has stopped accepting connections,
    and whatever already arrived is in flight and must finish; only ``/readyz`` turns 503.
    """
    readiness, pipeline = services.readiness, services.pipeline
    if pipeline is None or not (readiness.ready or readiness.state is State.DRAINING):
        raise NotReady(readiness.state)
    return pipeline


async def loaded_engine(services: Annotated[Services, Depends(get_services)]) -> Engine:
    """The engine, or NotReady before the model is loaded."""
    if services.engine is None:
        raise NotReady(services.readiness.state)
    return services.engine


ServicesDep = Annotated[Services, Depends(get_services)]
PipelineDep = Annotated[Pipeline, Depends(ready_pipeline)]
EngineDep = Annotated[Engine, Depends(loaded_engine)]


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not take (a misspelt ``max_poeple`` would otherwise be ignored
    silently), naming those it does: 422 ``invalid_request``."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    accepted = _query_names(dependant)
    unknown = sorted(set(request.query_params) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "no query parameters"
        raise ApiError(
            "invalid_request",
            f"unknown query parameter {', '.join(map(repr, unknown))}; {request.url.path} takes {takes}",
        )
