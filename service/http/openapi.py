"""OpenAPI fragments shared by the prediction routes (:mod:`service.http.routes`, :mod:`service.http.pages`)."""

from __future__ import annotations

from typing import Any

from service.http.schemas import ErrorResponse

RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` when it is a sane token, else a new one.",
        "schema": {"type": "string"},
    },
    "Server-Timing": {
        "description": "W3C Server Timing: each stage the service ran (`decode`, `preprocess`, `inference`, "
        "`postprocess`, ms) and `app`, the whole time in the app until the answer started.",
        "schema": {"type": "string"},
        "example": "decode;dur=1.210, preprocess;dur=0.905, inference;dur=31.720, postprocess;dur=0.301, app;dur=35.4",
    },
}
"""Headers on every answer (set by :class:`service.http.middleware.context.RequestContext`)."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text, "headers": RESPONSE_HEADERS}
    for status, text in {
        400: "Not an image, corrupt or truncated image, empty body.",
        413: "Upload, pixel count, decode memory or number of files over the limit.",
        415: "Unsupported content type or image format.",
        422: "Missing file field, invalid query parameter, or an image far too costly to decode for its size.",
        503: "Model not loaded and warmed up yet, overloaded, or shutting down (with `Retry-After`).",
    }.items()
}
"""The error answers of every prediction route, each with the service's JSON error body."""


def prediction_responses(ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a prediction route: its 200 (``ok``: description, content) and the errors, all with
    :data:`RESPONSE_HEADERS`."""
    return {200: {**(ok or {}), "headers": RESPONSE_HEADERS}, **ERROR_RESPONSES}


_BINARY = {"type": "string", "format": "binary"}

ONE_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": {"file": _BINARY}}
            },
            "image/*": {"schema": _BINARY},
        },
    }
}
"""Request body of a one-image route: multipart field ``file`` or the raw ``image/*`` bytes."""

MANY_IMAGES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {"files": {"type": "array", "items": _BINARY}},
                }
            }
        },
    }
}
"""Request body of the batch route: multipart fields ``files``."""
