"""HTTP endpoints: thin wrappers around :class:`service.inference.pipeline.Pipeline`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter

from pose.codec import Refine
from pose.geometry import MAX_BBOX_FACTOR, ResizeMode, parse_bbox
from service.http.dependencies import EngineDep, PipelineDep, Services, ServicesDep, known_query_only
from service.http.errors import ApiError
from service.http.middleware import ImageSummary, request_record
from service.http.openapi import MANY_IMAGES_BODY, ONE_IMAGE_BODY, prediction_responses
from service.http.schemas import EngineDescription, ErrorResponse, ModelDescription, ModelRef, PoseResult, Status
from service.http.uploads import read_uploads
from service.inference.pipeline import Pipeline, Prediction, PredictOptions, Upload
from service.inference.readiness import NotReady
from service.settings import DEFAULT_MAX_PEOPLE

router = APIRouter(dependencies=[Depends(known_query_only)])  # unknown query parameters: 422

_JSON = "application/json"
_RESULTS = TypeAdapter(list[PoseResult])


async def predict_options(
    request: Request,
    services: ServicesDep,
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
            examples=["256,17,238,343"],
        ),
    ] = None,
    max_people: Annotated[
        int | None,
        Query(
            ge=1,
            description="Most people answered per image, the most prominent first (1 .. `POSE_MAX_PEOPLE`; default "
            f"`POSE_MAX_PEOPLE`, {DEFAULT_MAX_PEOPLE}). Ignored with `bbox`, which answers exactly that one person.",
        ),
    ] = None,
) -> PredictOptions:
    """Query parameters shared by every prediction route (``async``: FastAPI would run a plain ``def``
    dependency in a worker thread, one more thread hop per request)."""
    cap = services.settings.max_people
    boxes = request.query_params.getlist("bbox")
    if len(boxes) == 4:  # a list from a client that repeats the parameter (httpx, requests: params={"bbox": [...]})
        bbox = ",".join(boxes)
    elif len(boxes) > 1:
        raise ApiError("invalid_request", f"bbox: give it once, as x,y,w,h (got {len(boxes)} values)")
    if len(request.query_params.getlist("max_people")) > 1:
        raise ApiError("invalid_request", "max_people: give it once")
    if max_people is not None and max_people > cap:
        raise ApiError("invalid_request", f"max_people: at most {cap} (POSE_MAX_PEOPLE), got {max_people}")
    return PredictOptions(resize=resize, refine=refine, flip=flip, bbox=parse_bbox(bbox), max_people=max_people)


Options = Annotated[PredictOptions, Depends(predict_options)]


async def predict_and_note(
    request: Request,
    services: Services,
    pipeline: Pipeline,
    uploads: Sequence[Upload],
    options: PredictOptions,
    keep_images: bool = False,
) -> list[Prediction]:
    """Run the uploads through the pipeline; record the stage times in the metrics and the access log."""
    predictions = await pipeline.predict_uploads(uploads, options, keep_images)
    timings = [p.timings for p in predictions]
    services.metrics.observe_stages(timings)
    services.metrics.people.observe(sum(len(p.people) for p in predictions))
    batch = timings[0]  # the stages after decoding ran once for the whole batch
    stages = {
        "decode": sum(t.decode for t in timings),
        "detect": sum(t.detect for t in timings),
        "preprocess": batch.preprocess,
        "inference": batch.inference,
        "postprocess": batch.postprocess,
    }
    width, height = predictions[0].size
    record = request_record(request)
    record.timings_ms = stages
    record.image = ImageSummary(width, height, len(predictions))
    return predictions


def results(pipeline: Pipeline, predictions: Sequence[Prediction]) -> list[PoseResult]:
    """The response bodies."""
    info = pipeline.info
    model = ModelRef(name=info.name, version=info.version)
    return [PoseResult.from_prediction(p, pipeline.layout.names, model) for p in predictions]


@router.post(
    "/predict",
    response_model=PoseResult,
    responses=prediction_responses(),
    openapi_extra=ONE_IMAGE_BODY,
    summary="Keypoints of the person in one image",
    tags=["predict"],
)
async def predict(request: Request, options: Options, services: ServicesDep, pipeline: PipelineDep) -> Response:
    """One image as multipart field `file` or as the raw body (`Content-Type: image/...`)."""
    settings = services.settings
    uploads = await read_uploads(request, "file", 1, settings.max_upload_bytes, True, services.upload_pace)
    predictions = await predict_and_note(request, services, pipeline, uploads, options)
    [result] = results(pipeline, predictions)
    return Response(result.model_dump_json(), media_type=_JSON)


@router.post(
    "/predict/batch",
    response_model=list[PoseResult],
    responses=prediction_responses(),
    openapi_extra=MANY_IMAGES_BODY,
    summary="Keypoints for several images in one model call",
    tags=["predict"],
)
async def predict_batch(request: Request, options: Options, services: ServicesDep, pipeline: PipelineDep) -> Response:
    """Several images as multipart fields `files` (at most `POSE_MAX_FILES`); results in the same order. The query
    parameters apply to every image (one `bbox` is the person box of each). A file that cannot be read fails the
    request, and the error names it: `file 1 ('b.jpg'): ...`."""
    settings = services.settings
    uploads = await read_uploads(
        request, "files", settings.max_files, settings.max_upload_bytes, False, services.upload_pace
    )
    predictions = await predict_and_note(request, services, pipeline, uploads, options)
    return Response(_RESULTS.dump_json(results(pipeline, predictions)), media_type=_JSON)


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
async def readyz(services: ServicesDep) -> Status:
    readiness = services.readiness
    if not readiness.ready:
        raise NotReady(readiness.state)
    return Status(status="ready")


@router.get(
    "/model",
    response_model=ModelDescription,
    responses={503: {"model": ErrorResponse}},
    tags=["ops"],
    summary="The served model",
)
async def model(engine: EngineDep, services: ServicesDep) -> ModelDescription:
    info = engine.info
    detector = services.detector
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
        engine=EngineDescription(**info.runtime.describe()),
        architecture=meta.architecture,
        provenance=meta.provenance,
        detector=None if detector is None else detector.info.describe(),
    )


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    content, content_type = services.metrics.exposition()
    return Response(content, media_type=content_type)
