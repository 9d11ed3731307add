"""The optional API key, and no endpoint that reads a file system path from a request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import hostile_inputs as corpus
from tests.helpers.server import ServiceProcess

KEY = "k3y-Zq8vN2-do-not-log-me"
IMAGE = corpus.jpeg(80, 60)
OPEN = ["/", "/healthz", "/readyz", "/docs", "/openapi.json"]
GUARDED_GETS = ["/model", "/metrics"]


@pytest.fixture(scope="module")
def keyed_server(constant_model_path: Path) -> Iterator[ServiceProcess]:
    with ServiceProcess(constant_model_path, api_key=KEY) as server:
        yield server


def predict(server: ServiceProcess, headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    with server.client() as client:
        response = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg", **headers})
        return response.status_code, response.text, dict(response.headers)


@pytest.mark.parametrize("path", OPEN)
def test_open_endpoints_need_no_key(path: str, keyed_server: ServiceProcess) -> None:
    with keyed_server.client() as client:
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", GUARDED_GETS)
def test_other_endpoints_need_the_key(path: str, keyed_server: ServiceProcess) -> None:
    with keyed_server.client() as client:
        denied = client.get(path)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers={"x-api-key": KEY}).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/model", "/metrics", "/nowhere"])
def test_no_method_skips_the_key(path: str, keyed_server: ServiceProcess) -> None:
    """OPTIONS (no CORS here, so no preflight to let through) and HEAD need the key like any other method."""
    with keyed_server.client() as client:
        for method in ("OPTIONS", "HEAD", "PUT", "DELETE"):
            assert client.request(method, path).status_code == 401, (method, path)


def test_demo_page_is_open_but_only_its_exact_path(keyed_server: ServiceProcess) -> None:
    """``/`` is the static page (it asks for the key and sends it as X-API-Key); nothing below it is open."""
    with keyed_server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "X-API-Key" in page.text and KEY not in page.text
        for path in ("/index.html", "/static/index.html", "/model/", "/%2F"):
            assert client.get(path).status_code == 401, path
        assert client.post("/", content=IMAGE, headers={"content-type": "image/jpeg"}).status_code == 405


WRONG: dict[str, dict[str, str]] = {
    "none": {},
    "bearer wrong": {"authorization": "Bearer wrong-key-AAAA"},
    "x-api-key wrong": {"x-api-key": "wrong-key-BBBB"},
    "key prefix": {"x-api-key": KEY[:-1]},
    "key plus suffix": {"x-api-key": KEY + "x"},
    "basic scheme": {"authorization": f"Basic {KEY}"},
    "bare key in authorization": {"authorization": KEY},
    "bearer without a key": {"authorization": "Bearer"},
    "key in query string only": {},
}


@pytest.mark.parametrize("name", list(WRONG))
def test_predict_without_the_right_key_is_401(name: str, keyed_server: ServiceProcess) -> None:
    if name == "key in query string only":
        with keyed_server.client() as client:
            response = client.post(
                "/predict", params={"api_key": KEY}, content=IMAGE, headers={"content-type": "image/jpeg"}
            )
        status, text, headers = response.status_code, response.text, dict(response.headers)
    else:
        status, text, headers = predict(keyed_server, WRONG[name])
    assert status == 401, text
    assert headers["www-authenticate"].startswith("Bearer")
    assert headers.get("x-request-id")
    assert set(headers) >= {"content-type"} and headers["content-type"] == "application/json"
    assert KEY not in text and "wrong-key" not in text


@pytest.mark.parametrize(
    "headers", [{"authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}, {"x-api-key": KEY}]
)
def test_predict_with_the_key_works(headers: dict[str, str], keyed_server: ServiceProcess) -> None:
    status, text, _ = predict(keyed_server, headers)
    assert status == 200, text


def test_key_never_appears_in_logs(keyed_server: ServiceProcess) -> None:
    predict(keyed_server, {"authorization": f"Bearer {KEY}"})
    predict(keyed_server, {"x-api-key": "wrong-key-CCCC"})
    log = keyed_server.log
    assert '"status":401' in log and '"status":200' in log  # the requests were logged ...
    assert KEY not in log  # ... without the key or what was offered instead
    assert "wrong-key" not in log


def test_without_a_key_configured_everything_is_open(constant_server: ServiceProcess) -> None:
    status, text, _ = predict(constant_server, {})
    assert status == 200, text


# --------------------------------------------------------------------------- no paths from requests
PATHLIKE = re.compile(r"(path|file|dir|folder|url|uri|model|weights|name)$", re.IGNORECASE)


def test_no_operation_takes_a_path_like_parameter(constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        spec = client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        assert "{" not in path, f"{path} has a path template"
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                assert not PATHLIKE.search(parameter["name"]), f"{method.upper()} {path}: {parameter['name']}"
            for content in operation.get("requestBody", {}).get("content", {}).values():
                schema = content.get("schema", {})
                for name, prop in schema.get("properties", {}).items():
                    assert prop.get("format") == "binary" or prop.get("items", {}).get("format") == "binary", (
                        f"{method.upper()} {path}: form field {name} is not a file upload"
                    )


@pytest.mark.parametrize(
    "filename",
    ["../../../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2fetc%2fpasswd", "x\x00.jpg"],
)
def test_upload_file_names_are_never_used_as_paths(filename: str, constant_server: ServiceProcess) -> None:
    with constant_server.client() as client:
        before = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}).json()
        response = client.post("/predict", files={"file": (filename, IMAGE, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["keypoints"] == before["keypoints"]  # the bytes were used, not the name
    assert "root:" not in response.text


def test_query_cannot_pick_another_model_or_file(constant_server: ServiceProcess) -> None:
    """Query parameters that would name a model or file are not parameters of the API: refused (422), never used;
    a header doing the same is ignored."""
    with constant_server.client() as client:
        plain = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}).json()
        sneaky = client.post(
            "/predict",
            params={"model_path": "/etc/passwd", "model": "../weights/x.onnx", "path": "/etc/shadow"},
            content=IMAGE,
            headers={"content-type": "image/jpeg"},
        )
        header = client.post(
            "/predict", content=IMAGE, headers={"content-type": "image/jpeg", "x-model-path": "/etc/passwd"}
        )
    assert sneaky.status_code == 422 and sneaky.json()["error"]["code"] == "invalid_request"
    assert "passwd" not in sneaky.text and "shadow" not in sneaky.text
    assert header.status_code == 200
    assert header.json()["model"] == plain["model"]
    assert header.json()["keypoints"] == plain["keypoints"]
