"""Small TensorFlow.js graph models written here (``model.json`` + one weight file), for the rebuild's tests.

- :func:`write_graph`: any nodes and constants, float32 constants optionally stored as float16 (as the packaged
  models are); :func:`fused_conv` writes grappler's fused convolution node.
- :func:`brightest_spot_teacher`: a graph with MoveNet's contract (int32 ``(1, S, S, 3)`` -> ``(1, 1, 17, 3)``
  ``(y, x, score)``) whose 17 keypoints all sit on the brightest pixel of its input, built from the ops MoveNet
  itself uses: where a teacher's keypoints land in a photo then follows from geometry alone.
- :func:`two_spot_teacher`: the same contract with a left and a right: the left keypoints on the reddest pixel,
  the right ones on the greenest.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

ONES = {"list": {"i": ["1", "1", "1", "1"]}}


def text(value: str) -> dict[str, str]:
    """A string attribute as TF.js writes it."""
    return {"s": base64.b64encode(value.encode()).decode()}


def node(name: str, op: str, inputs: list[str], **attr: Any) -> dict[str, Any]:
    return {"name": name, "op": op, "input": inputs, "attr": attr}


def placeholder(name: str, shape: tuple[int, ...], dtype: str = "DT_FLOAT") -> dict[str, Any]:
    dims = [{"size": str(d)} for d in shape]
    return node(name, "Placeholder", [], shape={"shape": {"dim": dims}}, dtype={"type": dtype})


def write_graph(
    folder: Path, nodes: list[dict[str, Any]], consts: dict[str, np.ndarray], quantize: bool = True
) -> Path:
    """``folder/model.json`` + ``folder/w.bin``: ``nodes`` after one ``Const`` node per constant."""
    weights, blob = [], b""
    for name, value in consts.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype == np.int32 else "float32"}
        if quantize and value.dtype == np.float32:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += value.astype(np.float16).tobytes()
        else:
            blob += value.tobytes()
        weights.append(spec)
    every = [*(node(name, "Const", []) for name in consts), *nodes]
    spec = {"modelTopology": {"node": every}, "weightsManifest": [{"paths": ["w.bin"], "weights": weights}]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(spec))
    (folder / "w.bin").write_bytes(blob)
    return folder / "model.json"


def fused_conv(name: str, inputs: list[str], *ops: str, op: str = "_FusedConv2D", **attr: Any) -> dict[str, Any]:
    """A grappler-fused convolution node (``op``: ``_FusedConv2D`` or ``FusedDepthwiseConv2dNative``) running
    ``ops`` after it (e.g. ``"BiasAdd", "Relu"``); stride 1, VALID, NHWC unless ``attr`` says otherwise."""
    conv = {"strides": ONES, "dilations": ONES, "padding": text("VALID"), "data_format": text("NHWC"), **attr}
    fused = {"list": {"s": [text(fused_op)["s"] for fused_op in ops]}}
    return node(name, op, inputs, fused_ops=fused, num_args={"i": "1"}, **conv)


def spot_finder(side: int, kernel: np.ndarray) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Constants and nodes from an int32 ``(1, side, side, 3)`` input ``input`` to ``y`` and ``x``, each ``(1, C)``:
    the centre of the pixel where channel ``c`` of ``relu(1x1 convolution by kernel (1, 1, 3, C))`` peaks (the first
    in row-major order on a tie), as fractions of the side."""
    channels = kernel.shape[-1]
    consts = {
        "kernel": kernel.astype(np.float32),
        "zero": np.zeros((channels,), np.float32),
        "flat_shape": np.array([1, -1, channels], np.int32),
        "axis1": np.array(1, np.int32),
        "side": np.array(side, np.int32),
        "half": np.array(0.5, np.float32),
        "per_side": np.array(1.0 / side, np.float32),
    }
    nodes = [
        placeholder("input", (1, side, side, 3), "DT_INT32"),
        node("float", "Cast", ["input"], DstT={"type": "DT_FLOAT"}),
        fused_conv("response", ["float", "kernel", "zero"], "BiasAdd", "Relu"),
        node("flat", "Reshape", ["response", "flat_shape"]),  # (1, side * side, C)
        node("index", "ArgMax", ["flat", "axis1"]),  # (1, C)
        node("row", "FloorDiv", ["index", "side"]),
        node("row_start", "Mul", ["row", "side"]),
        node("col", "Sub", ["index", "row_start"]),
        node("row_f", "Cast", ["row"], DstT={"type": "DT_FLOAT"}),
        node("col_f", "Cast", ["col"], DstT={"type": "DT_FLOAT"}),
        node("row_c", "AddV2", ["row_f", "half"]),
        node("col_c", "AddV2", ["col_f", "half"]),
        node("y", "Mul", ["row_c", "per_side"]),
        node("x", "Mul", ["col_c", "per_side"]),
    ]
    return consts, nodes


def brightest_spot_teacher(folder: Path, side: int = 256, score: float = 0.75) -> Path:
    """The MoveNet-contract graph whose every keypoint is the brightest input pixel's centre (the first in
    row-major order on a tie), as fractions of the input's side, with score ``score``."""
    consts, nodes = spot_finder(side, np.ones((1, 1, 3, 1)))  # the channels' sum
    consts |= {
        "score": np.full((1, 1), score, np.float32),
        "all_keypoints": np.ones((1, 1, 17, 1), np.float32),
        "axis0": np.array(0, np.int32),
    }
    nodes += [
        node("yxs", "Pack", ["y", "x", "score"], axis={"i": "2"}),  # (1, 1, 3)
        node("expanded", "ExpandDims", ["yxs", "axis0"]),  # (1, 1, 1, 3)
        node("Identity", "Mul", ["expanded", "all_keypoints"]),  # (1, 1, 17, 3)
    ]
    return write_graph(folder, nodes, consts, quantize=False)


LEFT_AND_NOSE = (0, 1, 3, 5, 7, 9, 11, 13, 15)  # COCO's nose and left keypoints; the rest are the right ones


def two_spot_teacher(folder: Path, side: int = 256, score: float = 0.75) -> Path:
    """The MoveNet-contract graph whose nose and left keypoints sit on the reddest input pixel and whose right
    keypoints sit on the greenest (pixel centres, as fractions of the side): a teacher with a left and a right."""
    redness_greenness = np.array([[1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]).reshape(1, 1, 3, 2)
    consts, nodes = spot_finder(side, redness_greenness)
    channel = [0 if k in LEFT_AND_NOSE else 1 for k in range(17)]
    consts |= {
        "pick": np.array([[0, c] for c in channel], np.int32),
        "scores": np.full((17, 1), score, np.float32),
        "axis0": np.array(0, np.int32),
    }
    nodes += [
        node("yx", "Pack", ["y", "x"], axis={"i": "2"}),  # (1, 2 channels, 2)
        node("picked", "GatherNd", ["yx", "pick"]),  # (17, 2)
        node("rows", "ConcatV2", ["picked", "scores", "axis1"]),  # (17, 3)
        node("batch", "ExpandDims", ["rows", "axis0"]),
        node("Identity", "ExpandDims", ["batch", "axis0"]),  # (1, 1, 17, 3)
    ]
    return write_graph(folder, nodes, consts, quantize=False)
