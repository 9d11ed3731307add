"""Property-based API testing: schemathesis generates requests from the service's own OpenAPI schema
(as served by a real server) and sends them to it; no answer may be a 5xx and every answer must match
the schema (documented status code, content type, body shape, headers).

Valid (positive) and invalid (negative) requests are drawn for every operation, a bounded number each,
so the module stays well under a minute. (schemathesis' pytest plugin is not used: it does not run on
this pytest; the operation strategies are driven with hypothesis directly.)
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.http.app import create_app
from service.settings import Settings
from tests.helpers.server import ServiceProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 30


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the app's schema (building it needs no model)."""
    spec = create_app(Settings()).openapi()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


@pytest.fixture(scope="module")
def api_schema(constant_server: ServiceProcess) -> schemathesis.BaseSchema:
    spec = httpx.get(constant_server.url + "/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(spec)  # as served: every checker must read it


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: v)
def test_api_conforms_and_never_fails(
    method: str, path: str, api_schema: schemathesis.BaseSchema, constant_server: ServiceProcess
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    seen: set[int] = set()

    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=cases)
    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=constant_server.url, checks=CHECKS, timeout=30)
        seen.add(response.status_code)

    call()
    assert seen and max(seen) < 500, seen
