"""Real-photo evaluation: PCK@0.2 on hand-computed cases, and ``evaluate --dataset lsp-test`` end to end
on a tiny fake LSP folder through the service's own pipeline (a constant ONNX model, real ONNX Runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.photo_eval import LIMB_INDICES, LSP_INDICES, score_mode
from model_export.__main__ import main
from model_export.data.lsp import LSP_JOINTS
from model_export.data.people import PersonRecord
from pose.geometry import plan
from pose.layout import MPII_JOINTS
from tests.helpers.fake_lsp import write_fake_lsp
from tests.helpers.models import constant_model

K = len(MPII_JOINTS)
J = {name: i for i, name in enumerate(MPII_JOINTS)}


def upright_person() -> np.ndarray:
    """A standing person, MPII order; left shoulder (60, 40) to right hip (40, 100): torso sqrt(4000) = 63.25 px."""
    joints = np.zeros((K, 2))
    for name, xy in {
        "right_ankle": (40, 190), "right_knee": (40, 145), "right_hip": (40, 100), "left_hip": (60, 100),
        "left_knee": (60, 145), "left_ankle": (60, 190), "pelvis": (50, 100), "thorax": (50, 40),
        "upper_neck": (50, 30), "head_top": (50, 5), "right_wrist": (20, 100), "right_elbow": (25, 70),
        "right_shoulder": (40, 40), "left_shoulder": (60, 40), "left_elbow": (75, 70), "left_wrist": (80, 100),
    }.items():  # fmt: skip
        joints[J[name]] = xy
    return joints


def test_pck_at_a_fifth_of_the_torso_by_hand(tmp_path: Path) -> None:
    gt = upright_person()
    torso = np.sqrt(20**2 + 60**2)  # 63.25: a hit is within 12.65 px
    pred = gt.copy()
    pred[J["right_wrist"]] += (12.0, 0.0)  # hit
    pred[J["left_wrist"]] += (0.0, 13.0)  # miss
    pred[J["head_top"]] += (9.0, 9.0)  # 12.73 px: miss
    pred[J["pelvis"]] += (500.0, 0.0)  # never scored by the LSP protocol
    records = [PersonRecord(tmp_path / "a.jpg", gt, np.ones(K, bool))]
    scores = score_mode(pred[None], records)
    assert scores.pck.per_joint[J["right_wrist"]] == 1.0
    assert scores.pck.per_joint[J["left_wrist"]] == 0.0 and scores.pck.per_joint[J["head_top"]] == 0.0
    assert scores.mean == pytest.approx(12 / 14)  # 14 LSP joints, 2 missed
    assert scores.limbs == pytest.approx(11 / 12)  # head top is not a limb joint
    assert 0.2 * torso == pytest.approx(12.649, abs=1e-3)
    # PCKh@0.5 with the head-segment size 0.6 * sqrt(2) * 25 = 21.2 px: a hit is within 10.6 px
    assert scores.pckh.per_joint[J["right_wrist"]] == 0.0 and scores.pckh.per_joint[J["left_knee"]] == 1.0
    assert scores.pckh.mean_over(LSP_INDICES) == pytest.approx(11 / 14)


def test_unlabelled_joints_and_people_without_a_torso_are_not_scored(tmp_path: Path) -> None:
    gt = upright_person()
    partly = np.ones(K, bool)
    partly[J["left_knee"]] = False
    no_torso = np.ones(K, bool)
    no_torso[J["right_hip"]] = False
    records = [PersonRecord(tmp_path / "a.jpg", gt, partly), PersonRecord(tmp_path / "b.jpg", gt, no_torso)]
    pred = np.stack([gt, gt + 1000.0])  # the second person's predictions are all wrong, but it has no torso
    scores = score_mode(pred, records)
    assert scores.mean == 1.0
    assert scores.pck.counts[J["left_knee"]] == 0 and scores.pck.counts[J["right_knee"]] == 1


def test_lsp_and_limb_joint_sets() -> None:
    assert sorted(MPII_JOINTS[i] for i in LSP_INDICES) == sorted(LSP_JOINTS)
    assert len(LIMB_INDICES) == 12 and J["upper_neck"] not in LIMB_INDICES and J["head_top"] not in LIMB_INDICES


# ---------------------------------------------------------------- the CLI on a tiny fake LSP
PHOTOS = 3
SIZES = [(150, 200), (240, 180), (160, 160)]


@pytest.fixture(scope="module")
def fake_lsp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """2,000 annotations (LSP's layout) with photos for the first three test images, im1001..im1003."""
    root = tmp_path_factory.mktemp("lsp")
    joints = write_fake_lsp(root, 2000, {1000 + i: size for i, size in enumerate(SIZES)})
    return root, joints


def expected_scores(joints: np.ndarray, peaks: np.ndarray, mode: str, first: int = 1000) -> tuple[float, float]:
    """PCK@0.2 over 14 joints and 12 limbs computed independently for photos ``first`` on: the constant model's
    peaks ((h + 0.5) * 4 - 0.5 in the input) mapped back through the service's documented input map."""
    from model_export.data.lsp import convert

    ann = convert(joints[first : first + PHOTOS], "occluded")
    hits = np.zeros((PHOTOS, K), bool)
    for n, size in enumerate(SIZES):
        gt = ann.joints[n]
        xs, ys = gt[ann.labelled[n]].T
        box = (xs.min() + 0.5, ys.min() + 0.5, xs.max() - xs.min(), ys.max() - ys.min())
        affine = plan(size, (256, 256), "letterbox", box if mode == "box" else None)
        pred = affine.to_image((peaks + 0.5) * 4 - 0.5)
        torso = np.linalg.norm(gt[J["left_shoulder"]] - gt[J["right_hip"]])
        hits[n] = np.linalg.norm(pred - gt, axis=1) <= 0.2 * torso
    return hits[:, list(LSP_INDICES)].mean(), hits[:, list(LIMB_INDICES)].mean()


def test_evaluate_lsp_test_end_to_end(
    fake_lsp: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, joints = fake_lsp
    # whole-pixel peaks (exact under the quarter refinement), spread so that some joints hit and some miss
    peaks = np.column_stack([np.linspace(8, 56, K).round(), np.linspace(10, 54, K)[::-1].round()])
    model = tmp_path / "constant.onnx"
    constant_model(model, peaks, sigma=1.0)
    out = tmp_path / "lsp.json"
    argv = ["evaluate", "--onnx", str(model), "--dataset", "lsp-test", "--lsp", str(root), "--limit", str(PHOTOS)]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[box]" in printed and "[whole]" in printed and "Limbs (12)" in printed
    report = json.loads(out.read_text())
    assert report["dataset"] == "lsp-test" and report["photos"] == PHOTOS and report["flip"] is False
    for mode in ("box", "whole"):
        mean, limbs = expected_scores(joints, peaks, mode)
        got = report["modes"][mode]["pck@0.2"]
        assert got["mean"] == pytest.approx(mean, abs=1e-6), mode
        assert got["limbs"] == pytest.approx(limbs, abs=1e-6), mode
        assert set(got["per_joint"]) == set(LSP_JOINTS)
        assert report["modes"][mode]["counts"]["head_top"] == PHOTOS
    assert report["modes"]["box"]["pck@0.2"] != report["modes"]["whole"]["pck@0.2"]


def test_evaluate_lsp_val_scores_the_validation_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "lsp"
    joints = write_fake_lsp(root, 2000, {900 + i: size for i, size in enumerate(SIZES)})  # im0901..im0903 only
    peaks = np.column_stack([np.linspace(8, 56, K).round(), np.linspace(10, 54, K)[::-1].round()])
    model = tmp_path / "constant.onnx"
    constant_model(model, peaks, sigma=1.0)
    out = tmp_path / "val.json"
    argv = ["evaluate", "--onnx", str(model), "--dataset", "lsp-val", "--lsp", str(root), "--limit", str(PHOTOS)]
    assert main([*argv, "--mode", "box", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dataset"] == "lsp-val" and report["photos"] == PHOTOS
    mean, limbs = expected_scores(joints, peaks, "box", first=900)
    assert report["modes"]["box"]["pck@0.2"]["mean"] == pytest.approx(mean, abs=1e-6)
    assert report["modes"]["box"]["pck@0.2"]["limbs"] == pytest.approx(limbs, abs=1e-6)
    # the test split's photos are absent from this folder: a clear error, not a traceback
    capsys.readouterr()
    assert main([*argv[:4], "lsp-test", *argv[5:]]) == 2
    err = capsys.readouterr().err
    assert "cannot read the photo" in err and "im1001.jpg" in err and "Traceback" not in err


def test_evaluate_lsp_test_one_mode_with_flip_and_dark(fake_lsp: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    root, _ = fake_lsp
    model = tmp_path / "constant.onnx"
    constant_model(model, np.full((K, 2), 31.0))
    out = tmp_path / "lsp.json"
    argv = ["evaluate", "--onnx", str(model), "--dataset", "lsp-test", "--lsp", str(root), "--limit", "2"]
    assert main([*argv, "--mode", "whole", "--flip", "--refine", "dark", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["modes"]) == ["whole"] and report["flip"] is True and report["refine"] == "dark"


def test_evaluate_lsp_test_reports_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "constant.onnx"
    constant_model(model, np.full((K, 2), 31.0))
    argv = ["evaluate", "--onnx", str(model), "--dataset", "lsp-test", "--lsp", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    assert "folder not found" in capsys.readouterr().err


# ---------------------------------------------------------------- the CLI on a tiny COCO keypoints file
COCO_PHOTOS = {1: ("a.jpg", (200, 150)), 2: ("b.jpg", (120, 170))}
COCO_PEOPLE = [(1, [10.0, 5.0, 60.0, 120.0]), (1, [110.5, 20.25, 70.0, 110.0]), (2, [15.0, 30.0, 80.0, 130.0])]


def write_fake_coco(root: Path, seed: int = 0) -> tuple[Path, list[np.ndarray]]:
    """Two noise photos, three people (two share the first photo); returns the file and each person's joints
    in MPII order (COCO's 12 limb joints, in the person box's upper-left quarter)."""
    from model_export.data.coco import COCO_KEYPOINTS

    rng = np.random.default_rng(seed)
    for name, (width, height) in COCO_PHOTOS.values():
        Image.fromarray(rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)).save(root / name)
    annotations, truth = [], []
    for n, (image_id, (x, y, w, h)) in enumerate(COCO_PEOPLE):
        # the joints fill only the box's upper-left part, so COCO's box and the joints' box crop differently
        xy = np.column_stack([rng.uniform(x, x + w / 2, 17), rng.uniform(y, y + h / 2, 17)]).round(1)
        flat = [float(c) for point in xy for c in (*point, 2)]
        annotations.append({"id": n, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "keypoints": flat})
        joints = np.zeros((K, 2))
        for c, name in enumerate(COCO_KEYPOINTS):
            if name in J:
                joints[J[name]] = xy[c]
        truth.append(joints)
    images = [{"id": i, "file_name": name, "width": s[0], "height": s[1]} for i, (name, s) in COCO_PHOTOS.items()]
    path = root / "keypoints.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path, truth


def test_evaluate_coco_scores_the_limbs_with_the_annotated_box(tmp_path: Path) -> None:
    annotations, truth = write_fake_coco(tmp_path)
    peaks = np.column_stack([np.linspace(8, 56, K).round(), np.linspace(10, 54, K)[::-1].round()])
    model = tmp_path / "constant.onnx"
    constant_model(model, peaks, sigma=1.0)
    out = tmp_path / "coco.json"
    assert main(["evaluate", "--onnx", str(model), "--dataset", "coco", "--coco-annotations", str(annotations),
                 "--json", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["dataset"] == "coco" and report["photos"] == 2 and report["people"] == 3
    limbs = list(LIMB_INDICES)
    for mode, people in (("box", [0, 1, 2]), ("whole", [2])):  # only the third person is alone in a photo
        hits = []
        for n in people:
            image_id, box = COCO_PEOPLE[n]
            affine = plan(COCO_PHOTOS[image_id][1], (256, 256), "letterbox", box if mode == "box" else None)
            pred = affine.to_image((peaks + 0.5) * 4 - 0.5)
            gt = truth[n]
            torso = np.linalg.norm(gt[J["left_shoulder"]] - gt[J["right_hip"]])
            hits.append(np.linalg.norm(pred - gt, axis=1)[limbs] <= 0.2 * torso)
        got = report["modes"][mode]
        assert got["people"] == len(people)
        assert got["pck@0.2"]["limbs_correct"] == int(np.sum(hits)) and got["pck@0.2"]["limbs_scored"] == 12 * len(
            people
        )
        assert got["pck@0.2"]["limbs"] == pytest.approx(np.mean(hits), abs=1e-6)
        assert got["pck@0.2"]["mean"] == got["pck@0.2"]["limbs"]  # no neck or head top in COCO
        assert got["counts"]["head_top"] == 0 and got["pckh@0.5"]["mean"] is None
    assert report["modes"]["box"]["pck@0.2"] != report["modes"]["whole"]["pck@0.2"]


def test_evaluate_coco_needs_its_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "constant.onnx"
    constant_model(model, np.full((K, 2), 31.0))
    assert main(["evaluate", "--onnx", str(model), "--dataset", "coco"]) == 2
    assert "--coco-annotations" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": []}))
    assert main(["evaluate", "--onnx", str(model), "--dataset", "coco", "--coco-annotations", str(empty)]) == 2
    assert "no annotated person" in capsys.readouterr().err
