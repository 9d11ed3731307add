"""The one table from refusals to HTTP answers, and the error body every answer uses.

Domain code raises :class:`~pose.errors.PoseError` subclasses and knows no status codes;
:data:`DOMAIN_ERRORS` gives each its status and machine-readable code. :class:`ApiError` is for the
refusals only the HTTP layer can make (the request body itself: size, multipart shape).
"""

from __future__ import annotations

from pose.errors import InvalidBox, InvalidResizeMode, PoseError
from service.imaging.decode import (
    DecodeBusy,
    DecodeStopped,
    DecodeTooLarge,
    EmptyImage,
    InvalidImage,
    TooComplex,
    TooManyPixels,
    UnsupportedImage,
    WorkerLost,
)
from service.inference.batching import Overloaded, ShuttingDown
from service.inference.readiness import NotReady

# status, code; looked up along the exception's class hierarchy
DOMAIN_ERRORS: dict[type[PoseError], tuple[int, str]] = {
    EmptyImage: (400, "empty_image"),
    InvalidImage: (400, "invalid_image"),
    TooManyPixels: (413, "too_many_pixels"),
    DecodeTooLarge: (413, "image_too_large"),
    UnsupportedImage: (415, "unsupported_media_type"),
    TooComplex: (422, "image_too_complex"),
    DecodeStopped: (422, "image_too_complex"),
    InvalidBox: (422, "invalid_bbox"),
    InvalidResizeMode: (422, "invalid_resize"),
    NotReady: (503, "not_ready"),
    Overloaded: (503, "overloaded"),
    DecodeBusy: (503, "overloaded"),
    WorkerLost: (503, "decoder_restarted"),
    ShuttingDown: (503, "shutting_down"),
}


class ApiError(Exception):
    """A request the HTTP layer refuses: HTTP status, machine-readable code, human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_domain(cls, error: PoseError) -> ApiError:
        """The answer for a domain error (a 500 ``internal_error`` for one missing from the table)."""
        for kind in type(error).__mro__:
            if kind in DOMAIN_ERRORS:
                status, code = DOMAIN_ERRORS[kind]
                return cls(status, code, error.message)
        return cls(500, "internal_error", "internal server error")

    def body(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


RETRY_AFTER_S = 1  # every 503 (not ready, overloaded, shutting down, too many connections) is temporary


def error_headers(status: int) -> list[tuple[bytes, bytes]]:
    """The headers an error answer of ``status`` carries beyond its JSON body: ``Retry-After`` on every 503."""
    return [(b"retry-after", str(RETRY_AFTER_S).encode())] if status == 503 else []
