"""Conversion of princeton-vl/pytorch_stacked_hourglass checkpoints, checked against that port's own output."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model_export.__main__ import main
from model_export.checkpoint import CheckpointError, load_checkpoint
from model_export.convert import ConversionError, convert_princeton_state, load_princeton
from model_export.model import StackedHourglass
from pose.contract import ModelMetadata
from pose.layout import MPII

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "princeton_hg2_f64.pt"
REFERENCE_IO = DATA / "princeton_hg2_f64_io.npz"
UNUSED_SKIPS_IN_REFERENCE = 58  # equal-width residuals: 1 in the stem + 14 per stack (13 hourglass + 1 after it)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    return torch.load(REFERENCE, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def converted_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The reference checkpoint through the real CLI, with its log."""
    out = tmp_path_factory.mktemp("convert") / "hg2.onnx"
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        code = main(["convert", "--from", "princeton", str(REFERENCE), "--out", str(out), "--dataset", "random"])
    assert code == 0, log.getvalue()
    return out, log.getvalue()


@pytest.mark.slow
def test_converted_model_reproduces_the_ports_last_stack(converted_onnx: tuple[Path, str]) -> None:
    path, _ = converted_onnx
    io_ = np.load(REFERENCE_IO)
    image = np.ascontiguousarray(io_["image_nhwc_rgb01"].transpose(0, 3, 1, 2))
    expected = io_["heatmaps_all_stacks"][:, -1]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (heatmaps,) = session.run(["heatmaps"], {"image": image})
    assert heatmaps.shape == expected.shape == (2, 16, 64, 64)
    assert np.abs(heatmaps - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.slow
def test_conversion_log_reports_architecture_and_parity(converted_onnx: tuple[Path, str]) -> None:
    _, log = converted_onnx
    assert "stacks=2 features=64 joints=16 order=4" in log
    assert f"dropped {UNUSED_SKIPS_IN_REFERENCE} unused skip_layer tensors" in log
    assert "batch 1" in log and "batch 4" in log


@pytest.mark.slow
def test_converted_model_carries_provenance_and_layout(converted_onnx: tuple[Path, str]) -> None:
    path, _ = converted_onnx
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMetadata.from_props(props, num_joints=16)
    assert meta.layout == MPII
    assert meta.input_size == (256, 256)
    assert meta.architecture["stacks"] == 2 and meta.architecture["features"] == 64
    source = meta.provenance["source_checkpoint"]
    assert source["format"] == "princeton-vl/pytorch_stacked_hourglass"
    assert source["file"] == REFERENCE.name
    assert source["sha256"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert meta.provenance["dataset"] == "random"
    assert {"date", "command", "code_version"} <= meta.provenance.keys()
    assert "convert --from princeton" in meta.provenance["command"]
    json.dumps(meta.provenance)  # plain JSON all the way down


def test_exactly_the_unused_equal_width_skips_are_dropped(reference_state: dict[str, torch.Tensor]) -> None:
    converted = load_princeton(REFERENCE)
    assert len(converted.dropped) == UNUSED_SKIPS_IN_REFERENCE
    for name in converted.dropped:
        assert ".skip_layer." in name
        weight = reference_state["model.module." + name.replace(".bias", ".weight")]
        assert weight.shape[0] == weight.shape[1]  # equal widths
    used = [
        k for k in reference_state if ".skip_layer." in k and k.removeprefix("model.module.") not in converted.dropped
    ]
    assert sorted(used) == sorted(
        f"model.module.pre.{i}.skip_layer.conv.{p}" for i in (1, 4) for p in ("weight", "bias")
    )


@pytest.mark.parametrize("prefix", ["", "module.", "model.module."])
def test_bare_state_dicts_with_or_without_prefixes_convert_identically(
    tmp_path: Path, reference_state: dict[str, torch.Tensor], prefix: str
) -> None:
    bare = {prefix + k.removeprefix("model.module."): v for k, v in reference_state.items()}
    path = tmp_path / "bare.pt"
    torch.save(bare, path)
    got = load_princeton(path).model.state_dict()
    want = load_princeton(REFERENCE).model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_missing_tensor_is_named(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state)
    del state["model.module.hgs.1.0.low2.low3.bn2.running_var"]
    with pytest.raises(ConversionError, match=r"stages\.1\.hourglass\.inner\.out\.bn2\.running_var"):
        convert_princeton_state(state)


def test_a_misshaped_tensor_is_named(reference_state: dict[str, torch.Tensor]) -> None:
    state = dict(reference_state)
    state["model.module.features.0.1.conv.weight"] = torch.zeros(64, 64, 3, 3)
    with pytest.raises(ConversionError, match=r"features\.0\.1\.conv\.weight.*\(64, 64, 3, 3\)"):
        convert_princeton_state(state)


def test_an_unexpected_tensor_is_named(reference_state: dict[str, torch.Tensor]) -> None:
    state = {**reference_state, "model.module.extra_head.weight": torch.zeros(3)}
    with pytest.raises(ConversionError, match=r"unexpected tensor 'extra_head\.weight'"):
        convert_princeton_state(state)


def test_a_used_skip_layer_is_not_droppable(reference_state: dict[str, torch.Tensor]) -> None:
    """Dropping applies only to equal-width skips; a missing projection is an error."""
    state = dict(reference_state)
    del state["model.module.pre.1.skip_layer.conv.weight"]
    with pytest.raises(ConversionError, match=r"stem\.res1\.skip\.weight"):
        convert_princeton_state(state)


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): the file appears only if the pickle is executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_malicious_pickle_is_refused_and_never_executed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], writer: str
) -> None:
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "evil.pt"
    payload = {"state_dict": {"x": _CreatesFile(marker)}}
    if writer == "torch.save":
        torch.save(payload, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()

    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(checkpoint)
    out = tmp_path / "evil.onnx"
    code = main(["convert", "--from", "princeton", str(checkpoint), "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0
    assert "refusing to load" in err and "arbitrary unpickling" in err
    assert not marker.exists()
    assert not out.exists()


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["convert", "--from", "princeton", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")])
    assert code != 0
    assert "checkpoint not found" in capsys.readouterr().err


# Our name -> the port's: the inverse of the converter's table, written out independently here.
_TO_PORT = [
    (r"^stem\.(conv|bn)\.", r"pre.0.\1."),
    (r"^stem\.res1\.", "pre.1."),
    (r"^stem\.res2\.", "pre.3."),
    (r"^stem\.res3\.", "pre.4."),
    (r"^stages\.(\d+)\.hourglass\.", r"hgs.\1.0."),
    (r"^stages\.(\d+)\.residual\.", r"features.\1.0."),
    (r"^stages\.(\d+)\.(conv|bn)\.", r"features.\1.1.\2."),
    (r"^stages\.(\d+)\.head\.", r"outs.\1.conv."),
    (r"^stages\.(\d+)\.merge_features\.", r"merge_features.\1.conv.conv."),
    (r"^stages\.(\d+)\.merge_heatmaps\.", r"merge_preds.\1.conv.conv."),
    (r"(?<=\.)up\.", "up1."),
    (r"(?<=\.)down\.", "low1."),
    (r"(?<=\.)inner\.", "low2."),
    (r"(?<=\.)out\.", "low3."),
    (r"(?<=\.)(conv[123])\.", r"\1.conv."),
    (r"(?<=\.)skip\.", "skip_layer.conv."),
]


def to_port_checkpoint(model: StackedHourglass) -> tuple[dict[str, object], int]:
    """The port's checkpoint layout for ``model``, with its unused equal-width skip_layers added."""
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        for pattern, replacement in _TO_PORT:
            name = re.sub(pattern, replacement, name)
        state[name] = tensor
    unused = 0
    for key in [k for k in state if k.endswith(".bn1.weight")]:
        residual = key.removesuffix(".bn1.weight")
        width = state[key].shape[0]
        if f"{residual}.skip_layer.conv.weight" not in state:
            assert state[f"{residual}.conv3.conv.weight"].shape[0] == width
            state[f"{residual}.skip_layer.conv.weight"] = torch.randn(width, width, 1, 1)
            state[f"{residual}.skip_layer.conv.bias"] = torch.randn(width)
            unused += 2
    return {"state_dict": {f"model.module.{k}": v for k, v in state.items()}, "epoch": 1}, unused


def test_stacks_features_joints_and_order_come_from_the_shapes(tmp_path: Path) -> None:
    torch.manual_seed(1)
    original = StackedHourglass(stacks=3, features=24, joints=5, order=2).eval()
    checkpoint, unused = to_port_checkpoint(original)
    path = tmp_path / "checkpoint.pt"
    torch.save(checkpoint, path)
    converted = load_princeton(path)
    assert converted.model.config == {"stacks": 3, "features": 24, "joints": 5, "order": 2}
    assert len(converted.dropped) == unused
    got, want = converted.model.state_dict(), original.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
