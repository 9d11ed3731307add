"""`evaluate` on synthetic held-out figures: a hand-built ONNX model through the CLI, and the
crop-pixel scoring path checked with a perfect (oracle) model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from evaluation.evaluate import EvaluationError, OnnxRunner, heldout_synthetic, predict_dataset, score
from model_export.__main__ import main
from pose.codec import flip_heatmaps
from pose.contract import ModelMetadata
from pose.layout import MPII, MPII_JOINTS

K = len(MPII_JOINTS)
SIZE = 256


@pytest.fixture(scope="module")
def pooled_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image -> 4x4 average pool -> 1x1 conv to 16 channels: a real graph with the export contract."""
    rng = np.random.default_rng(0)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [K, 3, 1, 1], rng.normal(size=K * 3).astype(np.float32))
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
            helper.make_node("Conv", ["pooled", "w"], ["heatmaps"]),
        ],
        "pooled",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", K, SIZE // 4, SIZE // 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in ModelMetadata(layout=MPII, input_size=(SIZE, SIZE)).to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "pooled.onnx"
    onnx.save(model, path)
    return path


def test_onnx_runner_reads_the_contract(pooled_onnx: Path) -> None:
    runner = OnnxRunner(pooled_onnx)
    assert runner.layout.names == MPII_JOINTS and runner.input_size == (SIZE, SIZE) and runner.stride == 4
    assert runner(np.zeros((2, 3, SIZE, SIZE), np.float32)).shape == (2, K, SIZE // 4, SIZE // 4)


def test_evaluate_cli_on_synthetic_figures(
    pooled_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    code = main(["evaluate", "--onnx", str(pooled_onnx), "--limit", "6", "--refine", "dark", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert all(name in printed for name in MPII_JOINTS) and "Mean@0.1" in printed
    result = json.loads(out.read_text())
    assert result["samples"] == 6 and result["split"] == "heldout" and result["refine"] == "dark"
    assert sum(result["counts"].values()) > 6 * 8  # most joints of six figures are visible


def test_evaluate_cli_rejects_a_broken_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    assert main(["evaluate", "--onnx", str(broken), "--limit", "1"]) == 2
    assert str(broken) in capsys.readouterr().err
    with pytest.raises(EvaluationError, match="not found"):
        OnnxRunner(tmp_path / "absent.onnx")


class TargetRunner:
    """A perfect model: each figure's own target heatmaps (mirrored when the batch is mirrored)."""

    layout = MPII
    input_size = (SIZE, SIZE)
    stride = 4

    def __init__(self, dataset: object) -> None:
        self.dataset, self.next = dataset, 0
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.last is not None and np.array_equal(images, self.last[0][..., ::-1]):
            return flip_heatmaps(self.last[1], self.layout.flip_index)
        out = np.stack([self.dataset[i]["target"] for i in range(self.next, self.next + len(images))])
        self.next += len(images)
        self.last = (images, out)
        return out


@pytest.mark.parametrize("flip", [False, True])
def test_perfect_heatmaps_score_perfectly_in_crop_pixels(flip: bool) -> None:
    dataset = heldout_synthetic(8)
    pred, gt, visible, head = predict_dataset(TargetRunner(dataset), dataset, flip=flip, refine="dark", batch_size=3)
    assert pred.shape == (8, K, 2) and visible.any()
    np.testing.assert_array_equal(visible, np.stack([dataset[i]["visible"] > 0 for i in range(8)]))
    np.testing.assert_allclose(head, [float(dataset[i]["head_size"]) for i in range(8)], rtol=1e-6)
    inner = visible & (gt >= 8).all(axis=2) & (gt <= SIZE - 9).all(axis=2)  # Gaussians clipped by the border
    assert inner.sum() > visible.sum() // 2  # decode less exactly: score those at PCKh@0.5 only
    assert np.abs(pred - gt)[inner].max() < 0.3  # crop pixels; a half-pixel convention slip is >= 0.5
    assert score(pred, gt, visible, head, MPII)[0.5].mean == 1.0


def test_limit_and_batch_size(pooled_onnx: Path) -> None:
    dataset = heldout_synthetic(5)
    pred, *_ = predict_dataset(OnnxRunner(pooled_onnx), dataset, limit=3, batch_size=2)
    assert pred.shape == (3, K, 2)
    with pytest.raises(ValueError, match="refine"):
        predict_dataset(OnnxRunner(pooled_onnx), dataset, refine="best")
