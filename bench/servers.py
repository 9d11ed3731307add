"""Start a server under test as a real subprocess on 127.0.0.1 and wait until it serves.

Kinds: ``service`` (this project), ``baseline`` (:mod:`bench.baseline_app`), and the framework peers
``litserve``, ``litserve-batched`` (LitServe's own batching, up to 8) and ``bentoml``, each run by the
interpreter of its own venv (:mod:`bench.peer_venvs`).
"""

from __future__ import annotations

import contextlib
import os
import signal
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
from bench.peer_venvs import peer_executable, peer_python

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER_KINDS: tuple[str, ...] = ("service", "baseline", "litserve", "litserve-batched", "bentoml")
PEER_BATCH = 8  # litserve-batched: LitServe's max_batch_size


def _command(kind: str, port: int) -> tuple[list[str], str, dict[str, str]]:
    """The argv that starts ``kind``, the path that answers 200 once it is ready, and extra environment."""
    if kind == "service":  # the single-person path, as the peers serve it; bench.people turns the detector on
        return [sys.executable, "-m", "service"], "/readyz", {"POSE_DETECTOR_PATH": ""}
    if kind == "baseline":
        argv = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--log-level", "warning", "--no-access-log"], "/healthz", {}
    if kind in ("litserve", "litserve-batched"):
        argv = [str(peer_python("litserve")), "-m", "bench.peer_apps.litserve_app", "--port", str(port)]
        return argv, "/health", {"PEER_MAX_BATCH": str(PEER_BATCH if kind == "litserve-batched" else 1)}
    if kind == "bentoml":
        app = "bench.peer_apps.bentoml_app:PoseService"
        argv = [str(peer_executable("bentoml", "bentoml")), "serve", app, "--host", "127.0.0.1", "--port", str(port)]
        return argv, "/readyz", {"BENTOML_DO_NOT_TRACK": "true"}
    raise ValueError(f"unknown server kind {kind!r}; one of {SERVER_KINDS}")


@contextlib.contextmanager
def served(kind: str, model: BenchModel, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``kind`` (one of :data:`SERVER_KINDS`) on ``model``; yields its base URL, stops it afterwards."""
    port = free_port()
    argv, ready_path, kind_env = _command(kind, port)
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "POSE_MODEL_PATH": str(model.onnx_path),
        "POSE_HOST": "127.0.0.1",
        "POSE_PORT": str(port),
        "POSE_LOG_LEVEL": "warning",
        "BASELINE_MODEL_PATH": str(model.onnx_path),
        "PEER_MODEL_PATH": str(model.onnx_path),
        **kind_env,
        **(env or {}),
    }
    with tempfile.TemporaryFile() as log:
        # a session of its own: the frameworks run worker processes, and stopping the group stops them all
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base + ready_path, log)
            yield base
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever of it is left after 15 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
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
