"""The model both sides of every comparison run: one PyTorch checkpoint and the ONNX file made from it.

The shipped default is ``weights/default.onnx`` with the checkpoint it was exported from,
``weights/default.pt``. Until both exist (or with ``--smoke``) the bench makes its own pair, a
seeded random StackedHourglass exported here, cached under ``$HOURGLASS_BENCH_CACHE`` (default: the
system temp dir), so ONNX Runtime and PyTorch always see the same weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import REPO_ROOT

if TYPE_CHECKING:
    import torch

DEFAULT_ONNX = REPO_ROOT / "weights" / "default.onnx"
DEFAULT_CHECKPOINT = REPO_ROOT / "weights" / "default.pt"
BENCH_ARCH = {"stacks": 3, "features": 128, "joints": 16, "order": 4}  # the shipped default model's shape
SMOKE_ARCH = {"stacks": 1, "features": 16, "joints": 16, "order": 4}
# model_export's default architecture, and the shape of the published 8-stack MPII model
REFERENCE_ARCH = {"stacks": 8, "features": 256, "joints": 16, "order": 4}


@dataclass(frozen=True)
class BenchModel:
    onnx_path: Path
    checkpoint: Path | None  # None: no PyTorch twin known for this ONNX file
    architecture: dict[str, int]
    source: str  # "default", "random" or "given"

    def describe(self) -> dict[str, Any]:
        return {
            "onnx": str(self.onnx_path),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "architecture": self.architecture,
            "source": self.source,
        }


def cache_dir() -> Path:
    path = Path(os.environ.get("HOURGLASS_BENCH_CACHE", Path(tempfile.gettempdir()) / "hourglass-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def bench_model(smoke: bool = False, onnx_path: Path | None = None) -> BenchModel:
    """The model pair to benchmark (see the module docstring)."""
    if onnx_path is not None:
        twin = onnx_path.with_suffix(".pt")
        return BenchModel(onnx_path, twin if twin.exists() else None, onnx_architecture(onnx_path), "given")
    if not smoke and DEFAULT_ONNX.exists() and DEFAULT_CHECKPOINT.exists():
        return BenchModel(DEFAULT_ONNX, DEFAULT_CHECKPOINT, onnx_architecture(DEFAULT_ONNX), "default")
    return random_model(SMOKE_ARCH if smoke else BENCH_ARCH)


def reference_model(smoke: bool = False) -> BenchModel:
    """A seeded random pair of :data:`REFERENCE_ARCH` (``--smoke``: of the tiny smoke shape)."""
    return random_model(SMOKE_ARCH if smoke else REFERENCE_ARCH)


def random_model(arch: dict[str, int]) -> BenchModel:
    """The cached seeded random pair of ``arch``, made on first use."""
    stem = "random_hg{stacks}_f{features}_k{joints}_o{order}".format(**arch)
    onnx_file, checkpoint = cache_dir() / f"{stem}.onnx", cache_dir() / f"{stem}.pt"
    if not (onnx_file.exists() and checkpoint.exists()):
        _make_random_pair(arch, onnx_file, checkpoint)
    return BenchModel(onnx_file, checkpoint, dict(arch), "random")


def onnx_architecture(path: Path) -> dict[str, int]:
    """stacks/features/joints/order from the ONNX metadata, else the default model's shape."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    arch = dict(BENCH_ARCH)
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        arch.update({k: int(v) for k, v in json.loads(props.get("architecture", "{}")).items() if k in arch})
    return arch


def load_torch_model(model: BenchModel) -> torch.nn.Module:
    """The PyTorch twin of ``model``, in eval mode.

    The checkpoint is a state dict, or a dict holding one under ``model``/``state_dict``/``model_state``
    (optionally with an ``architecture`` dict of stacks/features/joints/order).
    """
    import torch

    from model_export.model import StackedHourglass

    if model.checkpoint is None:
        raise FileNotFoundError(f"no PyTorch checkpoint next to {model.onnx_path}")
    blob = torch.load(model.checkpoint, map_location="cpu", weights_only=True)
    arch = dict(model.architecture)
    state = blob
    if isinstance(blob, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(blob.get(key), dict):
                state = blob[key]
                break
        if isinstance(blob.get("architecture"), dict):
            arch.update({k: int(v) for k, v in blob["architecture"].items() if k in arch})
    net = StackedHourglass(arch["stacks"], arch["features"], arch["joints"], arch["order"])
    net.load_state_dict(state)
    return net.eval()


LSP_ENV = "HOURGLASS_BENCH_LSP"
DEFAULT_LSP = REPO_ROOT.parent / "shared" / "data" / "lsp"
INT8_CALIBRATION = 300  # person crops from LSP's training split (model_export quantize's default count)


def default_lsp() -> Path:
    """Where the LSP dataset is looked for: ``$HOURGLASS_BENCH_LSP``, else ``../shared/data/lsp``."""
    return Path(os.environ.get(LSP_ENV, DEFAULT_LSP))


def has_lsp(folder: Path) -> bool:
    return (folder / "joints.mat").is_file() and (folder / "images").is_dir()


def int8_twin(model: BenchModel, smoke: bool = False, lsp: Path | None = None) -> Path:
    """The int8 model of ``model`` (``python -m model_export quantize``'s defaults), made once and cached by the
    float file's digest: calibrated on LSP's training split where ``lsp`` holds it, else on synthetic figures
    (a few with ``smoke``). Calibration moves accuracy, not speed."""
    from evaluation.quantize import lsp_calibration, quantize_int8, synthetic_calibration
    from model_export.checkpoint import sha256_of
    from service.inference.engine import Engine
    from service.inference.runtime import cpu_session

    real = lsp is not None and has_lsp(lsp) and not smoke
    tag = "lsp" if real else "smoke" if smoke else "synthetic"
    out = cache_dir() / "int8" / f"{model.onnx_path.stem}-{sha256_of(model.onnx_path)[:16]}-{tag}.onnx"
    if out.exists():
        return out
    engine = Engine.load(model.onnx_path, cpu_session("onnxruntime"))
    if real:
        calibration = lsp_calibration(engine, lsp, INT8_CALIBRATION)
    else:
        calibration = synthetic_calibration(engine, 4 if smoke else 64)
    partial = out.with_name(f"{out.stem}.partial.onnx")
    quantize_int8(model.onnx_path, partial, calibration, log=lambda *_: None)
    os.replace(partial, out)
    return out


def _make_random_pair(arch: dict[str, int], onnx_file: Path, checkpoint: Path) -> None:
    """Write both files under temporary names first, so an interrupted run leaves no half-written cache entry."""
    import torch

    from model_export.export import export_onnx
    from model_export.model import StackedHourglass

    torch.manual_seed(0)
    net = StackedHourglass(arch["stacks"], arch["features"], arch["joints"], arch["order"]).eval()
    partial_pt = checkpoint.with_name(f"{checkpoint.stem}.partial{checkpoint.suffix}")
    partial_onnx = onnx_file.with_name(f"{onnx_file.stem}.partial{onnx_file.suffix}")
    torch.save({"model": net.state_dict(), "architecture": arch}, partial_pt)
    provenance = {"source": "bench fixture: seeded random weights (torch.manual_seed(0))"}
    export_onnx(net, partial_onnx, (256, 256), provenance=provenance, log=lambda *_: None)
    os.replace(partial_pt, checkpoint)
    os.replace(partial_onnx, onnx_file)
