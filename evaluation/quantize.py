"""int8 models: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations),
calibrated on model inputs made by the service's own preprocessing.

By default only the convolutions are quantized (they are nearly all of the compute), and the first and last
stay in float: quantizing every operator ONNX Runtime can (the residual adds, batch norms and upsamplings of
the hourglass) cost far more accuracy on LSP test for little more speed (the model card has the numbers).

Calibration inputs come from real person photos when given (LSP's training split, im0001-im0900, each
photo cropped to its joints' box exactly as ``POST /predict`` crops a ``bbox``, and letterboxed whole), a
folder of photos (letterboxed whole), or else held-out synthetic figures. The pipeline is run with a model
call that only records its input, so the calibration sees what the served model will see.

``python -m model_export quantize --onnx weights/default.onnx --out weights/default_int8.onnx --lsp DIR``.
The int8 file keeps the float model's contract metadata; its provenance says ``weights_dtype: int8`` and
how it was calibrated (method, inputs, their source, the float model's digest, the layers kept in float).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorsData, create_calibrator, save_tensors_data

from evaluation.evaluate import heldout_synthetic
from evaluation.photo_eval import service_pipeline
from model_export.checkpoint import sha256_of
from model_export.data.people import DataError, lsp_records
from model_export.provenance import command_line
from pose.contract import PROVENANCE, ModelMetadata
from service.inference.engine import Engine, ModelLoadError
from service.inference.pipeline import PredictOptions, Upload
from service.inference.runtime import cpu_session

METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
LSP_TRAIN = range(900)  # im0001-im0900: never the validation (im0901-im1000) or test split


class QuantizeError(Exception):
    """The float model or the calibration data cannot be used."""


@dataclass(frozen=True)
class Calibration:
    """Model inputs ``(N, 3, H, W)`` and where they came from."""

    inputs: np.ndarray
    source: str


def service_inputs(engine: Engine, uploads: Sequence[Upload], boxes: Sequence[tuple | None]) -> np.ndarray:
    """The model inputs the service builds for each upload (with its ``bbox``, or whole when None)."""
    seen: list[np.ndarray] = []

    def record(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        height, width = engine.info.metadata.input_size
        stride = engine.info.metadata.heatmap_stride
        return np.zeros((len(batch), engine.info.metadata.num_joints, height // stride, width // stride), np.float32)

    pipeline = service_pipeline(engine.info, record)

    async def all_uploads() -> None:
        for upload, box in zip(uploads, boxes, strict=True):
            await pipeline.predict_uploads([upload], PredictOptions(bbox=box))

    asyncio.run(all_uploads())
    return np.concatenate(seen) if seen else np.zeros((0, 3, *engine.info.metadata.input_size), np.float32)


def lsp_calibration(engine: Engine, lsp: Path, count: int, seed: int = 0) -> Calibration:
    """``count`` inputs from LSP's training split: half person boxes, half whole photos."""
    try:
        records = lsp_records(lsp, LSP_TRAIN, source="lsp-train")
    except DataError as exc:
        raise QuantizeError(str(exc)) from exc
    chosen = np.random.default_rng(seed).permutation(len(records))[:count]
    uploads = [_upload(records[i].image) for i in chosen]
    boxes = [records[i].box() if k % 2 == 0 else None for k, i in enumerate(chosen)]
    return Calibration(service_inputs(engine, uploads, boxes), f"LSP training split ({lsp}), {len(chosen)} photos")


def folder_calibration(engine: Engine, folder: Path, count: int) -> Calibration:
    """Up to ``count`` photos from ``folder`` (JPEG, PNG, WebP), letterboxed whole."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))[:count]
    if not paths:
        raise QuantizeError(f"no JPEG, PNG or WebP images in {folder}")
    inputs = service_inputs(engine, [_upload(p) for p in paths], [None] * len(paths))
    return Calibration(inputs, f"{len(paths)} photos from {folder}")


def synthetic_calibration(engine: Engine, count: int) -> Calibration:
    """``count`` held-out synthetic figures (the training crops of the built-in dataset)."""
    samples = heldout_synthetic(count)
    inputs = np.stack([np.asarray(samples[i]["image"], np.float32) for i in range(len(samples))])
    if inputs.shape[1:] != (3, *engine.info.metadata.input_size):
        size = engine.info.metadata.input_size
        raise QuantizeError(f"synthetic figures are {inputs.shape[1:]}, the model takes {size}")
    return Calibration(inputs, f"{count} held-out synthetic figures")


def _upload(path: Path) -> Upload:
    return Upload(path.read_bytes(), mimetypes.guess_type(path.name)[0], path.name)


class _Reader(CalibrationDataReader):
    def __init__(self, input_name: str, inputs: np.ndarray, batch: int = 4) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = (
            {input_name: inputs[i : i + batch]} for i in range(0, len(inputs), batch)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _activation_ranges(
    model: Path, inputs: np.ndarray, method: str, tmp: Path, op_types: Sequence[str] = (), chunk: int = 4
) -> TensorsData:
    """Every activation's range, calibrated ``chunk`` inputs at a time: ONNX Runtime keeps every intermediate
    tensor of what it is given until it folds them into ranges or histograms (about 300 MB per input for the
    2-stack model; 100 inputs at once ran out of 23 GB), so it is given a few at a time."""
    calibrator = create_calibrator(model, list(op_types) or None, augmented_model_path=str(tmp / "augmented.onnx"),
                                   calibrate_method=METHODS[method])  # fmt: skip
    name = calibrator.infer_session.get_inputs()[0].name
    for start in range(0, len(inputs), chunk):
        calibrator.collect_data(_Reader(name, inputs[start : start + chunk]))
    return calibrator.compute_data()


def conv_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the model's Conv nodes, in graph order."""
    return [node.name for node in model.graph.node if node.op_type == "Conv"]


def quantize_int8(
    float_path: Path,
    out_path: Path,
    calibration: Calibration,
    method: str = "percentile",
    keep_float: Sequence[str] = (),
    keep_first_last: bool = True,
    op_types: Sequence[str] = ("Conv",),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the int8 model of ``float_path`` to ``out_path``; returns its quantization record."""
    if method not in METHODS:
        raise QuantizeError(f"calibration method must be one of {sorted(METHODS)}, not {method!r}")
    if len(calibration.inputs) == 0:
        raise QuantizeError("no calibration inputs")
    source = onnx.load(str(float_path))
    metadata = ModelMetadata.from_props({p.key: p.value for p in source.metadata_props})
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        convs = conv_nodes(onnx.load(str(prepared)))
        kept = list(dict.fromkeys([*keep_float, *([convs[0], convs[-1]] if keep_first_last and convs else [])]))
        log(f"quantizing {len(convs) - len(kept)} of {len(convs)} convolutions to int8 ({method} calibration on "
            f"{len(calibration.inputs)} inputs: {calibration.source})")  # fmt: skip
        ranges = Path(tmp) / "ranges.json"
        save_tensors_data(_activation_ranges(prepared, calibration.inputs, method, Path(tmp), op_types), ranges)
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(quantized),
            None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=METHODS[method],
            calibration_cache_path=ranges,
        )
        model = onnx.load(str(quantized))
    record = {
        "format": "QDQ",
        "operators": list(op_types) or "all",
        "weights": "int8, per output channel",
        "activations": "uint8, per tensor",
        "calibration": {"method": method, "inputs": len(calibration.inputs), "source": calibration.source},
        "float_model_sha256": sha256_of(float_path),
        "kept_in_float": kept,
    }
    provenance = {**metadata.provenance, "weights_dtype": "int8", "quantization": record, "command": command_line()}
    del model.metadata_props[:]
    for key, value in {**metadata.to_props(), PROVENANCE: json.dumps(provenance, sort_keys=True)}.items():
        model.metadata_props.add(key=key, value=value)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    Engine.load(out_path, cpu_session("onnxruntime"))  # the service's own checks: the contract holds
    log(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB)")
    return record


# ---------------------------------------------------------------- command line
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", required=True, type=Path, help="the float32 model (an exported ONNX file)")
    parser.add_argument("--out", required=True, type=Path, help="the int8 ONNX file to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--lsp", type=Path, help="LSP folder (joints.mat, images/): calibrate on its training split")
    source.add_argument("--images", type=Path, help="a folder of photos to calibrate on (letterboxed whole)")
    parser.add_argument("--count", type=int, default=300, help="calibration inputs (default 300)")
    parser.add_argument("--method", choices=sorted(METHODS), default="percentile", help="calibration method")
    parser.add_argument("--keep-float", default="", help="comma-separated node names to keep in float")
    parser.add_argument(
        "--quantize-first-last", action="store_true", help="also quantize the first and last convolution"
    )
    parser.add_argument(
        "--all-ops",
        action="store_true",
        help="quantize every operator ONNX Runtime can (adds, batch norms, resizes) instead of the convolutions only",
    )


def calibrate(float_path: Path, lsp: Path | None, images: Path | None, count: int) -> Calibration:
    """Calibration inputs for the model at ``float_path``: LSP's training split, else a photo folder, else
    synthetic figures."""
    engine = Engine.load(float_path, cpu_session("onnxruntime"))
    if lsp is not None:
        return lsp_calibration(engine, lsp, count)
    if images is not None:
        return folder_calibration(engine, images, count)
    return synthetic_calibration(engine, count)


def run(args: argparse.Namespace) -> int:
    try:
        calibration = calibrate(args.onnx, args.lsp, args.images, args.count)
        keep = [name for name in args.keep_float.split(",") if name]
        op_types = () if args.all_ops else ("Conv",)
        quantize_int8(args.onnx, args.out, calibration, args.method, keep, not args.quantize_first_last, op_types)
    except (QuantizeError, ModelLoadError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
