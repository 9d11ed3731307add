"""The request's context: its id, one JSON access-log line, the ``Server-Timing`` header and the last-resort 500.

Routes note what the access-log line and ``Server-Timing`` report on the request's :class:`RequestRecord`
(:func:`request_record`), a typed object the middleware creates for every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.middleware.responses import header, send_json_error

REQUEST_ID_HEADER = "x-request-id"
SERVER_TIMING_HEADER = "server-timing"
_OWN_HEADERS = (REQUEST_ID_HEADER.encode(), SERVER_TIMING_HEADER.encode())  # replaced on every answer
_RECORD = "record"  # the one key in the ASGI scope's state: request.state.record

CLIENT_CLOSED_REQUEST = 499  # logged status of a request whose client disconnected (nginx's convention)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_MAX_LOGGED_PATH = 256


@dataclass(frozen=True)
class ImageSummary:
    """The uploaded images of a prediction: the first one's size, and how many there were."""

    width: int
    height: int
    count: int = 1


@dataclass
class RequestRecord:
    """What one request's access-log line and ``Server-Timing`` header report beyond the HTTP basics."""

    request_id: str
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds, in the order noted
    image: ImageSummary | None = None


def request_record(request: Request) -> RequestRecord:
    """The record :class:`RequestContext` made for ``request`` (one for a request that bypassed it)."""
    state = request.scope.setdefault("state", {})
    record = state.get(_RECORD)
    if not isinstance(record, RequestRecord):
        record = state[_RECORD] = RequestRecord(uuid.uuid4().hex)
    return record


def access_logger() -> logging.Logger:
    """The ``service.access`` logger, writing bare JSON lines to stderr unless something configured it."""
    logger = logging.getLogger("service.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _sane_request_id(raw: bytes | None) -> str:
    if raw:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _SANE_REQUEST_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestContext:
    """Request id (echoed when sane, else generated), one JSON log line per request, JSON 500 on crashes.

    An exception escaping the app (an ONNX Runtime failure, a bug) becomes a 500 JSON error carrying the
    request id, logged with its traceback; the next request is unaffected. A request cancelled by the
    server's graceful-shutdown timeout gets a 503 with ``Retry-After``.
    """

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or access_logger()
        self.errors = logging.getLogger("service.http.errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _sane_request_id(header(scope, REQUEST_ID_HEADER.encode()))
        record = RequestRecord(request_id)
        scope.setdefault("state", {})[_RECORD] = record
        started = time.perf_counter()
        status = 0
        received = 0
        error_code: str | None = None  # the code of an error answer, for the log line

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, error_code
            if message["type"] == "http.response.body" and status >= 400 and error_code is None:
                error_code = _error_code(message.get("body", b""))
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OWN_HEADERS]
                headers.append((_OWN_HEADERS[0], request_id.encode()))
                headers.append((_OWN_HEADERS[1], server_timing(record, started).encode()))
                message = {**message, "headers": headers}
            await send(message)

        failure: str | None = None
        try:
            await self.app(scope, counting_receive, tagged_send)
        except asyncio.CancelledError:
            # uvicorn cancels requests still running when the graceful-shutdown timeout ends: tell the client
            # to retry elsewhere instead of a bare 500; the task ends here, so the cancellation is complete
            failure = "CancelledError"
            if status == 0:
                await send_json_error(
                    tagged_send, "shutting_down", "the server shut down before the request finished; retry"
                )
            else:
                status = 503
        except ClientDisconnect:  # the client went away mid-upload: nobody to answer, nothing to fix
            failure = "ClientDisconnect"
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:  # noqa: BLE001 - last line of defence: never a bare traceback to the client
            failure = type(exc).__name__
            self.errors.exception("unhandled error in request %s", request_id)
            if status == 0:
                await send_json_error(tagged_send, "internal_error", f"internal server error (request id {request_id})")
            else:
                status = 500
        finally:
            self._log(scope, record, status, started, received, failure, error_code)

    def _log(
        self,
        scope: Scope,
        record: RequestRecord,
        status: int,
        started: float,
        received: int,
        failure: str | None,
        error_code: str | None = None,
    ) -> None:
        line: dict[str, Any] = {
            "event": "request",
            "request_id": record.request_id,
            "method": scope.get("method"),
            "path": scope.get("path", "")[:_MAX_LOGGED_PATH],
            "status": status or None,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
            "request_bytes": received,
        }
        client = scope.get("client")
        if client:
            line["client"] = client[0]
        if record.timings_ms:
            line["timings_ms"] = {name: round(ms, 3) for name, ms in record.timings_ms.items()}
        if record.image is not None:
            line["image"] = {"width": record.image.width, "height": record.image.height, "count": record.image.count}
        if error_code:
            line["code"] = error_code
        if failure:
            line["error"] = failure
        self.logger.info(json.dumps(line, separators=(",", ":")))


_MAX_ERROR_BODY = 4096  # error bodies are a code and a sentence; anything longer is not one of ours


def _error_code(body: bytes) -> str | None:
    """The ``error.code`` of one of the service's JSON error bodies, else None."""
    if len(body) > _MAX_ERROR_BODY or not body.startswith(b'{"error"'):
        return None
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def server_timing(record: RequestRecord, started: float) -> str:
    """``Server-Timing`` value: each stage the route noted, then ``app``, the time from the request entering
    the middleware to its answer starting (so ``app`` minus the stages is routing, upload parsing, thread hops
    and serialisation, and a client's latency minus ``app`` is the network and the HTTP server)."""
    metrics = [f"{name};dur={ms:.3f}" for name, ms in record.timings_ms.items()]
    metrics.append(f"app;dur={(time.perf_counter() - started) * 1000.0:.3f}")
    return ", ".join(metrics)
