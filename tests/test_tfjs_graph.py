"""The TF.js graph rebuild (``model_export.tfjs_graph``) on a small graph written here: each op against numpy."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_export.tfjs_graph import TfjsGraph, TfjsGraphError, read_weights


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def write_graph(folder: Path, quantize: bool = True) -> dict[str, np.ndarray]:
    """NCHW input -> transpose to NHWC -> pad 1 -> 3x3 conv stride 1 (+ bias) -> leaky relu -> resize x2 ->
    concat with itself -> split 3/3 -> sigmoid of the first half -> reshape to (1, -1, 3) -> identity."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 2, 3)).astype(np.float16).astype(np.float32)  # HWIO, float16-exact
    bias = rng.normal(size=(3,)).astype(np.float16).astype(np.float32)
    consts = {
        "perm": np.array([0, 2, 3, 1], np.int32),
        "pads": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
        "kernel": kernel,
        "bias": bias,
        "size": np.array([8, 8], np.int32),
        "axis": np.array(3, np.int32),
        "splits": np.array([3, 3], np.int32),
        "shape_base": np.array([1, -1, 0], np.int32),
        "shape_add": np.array([0, 0, 3], np.int32),
    }
    weights, blob = [], b""
    for name, value in consts.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype == np.int32 else "float32"}
        if quantize and value.dtype == np.float32:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += value.astype(np.float16).tobytes()
        else:
            blob += value.tobytes()
        weights.append(spec)

    def node(name: str, op: str, inputs: list[str], **attr: object) -> dict:
        return {"name": name, "op": op, "input": inputs, "attr": attr}

    nodes = [
        node(
            "x",
            "Placeholder",
            [],
            shape={"shape": {"dim": [{"size": "1"}, {"size": "2"}, {"size": "4"}, {"size": "4"}]}},
        ),
        *(node(name, "Const", []) for name in consts),
        node("shape", "AddV2", ["shape_base", "shape_add"]),  # folded at load: (1, -1, 3)
        node("nhwc", "Transpose", ["x", "perm"]),
        node("padded", "Pad", ["nhwc", "pads"]),
        node(
            "conv",
            "Conv2D",
            ["padded", "kernel"],
            strides={"list": {"i": ["1", "1", "1", "1"]}},
            dilations={"list": {"i": ["1", "1", "1", "1"]}},
            padding=_s("VALID"),
            data_format=_s("NHWC"),
        ),  # fmt: skip
        node("biased", "Add", ["conv", "bias"]),
        node("act", "LeakyRelu", ["biased"], alpha={"f": 0.1}),
        node("up", "ResizeBilinear", ["act", "size"], half_pixel_centers={"b": True}, align_corners={"b": False}),
        node("cat", "ConcatV2", ["up", "up", "axis"]),
        node("split", "SplitV", ["cat", "splits", "axis"]),
        node("sig", "Sigmoid", ["split"]),
        node("flat", "Reshape", ["sig", "shape"]),
        node("out", "Identity", ["flat"]),
        node("unused", "Erf", ["x"]),  # not on the way to the output: never needed
    ]
    spec = {"modelTopology": {"node": nodes}, "weightsManifest": [{"paths": ["w.bin"], "weights": weights}]}
    (folder / "model.json").write_text(json.dumps(spec))
    (folder / "w.bin").write_bytes(blob)
    return consts


def reference(x: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    """The same graph in numpy and torch's reference ops, NHWC as TensorFlow runs it."""
    nhwc = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    kernel = consts["kernel"]
    conv = np.zeros((1, 4, 4, 3))
    for i in range(4):
        for j in range(4):
            conv[0, i, j] = np.einsum("hwc,hwco->o", nhwc[0, i : i + 3, j : j + 3], kernel)
    act = conv + consts["bias"]
    act = np.where(act > 0, act, 0.1 * act)
    up = torch.nn.functional.interpolate(torch.from_numpy(act.transpose(0, 3, 1, 2)), size=(8, 8), mode="bilinear")
    up = up.numpy().transpose(0, 2, 3, 1)  # half-pixel centres, as TensorFlow's half_pixel_centers=True
    return (1 / (1 + np.exp(-up))).reshape(1, -1, 3)


@pytest.mark.parametrize("quantize", [True, False])
def test_the_rebuilt_graph_computes_what_the_ops_say(tmp_path: Path, quantize: bool) -> None:
    consts = write_graph(tmp_path, quantize)
    graph = TfjsGraph(tmp_path / "model.json", ["out"])
    x = np.random.default_rng(1).random((1, 2, 4, 4)).astype(np.float32)
    with torch.no_grad():
        (got,) = graph(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), reference(x, consts), atol=1e-5)
    assert graph.resize_scales == {"up": (2.0, 2.0)}
    with torch.no_grad():  # another batch and size: the resize follows the input, the batch stays dynamic
        (bigger,) = graph(torch.zeros(3, 2, 8, 8))
    assert bigger.shape == (3, 16 * 16, 3)


def test_weights_are_read_in_manifest_order_and_dequantized(tmp_path: Path) -> None:
    consts = write_graph(tmp_path)
    weights = read_weights(json.loads((tmp_path / "model.json").read_text()), tmp_path)
    assert list(weights) == list(consts)
    for name, value in consts.items():
        assert weights[name].dtype == value.dtype and np.array_equal(weights[name], value), name


def test_a_broken_graph_is_a_clear_error(tmp_path: Path) -> None:
    write_graph(tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    spec["modelTopology"]["node"][-2]["input"] = ["ghost"]
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(TfjsGraphError, match="no node ghost"):
        TfjsGraph(tmp_path / "model.json", ["out"])
    (tmp_path / "w.bin").write_bytes(b"\x00" * 8)
    with pytest.raises(TfjsGraphError, match="past the end"):
        TfjsGraph(tmp_path / "model.json", ["out"])
    with pytest.raises(TfjsGraphError, match="not a readable TF.js graph"):
        TfjsGraph(tmp_path / "missing.json", ["out"])
