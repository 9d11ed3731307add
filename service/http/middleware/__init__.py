"""Pure ASGI middlewares that keep the service answering, one per module.

Order, outermost first (:func:`service.http.app.create_app`)::

    RequestContext -> MetricsMiddleware -> CORS (Starlette's, with POSE_CORS_ORIGINS) -> ApiKey -> Backpressure
    -> HeadAsGet -> app

so that every answer, including the 401/503/504 ones produced here, carries an ``X-Request-ID`` header and gets
exactly one JSON access-log line. A route notes what that line and the ``Server-Timing`` header report on the
request's typed :class:`~service.http.middleware.context.RequestRecord` (:func:`request_record`); nothing else
from the request is logged: no body, no query string, no headers (so no key).
"""

from service.http.middleware.api_key import OPEN_PATHS, ApiKey
from service.http.middleware.backpressure import Backpressure
from service.http.middleware.context import (
    CLIENT_CLOSED_REQUEST,
    SERVER_TIMING_HEADER,
    ImageSummary,
    RequestContext,
    RequestRecord,
    request_record,
    server_timing,
)
from service.http.middleware.head import HeadAsGet
from service.http.middleware.metrics import MetricsMiddleware

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "OPEN_PATHS",
    "SERVER_TIMING_HEADER",
    "ApiKey",
    "Backpressure",
    "HeadAsGet",
    "ImageSummary",
    "MetricsMiddleware",
    "RequestContext",
    "RequestRecord",
    "request_record",
    "server_timing",
]
