"""OpenAPI fragments shared by the prediction routes (:mod:`service.http.routes`, :mod:`service.http.pages`)."""

from __future__ import annotations

from typing import Any

from service.http.errors import ERROR_CODES, error_body
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

ROUTING_STATUSES = frozenset({404, 405})  # answered by the router for any path, not by a prediction route


def _error_responses() -> dict[int | str, dict[str, Any]]:
    by_status: dict[int, list[Any]] = {}
    for error in ERROR_CODES.values():
        if error.status not in ROUTING_STATUSES:
            by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "model": ErrorResponse,
            "description": " ".join(f"`{e.code}`: {e.meaning}" for e in errors),
            "headers": RESPONSE_HEADERS,
            "content": {
                "application/json": {
                    "examples": {e.code: {"summary": e.meaning, "value": error_body(e.code, e.meaning)} for e in errors}
                }
            },
        }
        for status, errors in sorted(by_status.items())
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = _error_responses()
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
