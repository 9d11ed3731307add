"""How the HTTP layer answers a domain error: ``(status, code)`` from the service's one error table."""

from __future__ import annotations

from pose.errors import PoseError
from service.http.errors import ApiError


def http_answer(error: PoseError) -> tuple[int, str]:
    answer = ApiError.from_domain(error)
    return answer.status, answer.code
