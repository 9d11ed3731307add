"""Start the service or the baseline as a real uvicorn subprocess on 127.0.0.1 and wait until it serves."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO

import httpx

from bench.common import REPO_ROOT
from bench.fixture import BenchModel

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(kind: str, port: int) -> tuple[list[str], str]:
    """The argv that starts ``kind`` and the path that answers 200 once it is ready."""
    if kind == "service":
        return [sys.executable, "-m", "service"], "/readyz"
    if kind == "baseline":
        argv = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--log-level", "warning", "--no-access-log"], "/healthz"
    raise ValueError(f"unknown server kind {kind!r}")


@contextlib.contextmanager
def served(kind: str, model: BenchModel, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``kind`` ("service" or "baseline") on ``model``; yields its base URL, stops it afterwards."""
    port = free_port()
    argv, ready_path = _command(kind, port)
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "POSE_MODEL_PATH": str(model.onnx_path),
        "POSE_HOST": "127.0.0.1",
        "POSE_PORT": str(port),
        "POSE_LOG_LEVEL": "warning",
        "BASELINE_MODEL_PATH": str(model.onnx_path),
        **(env or {}),
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base + ready_path, log)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args))} exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {READY_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]
