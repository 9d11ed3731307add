"""The FastAPI application: ``create_app(settings)``.

Extension points (kept in one place each):
- ``ROUTERS``: routers included in order; add new route modules there.
- the middleware section of :func:`create_app`.
- ``app.state.services`` (:class:`service.http.dependencies.Services`): settings, metrics, readiness, and
  once the lifespan has loaded the model, the engine, the batcher (if any) and the pipeline; routes get
  them through the dependencies of :mod:`service.http.dependencies`, never from ``app.state`` directly.
- :func:`install_inference`: the one place that chooses how the model is called (directly, or through
  the dynamic batcher), once, at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pose.errors import PoseError
from service.http import docs, pages, routes
from service.http.dependencies import Services
from service.http.errors import ApiError, error_body, error_headers
from service.http.metrics import Metrics
from service.http.middleware import ApiKey, Backpressure, HeadAsGet, MetricsMiddleware, RequestContext
from service.imaging.decode import start_workers
from service.inference.batching import batcher_for
from service.inference.detector import PersonDetector
from service.inference.engine import Engine
from service.inference.pipeline import BatchedInference, DirectInference, build_pipeline
from service.inference.readiness import Readiness, State
from service.settings import Settings, settings_table

log = logging.getLogger("service")

ROUTERS = [routes.router, pages.router, docs.router]

DESCRIPTION = """Human pose estimation with a Stacked Hourglass network (Newell, Yang, Deng, ECCV 2016).

Send one image to `POST /predict` (multipart field `file`, or the raw bytes with an `image/*` content type)
and get every person in it with one keypoint per joint, in the image's own pixels (EXIF orientation applied,
centre of the top-left pixel at (0, 0)). Every error is `{"error": {"code": ..., "message": ...}}`; each
status's codes are listed with its answer below.

"""
SETTINGS_HEADING = "<details><summary>Settings (environment variables)</summary>\n\n"  # folded: endpoints first


def install_inference(services: Services) -> None:
    """Choose how the loaded engine is called (directly, or through a dynamic batcher) and build the pipeline."""
    engine, settings = services.engine, services.settings
    if engine is None:
        raise RuntimeError("install_inference needs a loaded engine")
    batch_sizes = services.metrics.batch_size
    services.metrics.loaded("pose", engine.info.name, engine.info.version, engine.info.runtime)
    if services.detector is not None:
        detector = services.detector.info
        services.metrics.loaded("detector", detector.path.name, detector.version, detector.runtime)

    def run_model(batch: np.ndarray) -> np.ndarray:
        batch_sizes.observe(batch.shape[0])
        return engine.run(batch)

    services.batcher = batcher_for(
        settings.batch_max_size, settings.batch_timeout_ms, settings.batch_max_queue, engine.info.providers, run_model
    )
    batcher = services.batcher
    if batcher is not None:
        services.metrics.queued_images.set_function(lambda: batcher.queued_images)
    inference = DirectInference(run_model) if batcher is None else BatchedInference(batcher.submit)
    services.pipeline = build_pipeline(engine, settings, inference, services.workers, services.detector)


async def warm_up(engine: Engine, readiness: Readiness, runs: int) -> None:
    """Blank runs through the model, then mark the service ready."""
    readiness.set(State.WARMING_UP)
    batch = engine.blank_batch()
    try:
        for _ in range(runs):
            if readiness.state is State.DRAINING:
                return
            await anyio.to_thread.run_sync(engine.run, batch)
    except Exception:
        log.exception("warm-up run failed")
        readiness.set(State.FAILED)
        return
    readiness.set(State.READY)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    if services.engine is None:
        services.engine = await anyio.to_thread.run_sync(Engine.from_settings, services.settings)
        services.detector = await anyio.to_thread.run_sync(PersonDetector.from_settings, services.settings)
    engine = services.engine
    services.workers = await anyio.to_thread.run_sync(start_workers, services.settings)
    install_inference(services)
    batcher = services.batcher
    if batcher is not None:  # started and closed here
        await batcher.start()
        log.info("dynamic batching on: up to %d images, %.1f ms wait", batcher.max_batch_size, batcher.timeout_s * 1000)
    warm_task = asyncio.create_task(warm_up(engine, services.readiness, services.settings.warmup_runs))
    try:
        yield
    finally:
        services.readiness.drain()
        warm_task.cancel()
        if batcher is not None:
            await batcher.close()
        if services.workers is not None:
            services.workers.close()


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, detector: PersonDetector | None = None
) -> FastAPI:
    """The service; ``engine`` (already loaded, with ``detector`` when ``POSE_DETECTOR_PATH`` names one) skips
    loading the models in the lifespan."""
    settings = settings or Settings()
    app = FastAPI(
        title="hourglass-serve",
        version="1.0.0",
        description=DESCRIPTION + SETTINGS_HEADING + settings_table() + "\n\n</details>",
        lifespan=lifespan,
        docs_url=None,  # served by service.http.docs with local assets
        redoc_url=None,
    )
    services = Services(settings, Metrics(), Readiness(), engine=engine, detector=detector)
    app.state.services = services  # the routes' one handle on it: service.http.dependencies

    # ---- middleware (the last added runs first) ----
    # outermost first: RequestContext (request id, JSON access log, 500s) -> metrics -> CORS -> API key ->
    # back-pressure -> HEAD routed as GET
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        Backpressure,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        timeout_s=settings.request_timeout_s,
        draining=lambda: services.readiness.state is State.DRAINING,
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if api_key:
        app.add_middleware(ApiKey, key=api_key)
    if settings.cors_origins:  # outside the key: a browser's preflight carries no credentials
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["authorization", "x-api-key", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "server-timing", "retry-after"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    app.add_middleware(RequestContext)

    # ---- routes ----
    for router in ROUTERS:
        app.include_router(router)

    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": {"code", "message"}}``."""

    def answer(exc: ApiError) -> JSONResponse:
        headers = {name.decode(): value.decode() for name, value in error_headers(exc.status)}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(PoseError)
    async def _domain_error(request: Request, exc: PoseError) -> JSONResponse:
        return answer(ApiError.from_domain(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err.get("loc", ()) if part not in ("query", "body", "path"))
            problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return answer(ApiError("invalid_request", "; ".join(problems) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
