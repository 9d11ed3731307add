"""The HTTP/1.1 connection the service runs under uvicorn: its httptools protocol plus the limits uvicorn lacks.

uvicorn bounds neither the size of a request head, nor the time a client may take to send it, nor the number of
open connections: a few clients that send headers forever, or never send a byte, can hold every file descriptor.
:func:`guarded_protocol` subclasses uvicorn's own httptools protocol (the parser and the ASGI cycle stay
uvicorn's; the internals it relies on are named and pinned in :mod:`service.server.uvicorn_seam`) with these
bounds:

- **head size**: more than ``max_head_bytes`` received before the head is complete, or in its URL and fields
  however it arrives (one write or many), or more than ``max_header_fields`` fields, is a ``431`` and the
  connection closes (the rest is never read). A chunked body's framing (chunk-size lines, extensions and the
  trailer) counts against the same limit beyond :data:`CHUNK_LINE_BYTES` a chunk, so a trailer that never ends
  is cut off too;
- **unread bodies**: a request answered before its body has all arrived (a route that does not read it, a
  refusal, the upload-pace 408, a 503 when busy) does not wait for the rest for long: the rest is read and dropped
  for at most :data:`LINGER_S` and :data:`LINGER_BYTES` (so that a client still sending its upload reads the
  answer instead of a reset, and keeps its connection when the body does end), then the connection closes. All
  such connections together drop at most :data:`LINGER_RATE` bytes a second (reading pauses, so the clients wait
  on their own sockets): bodies nobody reads cannot take the event loop's time from the requests being served;
- **head time**: a head (the first on a connection, or the next on a kept-alive one once it starts) not complete
  ``head_timeout_s`` after it was due is a ``408`` and the connection closes;
- **connections**: past ``max_connections`` open connections, one lingering after its answer, else the oldest one
  still waiting for its head, is closed to make room; when none is, the new connection gets a ``503`` and is
  closed. Connections holding a request are never touched.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from typing import Any

from service.http.errors import error_body, error_headers, error_status
from service.server.pace import DrainPace
from service.server.uvicorn_seam import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int = 32 * 1024
    max_header_fields: int = 100
    head_timeout_s: float = 10.0
    max_connections: int = 512


LINGER_S = 2.0  # after such an answer, the most time spent reading and dropping the rest of its body
LINGER_BYTES = 64 * 2**20  # and the most bytes
LINGER_RATE = 32 * 2**20  # bytes a second that all lingering connections of the process drop together, at most
CHUNK_LINE_BYTES = 32  # framing a chunk may carry outside the head limit: "ffffffff\r\n" and the CRLF after its data
FD_RESERVE = 64  # descriptors kept free for the model, logs, sockets being accepted
MAX_AUTO_CONNECTIONS = 4096


def connection_limits(max_head_bytes: int, head_timeout_s: float, max_connections: int) -> ConnectionLimits:
    """The limits for these settings; ``max_connections`` 0 follows this process's descriptor limit."""
    if max_connections <= 0:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        fds = MAX_AUTO_CONNECTIONS + FD_RESERVE if soft == resource.RLIM_INFINITY else soft
        max_connections = max(1, min(MAX_AUTO_CONNECTIONS, fds - FD_RESERVE))
    return ConnectionLimits(max_head_bytes, ConnectionLimits.max_header_fields, head_timeout_s, max_connections)


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with ``limits`` (pass it as ``uvicorn.Config(http=...)``)."""
    return type("GuardedHttpToolsProtocol", (_Guarded,), {"limits": limits})


class _Guarded(HttpToolsProtocol):
    limits = ConnectionLimits()
    drain_pace = DrainPace(LINGER_RATE)  # shared by every connection of the process (one event loop)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0
        self._header_fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._opened_at = 0.0
        self._messages = 0  # requests begun on this connection
        self._body_bytes = 0
        self._field_bytes = 0  # URL and header (and trailer) fields of the current message
        self._framing_bytes = 0  # bytes of a body's transfer framing: chunk lines and the trailer
        self._chunks = 0
        self._refused = False  # answered by a limit: the parser's remaining callbacks are ignored
        self._lingering: asyncio.TimerHandle | None = None  # answered; the rest of the body is dropped until it fires
        self._lingered = 0
        self._paced: asyncio.TimerHandle | None = None  # reading paused by the drain pace; resumes when it fires
        self._message_complete = True  # the parser is between messages (not inside a request's body)

    # ------------------------------------------------------------------ connections
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened_at = self.loop.time()
        if len(self.connections) > self.limits.max_connections and not self._evict_an_idle_connection():
            self._answer_and_close("too_many_connections", "too many open connections; retry later")
            return
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._stop_lingering()
        super().connection_lost(exc)

    def _evict_an_idle_connection(self) -> bool:
        """Close one connection that holds no request to make room: one lingering after its answer first, else the
        oldest still waiting for a head it has not started."""
        others = [c for c in self.connections if isinstance(c, _Guarded) and c is not self]
        lingering = [c for c in others if c._lingering is not None]
        idle = lingering or [c for c in others if c._awaiting_head and c._head_bytes == 0]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._opened_at)
        oldest._cancel_head_timer()
        oldest._stop_lingering()
        oldest.transport.close()
        self.connections.discard(oldest)
        return True

    # ------------------------------------------------------------------ the request head
    def _expect_head(self) -> None:
        self._awaiting_head = True
        self._head_bytes = 0
        self._header_fields = 0
        self._field_bytes = 0
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            self._answer_and_close("request_timeout", "the request head did not arrive in time")

    def data_received(self, data: bytes) -> None:
        awaiting = self._awaiting_head
        in_body = not awaiting and not self._message_complete
        body_before, message = self._body_bytes, self._messages
        super().data_received(data)
        if self.transport.is_closing():
            return
        if awaiting and self._awaiting_head:
            self._head_bytes += len(data)  # the head is still incomplete: all of this chunk belongs to it
            if self._head_bytes > self.limits.max_head_bytes:
                self._too_large(f"the request head exceeds {self.limits.max_head_bytes} bytes")
        elif in_body and not self._message_complete and message == self._messages:
            self._framing_bytes += len(data) - (self._body_bytes - body_before)
            if self._framing_bytes > self.limits.max_head_bytes + CHUNK_LINE_BYTES * self._chunks:
                self._too_large(f"the request's chunk framing and trailer exceed {self.limits.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        self._message_complete = False
        self._messages += 1
        self._field_bytes = self._framing_bytes = self._chunks = self._body_bytes = 0
        if not self._awaiting_head:  # a head starts right after a body the app did not wait for
            self._expect_head()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if self._refused or not self._count_field_bytes(len(url)):
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused or not self._count_field_bytes(len(name) + len(value) + 4):
            return
        self._header_fields += 1
        if self._header_fields > self.limits.max_header_fields:
            self._too_large(f"the request has more than {self.limits.max_header_fields} header fields")
            return
        super().on_header(name, value)

    def _count_field_bytes(self, n: int) -> bool:
        """Add ``n`` bytes of the URL, a header or a trailer field; False (and a 431) past the head limit."""
        self._field_bytes += n
        if self._field_bytes > self.limits.max_head_bytes:
            self._too_large(f"the request head exceeds {self.limits.max_head_bytes} bytes")
            return False
        return True

    def _linger_over(self) -> None:
        self._lingering = None
        if not self._message_complete:
            self.transport.close()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._lingering is not None:  # answered already: uvicorn drops it; bound how much, and how fast
            self._lingered += len(body)
            if self._lingered > LINGER_BYTES:
                self._stop_lingering()
                self.transport.close()
                return
            wait = self.drain_pace.wait(self.loop.time(), len(body))
            if wait > 0 and self._paced is None:
                self.flow.pause_reading()
                self._paced = self.loop.call_later(wait, self._resume_paced)
            return
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_complete = True
        if self._lingering is not None:  # the rest of an answered request's body came in time: keep the connection
            self._stop_lingering()
            if not self.pipeline and not self.transport.is_closing():
                self._expect_head()
            return
        if not self._refused:
            super().on_message_complete()

    def _resume_paced(self) -> None:
        self._paced = None
        self.flow.resume_reading()

    def _stop_lingering(self) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        if self._paced is not None:
            self._paced.cancel()
            self._resume_paced()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if not self._message_complete:  # answered before its body arrived: never wait for the rest
            self._cancel_head_timer()
            self._lingered = 0
            self._lingering = self.loop.call_later(LINGER_S, self._linger_over)
        elif not self.pipeline:
            self._expect_head()  # the next request on this connection has the same time for its head

    # ------------------------------------------------------------------ refusals
    def _too_large(self, message: str) -> None:
        self._answer_and_close("request_header_fields_too_large", message)

    def _answer_and_close(self, code: str, message: str) -> None:
        """A complete JSON error and close; only while no request of this connection is being served."""
        self._cancel_head_timer()
        self._awaiting_head = False
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        status = error_status(code)
        body = json.dumps(error_body(code, message)).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n",
        ]
        for name, value in error_headers(status):
            head += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
