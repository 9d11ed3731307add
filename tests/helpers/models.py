"""Tiny ONNX models built with the ``onnx`` helper API (no torch), honouring the service's contract.

- :func:`constant_model`: ``heatmaps`` is a constant stack of Gaussians at known sub-pixel heatmap
  locations, whatever the image; the exact keypoints in image pixels follow from geometry alone.
- :func:`blob_model`: one joint whose heatmap is the image's red channel average-pooled by the
  stride, so the keypoint lands on a bright blob drawn into the image (tests pixel orientation).
- :func:`write_model`: any graph + ``metadata_props``; used for deliberately broken models too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pose.contract import ModelMetadata
from pose.layout import MPII, KeypointLayout

OPSET = 17
IR_VERSION = 8  # old enough for any recent ONNX Runtime


def gaussian_heatmaps(peaks: np.ndarray, heatmap_size: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    """``(K, h, w)`` float32 Gaussians, peak 1 at ``peaks`` ``(K, 2)`` (x, y) heatmap coordinates."""
    h, w = heatmap_size
    peaks = np.asarray(peaks, np.float64)
    xs, ys = np.arange(w), np.arange(h)
    gx = np.exp(-((xs[None, :] - peaks[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - peaks[:, 1:2]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def flip_symmetric_peaks(
    layout: KeypointLayout, heatmap_size: tuple[int, int], seed: int = 0, margin: float = 6.0
) -> np.ndarray:
    """Random sub-pixel peaks ``(K, 2)`` that a mirrored image maps onto themselves.

    Pair partners are mirror images (``x -> w - 1 - x``) and unpaired joints sit on the vertical
    centre line, so a correct flip test returns the same keypoints as no flip.
    """
    h, w = heatmap_size
    rng = np.random.default_rng(seed)
    k = layout.num_joints
    peaks = np.column_stack([rng.uniform(margin, w - 1 - margin, k), rng.uniform(margin, h - 1 - margin, k)])
    mirror = layout.flip_index
    for j in range(k):
        if mirror[j] == j:
            peaks[j, 0] = (w - 1) / 2
        elif mirror[j] > j:
            peaks[mirror[j]] = (w - 1 - peaks[j, 0], peaks[j, 1])
    return peaks


def write_model(
    path: Path,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Check and save a one-graph model with ``metadata_props``."""
    graph = helper.make_graph(list(nodes), "test_model", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def image_input(input_size: tuple[int, int] = (256, 256), name: str = "image") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3, *input_size])


def heatmaps_output(joints: int | str, heatmap_size: tuple[int, int], name: str = "heatmaps") -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", joints, *heatmap_size])


def constant_model(
    path: Path,
    peaks: np.ndarray,
    *,
    layout: KeypointLayout = MPII,
    input_size: tuple[int, int] = (256, 256),
    stride: int = 4,
    sigma: float = 2.0,
    with_metadata: bool = True,
    provenance: Mapping[str, object] | None = None,
) -> np.ndarray:
    """Save a model whose heatmaps are Gaussians at ``peaks`` ``(K, 2)`` for every image; returns them.

    The batch dimension follows the input: ``heatmaps = C + 0 * image[:, :1, :1, :1]``.
    """
    heatmap_size = (input_size[0] // stride, input_size[1] // stride)
    maps = gaussian_heatmaps(peaks, heatmap_size, sigma)[None]
    k = maps.shape[1]
    inits = [
        numpy_helper.from_array(maps, "maps"),
        numpy_helper.from_array(np.zeros(4, np.int64), "starts"),
        numpy_helper.from_array(np.array([2**62, 1, 1, 1], np.int64), "ends"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Slice", ["image", "starts", "ends"], ["corner"]),  # (N, 1, 1, 1)
        helper.make_node("Mul", ["corner", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "maps"], ["heatmaps"]),
    ]
    metadata = None
    if with_metadata:
        metadata = ModelMetadata(
            layout=layout,
            input_size=input_size,
            heatmap_stride=stride,
            architecture={"kind": "constant-gaussian-test-model"},
            provenance=dict(provenance or {"name": "constant-test", "version": "1"}),
        ).to_props()
    write_model(path, nodes, [image_input(input_size)], [heatmaps_output(k, heatmap_size)], inits, metadata)
    return maps[0]


def blob_model(path: Path, input_size: tuple[int, int] = (256, 256), stride: int = 4) -> Path:
    """One joint, ``blob``: the red channel average-pooled by ``stride`` (peaks where the image is brightest)."""
    heatmap_size = (input_size[0] // stride, input_size[1] // stride)
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Slice", ["image", "c0", "c1", "axis1"], ["red"]),
        helper.make_node("AveragePool", ["red"], ["heatmaps"], kernel_shape=[stride, stride], strides=[stride, stride]),
    ]
    metadata = ModelMetadata(
        layout=KeypointLayout(names=("blob",)),
        input_size=input_size,
        heatmap_stride=stride,
        provenance={"name": "blob-test", "version": "1"},
    ).to_props()
    return write_model(path, nodes, [image_input(input_size)], [heatmaps_output(1, heatmap_size)], inits, metadata)


def renamed_output_model(path: Path) -> Path:
    """Breaks the contract: the output is called ``logits`` instead of ``heatmaps``."""
    nodes = [helper.make_node("AveragePool", ["image"], ["logits"], kernel_shape=[4, 4], strides=[4, 4])]
    return write_model(path, nodes, [image_input()], [heatmaps_output(3, (64, 64), name="logits")])


def slow_constant_model(path: Path, peaks: np.ndarray, channels: int = 32) -> np.ndarray:
    """Like :func:`constant_model`, plus a 7x7 convolution over the full image (tens of ms per run on a CPU)
    whose result is multiplied by zero: for tests that need a run, e.g. warm-up, to take a while."""
    maps = gaussian_heatmaps(peaks, (64, 64))[None]
    weights = np.random.default_rng(0).standard_normal((channels, 3, 7, 7)).astype(np.float32)
    inits = [
        numpy_helper.from_array(maps, "maps"),
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["features"], pads=[3, 3, 3, 3]),
        helper.make_node("ReduceMean", ["features"], ["mean"], axes=[1, 2, 3], keepdims=1),  # (N, 1, 1, 1)
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "maps"], ["heatmaps"]),
    ]
    metadata = ModelMetadata(layout=MPII, provenance={"name": "slow-test", "version": "1"}).to_props()
    write_model(path, nodes, [image_input()], [heatmaps_output(maps.shape[1], (64, 64))], inits, metadata)
    return maps[0]
