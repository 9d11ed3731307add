"""pose.contract: the contract keys, their round trip and the fallbacks for models without metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pose.contract import METADATA_KEYS, MetadataError, ModelMetadata
from pose.layout import MPII, KeypointLayout


def test_round_trip_keeps_everything() -> None:
    layout = KeypointLayout(names=("nose", "left_eye", "right_eye"), flip_pairs=((1, 2),), skeleton=((0, 1), (0, 2)))
    meta = ModelMetadata(layout, (192, 256), 4, {"stacks": 1, "features": 8, "order": 4}, {"dataset": "x", "n": 3})
    props = meta.to_props()
    assert set(props) == set(METADATA_KEYS)
    assert all(isinstance(v, str) for v in props.values())
    assert json.loads(props["input_size"]) == [192, 256]
    assert json.loads(props["keypoint_names"]) == ["nose", "left_eye", "right_eye"]
    assert ModelMetadata.from_props(props, num_joints=3, input_hw=("batch", 3)) == meta


def test_no_metadata_and_16_joints_means_mpii_at_the_static_input_size() -> None:
    meta = ModelMetadata.from_props({}, num_joints=16, input_hw=(320, 256))
    assert meta.layout == MPII
    assert meta.input_size == (320, 256)
    assert meta.heatmap_stride == 4
    assert meta.architecture == {} and meta.provenance == {}


def test_no_metadata_and_other_joint_counts_get_generic_names_and_256_square() -> None:
    meta = ModelMetadata.from_props({}, num_joints=3, input_hw=("height", "width"))
    assert meta.keypoint_names == ("joint_0", "joint_1", "joint_2")
    assert meta.flip_pairs == () and meta.skeleton == ()
    assert meta.input_size == (256, 256)


def test_partial_metadata_fills_in_mpii_pairs_and_limbs() -> None:
    props = {"keypoint_names": json.dumps(list(MPII.names)), "input_size": "[256, 192]"}
    meta = ModelMetadata.from_props(props, num_joints=16)
    assert meta.layout == MPII and meta.input_size == (256, 192)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("skeleton", "[[0, 1]", "not valid JSON"),
        ("provenance", "{oops}", "not valid JSON"),
        ("keypoint_names", '"nose"', "list of strings"),
        ("flip_pairs", "[[0, 1, 2]]", "integer pairs"),
        ("skeleton", "[[0, 99]]", "outside"),
        ("input_size", "[256]", r"\[H, W\]"),
        ("input_size", "[0, 256]", r"\[H, W\]"),
        ("heatmap_stride", "4.5", "positive integer"),
        ("architecture", "[1, 2]", "JSON object"),
    ],
)
def test_malformed_metadata_raises_value_error(key: str, value: str, message: str) -> None:
    props = {**ModelMetadata(MPII).to_props(), key: value}
    with pytest.raises(ValueError, match=message):
        ModelMetadata.from_props(props, num_joints=16)
    assert issubclass(MetadataError, ValueError)


def test_names_that_contradict_the_output_are_rejected() -> None:
    with pytest.raises(ValueError, match="lists 16 joints but the model outputs 17"):
        ModelMetadata.from_props(ModelMetadata(MPII).to_props(), num_joints=17)


def test_module_imports_without_numpy_or_torch() -> None:
    code = "import sys, pose.contract; sys.exit(any(m in sys.modules for m in ('numpy', 'torch', 'onnx')))"
    assert (
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, check=False).returncode
        == 0
    )
