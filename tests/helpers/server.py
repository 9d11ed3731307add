"""A real ``python -m service`` process on a free 127.0.0.1 port, for end-to-end tests."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_processes(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them (Linux /proc)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def peak_rss(pid: int) -> int:
    """Peak resident memory of process ``pid`` in bytes (Linux /proc ``VmHWM``)."""
    return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) * 1024


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(model_path: Path | str | None, **settings: object) -> dict[str, str]:
    """The current environment plus ``POSE_*`` settings (keyword ``max_files=4`` -> ``POSE_MAX_FILES=4``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if model_path is not None:
        env["POSE_MODEL_PATH"] = str(model_path)
    env.setdefault("POSE_INTRA_OP_THREADS", "1")
    env.setdefault("POSE_DETECTOR_PATH", "")  # the one-pose path; tests of the person detector pass detector_path
    for key, value in settings.items():
        env[f"POSE_{key.upper()}"] = str(value)
    return env


class ServiceProcess:
    """``python -m service`` in a subprocess; use as a context manager or call start()/stop()."""

    def __init__(self, model_path: Path | str | None, fd_limit: int | None = None, **settings: object) -> None:
        """``fd_limit``: the server's soft RLIMIT_NOFILE (open descriptors), to test behaviour at the limit."""
        self.fd_limit = fd_limit
        self.port = free_port()
        self.env = service_env(model_path, host="127.0.0.1", port=self.port, **settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="service-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def log(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        return Path(self._log.name).read_text(errors="replace")

    def start(self, wait: str | None = "/readyz", timeout: float = 60.0) -> ServiceProcess:
        """Spawn the server and wait until ``wait`` answers 200 (None: return at once)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=None if self.fd_limit is None else self._limit_fds,
        )
        if wait is not None:
            self.wait_for(wait, timeout)
        return self

    def _limit_fds(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.fd_limit, hard))

    def wait_for(self, path: str, timeout: float = 60.0, status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(self.url + path, timeout=2.0).status_code == status:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} did not answer {status} within {timeout} s:\n{self.log}")

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it lingers; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_service_once(
    model_path: Path | str | None, timeout: float = 60.0, **settings: object
) -> subprocess.CompletedProcess:
    """Run ``python -m service`` expecting it to exit by itself (start-up failures)."""
    env = service_env(model_path, host="127.0.0.1", port=free_port(), **settings)
    return subprocess.run(
        [sys.executable, "-m", "service"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
