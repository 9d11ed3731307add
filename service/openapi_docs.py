"""OpenAPI fragments shared by the prediction routes (:mod:`service.routes`, :mod:`service.pages`)."""

from __future__ import annotations

from typing import Any

from service.schemas import ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Not an image, corrupt or truncated image, empty body.",
        413: "Upload, pixel count or number of files over the limit.",
        415: "Unsupported content type or image format.",
        422: "Missing file field or invalid query parameter.",
        503: "Model not loaded and warmed up yet, or shutting down.",
    }.items()
}
"""The error answers of every prediction route, each with the service's JSON error body."""

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
