"""Safe checkpoint reading: ``torch.load(..., weights_only=True)`` and nothing else.

A checkpoint that needs arbitrary unpickling (custom classes, ``__reduce__`` payloads)
is refused before anything in it runs.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def code_version() -> str:
    """``git describe`` of this checkout (with -dirty), or 'unknown' outside git."""
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
