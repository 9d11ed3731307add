"""The one place that touches uvicorn's internals, pinned to the uvicorn release they were read from.

uvicorn bounds neither a request head's size nor the time it takes to arrive, and its ``limit_concurrency`` answers
a plain-text 503 to new connections without ever closing idle ones, so :mod:`service.server.connections` extends
uvicorn's own httptools protocol (the parser and the ASGI cycle stay uvicorn's). Everything it uses that uvicorn
does not document is named here; ``tests/test_server_seam.py`` checks each name on the installed uvicorn and fails
when an upgrade moves one, so an upgrade means reading them again and changing :data:`UVICORN_VERSION`.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

UVICORN_VERSION = "0.54.0"  # requirements/serve.in pins the same

# Instance attributes of HttpToolsProtocol read or changed by the subclass (set in its __init__ or connection_made)
PROTOCOL_ATTRIBUTES: tuple[str, ...] = (
    "connections",
    "loop",
    "transport",
    "cycle",
    "pipeline",
    "server_state",
    "flow",  # uvicorn's read pause (FlowControl.pause_reading / resume_reading), which lingering bodies share
)
# Methods it overrides and calls through super(): the httptools parser callbacks and the connection events
PROTOCOL_METHODS: tuple[str, ...] = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
)

__all__ = ["PROTOCOL_ATTRIBUTES", "PROTOCOL_METHODS", "STATUS_LINE", "UVICORN_VERSION", "HttpToolsProtocol"]
