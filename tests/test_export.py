"""The ONNX export contract, checked on a tiny model with ONNX Runtime on the CPU."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from model_export.export import ExportReport, export_onnx
from model_export.model import StackedHourglass
from pose.contract import METADATA_KEYS, ModelMetadata
from pose.layout import MPII, KeypointLayout

REPO = Path(__file__).resolve().parent.parent
SIZE = (64, 128)  # (H, W): the smallest non-square input of an order-4 network


def tiny_model(seed: int = 0, joints: int = 16) -> StackedHourglass:
    """Two stacks (so the merge path is exported), random batch-norm statistics (so BN matters)."""
    torch.manual_seed(seed)
    model = StackedHourglass(2, 8, joints, order=4)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def last_stack(model: StackedHourglass, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(image))[:, -1].numpy()


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> StackedHourglass:
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model: StackedHourglass, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportReport, str]:
    path = tmp_path_factory.mktemp("export") / "tiny.onnx"
    lines: list[str] = []
    report = export_onnx(model, path, SIZE, provenance={"dataset": "unit-test"}, log=lines.append)
    return path, report, "\n".join(lines)


@pytest.fixture(scope="module")
def exported_half(model: StackedHourglass, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportReport, str]:
    path = tmp_path_factory.mktemp("export") / "tiny-half.onnx"
    lines: list[str] = []
    report = export_onnx(model, path, SIZE, provenance={"dataset": "unit-test"}, half=True, log=lines.append)
    return path, report, "\n".join(lines)


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_runtime_matches_pytorch_last_stack(
    exported: tuple[Path, ExportReport, str], model: StackedHourglass, batch: int
) -> None:
    path, _, _ = exported
    image = np.random.default_rng(batch).random((batch, 3, *SIZE), dtype=np.float32)
    expected = last_stack(model, image)
    (got,) = session(path).run(["heatmaps"], {"image": image})
    assert got.shape == (batch, 16, SIZE[0] // 4, SIZE[1] // 4)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_export_log_reports_parity_at_batch_1_and_4(exported: tuple[Path, ExportReport, str]) -> None:
    _, report, log = exported
    assert set(report.parity) == {1, 4}
    assert all(error <= 1e-4 for error in report.parity.values())
    assert "batch 1" in log and "batch 4" in log and "wrote" in log


def test_graph_interface_is_the_contract(exported: tuple[Path, ExportReport, str]) -> None:
    path, _, _ = exported
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (image,) = model.graph.input
    (heatmaps,) = model.graph.output
    assert image.name == "image" and heatmaps.name == "heatmaps"
    assert image.type.tensor_type.elem_type == heatmaps.type.tensor_type.elem_type == TensorProto.FLOAT
    in_dims = image.type.tensor_type.shape.dim
    out_dims = heatmaps.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].HasField("dim_value")  # dynamic batch
    assert out_dims[0].dim_param == in_dims[0].dim_param
    assert [d.dim_value for d in in_dims[1:]] == [3, *SIZE]
    assert [d.dim_value for d in out_dims[1:]] == [16, SIZE[0] // 4, SIZE[1] // 4]
    assert not [n for n in model.graph.node if n.op_type == "Identity"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, readable by a serving user


def test_metadata_round_trips_through_the_file(exported: tuple[Path, ExportReport, str]) -> None:
    path, report, _ = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert set(METADATA_KEYS) <= props.keys()
    meta = ModelMetadata.from_props(props, num_joints=16, input_hw=SIZE)
    assert meta == report.metadata
    assert meta.layout == MPII
    assert meta.input_size == SIZE and meta.heatmap_stride == 4
    assert meta.architecture["stacks"] == 2 and meta.architecture["features"] == 8 and meta.architecture["order"] == 4
    assert meta.provenance["dataset"] == "unit-test"
    assert {"date", "command", "code_version", "exporter"} <= meta.provenance.keys()


def test_export_is_deterministic_and_leaves_the_callers_model_alone(
    exported: tuple[Path, ExportReport, str], tmp_path: Path
) -> None:
    model = tiny_model().train()  # same weights as the fixture's model, but in training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = tmp_path / "again.onnx"
    export_onnx(model, again, SIZE, provenance={"dataset": "unit-test"}, log=lambda _: None)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert onnx.load(str(again)).graph.SerializeToString() == onnx.load(str(exported[0])).graph.SerializeToString()


def test_half_model_has_float16_weights_float32_io_and_a_small_error(
    exported_half: tuple[Path, ExportReport, str], exported: tuple[Path, ExportReport, str], model: StackedHourglass
) -> None:
    path, report, log = exported_half
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    weights = [t for t in graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    assert graph.node[0].op_type == "Cast" and graph.node[-1].op_type == "Cast"
    assert report.half_error is not None and report.half_error < 1e-2
    assert model.stem.conv.weight.dtype == torch.float32  # the caller's model was not converted
    assert "float16 vs float32" in log

    image = np.random.default_rng(7).random((2, 3, *SIZE), dtype=np.float32)
    expected = last_stack(model, image)
    (got,) = session(path).run(["heatmaps"], {"image": image})
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-2 * np.abs(expected).max()
    assert path.stat().st_size < 0.6 * exported[0].stat().st_size


def test_custom_layout_and_bad_sizes(model: StackedHourglass, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiples of 64"):
        export_onnx(model, tmp_path / "bad.onnx", (64, 100), log=lambda _: None)
    with pytest.raises(ValueError, match="two ints"):
        export_onnx(model, tmp_path / "bad.onnx", {"input_size": "[64, 64]"}, log=lambda _: None)
    with pytest.raises(ValueError, match="joints"):
        export_onnx(model, tmp_path / "bad.onnx", SIZE, layout=KeypointLayout(names=("a", "b")), log=lambda _: None)
    assert not (tmp_path / "bad.onnx").exists()


def training_checkpoint(model: StackedHourglass, path: Path) -> None:
    """Written like model_export.train does: weights, config, input size, counters, provenance, RNG state."""
    torch.save(
        {
            "model": model.state_dict(),
            "config": model.config,
            "input_size": list(SIZE),
            "step": 123,
            "epoch": 4,
            "provenance": {"dataset": "synthetic", "command": "python -m model_export train"},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
        },
        path,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "model_export", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_export_cli_writes_a_contract_model_from_a_training_checkpoint(model: StackedHourglass, tmp_path: Path) -> None:
    checkpoint, out = tmp_path / "last.pt", tmp_path / "model.onnx"
    training_checkpoint(model, checkpoint)
    result = run_cli("export", "--checkpoint", str(checkpoint), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "parity ONNX Runtime vs PyTorch, batch 1" in result.stdout
    assert "batch 4" in result.stdout

    image = np.random.default_rng(0).random((3, 3, *SIZE), dtype=np.float32)
    (got,) = session(out).run(["heatmaps"], {"image": image})
    expected = last_stack(model, image)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    meta = ModelMetadata.from_props(props, num_joints=16)
    assert meta.input_size == SIZE
    source = meta.provenance["source_checkpoint"]
    assert source["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert source["step"] == 123 and source["epoch"] == 4
    assert meta.provenance["dataset"] == "synthetic"
    assert meta.provenance["training"]["command"] == "python -m model_export train"
    assert meta.provenance["command"].startswith("python -m model_export export")


def test_export_cli_rejects_a_checkpoint_without_config(model: StackedHourglass, tmp_path: Path) -> None:
    from model_export.__main__ import main

    checkpoint = tmp_path / "weights-only.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 2
    assert not (tmp_path / "m.onnx").exists()


def test_export_cli_names_a_misshaped_tensor(
    model: StackedHourglass, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_export.__main__ import main

    checkpoint = tmp_path / "bad.pt"
    state = dict(model.state_dict())
    state["stages.1.head.weight"] = torch.zeros(16, 8, 3, 3)
    torch.save({"model": state, "config": model.config}, checkpoint)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "stages.1.head.weight" in capsys.readouterr().err
