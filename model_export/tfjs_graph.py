"""A TensorFlow.js graph model (``model.json`` + its weight files) rebuilt as a PyTorch module, op by op.

Enough of TensorFlow's ops for the convolutional models that ship in npm packages as TF.js graphs: NanoDet (Conv2D,
Pad/PadV2, LeakyRelu, Add/AddV2, Transpose, ConcatV2, ResizeBilinear, MaxPool, SplitV, Sigmoid, Reshape,
SparseToDense, Identity) and MoveNet (the grappler-fused ``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` with
BiasAdd, Relu, Relu6; DepthwiseConv2dNative; and its decoding: Cast, Sub, Mul, RealDiv, FloorDiv,
SquaredDifference, Sqrt, ArgMax, GatherNd, Pack, Unpack, ExpandDims, Squeeze). Tensors keep TensorFlow's layouts
(NHWC around a convolution), so the module computes exactly what the graph says; the ONNX exporter and ONNX
Runtime's transpose optimiser remove the layout round trips. Integer tensors are int64 here whatever the graph's
integer type. Nodes whose inputs are all constants (shape arithmetic) are folded when the graph is read.

TF.js weight files: one binary blob, the manifest's weights in order, each ``float32``/``int32`` (4 bytes) or,
when the manifest marks it quantized, ``float16`` (2 bytes) or ``uint8`` (``min + scale * q``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}
_FOLDABLE = {"Add", "AddV2", "SparseToDense", "Identity", "Cast"}


class TfjsGraphError(ValueError):
    """A TF.js graph that cannot be read, or uses an op this module does not implement."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]  # "name" or "name:k" (the k-th output); control inputs ("^name") dropped
    attr: dict[str, Any]


def read_weights(model_json: dict[str, Any], folder: Path) -> dict[str, np.ndarray]:
    """Every weight of the manifest, dequantized to its original dtype."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json.get("weightsManifest", []):
        blob = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = np.dtype(_QUANTIZED[quant["dtype"]] if quant else _DTYPES[spec["dtype"]])
            size = count * stored.itemsize
            if offset + size > len(blob):
                raise TfjsGraphError(f"weight {spec['name']} runs past the end of the weight files")
            raw = np.frombuffer(blob, stored, count, offset).reshape(shape)
            offset += size
            if quant and quant["dtype"] != "float16":
                raw = quant["min"] + quant["scale"] * raw.astype(np.float32)
            weights[spec["name"]] = raw.astype(_DTYPES[spec["dtype"]])
        if offset != len(blob):
            raise TfjsGraphError(f"{len(blob) - offset} bytes of the weight files are not in the manifest")
    return weights


def _ints(attr: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in attr[key]["list"]["i"]]


def _text(attr: dict[str, Any], key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode()


class TfjsGraph(nn.Module):
    """The graph of ``model_json`` (its weight files beside it) as a module: ``forward(x)`` takes the one
    placeholder's tensor and returns the tensors of the nodes named in ``outputs``."""

    def __init__(self, model_json: str | Path, outputs: Sequence[str]) -> None:
        super().__init__()
        model_json = Path(model_json)
        try:
            spec = json.loads(model_json.read_text())
            consts = read_weights(spec, model_json.parent)
        except (OSError, ValueError, KeyError) as exc:
            raise TfjsGraphError(f"{model_json}: not a readable TF.js graph model ({exc})") from exc
        nodes = [
            Node(n["name"], n["op"], tuple(i for i in n.get("input", ()) if not i.startswith("^")), n.get("attr", {}))
            for n in spec["modelTopology"]["node"]
        ]
        placeholders = [n.name for n in nodes if n.op == "Placeholder"]
        if len(placeholders) != 1:
            raise TfjsGraphError(f"expected one input placeholder, found {placeholders}")
        self.input_name = placeholders[0]
        self.outputs = tuple(outputs)
        self.consts = self._fold(nodes, consts)
        self.order = self._schedule({n.name: n for n in nodes})
        for name, value in self.consts.items():  # the tensors the runtime ops use, as buffers
            if value.dtype == np.float32:
                self.register_buffer(_key(name), torch.from_numpy(np.ascontiguousarray(value)), persistent=False)
        # a resize's output size is a constant of the graph's own input size: keep its ratio to its input instead,
        # so the graph runs at other input sizes (measured once at the declared shape)
        self.resize_scales: dict[str, tuple[float, float]] = {}
        declared = [
            int(d.get("size", 1))
            for d in next(n for n in spec["modelTopology"]["node"] if n["name"] == self.input_name)["attr"]["shape"][
                "shape"
            ]["dim"]
        ]
        with torch.no_grad():
            self._run(torch.zeros(declared), record_resizes=True)

    # ------------------------------------------------------------------ reading
    def _fold(self, nodes: list[Node], consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Evaluate every node whose inputs are all constants (shape arithmetic), in numpy."""
        for node in nodes:
            if node.op == "Const" and node.name not in consts:
                raise TfjsGraphError(f"constant {node.name} has no weight in the manifest")
        changed = True
        while changed:
            changed = False
            for node in nodes:
                if node.name in consts or node.op not in _FOLDABLE or not node.inputs:
                    continue
                if all(_source(i) in consts for i in node.inputs):
                    args = [consts[_source(i)] for i in node.inputs]
                    consts[node.name] = _fold_op(node, args)
                    changed = True
        return consts

    def _schedule(self, nodes: dict[str, Node]) -> list[Node]:
        """The runtime nodes the outputs need, in an order where every input comes first."""
        order: list[Node] = []
        done: set[str] = set(self.consts) | {self.input_name}
        stack: list[tuple[str, bool]] = [(name, False) for name in reversed(self.outputs)]
        while stack:
            name, expanded = stack.pop()
            if name in done:
                continue
            node = nodes.get(name)
            if node is None:
                raise TfjsGraphError(f"the graph has no node {name}")
            if expanded:
                done.add(name)
                order.append(node)
                continue
            stack.append((name, True))
            stack.extend((_source(i), False) for i in node.inputs if _source(i) not in done)
        unknown = sorted({n.op for n in order} - set(_OPS))
        if unknown:
            raise TfjsGraphError(f"ops not implemented: {', '.join(unknown)}")
        return order

    # ------------------------------------------------------------------ running
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._run(x)

    def _run(self, x: torch.Tensor, record_resizes: bool = False) -> tuple[torch.Tensor, ...]:
        values: dict[str, Any] = {self.input_name: x}

        def get(ref: str) -> Any:
            source, _, index = ref.partition(":")
            if source in values:
                value = values[source]
                return value[int(index or 0)] if isinstance(value, tuple) else value
            const = self.consts[source]
            return getattr(self, _key(source)) if const.dtype == np.float32 else const

        for node in self.order:
            args = [get(i) for i in node.inputs]
            if node.op == "ResizeBilinear":
                height, width = (int(d) for d in args[0].shape[1:3])  # static: the export fixes the size
                if record_resizes:
                    size = _numpy(args[1])
                    self.resize_scales[node.name] = (float(size[0]) / height, float(size[1]) / width)
                scale_y, scale_x = self.resize_scales[node.name]
                args[1] = np.array([round(height * scale_y), round(width * scale_x)])
            values[node.name] = _OPS[node.op](node, args)
        return tuple(values[name] for name in self.outputs)


def _numpy(value: Any) -> np.ndarray:
    """A constant operand (a shape, an axis, paddings) as numpy, whether it is held as a buffer or not."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _scalar(value: Any) -> float:
    return float(_numpy(value).reshape(-1)[0])


def _key(name: str) -> str:
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name)


def _source(ref: str) -> str:
    return ref.partition(":")[0]


def _fold_op(node: Node, args: list[np.ndarray]) -> np.ndarray:
    if node.op in ("Add", "AddV2"):
        return np.asarray(args[0] + args[1])
    if node.op in ("Identity", "Cast"):
        return np.asarray(args[0])
    indices, shape, values, default = args  # SparseToDense
    out = np.full(shape.astype(np.int64), default, dtype=np.asarray(default).dtype)
    if indices.size:
        out[tuple(indices.reshape(len(values), -1).T.astype(np.int64))] = values
    return out


# ---------------------------------------------------------------------- runtime ops (TensorFlow semantics)
def _convolve(node: Node, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """An NHWC convolution of ``x`` with an OIHW ``weight`` (groups from the weight's input channels)."""
    if _text(node.attr, "data_format") != "NHWC":
        raise TfjsGraphError(f"{node.name}: only NHWC convolutions are implemented")
    strides, dilations = _ints(node.attr, "strides"), _ints(node.attr, "dilations")
    x = x.permute(0, 3, 1, 2)
    padding = _text(node.attr, "padding")
    if padding == "SAME":
        x = _same_padding(x, weight.shape[2:], strides[1:3], dilations[1:3])
    elif padding != "VALID":
        raise TfjsGraphError(f"{node.name}: padding {padding} is not implemented")
    groups = x.shape[1] // weight.shape[1]
    out = F.conv2d(x, weight, stride=strides[1:3], dilation=dilations[1:3], groups=groups)
    return out.permute(0, 2, 3, 1)


def _conv2d(node: Node, args: list[Any]) -> torch.Tensor:
    x, kernel = args[:2]
    return _convolve(node, x, kernel.permute(3, 2, 0, 1))  # HWIO -> OIHW


def _depthwise(node: Node, args: list[Any]) -> torch.Tensor:
    x, kernel = args[:2]
    height, width, channels, multiplier = kernel.shape  # HW, input channels, channel multiplier
    weight = kernel.permute(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width)
    return _convolve(node, x, weight)


_FUSED_ACTIVATIONS = {"Relu": F.relu, "Relu6": F.relu6}


def _fused(convolution: Any) -> Any:
    """Grappler's fused convolution: the convolution, then ``BiasAdd`` and at most one activation."""

    def run(node: Node, args: list[Any]) -> torch.Tensor:
        steps = [base64.b64decode(op).decode() for op in node.attr["fused_ops"]["list"]["s"]]
        if not steps or steps[0] != "BiasAdd" or any(step not in _FUSED_ACTIVATIONS for step in steps[1:]):
            raise TfjsGraphError(f"{node.name}: fused ops {steps} are not implemented")
        out = convolution(node, args) + args[2]
        for step in steps[1:]:
            out = _FUSED_ACTIVATIONS[step](out)
        return out

    return run


def _same_padding(
    x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> torch.Tensor:
    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations, strict=True):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(x, (*pads[1], *pads[0]))


def _pad(node: Node, args: list[Any]) -> torch.Tensor:
    x, paddings = args[0], _numpy(args[1]).astype(np.int64)
    value = _scalar(args[2]) if len(args) > 2 else 0.0
    flat = [int(v) for pair in reversed(paddings.tolist()) for v in pair]  # last axis first, as F.pad wants
    return F.pad(x, flat, value=value)


def _max_pool(node: Node, args: list[Any]) -> torch.Tensor:
    if _text(node.attr, "data_format") != "NHWC" or _text(node.attr, "padding") != "VALID":
        raise TfjsGraphError(f"{node.name}: only NHWC, VALID max pooling is implemented")
    ksize, strides = _ints(node.attr, "ksize"), _ints(node.attr, "strides")
    out = F.max_pool2d(args[0].permute(0, 3, 1, 2), ksize[1:3], strides[1:3])
    return out.permute(0, 2, 3, 1)


def _resize_bilinear(node: Node, args: list[Any]) -> torch.Tensor:
    attr = node.attr
    if attr.get("align_corners", {}).get("b", False) or not attr.get("half_pixel_centers", {}).get("b", False):
        raise TfjsGraphError(f"{node.name}: only half-pixel-centre bilinear resizing is implemented")
    size = [int(v) for v in _numpy(args[1])]
    out = F.interpolate(args[0].permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1)


def _split(node: Node, args: list[Any]) -> tuple[torch.Tensor, ...]:
    x, sizes, axis = args[0], [int(v) for v in _numpy(args[1])], int(_scalar(args[2]))
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return tuple(torch.split(x, sizes, dim=axis))


def _reshape(node: Node, args: list[Any]) -> torch.Tensor:
    x, shape = args[0], [int(v) for v in _numpy(args[1])]
    if shape and shape[0] == 1:  # the graph was frozen at batch 1: keep the batch dynamic
        shape[0] = x.shape[0]
    return x.reshape(shape)


def _tensor(value: Any) -> torch.Tensor:
    """An operand as a tensor: integer constants become int64 (what indexing wants), float ones float32."""
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    return torch.from_numpy(np.ascontiguousarray(array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)))


def _cast(node: Node, args: list[Any]) -> torch.Tensor:
    target = node.attr["DstT"]["type"]
    if target == "DT_FLOAT":
        return _tensor(args[0]).float()
    if target in ("DT_INT32", "DT_INT64"):
        return _tensor(args[0]).long()
    raise TfjsGraphError(f"{node.name}: a cast to {target} is not implemented")


def _binary(operation: Any) -> Any:
    return lambda node, a: operation(_tensor(a[0]), _tensor(a[1]))


def _gather_nd(node: Node, args: list[Any]) -> torch.Tensor:
    params, indices = _tensor(args[0]), _tensor(args[1]).long()
    return params[tuple(indices[..., k] for k in range(indices.shape[-1]))]


def _squeeze(node: Node, args: list[Any]) -> torch.Tensor:
    x = args[0]
    dims = [int(d) % x.dim() for d in node.attr.get("squeeze_dims", {}).get("list", {}).get("i", [])]
    for dim in sorted(dims, reverse=True) if dims else [d for d in reversed(range(x.dim())) if x.shape[d] == 1]:
        x = x.squeeze(dim)
    return x


_OPS = {
    "Conv2D": _conv2d,
    "_FusedConv2D": _fused(_conv2d),
    "DepthwiseConv2dNative": _depthwise,
    "FusedDepthwiseConv2dNative": _fused(_depthwise),
    "Pad": _pad,
    "PadV2": _pad,
    "MaxPool": _max_pool,
    "ResizeBilinear": _resize_bilinear,
    "SplitV": _split,
    "Reshape": _reshape,
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "RealDiv": _binary(torch.div),
    "FloorDiv": _binary(lambda a, b: torch.div(a, b, rounding_mode="floor")),
    "SquaredDifference": _binary(lambda a, b: (a - b) ** 2),
    "Sqrt": lambda node, a: torch.sqrt(a[0]),
    "LeakyRelu": lambda node, a: F.leaky_relu(a[0], float(node.attr["alpha"]["f"])),
    "Sigmoid": lambda node, a: torch.sigmoid(a[0]),
    "Identity": lambda node, a: a[0],
    "Cast": _cast,
    "Transpose": lambda node, a: a[0].permute(*[int(v) for v in _numpy(a[1])]),
    "ConcatV2": lambda node, a: torch.cat([_tensor(v) for v in a[:-1]], dim=int(_scalar(a[-1]))),
    "Pack": lambda node, a: torch.stack([_tensor(v) for v in a], dim=int(node.attr.get("axis", {}).get("i", 0))),
    "Unpack": lambda node, a: tuple(torch.unbind(a[0], dim=int(node.attr.get("axis", {}).get("i", 0)))),
    "ExpandDims": lambda node, a: _tensor(a[0]).unsqueeze(int(_scalar(a[1]))),
    "Squeeze": _squeeze,
    "ArgMax": lambda node, a: torch.argmax(a[0], dim=int(_scalar(a[1]))),
    "GatherNd": _gather_nd,
}
