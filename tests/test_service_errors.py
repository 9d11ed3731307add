"""Every kind of bad input gets the right status and a JSON error body, and the server keeps serving.

Runs against the shared ``constant_server`` (limits: 2 MB uploads, 4 megapixels, 4 files per batch).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.helpers.images import encode, gray_image

GOOD = encode(gray_image(64, 48))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but whose pixel data is garbage."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage") + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = encode(Image.effect_noise((400, 300), 60).convert("RGB"), "JPEG", quality=90)
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(encode(Image.effect_noise((100, 80), 60).convert("RGB")))
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 40] = b"\xff" * 36  # the zlib stream header and data overwritten
    return bytes(data)


def ico_image() -> bytes:
    buffer = io.BytesIO()
    gray_image(32, 32).save(buffer, format="ICO")
    return buffer.getvalue()


def multipart(field: str, data: bytes, name: str = "x.png", ctype: str = "image/png") -> dict:
    return {"files": {field: (name, data, ctype)}}


def raw(data: bytes, ctype: str | None) -> dict:
    return {"content": data, "headers": {"content-type": ctype} if ctype else {}}


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """A streamed body without Content-Length (chunked transfer encoding)."""
    sent = 0
    while sent < total:
        yield b"\xff" * min(size, total - sent)
        sent += size


CASES = {
    # name: (path, query, request kwargs, status, code)
    "empty raw body": ("/predict", {}, raw(b"", "image/jpeg"), 400, "empty_body"),
    "no body at all": ("/predict", {}, raw(b"", None), 422, "missing_file"),
    "missing multipart field": ("/predict", {}, multipart("picture", GOOD), 422, "missing_file"),
    "field is text, not a file": (
        "/predict",
        {},
        {"data": {"file": "hello"}, "files": {"x": ("x", b"1")}},
        422,
        "missing_file",
    ),
    "empty file": ("/predict", {}, multipart("file", b""), 400, "empty_image"),
    "not an image": ("/predict", {}, raw(b"this is not an image at all", "image/png"), 400, "invalid_image"),
    "truncated jpeg": (
        "/predict",
        {},
        multipart("file", truncated_jpeg(), "t.jpg", "image/jpeg"),
        400,
        "invalid_image",
    ),
    "corrupt png": ("/predict", {}, raw(corrupt_png(), "image/png"), 400, "invalid_image"),
    "garbage pixels under a valid header": (
        "/predict",
        {},
        raw(png_header_only(100, 100), "image/png"),
        400,
        "invalid_image",
    ),
    "malformed multipart": (
        "/predict",
        {},
        raw(b"--xx\r\nnonsense", "multipart/form-data"),
        400,
        "invalid_multipart",
    ),
    "unsupported format (ICO)": (
        "/predict",
        {},
        multipart("file", ico_image(), "x.ico", "image/x-icon"),
        415,
        "unsupported_media_type",
    ),
    "unsupported image type (SVG)": (
        "/predict",
        {},
        raw(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        415,
        "unsupported_media_type",
    ),
    "unsupported content type": (
        "/predict",
        {},
        raw(b'{"image": 1}', "application/json"),
        415,
        "unsupported_media_type",
    ),
    "batch as raw body": ("/predict/batch", {}, raw(GOOD, "image/png"), 415, "unsupported_media_type"),
    "upload too large (Content-Length)": (
        "/predict",
        {},
        raw(b"\xff" * 2_500_000, "image/jpeg"),
        413,
        "payload_too_large",
    ),
    "multipart upload too large": ("/predict", {}, multipart("file", b"\xff" * 2_500_000), 413, "payload_too_large"),
    "too many pixels (checked before decoding)": (
        "/predict",
        {},
        raw(png_header_only(2100, 2000), "image/png"),
        413,
        "too_many_pixels",
    ),
    "decompression bomb": ("/predict", {}, raw(png_header_only(50_000, 50_000), "image/png"), 413, "too_many_pixels"),
    "too many files": (
        "/predict/batch",
        {},
        {"files": [("files", (f"{i}.png", GOOD, "image/png")) for i in range(5)]},
        413,
        "too_many_files",
    ),
    "two files to /predict": (
        "/predict",
        {},
        {"files": [("file", ("a.png", GOOD)), ("file", ("b.png", GOOD))]},
        413,
        "too_many_files",
    ),
    "unknown resize": ("/predict", {"resize": "squash"}, multipart("file", GOOD), 422, "invalid_request"),
    "unknown refine": ("/predict", {"refine": "magic"}, multipart("file", GOOD), 422, "invalid_request"),
    "bad flip": ("/predict", {"flip": "maybe"}, multipart("file", GOOD), 422, "invalid_request"),
    "bbox zero size": ("/predict", {"bbox": "10,10,0,20"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox negative size": ("/predict", {"bbox": "10,10,20,-5"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox outside the image": ("/predict", {"bbox": "100,10,20,20"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox left of the image": ("/predict", {"bbox": "-30,10,20,20"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox malformed": ("/predict", {"bbox": "1,2,3"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox not finite": ("/predict", {"bbox": "1,2,nan,4"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox infinite x": ("/predict", {"bbox": "-inf,2,3,4"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox absurdly large": ("/predict", {"bbox": "0,0,1e308,1e308"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox over 4x the image": ("/predict", {"bbox": "0,0,257,20"}, multipart("file", GOOD), 422, "invalid_bbox"),
    "bbox on a batch": (
        "/predict/batch",
        {"bbox": "0,0,0,0"},
        {"files": [("files", ("a.png", GOOD))]},
        422,
        "invalid_bbox",
    ),
    "unknown route": ("/nowhere", {}, {}, 404, "not_found"),
    "unknown query parameter": ("/predict", {"threshold": "0.3"}, {"files": {"file": ("a.png", GOOD)}}, 422,
                                "invalid_request"),
    "misspelt query parameter on the render": ("/predict/render", {"max_sid": "99"},
                                               {"files": {"file": ("a.png", GOOD)}}, 422, "invalid_request"),
    "bbox given three times": ("/predict", [("bbox", "1"), ("bbox", "2"), ("bbox", "3")],
                               {"files": {"file": ("a.png", GOOD)}}, 422, "invalid_request"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_then_good_request(constant_server, case):
    path, params, kwargs, status, code = CASES[case]
    with constant_server.client() as client:
        r = client.post(path, params=params, **kwargs)
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error"}
        assert body["error"]["code"] == code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        good = client.post("/predict", files={"file": ("ok.png", GOOD, "image/png")})
        assert good.status_code == 200, good.text
        assert len(good.json()["keypoints"]) == 16


def test_oversized_stream_is_cut_off_while_reading(constant_server):
    """No Content-Length: the server stops at the limit instead of buffering 50 MB."""
    with constant_server.client() as client:
        try:
            r = client.post("/predict", content=chunks(50_000_000), headers={"content-type": "image/jpeg"})
        except httpx.TransportError:  # the server may close the connection while we still send
            r = None
        if r is not None:
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "payload_too_large"
        assert client.post("/predict", files={"file": ("ok.png", GOOD)}).status_code == 200


def test_wrong_method_is_a_json_error(constant_server):
    with constant_server.client() as client:
        r = client.get("/predict")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_no_server_errors_were_counted(constant_server):
    with constant_server.client() as client:
        metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics
    assert 'pose_http_requests_total{endpoint="/predict",method="POST",status="200"}' in metrics


def test_an_unknown_parameter_names_the_accepted_ones(constant_server):
    with constant_server.client() as client:
        r = client.post("/predict", params={"threshold": "0.3"}, files={"file": ("a.png", GOOD)})
    message = r.json()["error"]["message"]
    assert "'threshold'" in message
    assert all(name in message for name in ("bbox", "flip", "max_people", "refine", "resize")), message


def test_a_list_valued_bbox_from_a_client_is_the_box(constant_server):
    """httpx and requests send ``params={"bbox": [x, y, w, h]}`` as four ``bbox`` parameters: the same box."""
    with constant_server.client() as client:
        listed = client.post("/predict", params={"bbox": [10, 5, 40, 30]}, files={"file": ("a.png", GOOD)})
        joined = client.post("/predict", params={"bbox": "10,5,40,30"}, files={"file": ("a.png", GOOD)})
    assert listed.status_code == 200, listed.text
    assert listed.json()["people"][0]["box"] == joined.json()["people"][0]["box"]


def test_a_failed_file_of_a_batch_is_named(constant_server):
    files = [("files", ("first.png", GOOD, "image/png")), ("files", ("broken.jpg", truncated_jpeg(), "image/jpeg"))]
    with constant_server.client() as client:
        r = client.post("/predict/batch", files=files)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("file 1 ('broken.jpg'): "), r.json()


def test_coordinates_are_rounded_to_the_stated_precision(constant_server):
    with constant_server.client() as client:
        body = client.post("/predict", files={"file": ("a.png", GOOD)}).json()
    for point in body["keypoints"]:
        assert round(point["x"], 2) == point["x"] and round(point["y"], 2) == point["y"], point
        assert round(point["score"], 4) == point["score"], point


def test_the_log_line_of_an_error_carries_its_code(constant_server):
    with constant_server.client() as client:
        r = client.post("/predict", params={"threshold": "1"}, files={"file": ("a.png", GOOD)})
    request_id = r.headers["x-request-id"]
    line = next(line for line in constant_server.log.splitlines() if request_id in line)
    assert '"status":422' in line and '"code":"invalid_request"' in line, line


def test_every_code_the_service_answers_is_in_the_one_table():
    """Each code a refusal names in the source (routes, uploads, middlewares, the connection layer, the domain
    table) is a row of ``ERROR_CODES``, and each row is used: the README and /docs list exactly what can come."""
    import re
    from pathlib import Path

    from service.http.errors import DOMAIN_ERRORS, ERROR_CODES

    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parent.parent / "service").rglob("*.py"))
    patterns = [r'ApiError\(\s*"([a-z_]+)"', r'send_json_error\(\s*\w+,\s*"([a-z_]+)"',
                r'_answer_and_close\(\s*"([a-z_]+)"', r'_refuse\(\s*send,\s*"([a-z_]+)"',
                r'codes = \{404: "([a-z_]+)", 405: "([a-z_]+)"\}']  # fmt: skip
    used = {code for pattern in patterns for match in re.findall(pattern, source) for code in
            (match if isinstance(match, tuple) else (match,))} | set(DOMAIN_ERRORS.values())  # fmt: skip
    assert used <= set(ERROR_CODES), sorted(used - set(ERROR_CODES))
    assert set(ERROR_CODES) <= used, sorted(set(ERROR_CODES) - used)
