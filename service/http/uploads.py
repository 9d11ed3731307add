"""Request body -> uploaded files, with the size limit enforced while the body streams in.

``POST /predict`` takes multipart field ``file`` or a raw ``image/*`` (or
``application/octet-stream``) body; ``POST /predict/batch`` takes multipart ``files``.
A declared ``Content-Length`` over the limit is refused before reading anything; otherwise
reading stops with a 413 as soon as the running total passes the limit. A body slower than its
:class:`UploadPace` (after a grace period, on average) is cut off with a 408, freeing the request's slot.

Uploads stay in memory, never in a temporary file (a container's ``/tmp`` is a small tmpfs, or
read-only): a multipart body is capped at :func:`multipart_limit` bytes, so the parser's spool size
is set to that cap. Peak upload memory per request, while the files are copied out of the parser,
is the body plus one file: about ``(max_files + 1) * max_bytes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from service.http.errors import ApiError
from service.imaging.decode import HEADER_PREFIX_BYTES, check_header
from service.inference.pipeline import Upload

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers on top of the file bytes
MAX_FORM_FIELDS = 32
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class UploadPace:
    """The slowest body the service waits for: ``grace_s`` for free, then ``min_bytes_per_s`` on average
    (0: no minimum). A client trickling a byte every few seconds holds a prediction slot for the grace
    period, not for the whole request timeout."""

    min_bytes_per_s: float = 4096.0
    grace_s: float = 5.0

    def next_deadline(self, start: float, received: int) -> float | None:
        """By when (monotonic seconds) more bytes must arrive, having ``received`` since ``start``."""
        if self.min_bytes_per_s <= 0:
            return None
        return start + self.grace_s + received / self.min_bytes_per_s


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"the upload exceeds the limit of {limit} bytes")


async def _limited(request: Request, limit: int, pace: UploadPace) -> AsyncIterator[bytes]:
    """The body chunks, raising 413 once more than ``limit`` bytes arrived and 408 when they come too slowly."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    total, start = 0, time.monotonic()
    chunks = request.stream().__aiter__()
    while True:
        deadline = pace.next_deadline(start, total)
        try:
            if deadline is None:
                chunk = await anext(chunks)
            else:
                chunk = await asyncio.wait_for(anext(chunks), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                "upload_too_slow",
                f"the upload arrived slower than {pace.min_bytes_per_s:g} bytes/s ({total} bytes in "
                f"{time.monotonic() - start:.1f} s)",
            ) from None
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        yield chunk


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_uploads(
    request: Request,
    field: str,
    max_files: int,
    max_bytes: int,
    allow_raw: bool,
    pace: UploadPace = UploadPace(),  # noqa: B008 - frozen, shared safely
) -> list[Upload]:
    """The uploaded files of ``field`` (at most ``max_files``, each at most ``max_bytes``)."""
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        return await _read_multipart(request, field, max_files, max_bytes, pace)
    if allow_raw and media_type.startswith(RAW_TYPES):
        data = await _read_raw(request, max_bytes, pace)
        if not data:
            raise ApiError("empty_body", "the request body is empty; send the image bytes")
        return [Upload(data, media_type)]
    if not media_type:
        body = b"".join([chunk async for chunk in _limited(request, max_bytes, pace)])
        if not body:
            raise ApiError("missing_file", _how_to_send(field, allow_raw))
        raise ApiError("unsupported_media_type", "the request has no Content-Type; " + _how_to_send(field, allow_raw))
    raise ApiError("unsupported_media_type", f"cannot read a {media_type!r} body; " + _how_to_send(field, allow_raw))


async def _read_raw(request: Request, max_bytes: int, pace: UploadPace) -> bytes:
    """A raw body; its first :data:`HEADER_PREFIX_BYTES` are checked as they arrive, so a header bomb is refused
    (TooComplex) before the megabytes behind it are read (the connection then drops them)."""
    chunks, received, checked = [], 0, False
    async for chunk in _limited(request, max_bytes, pace):
        chunks.append(chunk)
        received += len(chunk)
        if not checked and received >= HEADER_PREFIX_BYTES:
            check_header(b"".join(chunks))
            checked = True
    return b"".join(chunks)


def multipart_limit(max_files: int, max_bytes: int) -> int:
    """The most bytes a multipart body may have: the files plus the boundaries and part headers."""
    return max_bytes * max_files + MULTIPART_OVERHEAD


async def _read_multipart(
    request: Request, field: str, max_files: int, max_bytes: int, pace: UploadPace
) -> list[Upload]:
    limit = multipart_limit(max_files, max_bytes)
    body = _limited(request, limit, pace)
    parser = MultiPartParser(
        request.headers, body, max_files=max_files, max_fields=MAX_FORM_FIELDS, max_part_size=65536
    )
    # No file can outgrow the whole body, so none rolls over from memory to a temporary file on disk.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise ApiError("too_many_files", f"at most {max_files} file(s) per request") from exc
        if exc.message.startswith(("Part exceeded", "Too many fields")):
            raise ApiError("payload_too_large", exc.message) from exc
        raise ApiError("invalid_multipart", f"malformed multipart body: {exc.message}") from exc
    try:
        items = form.getlist(field)
        if not items:
            raise ApiError("missing_file", f"multipart field {field!r} is missing; " + _how_to_send(field, False))
        uploads = []
        for item in items:
            if not isinstance(item, UploadFile):
                raise ApiError("missing_file", f"multipart field {field!r} must be a file upload (with a filename)")
            data = await item.read()
            await item.close()  # free the parser's copy at once: peak is the body plus one file
            if len(data) > max_bytes:
                raise _too_large(max_bytes)
            if not data:
                raise ApiError("empty_image", f"the uploaded file {item.filename!r} is empty (0 bytes)")
            uploads.append(Upload(data, item.content_type, item.filename))
        return uploads
    finally:
        await form.close()


def _how_to_send(field: str, allow_raw: bool) -> str:
    raw = " or the raw image bytes with an image/* Content-Type" if allow_raw else ""
    return f"send multipart/form-data with the image in field {field!r}{raw}"
