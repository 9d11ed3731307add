"""Tiny hand-built ONNX pose models that misbehave on cue, for the reliability tests.

Every model honours the service's contract (input ``image`` ``(N, 3, 64, 64)``, output ``heatmaps``
``(N, 16, 16, 16)``, MPII metadata) and answers normally, except when the batch is *pure green*
(mean green minus mean red above 0.98): a trigger a blank warm-up image, a photo or a grey test image
never pulls. Then

- ``fault="fail"``: a Reshape gets a target shape with twice the elements -> ONNX Runtime raises at run time;
- ``fault="slow"``: a Loop runs ``slow_iterations`` rounds of Sin over a 1M-float vector before answering.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

INPUT_SIZE = 64
JOINTS = 16
STRIDE = 4
OPSET = 17
Fault = Literal["none", "fail", "slow"]


def _const(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values), name)


def build_model(fault: Fault = "none", slow_iterations: int = 200) -> onnx.ModelProto:
    """The model as a ``ModelProto`` (see the module docstring)."""
    rng = np.random.default_rng(7)
    h = INPUT_SIZE // STRIDE
    inits = [
        _const("conv_w", rng.normal(0, 1, (JOINTS, 3, 1, 1)).astype(np.float32)),
        _const("conv_b", np.zeros(JOINTS, np.float32)),
        _const("idx_r", np.array(0, np.int64)),
        _const("idx_g", np.array(1, np.int64)),
        _const("margin", np.array(0.02, np.float32)),
        _const("zero_f", np.array(0.0, np.float32)),
    ]
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
        helper.make_node("Conv", ["pooled", "conv_w", "conv_b"], ["hm"]),
        # trigger = max(0, floor(mean(G) - mean(R) + 0.02)) as int64: 1 for a pure green batch, else 0
        helper.make_node("ReduceMean", ["image"], ["means"], axes=[0, 2, 3], keepdims=0),
        helper.make_node("Gather", ["means", "idx_r"], ["mean_r"]),
        helper.make_node("Gather", ["means", "idx_g"], ["mean_g"]),
        helper.make_node("Sub", ["mean_g", "mean_r"], ["diff"]),
        helper.make_node("Add", ["diff", "margin"], ["shifted"]),
        helper.make_node("Floor", ["shifted"], ["floored"]),
        helper.make_node("Max", ["floored", "zero_f"], ["trigger_f"]),
        helper.make_node("Cast", ["trigger_f"], ["trigger"], to=TensorProto.INT64),
    ]
    if fault == "none":
        nodes.append(helper.make_node("Identity", ["hm"], ["heatmaps"]))
    elif fault == "fail":
        inits += [_const("one_1", np.array([1], np.int64)), _const("one", np.array(1, np.int64))]
        inits.append(_const("shape_1d", np.array([1], np.int64)))
        nodes += [
            helper.make_node("Add", ["trigger", "one"], ["factor"]),
            helper.make_node("Reshape", ["factor", "shape_1d"], ["factor_1"]),
            helper.make_node("Concat", ["one_1", "factor_1", "one_1", "one_1"], ["multiplier"], axis=0),
            helper.make_node("Shape", ["hm"], ["hm_shape"]),
            helper.make_node("Mul", ["hm_shape", "multiplier"], ["target_shape"]),
            helper.make_node("Reshape", ["hm", "target_shape"], ["heatmaps"]),
        ]
    elif fault == "slow":
        inits += [
            _const("iterations", np.array(slow_iterations, np.int64)),
            _const("vector", np.linspace(0, 1, 1 << 20, dtype=np.float32)),
        ]
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                helper.make_node("Sin", ["v_in"], ["v_sin"]),
                helper.make_node("Cos", ["v_sin"], ["v_out"]),
            ],
            "spin",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [None]),
            ],
            [
                helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [None]),
            ],
        )
        nodes += [
            helper.make_node("Mul", ["trigger", "iterations"], ["trip_count"]),
            helper.make_node("Loop", ["trip_count", "", "vector"], ["spun"], body=body),
            helper.make_node("ReduceSum", ["spun"], ["spun_sum"], keepdims=0),
            helper.make_node("Mul", ["spun_sum", "zero_f"], ["nothing"]),
            helper.make_node("Add", ["hm", "nothing"], ["heatmaps"]),
        ]
    else:
        raise ValueError(f"unknown fault {fault!r}")
    graph = helper.make_graph(
        nodes,
        f"pose_{fault}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", JOINTS, h, h])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    helper.set_model_props(
        model,
        {
            "input_size": json.dumps([INPUT_SIZE, INPUT_SIZE]),
            "heatmap_stride": json.dumps(STRIDE),
            "provenance": json.dumps({"name": f"fault-{fault}", "version": "1"}),
        },
    )
    onnx.checker.check_model(model)
    return model


def write_model(path: Path, fault: Fault = "none", slow_iterations: int = 200) -> Path:
    path.write_bytes(build_model(fault, slow_iterations).SerializeToString())
    return path


def green_png(size: int = INPUT_SIZE) -> bytes:
    """The trigger: a square, pure green image (square, so letterboxing adds no padding)."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (0, 255, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def grey_png(size: int = INPUT_SIZE) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()
