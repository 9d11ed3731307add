"""Pure ASGI middlewares that keep the service answering: request ids and access logs, the API key,
back-pressure with a per-request deadline.

Order, outermost first (``service.http.app.create_app``)::

    RequestContext -> MetricsMiddleware -> ApiKey -> Backpressure -> app

so that every answer, including the 401/503/504 ones produced here, carries an ``X-Request-ID`` header
and gets exactly one JSON access-log line. Routes may put ``timings_ms`` (dict of stage -> ms) and
``image`` (``{"width", "height"}``) into ``request.state``; they appear in that line and, with the time
the app took until it answered, in a W3C ``Server-Timing`` header. Nothing else from the request is
logged: no body, no query string, no headers (so no key).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.docs import DOC_PATHS
from service.http.errors import error_body

REQUEST_ID_HEADER = "x-request-id"
SERVER_TIMING_HEADER = "server-timing"
_OWN_HEADERS = (REQUEST_ID_HEADER.encode(), SERVER_TIMING_HEADER.encode())  # replaced on every answer
STATE_REQUEST_ID = "request_id"  # request.state.request_id
STATE_TIMINGS = "timings_ms"  # request.state.timings_ms: {stage: milliseconds}
STATE_IMAGE = "image"  # request.state.image: {"width": int, "height": int, "count": int}

# Reachable without the API key (exact paths). "/" is the static demo page: it holds no data, asks for the
# key itself and sends it as X-API-Key with every call it makes.
OPEN_PATHS: frozenset[str] = frozenset({"/", "/healthz", "/readyz", "/openapi.json", *DOC_PATHS})
PREDICTION_PATH_PREFIX = "/predict"
DRAIN_POLL_S = 0.05  # how often a request waiting for a slot checks whether the service is draining

CLIENT_CLOSED_REQUEST = 499  # logged status of a request whose client disconnected (nginx's convention)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_MAX_LOGGED_PATH = 256


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


async def send_json_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with a complete JSON error response in the service's error shape."""
    body = json.dumps(error_body(code, message)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


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
        request_id = _sane_request_id(_header(scope, REQUEST_ID_HEADER.encode()))
        state = scope.setdefault("state", {})
        state[STATE_REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 0
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OWN_HEADERS]
                headers.append((_OWN_HEADERS[0], request_id.encode()))
                headers.append((_OWN_HEADERS[1], server_timing(state, started).encode()))
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
                    tagged_send,
                    503,
                    "shutting_down",
                    "the server shut down before the request finished; retry",
                    headers=[(b"retry-after", b"1")],
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
                await send_json_error(
                    tagged_send, 500, "internal_error", f"internal server error (request id {request_id})"
                )
            else:
                status = 500
        finally:
            self._log(scope, state, request_id, status, started, received, failure)

    def _log(
        self,
        scope: Scope,
        state: dict[str, Any],
        request_id: str,
        status: int,
        started: float,
        received: int,
        failure: str | None,
    ) -> None:
        line: dict[str, Any] = {
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": scope.get("path", "")[:_MAX_LOGGED_PATH],
            "status": status or None,
            "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
            "request_bytes": received,
        }
        client = scope.get("client")
        if client:
            line["client"] = client[0]
        timings = state.get(STATE_TIMINGS)
        if isinstance(timings, dict):
            line["timings_ms"] = {str(k): round(float(v), 3) for k, v in timings.items() if _is_number(v)}
        image = state.get(STATE_IMAGE)
        if isinstance(image, dict):
            line["image"] = {k: image[k] for k in ("width", "height", "count") if _is_number(image.get(k))}
        if failure:
            line["error"] = failure
        self.logger.info(json.dumps(line, separators=(",", ":")))


def server_timing(state: dict[str, Any], started: float) -> str:
    """``Server-Timing`` value: each stage the route reported, then ``app``, the time from the request entering
    the middleware to its answer starting (so ``app`` minus the stages is routing, upload parsing, thread hops
    and serialisation, and a client's latency minus ``app`` is the network and the HTTP server)."""
    metrics = []
    timings = state.get(STATE_TIMINGS)
    if isinstance(timings, dict):
        metrics = [f"{name};dur={float(ms):.3f}" for name, ms in timings.items() if _is_number(ms)]
    metrics.append(f"app;dur={(time.perf_counter() - started) * 1000.0:.3f}")
    return ", ".join(metrics)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ApiKey:
    """When a key is configured, every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer KEY``
    or ``X-API-Key: KEY`` (constant-time comparison); otherwise 401. The key is never echoed or logged."""

    def __init__(self, app: ASGIApp, key: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        if not key:
            raise ValueError("the API key must not be empty")
        self.app = app
        self._key = key.encode()
        self.open_paths = frozenset(open_paths)

    def _presented(self, scope: Scope) -> list[bytes]:
        found = []
        auth = _header(scope, b"authorization")
        if auth is not None:
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() == b"bearer":
                found.append(token.strip())
        api_key = _header(scope, b"x-api-key")
        if api_key is not None:
            found.append(api_key.strip())
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        # compare every presented value, so timing does not tell which header was checked
        ok = False
        for value in presented:
            ok |= hmac.compare_digest(value, self._key)
        if ok:
            await self.app(scope, receive, send)
            return
        message = "invalid API key" if presented else "missing API key (Authorization: Bearer <key>, or X-API-Key)"
        await send_json_error(
            send, 401, "unauthorized", message, headers=[(b"www-authenticate", b'Bearer realm="pose"')]
        )


class Backpressure:
    """At most ``max_concurrency`` prediction requests in flight and ``max_queue`` waiting for a slot.

    Past that: an immediate 503 with ``Retry-After``. Each request has ``timeout_s`` from arrival (queueing
    included); past it the client gets a 504 at once and the request's work is cancelled. Once ``draining()``
    is true (SIGTERM), requests still waiting for a slot, and any that arrive, get a 503 with ``Retry-After`` at
    once (a client can retry elsewhere), while those holding a slot finish. The slot comes back
    when the cancelled work has stopped: at once for a request still reading its upload or waiting on the
    batcher, after the current ONNX Runtime call for one inside it (that call cannot be interrupted), so the
    CPU is never oversubscribed. Only paths starting with ``path_prefix`` are limited.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_concurrency: int,
        max_queue: int,
        timeout_s: float,
        retry_after_s: int = 1,
        path_prefix: str = PREDICTION_PATH_PREFIX,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0 or timeout_s <= 0:
            raise ValueError("need max_concurrency >= 1, max_queue >= 0 and timeout_s > 0")
        self.app = app
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.retry_after = str(max(1, int(retry_after_s))).encode()
        self.path_prefix = path_prefix
        self.draining = draining
        self.in_flight = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(max_concurrency)

    def _limited(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope["type"] == "http" and (path == self.path_prefix or path.startswith(self.path_prefix + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._limited(scope):
            await self.app(scope, receive, send)
            return
        if self.draining():
            await self._refuse(send, "shutting_down", "the service is shutting down; retry elsewhere")
            return
        if self.in_flight >= self.max_concurrency and self.waiting >= self.max_queue:
            await self._refuse(send, "overloaded", "too many requests in flight; retry later")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self.waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                admitted = await self._wait_for_slot()
        except TimeoutError:
            await self._timed_out(send)
            return
        finally:
            self.waiting -= 1
        if not admitted:
            await self._refuse(send, "shutting_down", "the service is shutting down; retry elsewhere")
            return
        self.in_flight += 1
        await self._run(scope, receive, send, deadline)

    async def _wait_for_slot(self) -> bool:
        """Take a slot (True), or give up once the service drains (False); the caller bounds the wait."""
        acquire = asyncio.ensure_future(self._free.acquire())
        granted = False
        try:
            while not granted:
                done, _ = await asyncio.wait({acquire}, timeout=DRAIN_POLL_S)
                if done:
                    granted = True
                elif self.draining():
                    return False
            return True
        finally:
            if not granted:
                if acquire.done() and not acquire.cancelled():
                    self._free.release()  # granted just as the wait ended: hand the slot back
                else:
                    acquire.cancel()

    async def _refuse(self, send: Send, code: str, message: str) -> None:
        await send_json_error(send, 503, code, message, headers=[(b"retry-after", self.retry_after)])

    def _release(self, _: object = None) -> None:
        self.in_flight -= 1
        self._free.release()

    async def _run(self, scope: Scope, receive: Receive, send: Send, deadline: float) -> None:
        started = False
        cut_off = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut_off:  # the client already got its 504
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        except BaseException:  # we were cancelled ourselves (shutdown timeout): stop the work too
            task.cancel()
            task.add_done_callback(_consume)
            task.add_done_callback(self._release)
            raise
        if done:
            self._release()
            task.result()  # re-raise the app's exception, if any
            return
        cut_off = True
        task.cancel()
        task.add_done_callback(_consume)
        task.add_done_callback(self._release)
        if not started:
            await self._timed_out(send)

    async def _timed_out(self, send: Send) -> None:
        await send_json_error(send, 504, "timeout", f"the request took longer than {self.timeout_s:g} s")


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled task's outcome so asyncio does not warn about it."""
    if not task.cancelled():
        task.exception()
