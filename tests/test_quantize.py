"""int8 twins: calibrated on inputs made by the service's own preprocessing, quantized to QDQ with per-channel
int8 weights, loadable by the service's engine, close to the float model, and saying how they were made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from evaluation.quantize import (
    Calibration,
    QuantizeError,
    conv_nodes,
    folder_calibration,
    quantize_int8,
)
from model_export.__main__ import main
from model_export.export import export_onnx
from pose.contract import ModelMetadata
from service.inference.engine import Engine
from service.inference.runtime import cpu_session
from tests.test_export import SIZE, tiny_model

PHOTO = Path(__file__).resolve().parent / "data" / "000000000785.jpg"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def float_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8") / "tiny.onnx"
    export_onnx(tiny_model(), path, SIZE, provenance={"dataset": "unit-test"}, log=lambda _: None)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    photo = Image.open(PHOTO).convert("RGB")
    for i in range(6):  # crops of a real photo, each a different view
        left, top = 40 * i, 25 * i
        photo.crop((left, top, left + 400, top + 300)).save(folder / f"{i}.jpg", quality=90)
    return folder


def test_calibration_inputs_are_the_services_own_model_inputs(float_model, photos):
    engine = Engine.load(float_model, cpu_session("onnxruntime"))
    calibration = folder_calibration(engine, photos, count=4)
    assert calibration.inputs.shape == (4, 3, *SIZE) and calibration.inputs.dtype == np.float32
    assert calibration.inputs.min() >= 0.0 and calibration.inputs.max() <= 1.0
    assert "4 photos" in calibration.source
    # a 400x300 photo letterboxed into 128x64 (W x H) leaves bands at the sides: zero padding
    assert calibration.inputs[:, :, :, :5].max() == 0.0 and calibration.inputs[:, :, :, 60:70].max() > 0.0


def test_the_int8_twin_is_quantized_close_and_labelled(float_model, photos, tmp_path):
    engine = Engine.load(float_model, cpu_session("onnxruntime"))
    calibration = folder_calibration(engine, photos, count=6)
    out = tmp_path / "tiny_int8.onnx"
    record = quantize_int8(float_model, out, calibration, "minmax", log=lambda _: None)

    model = onnx.load(str(out))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    convs = conv_nodes(onnx.load(str(float_model)))
    assert record["kept_in_float"] == [convs[0], convs[-1]]
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.provenance["weights_dtype"] == "int8"
    calibrated = meta.provenance["quantization"]["calibration"]
    assert calibrated == {"method": "minmax", "inputs": 6, "source": calibration.source}
    assert meta.provenance["dataset"] == "unit-test" and meta.layout.num_joints == 16

    int8 = Engine.load(out, cpu_session("onnxruntime"))  # the service's own contract checks pass
    floats = Engine.load(float_model, cpu_session("onnxruntime")).run(calibration.inputs)
    quantized = int8.run(calibration.inputs)
    assert quantized.shape == floats.shape
    correlation = np.corrcoef(floats.ravel(), quantized.ravel())[0, 1]
    assert correlation > 0.95, correlation


def test_bad_calibration_is_refused(float_model, tmp_path):
    empty = Calibration(np.zeros((0, 3, *SIZE), np.float32), "nothing")
    with pytest.raises(QuantizeError, match="no calibration inputs"):
        quantize_int8(float_model, tmp_path / "x.onnx", empty)
    with pytest.raises(QuantizeError, match="calibration method"):
        quantize_int8(float_model, tmp_path / "x.onnx", Calibration(np.zeros((1, 3, *SIZE), np.float32), "x"), "best")


def test_the_quantize_command_writes_the_twin(float_model, photos, tmp_path, capsys):
    out = tmp_path / "cli_int8.onnx"
    args = ["quantize", "--onnx", str(float_model), "--out", str(out), "--images", str(photos), "--method", "minmax"]
    assert main(args) == 0
    provenance = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["provenance"])
    assert provenance["quantization"]["calibration"]["inputs"] == 6
    assert main(["quantize", "--onnx", str(float_model), "--out", str(out), "--images", str(tmp_path / "none")]) == 2
    assert "error:" in capsys.readouterr().err
