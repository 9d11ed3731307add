"""The FastAPI application: ``create_app(settings)``.

Extension points (kept in one place each):
- ``ROUTERS``: routers included in order; add new route modules there.
- the middleware section of :func:`create_app`.
- ``app.state.infer(batch) -> heatmaps``: the one awaitable all inference goes through
  (installed by :func:`install_inference`: a :class:`service.predictor.ThreadedInfer`, which lets the
  predictor run decode, model and postprocess in one worker-thread call; a batcher replaces it).
  ``app.state.run_model`` is the synchronous, metered model call it wraps.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import pages, routes
from service.batching import batcher_for
from service.engine import Engine
from service.errors import ApiError, error_body
from service.jpeg_strips import decode_threads
from service.metrics import Metrics, MetricsMiddleware
from service.middleware import ApiKey, Backpressure, RequestContext
from service.predictor import Predictor, ThreadedInfer
from service.readiness import Readiness, State
from service.settings import Settings, settings_table

log = logging.getLogger("service")

ROUTERS = [routes.router, pages.router]

DESCRIPTION = """Human pose estimation with a Stacked Hourglass network (Newell, Yang, Deng, ECCV 2016) on ONNX Runtime.

Send one image to `POST /predict` (multipart field `file`, or the raw bytes with an `image/*` content type)
and get one keypoint per joint in the image's own pixels (EXIF orientation applied, centre of the top-left
pixel at (0, 0)). Every error is `{"error": {"code": ..., "message": ...}}`.

### Settings (environment variables)

"""


def load_engine(settings: Settings) -> Engine:
    """Load and validate the configured model (raises ModelLoadError)."""
    return Engine.load(
        settings.model_path,
        settings.providers,
        settings.intra_op_threads,
        settings.inter_op_threads,
        intra_op_spinning=settings.intra_op_spinning,
        io_binding=settings.io_binding,
    )


def install_inference(app: FastAPI) -> None:
    """Set ``app.state.run_model``, ``app.state.infer`` and ``app.state.predictor`` for the loaded engine."""
    state = app.state
    engine: Engine = state.engine
    batch_sizes = state.metrics.batch_size

    def run_model(batch: np.ndarray) -> np.ndarray:
        batch_sizes.observe(batch.shape[0])
        return engine.run(batch)

    state.run_model = run_model
    state.infer = ThreadedInfer(run_model)  # the predictor runs a whole request in one worker-thread call
    settings = state.settings
    state.batcher = batcher_for(
        settings.batch_max_size, settings.batch_timeout_ms, settings.batch_max_queue, engine.info.providers, run_model
    )
    if state.batcher is not None:  # started and closed by the lifespan
        state.infer = state.batcher.submit
    threads = decode_threads(settings.decode_threads)
    state.predictor = Predictor(engine.info, state, settings.max_pixels, state.metrics, threads)


async def warm_up(app: FastAPI) -> None:
    """Blank runs through the model, then mark the service ready."""
    readiness: Readiness = app.state.readiness
    engine: Engine = app.state.engine
    readiness.set(State.WARMING_UP)
    batch = engine.blank_batch()
    try:
        for _ in range(app.state.settings.warmup_runs):
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
    state = app.state
    if state.engine is None:
        state.engine = await anyio.to_thread.run_sync(load_engine, state.settings)
    install_inference(app)
    if state.batcher is not None:
        await state.batcher.start()
        log.info(
            "dynamic batching on: up to %d images, %.1f ms wait",
            state.batcher.max_batch_size,
            state.batcher.timeout_s * 1000,
        )
    warm_task = asyncio.create_task(warm_up(app))
    try:
        yield
    finally:
        state.readiness.drain()
        warm_task.cancel()
        if state.batcher is not None:
            await state.batcher.close()


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The service; ``engine`` (already loaded) skips loading the model in the lifespan."""
    settings = settings or Settings()
    app = FastAPI(
        title="hourglass-serve",
        version="1.0.0",
        description=DESCRIPTION + settings_table(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = Metrics()
    app.state.readiness = Readiness()

    # ---- middleware (the last added runs first) ----
    # outermost first: RequestContext (request id, JSON access log, 500s) -> metrics -> API key -> back-pressure
    app.add_middleware(
        Backpressure,
        max_concurrency=settings.max_concurrency,
        max_queue=settings.max_queue,
        timeout_s=settings.request_timeout_s,
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if api_key:
        app.add_middleware(ApiKey, key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestContext)

    # ---- routes ----
    for router in ROUTERS:
        app.include_router(router)

    install_error_handlers(app)
    return app


def request_id(request: Request) -> str:
    """The request's id: set by middleware, sent by the client, or a fresh one."""
    return getattr(request.state, "request_id", None) or request.headers.get("x-request-id") or uuid.uuid4().hex


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes ``{"error": {"code", "message"}}``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        # every 503 (not ready, batch queue full, shutting down) is temporary: tell clients when to retry
        headers = {"retry-after": "1"} if exc.status == 503 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err.get("loc", ()) if part not in ("query", "body", "path"))
            problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return JSONResponse(error_body("invalid_request", "; ".join(problems) or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error("unhandled error on %s %s (request id %s)", request.method, request.url.path, rid, exc_info=exc)
        body = error_body("internal_error", f"internal server error (request id {rid})")
        return JSONResponse(body, status_code=500, headers={"x-request-id": rid})
