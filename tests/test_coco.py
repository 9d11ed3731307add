"""COCO person keypoints for evaluation: the 17 -> 16 joint mapping value by value, the visibility flag, crowd
and empty annotations, people alone in their photo, annotated boxes, and clear errors for broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_export.data.coco import COCO_KEYPOINTS, COCO_TO_MPII, CocoDataError, load, to_mpii
from model_export.data.people import DataError, coco_records
from pose.layout import MPII_JOINTS

J = {name: i for i, name in enumerate(MPII_JOINTS)}


def keypoints(v: int | list[int] = 2) -> list[float]:
    """COCO's flat 17 x (x, y, v) with joint i at (10 i + 1, 100 + i)."""
    flags = [v] * 17 if isinstance(v, int) else v
    return [c for i in range(17) for c in (10.0 * i + 1, 100.0 + i, flags[i])]


def test_the_twelve_limb_joints_map_by_name_and_side() -> None:
    joints, labelled = to_mpii(keypoints())
    # COCO's order: 5 left_shoulder, 6 right_shoulder, ..., 11 left_hip, 12 right_hip, ..., 16 right_ankle
    assert tuple(joints[J["left_shoulder"]]) == (51.0, 105.0)
    assert tuple(joints[J["right_shoulder"]]) == (61.0, 106.0)
    assert tuple(joints[J["left_wrist"]]) == (91.0, 109.0)
    assert tuple(joints[J["right_hip"]]) == (121.0, 112.0)
    assert tuple(joints[J["right_ankle"]]) == (161.0, 116.0)
    assert tuple(joints[J["left_ankle"]]) == (151.0, 115.0)
    assert labelled.sum() == 12 and len(COCO_TO_MPII) == 12
    for name in ("pelvis", "thorax", "upper_neck", "head_top"):  # COCO has none of them
        assert not labelled[J[name]] and tuple(joints[J[name]]) == (0.0, 0.0)
    assert all(COCO_KEYPOINTS[c] == MPII_JOINTS[m] for c, m in COCO_TO_MPII.items())


def test_visibility_flag_zero_is_unlabelled_and_one_is_scored() -> None:
    flags = [2] * 17
    flags[COCO_KEYPOINTS.index("left_knee")] = 0
    flags[COCO_KEYPOINTS.index("right_elbow")] = 1  # labelled but hidden: COCO still scores it
    joints, labelled = to_mpii(keypoints(flags))
    assert not labelled[J["left_knee"]] and tuple(joints[J["left_knee"]]) == (0.0, 0.0)
    assert labelled[J["right_elbow"]] and tuple(joints[J["right_elbow"]]) == (81.0, 108.0)


def coco_file(path: Path, annotations: list[dict[str, Any]], images: list[dict[str, Any]] | None = None) -> Path:
    images = images or [
        {"id": 1, "file_name": "a.jpg", "width": 200, "height": 150},
        {"id": 2, "file_name": "b.jpg", "width": 120, "height": 160},
    ]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    return path


def person(image_id: int, ann_id: int, bbox: list[float], **extra: Any) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "keypoints": keypoints(), **extra}


def test_load_keeps_people_with_limbs_and_knows_who_is_alone(tmp_path: Path) -> None:
    face_only = [2 if i < 5 else 0 for i in range(17)]
    path = coco_file(
        tmp_path / "kp.json",
        [
            person(1, 10, [5.0, 6.0, 50.0, 80.0]),
            person(1, 11, [60.5, 2.25, 40.0, 90.0]),
            person(1, 12, [0, 0, 200, 150], iscrowd=1),  # a crowd region: never scored
            person(2, 13, [1.0, 2.0, 30.0, 40.0]),
            {**person(2, 14, [1, 1, 5, 5]), "keypoints": keypoints(face_only)},  # no limb joint: dropped
            {**person(2, 15, [1, 1, 5, 5]), "category_id": 3},  # not a person
        ],
    )
    people = load(path)
    assert [p.annotation_id for p in people] == [10, 11, 13]
    assert [p.image for p in people] == ["a.jpg", "a.jpg", "b.jpg"]
    assert people[1].box == (60.5, 2.25, 40.0, 90.0)
    # image 1 holds three person annotations (the crowd too), image 2 two: nobody is alone
    assert [p.alone for p in people] == [False, False, False]
    alone = load(coco_file(tmp_path / "alone.json", [person(2, 13, [1.0, 2.0, 30.0, 40.0])]))
    assert alone[0].alone


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "'images' and 'annotations'"),
        (json.dumps({"images": [{"id": 1}], "annotations": []}), "malformed"),
        (
            json.dumps(
                {"images": [], "annotations": [{"image_id": 7, "bbox": [0, 0, 1, 1], "keypoints": keypoints()}]}
            ),
            "names image 7",
        ),
    ],
)
def test_broken_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kp.json"
    path.write_text(content)
    with pytest.raises(CocoDataError, match=message):
        load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": [1, 2, 2]}, "51 finite numbers"),
        ({"keypoints": ["a"] * 51}, "51 numbers"),
        ({"bbox": [0, 0, 0, 10]}, r"expected \[x, y, w, h\]"),
        ({"bbox": [0, 0, 10]}, "malformed"),
    ],
)
def test_broken_annotations_name_the_file(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = coco_file(tmp_path / "kp.json", [{**person(1, 10, [0, 0, 10, 10]), **change}])
    with pytest.raises(CocoDataError, match=message):
        load(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CocoDataError, match="file not found"):
        load(tmp_path / "none.json")
    path = coco_file(tmp_path / "kp.json", [person(1, 10, [0, 0, 10, 10])])
    with pytest.raises(DataError, match="folder not found"):
        coco_records(path, tmp_path / "no-images")
    with pytest.raises(DataError, match="file not found"):
        coco_records(tmp_path / "none.json", tmp_path)


def test_records_carry_the_annotated_box(tmp_path: Path) -> None:
    path = coco_file(tmp_path / "kp.json", [person(2, 13, [1.0, 2.0, 30.0, 40.0])])
    [record] = coco_records(path, tmp_path)
    assert record.image == tmp_path / "b.jpg" and record.alone and record.source == "coco"
    assert record.box() == (1.0, 2.0, 30.0, 40.0)  # COCO's box, not the joints' box
    assert record.torso_size() == pytest.approx(np.hypot(51 - 121, 105 - 112))
    assert record.head_size() == 0.0  # no neck or head top: no PCKh
