"""HTTP endpoints: thin wrappers around :class:`service.predictor.Predictor`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter

from service.codec import Refine
from service.errors import ApiError, NotReadyError
from service.middleware import STATE_IMAGE, STATE_TIMINGS
from service.openapi_docs import MANY_IMAGES_BODY, ONE_IMAGE_BODY, prediction_responses
from service.predictor import Prediction, PredictOptions, Predictor
from service.readiness import State
from service.schemas import ErrorResponse, ModelDescription, PoseResult, Status
from service.transform import MAX_BBOX_FACTOR, ResizeMode, parse_bbox
from service.uploads import read_uploads

router = APIRouter()

_JSON = "application/json"
_RESULTS = TypeAdapter(list[PoseResult])


async def predict_options(
    resize: Annotated[
        ResizeMode,
        Query(description="`letterbox`: keep the aspect ratio, pad both sides equally; `stretch`: fill the input."),
    ] = "letterbox",
    refine: Annotated[
        Refine,
        Query(
            description="Sub-pixel refinement: `quarter` (a quarter pixel toward the higher neighbour), "
            "`dark` (Taylor expansion on the log heatmap, Zhang et al. 2020) or `none`."
        ),
    ] = "quarter",
    flip: Annotated[
        bool, Query(description="Average with the mirrored image's heatmaps (left/right swapped).")
    ] = False,
    bbox: Annotated[
        str | None,
        Query(
            description="Person box `x,y,w,h` in image pixels: cropped grown by 25% about its centre, "
            "then letterboxed. Finite numbers; it must overlap the image, and neither side may exceed "
            f"{MAX_BBOX_FACTOR:g} times the image's longer side (else 422).",
            examples=["120,40,200,360"],
        ),
    ] = None,
) -> PredictOptions:
    """Query parameters shared by every prediction route (``async``: FastAPI would run a plain ``def``
    dependency in a worker thread, one more thread hop per request)."""
    return PredictOptions(resize=resize, refine=refine, flip=flip, bbox=parse_bbox(bbox))


Options = Annotated[PredictOptions, Depends(predict_options)]


def note_for_access_log(request: Request, predictions: list[Prediction]) -> None:
    """Stage timings and image size for the request's JSON log line (``service.middleware.RequestContext``)."""
    timings: dict[str, float] = {}
    for p in predictions:
        for stage, ms in p.result.timings_ms.model_dump().items():
            timings[stage] = timings.get(stage, 0.0) + ms
    first = predictions[0].result.image
    setattr(request.state, STATE_TIMINGS, timings)
    setattr(request.state, STATE_IMAGE, {"width": first.width, "height": first.height, "count": len(predictions)})


def get_predictor(request: Request) -> Predictor:
    """The predictor, or 503 while the model is not ready.

    While draining (SIGTERM) requests still get answers: uvicorn has stopped accepting connections,
    and whatever already arrived is in flight and must finish; only ``/readyz`` turns 503.
    """
    state = request.app.state
    readiness = state.readiness
    predictor = getattr(state, "predictor", None)
    if not (readiness.ready or (readiness.state is State.DRAINING and predictor is not None)):
        raise NotReadyError(readiness.state.value)
    return predictor


@router.post(
    "/predict",
    response_model=PoseResult,
    responses=prediction_responses(),
    openapi_extra=ONE_IMAGE_BODY,
    summary="Keypoints of the person in one image",
    tags=["predict"],
)
async def predict(request: Request, options: Options) -> Response:
    """One image as multipart field `file` or as the raw body (`Content-Type: image/...`)."""
    predictor = get_predictor(request)
    settings = request.app.state.settings
    uploads = await read_uploads(request, "file", 1, settings.max_upload_bytes, allow_raw=True)
    [prediction] = await predictor.predict_uploads(uploads, options)
    note_for_access_log(request, [prediction])
    return Response(prediction.result.model_dump_json(), media_type=_JSON)


@router.post(
    "/predict/batch",
    response_model=list[PoseResult],
    responses=prediction_responses(),
    openapi_extra=MANY_IMAGES_BODY,
    summary="Keypoints for several images in one model call",
    tags=["predict"],
)
async def predict_batch(request: Request, options: Options) -> Response:
    """Several images as multipart fields `files` (at most `POSE_MAX_FILES`); results in the same order."""
    predictor = get_predictor(request)
    settings = request.app.state.settings
    uploads = await read_uploads(request, "files", settings.max_files, settings.max_upload_bytes, allow_raw=False)
    predictions = await predictor.predict_uploads(uploads, options)
    note_for_access_log(request, predictions)
    return Response(_RESULTS.dump_json([p.result for p in predictions]), media_type=_JSON)


@router.get("/healthz", response_model=Status, tags=["ops"], summary="The process is alive")
async def healthz() -> Status:
    return Status(status="ok")


@router.get(
    "/readyz",
    response_model=Status,
    responses={503: {"model": ErrorResponse, "description": "Not ready (starting, warming up, draining)."}},
    tags=["ops"],
    summary="The model is loaded and warmed up",
)
async def readyz(request: Request) -> Status:
    readiness = request.app.state.readiness
    if not readiness.ready:
        raise NotReadyError(readiness.state.value)
    return Status(status="ready")


@router.get(
    "/model",
    response_model=ModelDescription,
    responses={503: {"model": ErrorResponse}},
    tags=["ops"],
    summary="The served model",
)
async def model(request: Request) -> ModelDescription:
    engine = request.app.state.engine
    if engine is None:
        raise ApiError(503, "not_ready", "the model is not loaded yet")
    info = engine.info
    meta = info.metadata
    return ModelDescription(
        name=info.name,
        version=info.version,
        keypoint_names=list(meta.keypoint_names),
        skeleton=list(meta.skeleton),
        flip_pairs=list(meta.flip_pairs),
        input_size=meta.input_size,
        heatmap_stride=meta.heatmap_stride,
        heatmap_size=meta.heatmap_size,
        providers=list(info.providers),
        architecture=meta.architecture,
        provenance=meta.provenance,
    )


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    content, content_type = request.app.state.metrics.exposition()
    return Response(content, media_type=content_type)
