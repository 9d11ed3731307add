"""The TF.js graph rebuild (``model_export.tfjs_graph``) on a small graph written here: each op against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_export.tfjs_graph import TfjsGraph, TfjsGraphError, read_weights
from tests.helpers.tfjs_graphs import (
    ONES,
    brightest_spot_teacher,
    fused_conv,
    node,
    placeholder,
    text,
    write_graph,
)


def write_nanodet_like(folder: Path, quantize: bool = True) -> dict[str, np.ndarray]:
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
    nodes = [
        placeholder("x", (1, 2, 4, 4)),
        node("shape", "AddV2", ["shape_base", "shape_add"]),  # folded at load: (1, -1, 3)
        node("nhwc", "Transpose", ["x", "perm"]),
        node("padded", "Pad", ["nhwc", "pads"]),
        node(
            "conv",
            "Conv2D",
            ["padded", "kernel"],
            strides=ONES,
            dilations=ONES,
            padding=text("VALID"),
            data_format=text("NHWC"),
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
    write_graph(folder, nodes, consts, quantize)
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
    consts = write_nanodet_like(tmp_path, quantize)
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
    consts = write_nanodet_like(tmp_path)
    weights = read_weights(json.loads((tmp_path / "model.json").read_text()), tmp_path)
    assert list(weights) == list(consts)
    for name, value in consts.items():
        assert weights[name].dtype == value.dtype and np.array_equal(weights[name], value), name


def test_a_broken_graph_is_a_clear_error(tmp_path: Path) -> None:
    write_nanodet_like(tmp_path)
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


def _depthwise_reference(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """TensorFlow's depthwise convolution with SAME padding, NHWC, in numpy: output channel c * m + k is input
    channel c convolved with ``kernel[..., c, k]``."""
    _, height, width, channels = x.shape
    size, multiplier = kernel.shape[0], kernel.shape[3]
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + size - height, 0)
    pad_w = max((out_w - 1) * stride + size - width, 0)
    padded = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((1, out_h, out_w, channels * multiplier))
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[0, i * stride : i * stride + size, j * stride : j * stride + size]
            out[0, i, j] = np.einsum("hwc,hwcm->cm", patch, kernel).reshape(-1)
    return out


def test_movenet_s_fused_and_depthwise_convolutions_compute_what_tensorflow_does(tmp_path: Path) -> None:
    """Depthwise (channel multiplier 2) -> fused 1x1 convolution + bias + Relu6 -> fused depthwise, stride 2,
    + bias + Relu: the three convolution ops MoveNet's graph is made of, against numpy."""
    rng = np.random.default_rng(3)
    consts = {
        "dw": rng.normal(size=(3, 3, 2, 2)).astype(np.float32),
        "pw": rng.normal(size=(1, 1, 4, 3)).astype(np.float32),
        "pw_bias": rng.normal(size=(3,)).astype(np.float32),
        "dw2": rng.normal(size=(3, 3, 3, 1)).astype(np.float32),
        "dw2_bias": rng.normal(size=(3,)).astype(np.float32),
    }
    same = {"padding": text("SAME")}
    stride2 = {"list": {"i": ["1", "2", "2", "1"]}}
    depthwise = dict(strides=ONES, dilations=ONES, data_format=text("NHWC"), **same)
    nodes = [
        placeholder("x", (1, 7, 6, 2)),
        node("dw_out", "DepthwiseConv2dNative", ["x", "dw"], **depthwise),
        fused_conv("pw_out", ["dw_out", "pw", "pw_bias"], "BiasAdd", "Relu6", **same),
        fused_conv(
            "out",
            ["pw_out", "dw2", "dw2_bias"],
            "BiasAdd",
            "Relu",
            op="FusedDepthwiseConv2dNative",
            strides=stride2,
            **same,
        ),  # fmt: skip
    ]
    write_graph(tmp_path, nodes, consts, quantize=False)
    x = rng.normal(size=(1, 7, 6, 2)).astype(np.float32) * 3
    with torch.no_grad():
        (got,) = TfjsGraph(tmp_path / "model.json", ["out"])(torch.from_numpy(x))
    step = _depthwise_reference(x, consts["dw"], 1)
    step = np.clip(np.einsum("nhwc,co->nhwo", step, consts["pw"][0, 0]) + consts["pw_bias"], 0, 6)
    expected = np.maximum(_depthwise_reference(step, consts["dw2"], 2) + consts["dw2_bias"], 0)
    assert got.shape == (1, 4, 3, 3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_an_unknown_fused_activation_is_a_clear_error(tmp_path: Path) -> None:
    consts = {"k": np.ones((1, 1, 1, 1), np.float32), "b": np.zeros((1,), np.float32)}
    nodes = [placeholder("x", (1, 2, 2, 1)), fused_conv("out", ["x", "k", "b"], "BiasAdd", "Elu")]
    write_graph(tmp_path, nodes, consts, quantize=False)
    with pytest.raises(TfjsGraphError, match="fused ops"):
        TfjsGraph(tmp_path / "model.json", ["out"])


@pytest.mark.parametrize("spot", [(0, 0), (17, 200), (255, 3), (128, 128)])
def test_movenet_s_decoding_ops_find_the_brightest_pixel(tmp_path: Path, spot: tuple[int, int]) -> None:
    """Cast, ArgMax, FloorDiv, Mul, Sub, AddV2, Pack, ExpandDims and broadcasting, through the MoveNet-contract
    fixture: every keypoint at the bright pixel's centre, as fractions of the side."""
    graph = TfjsGraph(brightest_spot_teacher(tmp_path), ["Identity"])
    image = np.zeros((1, 256, 256, 3), np.float32)
    image[0, spot[0], spot[1]] = (200, 10, 30)
    image[0, 100, 100] = (50, 50, 50)  # a dimmer pixel elsewhere
    with torch.no_grad():
        (out,) = graph(torch.from_numpy(image))
    assert out.shape == (1, 1, 17, 3)
    np.testing.assert_allclose(out[0, 0, :, 0].numpy(), (spot[0] + 0.5) / 256, atol=1e-7)
    np.testing.assert_allclose(out[0, 0, :, 1].numpy(), (spot[1] + 0.5) / 256, atol=1e-7)
    np.testing.assert_allclose(out[0, 0, :, 2].numpy(), 0.75)
