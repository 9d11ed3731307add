"""The pseudo-labelling path: the teacher's keypoints mapped back to the photo, the data tool's folder (pairing,
thresholds, provenance), and training reading it, all with a tiny teacher graph written in the test whose keypoints
sit on the brightest pixel (``tests/helpers/tfjs_graphs.py``). The real teacher is checked against TensorFlow.js
by ``scripts/teacher_reference.sh``."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_export.__main__ import main
from model_export.data.coco import COCO_TO_MPII
from model_export.data.people import coco_records
from model_export.data.sources import mixed_training_set
from model_export.data.staging import staged_records
from model_export.teacher import FILES, Teacher, TeacherError, sha256
from pose.codec import HeatmapCodec
from tests.helpers.server import REPO_ROOT
from tests.helpers.tfjs_graphs import brightest_spot_teacher, node, placeholder, write_graph

SKIER = REPO_ROOT / "tests" / "data" / "000000000785.jpg"
SKIER_BOX = (280.79, 44.73, 218.7, 346.68)  # COCO annotation 442619


def photo_with_spots(size: tuple[int, int], spots: list[tuple[int, int]]) -> np.ndarray:
    """A dark RGB photo with a 3x3 white square centred on each ``(x, y)``."""
    width, height = size
    pixels = np.full((height, width, 3), 20, np.uint8)
    for x, y in spots:
        pixels[y - 1 : y + 2, x - 1 : x + 2] = 255
    return pixels


@pytest.fixture(scope="module")
def teacher_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return brightest_spot_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.mark.parametrize(
    ("box", "spot"),
    [
        ((100.0, 50.0, 120.0, 300.0), (150, 120)),
        ((400.0, 10.0, 60.0, 60.0), (445, 60)),
        ((-30.0, 200, 200, 240), (5, 390)),
    ],
)
def test_the_teachers_keypoints_land_where_they_are_in_the_photo(teacher_json: Path, box: tuple, spot: tuple) -> None:
    """The crop is the service's box crop (grown, letterboxed, partly outside the photo for the third box); its
    exact inverse brings the keypoints back to within a crop pixel of the spot."""
    teacher = Teacher(teacher_json)
    labels = teacher.label(photo_with_spots((480, 440), [spot]), box)
    crop_pixel = 1.25 * max(box[2], box[3]) / 256
    assert labels.keypoints.shape == (17, 2) and labels.scores.shape == (17,)
    assert np.abs(labels.keypoints - spot).max() <= 1.0 + crop_pixel
    np.testing.assert_allclose(labels.scores, 0.75)
    assert not teacher.packaged and set(teacher.provenance["files"]) == {"model.json", "w.bin"}


def test_a_teacher_that_breaks_movenets_contract_or_its_files_is_refused(tmp_path: Path, teacher_json: Path) -> None:
    consts = {"shape": np.array([1, -1, 3], np.int32)}
    nodes = [placeholder("input", (1, 256, 256, 3), "DT_INT32"), node("Identity", "Reshape", ["input", "shape"])]
    with pytest.raises(TeacherError, match=r"expected \(1, 1, 17, 3\)"):
        Teacher(write_graph(tmp_path / "wrong", nodes, consts))
    with pytest.raises(TeacherError, match="missing"):
        Teacher.movenet(tmp_path / "nowhere" / "movenet-thunder.json")
    altered = tmp_path / "altered"
    altered.mkdir()
    for name in FILES:
        shutil.copy(teacher_json, altered / Path(name).name)
    with pytest.raises(TeacherError, match=f"SHA-256 {sha256(teacher_json)}"):
        Teacher.movenet(altered / "movenet-thunder.json")


def write_photos(folder: Path) -> dict[str, list[tuple[tuple[float, ...], tuple[int, int]]]]:
    """Three photos (PNG, exact pixels) and a file that is not one; name -> [(box, spot in it)]."""
    people = {
        "street/two.png": [((40.0, 30.0, 100.0, 220.0), (90, 100)), ((300.0, 60.0, 90.0, 200.0), (340, 170))],
        "one.png": [((120.0, 80.0, 150.0, 260.0), (200, 250))],
        "tiny.png": [((10.0, 10.0, 20.0, 30.0), (20, 25))],  # smaller than --min-box-side
    }
    for name, entries in people.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_with_spots((480, 360), [spot for _, spot in entries])).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    return people


def coco_file(path: Path, people: dict, keypoints_at_spots: bool) -> Path:
    """A COCO file of ``people``'s boxes: the left shoulder and right hip (the torso) 100 px above and below the
    spot, the other 10 limb joints on the spot (``keypoints_at_spots``) or 200 px right of it."""
    images = [{"id": i, "file_name": name, "width": 480, "height": 360} for i, name in enumerate(people, 1)]
    annotations = []
    for image_id, entries in enumerate(people.values(), 1):
        for box, (x, y) in entries:
            flat: list[float] = []
            for k in range(17):
                if k not in COCO_TO_MPII:
                    flat += [0, 0, 0]
                elif k in (5, 12):  # left shoulder, right hip
                    flat += [x, y - 100 if k == 5 else y + 100, 2]
                else:
                    flat += [x if keypoints_at_spots else x + 200, y, 2]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": list(box),
                    "keypoints": flat,
                    "iscrowd": 0,
                }  # fmt: skip
            )
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1}]}))
    return path


def source_file(path: Path, **overrides: str) -> Path:
    source = {"name": "test photos", "origin": "drawn by tests/test_pseudo_labels.py", "licence": "CC0-1.0"}
    path.write_text(json.dumps({**source, **overrides}))
    return path


def test_the_tool_labels_the_given_boxes_and_training_reads_the_folder(tmp_path: Path, teacher_json: Path) -> None:
    photos = tmp_path / "photos"
    people = write_photos(photos)
    boxes = coco_file(tmp_path / "boxes.json", people, keypoints_at_spots=True)
    (photos / "images").mkdir()
    out = tmp_path / "pseudo"
    argv = ["pseudo-label", "--photos", str(photos), "--source", str(source_file(tmp_path / "source.json")),
            "--out", str(out), "--teacher", str(teacher_json), "--boxes", str(boxes)]  # fmt: skip
    assert main([*argv, "--check", str(boxes), "--check-images", str(photos)]) == 0

    coco = json.loads((out / "person_keypoints.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == ["one.png", "street/two.png"]
    for image in coco["images"]:
        assert image["sha256"] == sha256(photos / image["file_name"])
        assert (out / "images" / image["file_name"]).resolve() == (photos / image["file_name"]).resolve()
    assert len(coco["annotations"]) == 3 and all(a["num_keypoints"] == 17 for a in coco["annotations"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["licence"] == "CC0-1.0"
    assert manifest["counts"] == {
        "unreadable photos": 1,
        "photos": 3,
        "people found": 4,
        "people too small": 1,
        "people labelled": 3,
        "photos with people labelled": 2,
    }
    assert manifest["teacher"]["files"]["model.json"] == sha256(teacher_json)
    assert manifest["teacher_check"]["pck_0.2_limbs"] == round(10 / 12, 4) and manifest["command"].startswith("python")

    records = coco_records(out / "person_keypoints.json", out / "images", source="pseudo")
    by_photo = {r.image.name: r for r in records}
    spot = np.array(people["one.png"][0][1], float)
    assert np.abs(by_photo["one.png"].joints[by_photo["one.png"].labelled] - spot).max() < 2.5
    args = Namespace(dataset="pseudo:1", pseudo=out, staged=None, epoch_size=4, data_seed=0, occlusion_prob=0.0,
                     whole_image_prob=0.25, truncate_prob=0.0, seed=0)  # fmt: skip
    sample = mixed_training_set(args, HeatmapCodec())[0]
    assert sample["image"].shape == (3, 256, 256) and sample["weight"].sum() > 0
    staged = tmp_path / "staged"  # and it shards for a GPU machine like the other sources
    assert main(["stage", "--out", str(staged), "--sources", "pseudo", "--pseudo", str(out), "--everywhere", ""]) == 0
    assert len(staged_records(staged, ["pseudo"])["pseudo"]) == 3

    # a stricter threshold than the teacher's scores keeps nobody; a check against wrong labels scores 0
    strict = tmp_path / "strict"
    wrong = coco_file(tmp_path / "wrong.json", people, keypoints_at_spots=False)
    argv[argv.index("--out") + 1] = str(strict)
    assert main([*argv, "--min-keypoint-score", "0.8", "--check", str(wrong), "--check-images", str(photos)]) == 0
    manifest = json.loads((strict / "manifest.json").read_text())
    assert manifest["counts"]["people with too few confident limbs"] == 3
    assert manifest["teacher_check"]["pck_0.2_limbs"] == 0.0


def test_the_tool_finds_people_with_the_services_detector(tmp_path: Path, teacher_json: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SKIER, photos / SKIER.name)
    out = tmp_path / "pseudo"
    argv = ["pseudo-label", "--photos", str(photos), "--source", str(source_file(tmp_path / "source.json")),
            "--out", str(out), "--teacher", str(teacher_json), "--engine", "onnxruntime"]  # fmt: skip
    assert main(argv) == 0
    [person] = json.loads((out / "person_keypoints.json").read_text())["annotations"]
    x, y, w, h = person["bbox"]
    tx, ty, tw, th = SKIER_BOX
    inter = max(0, min(x + w, tx + tw) - max(x, tx)) * max(0, min(y + h, ty + th) - max(y, ty))
    assert inter / (w * h + tw * th - inter) > 0.7 and person["score"] > 0.3
    assert json.loads((out / "manifest.json").read_text())["people_from"]["file"] == "person_detector.onnx"


@pytest.mark.parametrize("missing", ["licence", "origin"])
def test_photos_without_a_stated_licence_or_origin_are_not_labelled(
    tmp_path: Path, teacher_json: Path, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = source_file(tmp_path / "source.json", **{missing: " "})
    argv = ["pseudo-label", "--photos", str(tmp_path), "--source", str(source), "--out", str(tmp_path / "out"),
            "--teacher", str(teacher_json)]  # fmt: skip
    assert main(argv) == 2
    assert "licence" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
