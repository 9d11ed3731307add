"""Checkpoints: the training checkpoint's schema, and safe reading of any ``.pt`` file.

Every read goes through ``torch.load(..., weights_only=True)``: a checkpoint that needs arbitrary
unpickling (custom classes, ``__reduce__`` payloads) is refused before anything in it runs.
:class:`TrainingCheckpoint` is the one description of what ``train`` writes and what resuming,
``export`` and ``evaluate`` read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_export.model import StackedHourglass
from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE
from pose.layout import KeypointLayout

# Besides tensors and plain containers, numeric numpy arrays are accepted (training checkpoints keep
# numpy's RNG state): rebuilding an array or a dtype runs no user code.
_NUMERIC_DTYPES = "?bhilqBHILQefdgFDG"
_SAFE_NUMPY_GLOBALS = (
    np._core.multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    *(type(np.dtype(code)) for code in _NUMERIC_DTYPES),
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely or does not have the expected content."""


def load_checkpoint(path: str | Path) -> Any:
    """Load ``path`` on the CPU with the restricted (weights-only) unpickler, plus numpy arrays.

    Raises CheckpointError if the file is missing, unreadable, or needs arbitrary unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(list(_SAFE_NUMPY_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        detail = next((line for line in lines if "global" in line or "WeightsUnpickler" in line), lines[0])
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling, which could run code; only tensors, "
            f"containers and plain values are accepted (torch.load weights_only=True). Nothing in it was executed. "
            f"Detail: {detail}"
        ) from exc
    except (RuntimeError, OSError, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_of(checkpoint: Any, key: str) -> dict[str, torch.Tensor]:
    """``checkpoint[key]`` if the checkpoint is a dict holding one, else the checkpoint itself when it is
    a bare state dict (every value a tensor). Raises CheckpointError otherwise."""
    holds_one = isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict)
    state = checkpoint[key] if holds_one else checkpoint
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"expected a dict with a '{key}' state dict or a bare state dict")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state dict entry {name!r} is not a named tensor ({type(value).__name__})")
    return state


def strip_prefixes(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.``, ``model.``...) that every key shares, repeatedly."""
    changed = bool(state)
    while changed:
        changed = False
        for prefix in prefixes:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


CONFIG_KEYS = ("stacks", "features", "joints", "order")  # StackedHourglass(**config)


@dataclass
class TrainingCheckpoint:
    """Weights, the network's shape and input geometry, and (for resuming) where training stands.

    On disk it is a plain dict of these fields (``best`` is stored as ``best_pckh``), readable without
    this class. ``optimizer``, ``scheduler``, ``scaler`` and ``rng`` are what an exact resume needs;
    a checkpoint without them can still be exported, evaluated or used as ``--init``.
    """

    model: dict[str, torch.Tensor]
    config: dict[str, int]
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    heatmap_stride: int = DEFAULT_HEATMAP_STRIDE
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = -1.0  # best validation score so far (the primary metric of the run's validation)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    layout: dict[str, Any] | None = None  # {names, flip_pairs, skeleton}; None: the default for the joint count

    @classmethod
    def read(cls, path: str | Path) -> TrainingCheckpoint:
        """Load and check ``path`` (CheckpointError when unsafe, unreadable or not a training checkpoint)."""
        return cls.from_dict(load_checkpoint(path))

    @classmethod
    def from_dict(cls, raw: Any) -> TrainingCheckpoint:
        if not isinstance(raw, dict) or "model" not in raw or "config" not in raw:
            raise CheckpointError("not a training checkpoint: expected a dict with 'model' and 'config'")
        config = raw["config"]
        missing = [k for k in CONFIG_KEYS if k not in config] if isinstance(config, dict) else list(CONFIG_KEYS)
        if missing:
            raise CheckpointError(f"checkpoint 'config' lacks {', '.join(missing)}")
        try:
            size = raw.get("input_size") or DEFAULT_INPUT_SIZE
            return cls(
                model=strip_prefixes(state_dict_of(raw, "model"), ("_orig_mod.", "module.")),
                config={k: int(config[k]) for k in CONFIG_KEYS},
                input_size=(int(size[0]), int(size[1])),
                heatmap_stride=int(raw.get("heatmap_stride", DEFAULT_HEATMAP_STRIDE)),
                step=int(raw.get("step", 0)),
                epoch=int(raw.get("epoch", 0)),
                batch_in_epoch=int(raw.get("batch_in_epoch", 0)),
                best=float(raw.get("best_pckh", -1.0)),
                optimizer=raw.get("optimizer"),
                scheduler=raw.get("scheduler"),
                scaler=raw.get("scaler"),
                rng=raw.get("rng"),
                provenance=dict(raw.get("provenance") or {}),
                args=dict(raw.get("args") or {}),
                layout=raw.get("layout"),
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"malformed training checkpoint: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["input_size"] = list(self.input_size)
        raw["best_pckh"] = raw.pop("best")
        return {k: v for k, v in raw.items() if v is not None}

    def save(self, path: str | Path) -> None:
        """Write atomically, so a run stopped at any moment leaves a readable file."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.to_dict(), tmp)
        os.replace(tmp, path)

    def weights_only(self) -> TrainingCheckpoint:
        """This checkpoint without the optimiser, scheduler, scaler and RNG states (a third of the size):
        enough to export, evaluate or ``--init`` from, not to resume."""
        return replace(self, optimizer=None, scheduler=None, scaler=None, rng=None)

    @property
    def resumable(self) -> bool:
        return self.optimizer is not None and self.scheduler is not None

    def build_model(self) -> StackedHourglass:
        """The network of ``config`` with these weights (CheckpointError naming any mismatched tensor)."""
        model = StackedHourglass(**self.config)
        load_exact(model, self.model)
        return model

    def keypoint_layout(self) -> KeypointLayout:
        """The joints' names, flip pairs and limbs (CheckpointError when ``layout`` is malformed)."""
        if self.layout is None:
            return KeypointLayout.default_for(self.config["joints"])
        try:
            return KeypointLayout(
                names=tuple(self.layout["names"]),
                flip_pairs=tuple(tuple(p) for p in self.layout.get("flip_pairs", ())),
                skeleton=tuple(tuple(p) for p in self.layout.get("skeleton", ())),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint 'layout' is malformed: {exc}") from exc


def layout_record(layout: KeypointLayout) -> dict[str, Any]:
    """``layout`` as a checkpoint stores it (the inverse of :meth:`TrainingCheckpoint.keypoint_layout`)."""
    return {
        "names": list(layout.names),
        "flip_pairs": [list(pair) for pair in layout.flip_pairs],
        "skeleton": [list(pair) for pair in layout.skeleton],
    }


def load_exact(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict`` that names the first missing, unexpected or mis-shaped tensor."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(f"checkpoint has no tensor '{name}'")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"tensor '{name}' has shape {tuple(state[name].shape)}, the model needs {tuple(tensor.shape)}"
            )
    for name in state:
        if name not in expected:
            raise CheckpointError(f"unexpected tensor '{name}' in checkpoint")
    model.load_state_dict(dict(state), strict=True)
