"""Start-up, readiness, shutdown and the operational endpoints of the real server process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from bench.common import parse_server_timing
from pose.layout import MPII
from service.inference.runtime import cpu_choice
from tests.helpers.images import encode, gray_image
from tests.helpers.models import renamed_output_model, slow_constant_model
from tests.helpers.server import REPO_ROOT, run_service_once, service_env

GOOD = encode(gray_image(64, 48))


def test_readyz_is_503_until_warmed_up(tmp_path, constant_peaks, start_service):
    model = tmp_path / "slow.onnx"
    slow_constant_model(model, constant_peaks)
    server = start_service(model, wait="/healthz", warmup_runs=150)  # about 2 s of warm-up
    with server.client() as client:
        r = client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "not_ready"
        early = client.post("/predict", files={"file": ("a.png", GOOD)})
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "not_ready"
        server.wait_for("/readyz", timeout=60)
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.post("/predict", files={"file": ("a.png", GOOD)}).status_code == 200
    assert "warming_up -> ready" in server.log
    assert server.stop() == 0  # SIGTERM: graceful shutdown, exit status 0


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_model_exits_with_a_clear_message(tmp_path):
    path = tmp_path / "nope.onnx"
    line = _one_error_line(run_service_once(path))
    assert str(path) in line and "file not found" in line


def test_model_path_that_is_a_directory_exits_with_a_clear_message(tmp_path):
    line = _one_error_line(run_service_once(tmp_path))
    assert str(tmp_path) in line and "not a regular file" in line


def test_model_path_too_long_for_the_os_exits_with_a_clear_message(tmp_path):
    """``Path.exists`` raises ``OSError(ENAMETOOLONG)`` here instead of returning False."""
    path = tmp_path / ("m" * 5000 + ".onnx")
    result = run_service_once(path)
    line = _one_error_line(result)
    assert result.returncode == 1
    assert str(path) in line and "unreadable" in line and "too long" in line.lower()


def test_corrupt_model_exits_with_a_clear_message(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07definitely not a protobuf" * 10)
    line = _one_error_line(run_service_once(path))
    assert str(path) in line and "not a valid ONNX model" in line


def test_nonconforming_model_exits_with_a_clear_message(tmp_path):
    path = renamed_output_model(tmp_path / "renamed.onnx")
    line = _one_error_line(run_service_once(path))
    assert str(path) in line and "no output named 'heatmaps'" in line


def test_operational_endpoints(constant_server, constant_peaks):
    with constant_server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        model = client.get("/model").json()
        assert model["keypoint_names"] == list(MPII.names)
        assert model["flip_pairs"] == [list(p) for p in MPII.flip_pairs]
        assert model["skeleton"] == [list(p) for p in MPII.skeleton]
        assert model["input_size"] == [256, 256] and model["heatmap_size"] == [64, 64]
        engine, precision = cpu_choice("auto")
        assert (model["engine"]["engine"], model["engine"]["precision"], model["engine"]["device"]) == (
            engine,
            precision,
            "cpu",
        )
        assert model["providers"] == (["CPUExecutionProvider"] if engine == "onnxruntime" else [])
        assert model["provenance"]["name"] == "constant-test"
        assert (model["name"], model["version"]) == ("constant-test", "1")

        answer = client.post("/predict", files={"file": ("a.png", GOOD)})
        body = answer.json()
        assert body["model"] == {"name": "constant-test", "version": "1"}
        assert set(body["timings_ms"]) == {"decode", "detect", "preprocess", "inference", "postprocess"}
        assert all(v >= 0 for v in body["timings_ms"].values())
        # the same stages in Server-Timing, plus the whole time in the app, which contains them
        timing = parse_server_timing(answer.headers["server-timing"])
        assert set(timing) == {*body["timings_ms"], "app"}
        assert timing["app"] >= sum(body["timings_ms"].values()) > 0
        assert set(parse_server_timing(client.get("/healthz").headers["server-timing"])) == {"app"}

        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        for family in (
            "pose_http_requests_total",
            "pose_http_request_duration_seconds_bucket",
            'pose_stage_duration_seconds_count{stage="inference"}',
            'pose_stage_duration_seconds_count{stage="decode"}',
            "pose_inference_batch_size_bucket",
            "pose_http_requests_in_flight",
        ):
            assert family in metrics.text, family

        openapi = client.get("/openapi.json").json()
        assert {"/predict", "/predict/batch", "/healthz", "/readyz", "/model", "/metrics"} <= set(openapi["paths"])
        predict = openapi["paths"]["/predict"]["post"]
        assert {"multipart/form-data", "image/*"} <= set(predict["requestBody"]["content"])
        assert {p["name"] for p in predict["parameters"]} == {"resize", "refine", "flip", "bbox", "max_people"}
        assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PoseResult")
        for status in ("200", "415"):
            assert {"X-Request-ID", "Server-Timing"} <= set(predict["responses"][status]["headers"])
        assert openapi["components"]["schemas"]["PoseResult"]["examples"][0]["keypoints"]
        for setting in ("POSE_MODEL_PATH", "POSE_MAX_UPLOAD_BYTES", "POSE_MAX_PIXELS", "POSE_PROVIDERS"):
            assert setting in openapi["info"]["description"]
        assert client.get("/docs").status_code == 200
    engine, precision = cpu_choice("auto")
    assert re.search(rf"engine {engine} [0-9.]+ {precision} on cpu \(", constant_server.log), constant_server.log


def test_service_never_imports_torch(constant_model_path):
    """Import the service and serve a prediction in a fresh interpreter; torch must never load."""
    script = textwrap.dedent(
        """
        import io, sys
        from fastapi.testclient import TestClient
        from PIL import Image
        import service.__main__
        from service.http.app import create_app
        from service.settings import Settings

        buffer = io.BytesIO()
        Image.new("RGB", (50, 40)).save(buffer, "PNG")
        with TestClient(create_app(Settings())) as client:
            client.get("/readyz")
            r = client.post("/predict", files={"file": ("a.png", buffer.getvalue())}, params={"flip": "true"})
            assert r.status_code == 200, r.text
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH_MODULES", loaded)
        """
    )
    env = service_env(constant_model_path)
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH_MODULES []" in result.stdout, result.stdout


def test_env_settings_are_parsed(monkeypatch):
    from service.settings import Settings

    monkeypatch.setenv("POSE_PROVIDERS", "cuda, CPUExecutionProvider")
    monkeypatch.setenv("POSE_MAX_FILES", "3")
    monkeypatch.setenv("POSE_LOG_LEVEL", "DEBUG")
    settings = Settings()
    assert settings.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert settings.max_files == 3 and settings.log_level == "debug"
    assert settings.max_upload_bytes == 20_000_000 and settings.max_pixels == 50_000_000
    assert settings.port == 8000 and settings.host == "0.0.0.0"
    assert settings.model_path == REPO_ROOT / "weights" / "default.onnx"
