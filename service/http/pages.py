"""The demo page (``GET /``) and the skeleton overlay (``POST /predict/render``).

``/predict/render`` reads the upload and predicts exactly as ``/predict`` does (same query parameters,
limits, errors and pipeline call), then draws the keypoints with :mod:`service.imaging.overlay`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from service.http.csp import inline_hashes, policy
from service.http.dependencies import PipelineDep, ServicesDep, known_query_only
from service.http.openapi import ONE_IMAGE_BODY, prediction_responses
from service.http.routes import Options, predict_and_note
from service.http.uploads import read_uploads
from service.imaging.overlay import (
    DEFAULT_MAX_SIDE,
    DEFAULT_THRESHOLD,
    MEDIA_TYPES,
    OutputFormat,
    encode,
    overlay_picture,
)
from service.inference.pipeline import people_marks

router = APIRouter(dependencies=[Depends(known_query_only)])  # unknown query parameters: 422

INDEX_HTML = Path(__file__).resolve().parent / "static" / "index.html"
_PICTURE = {
    "description": "The image (EXIF-oriented, at most `max_side` pixels) with the skeleton drawn over it.",
    "content": {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in MEDIA_TYPES.values()},
}


@cache
def index_html() -> str:
    return INDEX_HTML.read_text(encoding="utf-8")


@cache
def page_headers() -> dict[str, str]:
    """The demo page runs only its own inline script and style (by hash), talks only to this origin,
    and may not be framed."""
    html = index_html()
    return {
        "Content-Security-Policy": policy(
            script_src=" ".join(inline_hashes(html, "script")),
            style_src=" ".join(inline_hashes(html, "style")),
            img_src="'self' blob: data:",
            connect_src="'self'",
            form_action="'none'",
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@router.get("/", response_class=HTMLResponse, tags=["demo"], summary="Demo page: upload an image, see the pose")
async def index() -> HTMLResponse:
    """A self-contained page (no external resources) that calls `/predict` and draws the result."""
    return HTMLResponse(index_html(), headers=page_headers())


@router.post(
    "/predict/render",
    response_class=Response,
    responses=prediction_responses(_PICTURE),
    openapi_extra=ONE_IMAGE_BODY,
    summary="The image with the predicted skeleton drawn over it",
    tags=["predict"],
)
async def predict_render(
    request: Request,
    options: Options,
    services: ServicesDep,
    pipeline: PipelineDep,
    max_side: Annotated[
        int, Query(ge=16, le=4096, description="Longest side of the returned picture; larger images are shrunk.")
    ] = DEFAULT_MAX_SIDE,
    threshold: Annotated[
        float, Query(ge=0.0, le=1.0, description="Joints scoring lower (and their limbs) are drawn faded.")
    ] = DEFAULT_THRESHOLD,
    picture_format: Annotated[OutputFormat, Query(alias="format", description="Picture format.")] = "png",
) -> Response:
    """Same input as `/predict` (multipart field `file` or raw `image/*` body): every person's box and skeleton,
    limbs coloured by body side (left blue, right orange, centre green)."""
    settings = services.settings
    uploads = await read_uploads(request, "file", 1, settings.max_upload_bytes, True, services.upload_pace)
    [prediction] = await predict_and_note(request, services, pipeline, uploads, options, keep_images=True)
    upload = uploads[0]
    reread = pipeline.rereader(upload)

    def draw() -> bytes:
        p = prediction
        try:
            picture = overlay_picture(p.decoded(), people_marks(p), pipeline.layout, reread, threshold, max_side)
        finally:
            p.decoded().release()
        return encode(picture, picture_format)

    body = await anyio.to_thread.run_sync(draw)
    return Response(body, media_type=MEDIA_TYPES[picture_format], headers={"Cache-Control": "no-store"})
