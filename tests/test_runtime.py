"""The engines of :mod:`service.inference.runtime`: what ``auto`` picks, forced engines that cannot run, and the
shipped models' answers on committed photos under every engine this machine runs, against ONNX Runtime float32.

OpenVINO bfloat16 rounds activations to 8 significant bits, so a peak can move by a heatmap cell: its keypoints
must stay within :data:`BF16_MEDIAN_PX` (median) and :data:`BF16_MAX_PX` (any joint) of float32's, in image
pixels; OpenVINO float32 within :data:`F32_MAX_PX`.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from functools import cache

import numpy as np
import pytest
from PIL import Image

from evaluation import engine_gate
from evaluation.photo_eval import service_pipeline
from pose.detection import DetectionOptions
from service.inference.detector import PersonDetector
from service.inference.engine import Engine
from service.inference.pipeline import PredictOptions, Upload
from service.inference.runtime import (
    ModelLoadError,
    SessionOptions,
    cpu_choice,
    openvino_problem,
    resolve_engine,
    unavailable,
)
from tests.helpers.server import REPO_ROOT

PHOTO = REPO_ROOT / "tests" / "data" / "000000000785.jpg"
MODEL = REPO_ROOT / "weights" / "default.onnx"
DETECTOR = REPO_ROOT / "weights" / "person_detector.onnx"
SKIER_BOX = (280.79, 44.73, 218.7, 346.68)  # COCO's box of the skier (tests/data/000000000785_keypoints.json)
# the skier is 347 px tall: one heatmap cell of its crop is about 7 px. Measured (AMD EPYC, AVX512_BF16): bfloat16
# median 0.13 px, largest 3.5 px (whole photo, where the detector's box moves by 0.2 px too); float32 0.0 px
BF16_MEDIAN_PX = 1.0
BF16_MAX_PX = 8.0
F32_MAX_PX = 0.05
OPENVINO_ENGINES = [
    pytest.param(name, marks=pytest.mark.skipif(problem is not None, reason=str(problem)))
    for name in ("openvino-bf16", "openvino-f32")
    for problem in [unavailable(name)]
]


def test_auto_takes_onnxruntime_on_a_gpu_else_openvino_bf16_where_the_cpu_has_it() -> None:
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    cpu = ["CPUExecutionProvider"]
    assert resolve_engine("auto", gpu, None) == ("onnxruntime", "float32")
    assert resolve_engine("auto", cpu, None) == ("openvino", "bfloat16")
    assert resolve_engine("auto", cpu, "no native bfloat16") == ("onnxruntime", "float32")
    assert resolve_engine("onnxruntime", cpu, None) == ("onnxruntime", "float32")
    assert resolve_engine("openvino-f32", gpu, None) == ("openvino", "float32")
    assert resolve_engine("openvino-bf16", cpu, None) == ("openvino", "bfloat16")


def _answers(engine_choice: str) -> dict[str, np.ndarray]:
    """Keypoints of the skier (COCO's box), the whole photo and two copies side by side, through the service's
    pipeline with the shipped pose model and detector on ``engine_choice``."""
    options = SessionOptions(engine_choice, ("CPUExecutionProvider",), intra_op_threads=2)  # type: ignore[arg-type]
    engine = Engine.load(MODEL, options)
    detector = PersonDetector.load(DETECTOR, DetectionOptions(), options)
    pipeline = service_pipeline(engine.info, engine.run, detector)
    photo = Image.open(PHOTO).convert("RGB")
    both = Image.new("RGB", (2 * photo.width, photo.height))
    both.paste(photo, (0, 0))
    both.paste(photo, (photo.width, 0))
    buffer = io.BytesIO()
    both.save(buffer, "PNG")
    jpeg = Upload(PHOTO.read_bytes(), "image/jpeg", PHOTO.name)
    pair = Upload(buffer.getvalue(), "image/png", "pair.png")

    async def predict() -> dict[str, np.ndarray]:
        [boxed] = await pipeline.predict_uploads([jpeg], PredictOptions(bbox=SKIER_BOX))
        [whole] = await pipeline.predict_uploads([jpeg], PredictOptions())
        [two] = await pipeline.predict_uploads([pair], PredictOptions())
        return {
            "box": boxed.points,
            "whole": whole.points,
            "pair": np.concatenate([p.points for p in two.people]),
            "pair_boxes": np.array([p.box for p in two.people]),
        }

    return asyncio.run(predict())


@cache
def answers(engine_choice: str) -> dict[str, np.ndarray]:
    return _answers(engine_choice)


@pytest.mark.parametrize("engine_choice", OPENVINO_ENGINES)
def test_openvino_answers_the_keypoints_onnxruntime_answers(engine_choice: str) -> None:
    reference, got = answers("onnxruntime"), answers(engine_choice)
    assert got["pair"].shape == reference["pair"].shape == (2 * 16, 2)  # the same two people found
    np.testing.assert_allclose(got["pair_boxes"], reference["pair_boxes"], atol=4.0)
    for name in ("box", "whole", "pair"):
        distance = np.linalg.norm(got[name] - reference[name], axis=-1)
        if engine_choice == "openvino-bf16":
            assert np.median(distance) <= BF16_MEDIAN_PX and distance.max() <= BF16_MAX_PX, (name, distance)
        else:
            assert distance.max() <= F32_MAX_PX, (name, distance)


def _start(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``import openvino`` fails, as on a machine without it."""
    blocked = "import sys; sys.modules['openvino'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", blocked + code],
        cwd=REPO_ROOT,
        env={**os.environ, "POSE_DETECTOR_PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_forced_engine_that_cannot_run_stops_the_start_and_says_why() -> None:
    run = _start("from service.__main__ import main; raise SystemExit(main())", {"POSE_ENGINE": "openvino-bf16"})
    assert run.returncode == 1, run.stderr
    assert "POSE_ENGINE=openvino-bf16 cannot run here: OpenVINO is not installed" in run.stderr


def test_auto_without_openvino_runs_onnxruntime_float32() -> None:
    code = (
        "import json; from service.inference.engine import Engine; from service.settings import Settings\n"
        "print(json.dumps(Engine.from_settings(Settings()).info.runtime.describe()))"
    )
    run = _start(code, {"POSE_ENGINE": "auto", "POSE_PROVIDERS": "cpu"})
    assert run.returncode == 0, run.stderr
    runtime = json.loads(run.stdout.strip().splitlines()[-1])
    assert runtime["engine"] == "onnxruntime" and runtime["precision"] == "float32" and runtime["device"] == "cpu"


def test_an_unknown_engine_is_a_settings_error() -> None:
    run = _start("from service.__main__ import main; raise SystemExit(main())", {"POSE_ENGINE": "tensorflow"})
    assert run.returncode == 2, run.stderr
    assert "POSE_ENGINE" in run.stderr and "'auto', 'onnxruntime', 'openvino-bf16' or 'openvino-f32'" in run.stderr


@pytest.mark.parametrize("engine_choice", OPENVINO_ENGINES)
def test_openvino_refuses_a_broken_file_like_onnxruntime(engine_choice: str, tmp_path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        Engine.load(broken, SessionOptions(engine_choice))  # type: ignore[arg-type]


def test_the_gate_scores_each_kind_of_evaluation_and_names_the_engines_here() -> None:
    one_mode = {"modes": {"whole": {"pck@0.2": {"limbs": 0.7675, "mean": 0.79}}}}
    people = {"people": {"all": {"pck@0.2_limbs_matched": 0.4824}, "one_person": {"pck@0.2_limbs_matched": 0.5}}}
    assert engine_gate.score(one_mode) == 0.7675 and engine_gate.score(people) == 0.4824
    with pytest.raises(ValueError):
        engine_gate.score({"modes": {"box": {"pck@0.2": {"limbs": 1.0}}, "whole": {"pck@0.2": {"limbs": 1.0}}}})
    here = engine_gate.engines_here()
    assert here[0] == "onnxruntime"
    assert ("openvino-bf16" in here) == (openvino_problem("bfloat16") is None)
    assert ("auto" in here) == (cpu_choice("auto") != ("onnxruntime", "float32"))  # the gated column, where it differs
    assert set(engine_gate.evaluations(REPO_ROOT)) == {
        "lsp_test_box",
        "lsp_test_whole",
        "coco_val_box",
        "coco_val_people",
    }


@pytest.mark.parametrize("engine_choice", OPENVINO_ENGINES)
def test_openvino_runs_any_batch_whether_compiled_static_or_dynamic(engine_choice: str) -> None:
    """One image a call (the CPU default) is compiled as a static shape, a larger cap keeps the batch dynamic: both
    answer a batch of three as three single calls do."""
    options = SessionOptions(engine_choice, intra_op_threads=2)  # type: ignore[arg-type]
    static, dynamic = Engine.load(MODEL, options), Engine.load(MODEL, options, max_batch=4)
    assert static.max_batch == 1 and dynamic.max_batch == 4
    batch = np.random.default_rng(5).random((3, 3, 256, 256), dtype=np.float32)
    singles = np.concatenate([static.run(batch[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(static.run(batch), singles, atol=1e-6)
    np.testing.assert_allclose(dynamic.run(batch), singles, atol=0.02)  # bfloat16: another kernel, other roundings


def test_under_auto_the_detector_stays_float32_while_the_pose_model_may_take_bfloat16() -> None:
    """The detector's bfloat16 changes which people are found on a few photos (service/inference/detector.py):
    under ``auto`` it runs on ONNX Runtime float32; a forced engine still runs both models."""
    options = SessionOptions("auto", ("CPUExecutionProvider",), intra_op_threads=1)
    detector = PersonDetector.load(DETECTOR, DetectionOptions(), options).info.runtime.describe()
    assert (detector["engine"], detector["precision"]) == ("onnxruntime", "float32")
    pose = Engine.load(MODEL, options).info.runtime.describe()
    assert (pose["engine"], pose["precision"]) == cpu_choice("auto")
    if unavailable("openvino-bf16") is None:
        forced = SessionOptions("openvino-bf16", ("CPUExecutionProvider",), intra_op_threads=1)
        described = PersonDetector.load(DETECTOR, DetectionOptions(), forced).info.runtime.describe()
        assert (described["engine"], described["precision"]) == ("openvino", "bfloat16")
