"""The one table of error answers (:data:`ERROR_CODES`: code, status, meaning), and the body every one uses.

Every refusal the service makes, wherever it is made (a route, a middleware, the connection layer), names a code
of this table and takes its status from it; the README's error table and the OpenAPI examples of each status are
generated from it. Domain code raises :class:`~pose.errors.PoseError` subclasses and knows no status codes;
:data:`DOMAIN_ERRORS` gives each its code. :class:`ApiError` is for the refusals only the HTTP layer can make (the
request body itself: size, multipart shape; the query).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ErrorCode:
    """One kind of error answer: its machine-readable code, HTTP status and what it means for the client."""

    code: str
    status: int
    meaning: str


ERROR_CODES: dict[str, ErrorCode] = {
    e.code: e
    for e in (
        ErrorCode("empty_body", 400, "The request body is empty: send the image bytes."),
        ErrorCode("empty_image", 400, "An uploaded file has no bytes."),
        ErrorCode("invalid_image", 400, "Not a readable image, or its header or data are corrupt or truncated."),
        ErrorCode("invalid_multipart", 400, "The multipart body is malformed."),
        ErrorCode("unauthorized", 401, "`POSE_API_KEY` is set and the request has no key or a wrong one."),
        ErrorCode("not_found", 404, "No such path."),
        ErrorCode("method_not_allowed", 405, "The path exists; the method does not (`Allow` lists those that do)."),
        ErrorCode("request_timeout", 408, "The request head did not arrive within `POSE_HEADER_TIMEOUT_S`."),
        ErrorCode("upload_too_slow", 408, "The upload arrived slower than `POSE_MIN_UPLOAD_RATE`."),
        ErrorCode("payload_too_large", 413, "An upload is larger than `POSE_MAX_UPLOAD_BYTES`."),
        ErrorCode("too_many_files", 413, "More files in one batch than `POSE_MAX_FILES`."),
        ErrorCode("too_many_pixels", 413, "More pixels than `POSE_MAX_PIXELS` (read from the header)."),
        ErrorCode("image_too_large", 413, "Decoding it alone needs more memory than `POSE_DECODE_MEMORY_MB`."),
        ErrorCode("unsupported_media_type", 415, "Not a JPEG, PNG, WebP, BMP, TIFF or GIF, or no content type."),
        ErrorCode("missing_file", 422, "The multipart field `file` (`files` for a batch) is missing."),
        ErrorCode("invalid_request", 422, "A query parameter is unknown, malformed or out of range."),
        ErrorCode("invalid_bbox", 422, "The person box is malformed, empty, or outside the image."),
        ErrorCode("invalid_resize", 422, "Unknown `resize` mode."),
        ErrorCode(
            "image_too_complex",
            422,
            "Its header repeats structure far more than real images do, or decoding it ran past "
            "`POSE_DECODE_TIMEOUT_S`.",
        ),
        ErrorCode("request_header_fields_too_large", 431, "The request head is over `POSE_MAX_HEADER_BYTES`."),
        ErrorCode("internal_error", 500, "A fault of the service; the message carries the request id of its log line."),
        ErrorCode("not_ready", 503, "The model is still loading or warming up."),
        ErrorCode("overloaded", 503, "Every slot and queue place is taken, or the decode memory is in use."),
        ErrorCode("decoder_restarted", 503, "The image decoder's worker process failed and was replaced."),
        ErrorCode("shutting_down", 503, "The service is stopping (SIGTERM): retry elsewhere."),
        ErrorCode("too_many_connections", 503, "Every connection the service allows is open."),
        ErrorCode("timeout", 504, "The request took longer than `POSE_REQUEST_TIMEOUT_S`."),
    )
}
"""Every error answer of the service, by code. 503s carry ``Retry-After``; retrying helps there and nowhere else."""


def error_status(code: str) -> int:
    """The HTTP status of ``code`` (KeyError for a code missing from :data:`ERROR_CODES`: a bug)."""
    return ERROR_CODES[code].status


# the code of each domain error; looked up along the exception's class hierarchy
DOMAIN_ERRORS: dict[type[PoseError], str] = {
    EmptyImage: "empty_image",
    InvalidImage: "invalid_image",
    TooManyPixels: "too_many_pixels",
    DecodeTooLarge: "image_too_large",
    UnsupportedImage: "unsupported_media_type",
    TooComplex: "image_too_complex",
    DecodeStopped: "image_too_complex",
    InvalidBox: "invalid_bbox",
    InvalidResizeMode: "invalid_resize",
    NotReady: "not_ready",
    Overloaded: "overloaded",
    DecodeBusy: "overloaded",
    WorkerLost: "decoder_restarted",
    ShuttingDown: "shutting_down",
}


class ApiError(Exception):
    """A refusal the HTTP layer makes: a code of :data:`ERROR_CODES` (which gives the status) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.status = error_status(code)
        self.code = code
        self.message = message

    @classmethod
    def from_domain(cls, error: PoseError) -> ApiError:
        """The answer for a domain error (a 500 ``internal_error`` for one missing from the table)."""
        for kind in type(error).__mro__:
            if kind in DOMAIN_ERRORS:
                return cls(DOMAIN_ERRORS[kind], error.message)
        return cls("internal_error", "internal server error")

    def body(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, self.message)


def error_table() -> str:
    """The README's error table (Markdown), from :data:`ERROR_CODES`."""
    rows = ["| status | code | meaning |", "| --- | --- | --- |"]
    rows += [f"| {e.status} | `{e.code}` | {e.meaning} |" for e in sorted(ERROR_CODES.values(), key=lambda e: e.status)]
    return "\n".join(rows)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


RETRY_AFTER_S = 1  # every 503 (not ready, overloaded, shutting down, too many connections) is temporary


def error_headers(status: int) -> list[tuple[bytes, bytes]]:
    """The headers an error answer of ``status`` carries beyond its JSON body: ``Retry-After`` on every 503."""
    return [(b"retry-after", str(RETRY_AFTER_S).encode())] if status == 503 else []
