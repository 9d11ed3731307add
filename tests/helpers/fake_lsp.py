"""A tiny LSP or LSPET folder (``joints.mat`` in the set's own layout, plus noise JPEGs) for tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat


def write_fake_lsp(
    root: Path,
    count: int,
    photos: Mapping[int, tuple[int, int]],
    layout: str = "lsp",
    seed: int = 0,
) -> np.ndarray:
    """Write ``count`` annotations and a photo of ``(width, height)`` for each 0-based index in ``photos``.

    Joints lie inside a 20..140 x 20..150 region (every photo is at least 160 x 170 there); flags are 0
    (LSP: visible) or 1 (LSPET: visible). Returns the ``(count, 14, 3)`` array in LSP joint order, 1-based.
    """
    rng = np.random.default_rng(seed)
    joints = np.zeros((count, 14, 3))
    joints[..., 0] = rng.uniform(20, 140, (count, 14))
    joints[..., 1] = rng.uniform(20, 150, (count, 14))
    joints[..., 2] = 0.0 if layout == "lsp" else 1.0
    root.mkdir(parents=True, exist_ok=True)
    array = joints.transpose(2, 1, 0) if layout == "lsp" else joints.transpose(1, 2, 0)
    savemat(root / "joints.mat", {"joints": array})
    (root / "images").mkdir(exist_ok=True)
    digits = 4 if count <= 9999 else 5
    for index, (width, height) in photos.items():
        pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{index + 1:0{digits}d}.jpg", quality=95)
    return joints
