"""Multipart uploads are read in memory: nothing is spooled to ``/tmp`` (a small tmpfs in containers)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from starlette.requests import Request

from service.http.errors import ApiError
from service.http.uploads import read_uploads

BOUNDARY = "testboundary7MA4YWxkTrZu0gW"


def multipart_body(files: list[bytes], field: str = "files") -> bytes:
    parts = [
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def request_for(body: bytes, chunk: int = 64 * 1024) -> Request:
    """A real Starlette request whose body arrives in ``chunk``-byte ASGI messages."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]

    async def receive() -> dict:
        data = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": data, "more_body": bool(pieces)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict/batch",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return Request(scope, receive)


@pytest.fixture
def no_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any temporary file created from now on fails (its directory does not exist)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    with pytest.raises(FileNotFoundError), tempfile.TemporaryFile():
        pass


def test_uploads_over_one_mebibyte_stay_in_memory(no_temp_dir: None) -> None:
    files = [bytes([i]) * (3 * 2**20 + i) for i in range(3)]  # each far over Starlette's 1 MiB spool size
    uploads = asyncio.run(read_uploads(request_for(multipart_body(files)), "files", 4, 4 * 2**20, allow_raw=False))
    assert [u.data for u in uploads] == files
    assert [u.filename for u in uploads] == ["0.jpg", "1.jpg", "2.jpg"]


def test_file_over_the_per_file_limit_is_still_413_in_memory(no_temp_dir: None) -> None:
    body = multipart_body([b"\x01" * (2 * 2**20 + 1)])
    with pytest.raises(ApiError) as caught:
        asyncio.run(read_uploads(request_for(body), "files", 4, 2 * 2**20, allow_raw=False))
    assert caught.value.status == 413
