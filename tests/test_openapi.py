"""The OpenAPI document as served: valid OpenAPI 3.1 by a validator, every example a valid instance of its schema,
and every documented parameter example a request the service answers 200 on the README's photo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.helpers.server import ServiceProcess

PHOTO = Path(__file__).resolve().parent / "data" / "000000000785.jpg"


@pytest.fixture(scope="module")
def spec(constant_server: ServiceProcess) -> dict[str, Any]:
    return httpx.get(constant_server.url + "/openapi.json", timeout=10).json()


def test_the_schema_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_example_matches_its_schema(spec: dict[str, Any]) -> None:
    """The examples the models declare (what /docs shows for each answer) are instances of their own schemas."""
    checked = 0
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            # the components beside a reference, so that "#/components/..." resolves
            root = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
            errors = [e.message for e in jsonschema.Draft202012Validator(root).iter_errors(example)]
            assert not errors, f"{name}: {errors[:3]}"
            checked += 1
    assert checked >= 3, checked


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_documented_parameter_example_is_answered(spec: dict[str, Any], constant_server: ServiceProcess) -> None:
    photo = PHOTO.read_bytes()
    sent = 0
    with constant_server.client(timeout=30) as client:
        for method, path, operation in operations(spec):
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                examples = parameter.get("examples") or schema.get("examples") or []
                if "example" in parameter or "example" in schema:
                    examples = [parameter.get("example", schema.get("example")), *examples]
                for example in examples:
                    params = {parameter["name"]: example}
                    if method == "post":
                        files = [("files" if path.endswith("batch") else "file", ("photo.jpg", photo, "image/jpeg"))]
                        answer = client.post(path, params=params, files=files)
                    else:
                        answer = client.request(method.upper(), path, params=params)
                    assert answer.status_code == 200, f"{method.upper()} {path} {params}: {answer.text[:300]}"
                    sent += 1
    assert sent >= 3, sent
