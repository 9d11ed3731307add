"""ONNX export under the service contract, shared by ``export`` and ``convert``.

Contract: one input ``image`` float32 (N, 3, H, W) RGB in [0, 1] with a dynamic batch;
one output ``heatmaps`` float32 (N, K, H/4, W/4), the last stack only; opset 18;
``metadata_props`` as defined in :mod:`pose.contract`. ``--half`` stores float16
weights and computes in float16 between Cast nodes, so input and output stay float32.

Every export is checked before it is written: ``onnx.checker`` full check, then ONNX
Runtime (CPU) against PyTorch at batch 1 and 4.

CLI: ``python -m model_export export --checkpoint CKPT --out MODEL.onnx [--half]``.
"""

from __future__ import annotations

import argparse
import copy
import io
import operator
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

from model_export.checkpoint import CheckpointError, TrainingCheckpoint, sha256_of
from model_export.model import StackedHourglass
from model_export.provenance import command_line, stamp
from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE, INPUT_NAME, OUTPUT_NAME, ModelMetadata
from pose.layout import KeypointLayout

OPSET = 18
PARITY_BATCHES = (1, 4)
PARITY_TOLERANCE = 1e-4  # max |onnx - torch| relative to max |torch|

Log = Callable[[str], None]


class ExportError(RuntimeError):
    """The exported graph failed a check; nothing was written."""


class LastStackHeatmaps(nn.Module):
    """Export wrapper: runs the network and returns only the last stack's heatmaps."""

    def __init__(self, net: StackedHourglass) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.net.stem(image)
        heatmaps = x
        for stack in self.net.stages:  # intermediate stacks only feed the next one
            heatmaps, x = stack(x)
        return heatmaps


@dataclass
class ExportReport:
    """What was written and how closely it matches PyTorch."""

    path: Path
    metadata: ModelMetadata
    parity: dict[int, float] = field(default_factory=dict)  # batch -> max abs error / max |torch|
    half_error: float | None = None  # max abs error of float16 vs float32 PyTorch, relative to max |torch|
    seconds: float = 0.0


def export_onnx(
    model: StackedHourglass | str | Path,
    out_path: str | Path,
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    provenance: Mapping[str, Any] | None = None,
    half: bool = False,
    layout: KeypointLayout | None = None,
    log: Log = print,
    command: str | None = None,
) -> ExportReport:
    """Write ``model`` to ``out_path`` as a contract ONNX model, after checking it.

    The caller's model is not modified (a copy is exported in eval mode on the CPU).
    ``provenance`` is completed with date, ``command`` (default: this process's command line),
    code version and exporter versions.
    ``model`` may also be the path of a training checkpoint (see :func:`export_checkpoint`); its own
    input size and provenance are used then.
    Raises ValueError for a bad input size or layout, ExportError if a check fails.
    """
    if isinstance(model, str | Path):
        return export_checkpoint(model, out_path, half=half, log=log, command=command)
    started = time.perf_counter()
    try:
        height, width = (operator.index(v) for v in input_size)  # ints (numpy ints too), nothing else
    except (TypeError, ValueError) as exc:
        raise ValueError(f"input_size must be (H, W), two ints; got {input_size!r}") from exc
    multiple = model.input_multiple
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise ValueError(f"input size must be positive multiples of {multiple}, got {height}x{width}")
    layout = layout or KeypointLayout.default_for(model.joints)
    if layout.num_joints != model.joints:
        raise ValueError(f"layout has {layout.num_joints} joints, the model {model.joints}")
    metadata = ModelMetadata(
        layout=layout,
        input_size=(height, width),
        heatmap_stride=DEFAULT_HEATMAP_STRIDE,
        architecture={**model.config, "input_multiple": multiple},
        provenance=complete_provenance(provenance, half, command),
    )

    reference = copy.deepcopy(model).float().cpu().eval()
    proto = _to_onnx(LastStackHeatmaps(reference).eval(), height, width)
    if half:
        _store_float16(proto.graph)
    for key, value in metadata.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "Stacked hourglass pose estimator; last-stack heatmaps. See metadata_props."
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"exported graph fails onnx.checker: {exc}") from exc
    data = proto.SerializeToString()

    report = ExportReport(path=Path(out_path), metadata=metadata)
    session = ort.InferenceSession(data, _quiet_session_options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in PARITY_BATCHES:
        image = rng.random((batch, 3, height, width), dtype=np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(image))[:, -1].numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: image})
        if got.shape != expected.shape or got.dtype != np.float32:
            raise ExportError(f"ONNX output {got.shape} {got.dtype} != expected {expected.shape} float32")
        error = _relative_error(got, expected)
        if half:
            report.half_error = max(report.half_error or 0.0, error)
            log(f"float16 vs float32 PyTorch, batch {batch}: max abs error {error:.3e} of max |heatmap|")
            if not np.isfinite(got).all():
                raise ExportError("float16 model produces non-finite heatmaps (overflow); export it in float32")
        else:
            report.parity[batch] = error
            log(f"parity ONNX Runtime vs PyTorch, batch {batch}: max abs error {error:.3e} of max |heatmap|")
            if not error <= PARITY_TOLERANCE:
                raise ExportError(
                    f"ONNX Runtime differs from PyTorch by {error:.3e} (> {PARITY_TOLERANCE}) at batch {batch}"
                )

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.part")  # created with the umask's usual mode
    try:
        partial.write_bytes(data)
        os.replace(partial, out)  # readers never see a half-written model
    finally:
        partial.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - started
    log(
        f"wrote {out} ({len(data) / 1e6:.1f} MB, {'float16' if half else 'float32'} weights, opset {OPSET}, "
        f"input {INPUT_NAME} [N,3,{height},{width}] -> {OUTPUT_NAME} [N,{model.joints},{height // 4},{width // 4}]) "
        f"in {report.seconds:.1f} s"
    )
    return report


def _to_onnx(wrapper: nn.Module, height: int, width: int) -> onnx.ModelProto:
    """Trace to ONNX with a symbolic batch dimension.

    Uses the TorchScript-based exporter: for this purely convolutional, control-flow-free network it
    gives the same operators as the torch.export-based one (Conv, BatchNormalization, Relu, Add,
    MaxPool, Resize) and is deterministic, but is 3-20x faster on a CPU (seconds, not tens of seconds).
    """
    example = torch.zeros(1, 3, height, width, dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    _bypass_initializer_identities(proto.graph)
    return proto


def _bypass_initializer_identities(graph: onnx.GraphProto) -> None:
    """Remove the Identity nodes the exporter puts after de-duplicated initializers (equal tensors)."""
    initializers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs
    }
    if not alias:
        return
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    dropped = set(alias)
    kept_info = [v for v in graph.value_info if v.name not in dropped]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)


def _store_float16(graph: onnx.GraphProto) -> None:
    """Convolution and batch-norm parameters to float16, computing in float16 between two Casts.

    The graph keeps its float32 interface: ``image`` is cast to float16 on entry and the heatmaps
    back to float32 on exit. Other constants (Resize scales) stay float32. Done on the float32 graph
    rather than by tracing a float16 network, which on a CPU would be ten times slower.
    """
    weights = {name for n in graph.node if n.op_type in _FLOAT16_OPS for name in n.input[1:]}
    for tensor in graph.initializer:
        if tensor.name in weights and tensor.data_type == onnx.TensorProto.FLOAT:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name))
    (image,) = graph.input
    (heatmaps,) = graph.output
    image16, heatmaps16 = f"{image.name}_float16", f"{heatmaps.name}_float16"
    for node in graph.node:
        node.input[:] = [image16 if name == image.name else name for name in node.input]
        node.output[:] = [heatmaps16 if name == heatmaps.name else name for name in node.output]
    nodes = [
        helper.make_node("Cast", [image.name], [image16], name="cast_image_to_float16", to=onnx.TensorProto.FLOAT16),
        *graph.node,
        helper.make_node(
            "Cast", [heatmaps16], [heatmaps.name], name="cast_heatmaps_to_float32", to=onnx.TensorProto.FLOAT
        ),
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 intermediate types no longer hold; ONNX Runtime infers them


_FLOAT16_OPS = ("Conv", "BatchNormalization")


def _quiet_session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return options


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    scale = float(np.abs(expected).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - expected).max()) / scale


def complete_provenance(provenance: Mapping[str, Any] | None, half: bool, command: str | None = None) -> dict[str, Any]:
    """Caller's provenance plus the facts of this export (date, command, code version, exporter), which win."""
    return {
        **dict(provenance or {}),
        **stamp(command),
        "exporter": f"torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET}",
        "weights_dtype": "float16" if half else "float32",
    }


# ---- our own training checkpoints -------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint (.pt)")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--half", action="store_true", help="float16 weights, float32 input/output (GPU serving)")
    parser.add_argument(
        "--input-size", nargs=2, type=int, metavar=("H", "W"), help="default: the checkpoint's, else 256 256"
    )


def export_checkpoint(
    checkpoint_path: str | Path,
    out_path: str | Path,
    half: bool = False,
    input_size: Sequence[int] | None = None,
    log: Log = print,
    command: str | None = None,
) -> ExportReport:
    """Export one of our training checkpoints (``model``, ``config``, optional ``input_size``,
    ``provenance`` and ``layout`` {names, flip_pairs, skeleton}) under the contract."""
    checkpoint_path = Path(checkpoint_path)
    checkpoint = TrainingCheckpoint.read(checkpoint_path)
    model = checkpoint.build_model()
    source = {
        "format": "hourglass-serve training checkpoint",
        "file": checkpoint_path.name,
        "sha256": sha256_of(checkpoint_path),
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
    }
    training = checkpoint.provenance
    provenance = {"dataset": training.get("dataset", "unknown"), "source_checkpoint": source, "training": training}
    layout = checkpoint.keypoint_layout()
    size = input_size or checkpoint.input_size
    return export_onnx(model, out_path, size, provenance, half=half, layout=layout, log=log, command=command)


def run(args: argparse.Namespace) -> int:
    try:
        argv = ["export", "--checkpoint", str(args.checkpoint), "--out", str(args.out)]
        argv += ["--half"] * args.half + (["--input-size", *map(str, args.input_size)] if args.input_size else [])
        export_checkpoint(args.checkpoint, args.out, args.half, args.input_size, command=command_line(argv))
    except (CheckpointError, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "ExportError",
    "ExportReport",
    "LastStackHeatmaps",
    "export_checkpoint",
    "export_onnx",
]
