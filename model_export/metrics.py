"""PCKh: the MPII metric (Andriluka et al., CVPR 2014).

A joint is correct when its prediction lies within ``threshold`` times the head
size of the ground truth, head size being 0.6 x the diagonal of the head box.
Only visible joints count. The MPII mean leaves out pelvis and thorax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pose.layout import MPII_PCKH_EXCLUDED, KeypointLayout

HEAD_SIZE_FACTOR = 0.6


def head_size_from_box(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """0.6 x the head box diagonal, the MPII normaliser."""
    return HEAD_SIZE_FACTOR * np.hypot(np.asarray(x2) - x1, np.asarray(y2) - y1)


@dataclass(frozen=True)
class PCKhResult:
    """Per-joint accuracy (NaN where a joint never appears) and the MPII mean."""

    threshold: float
    per_joint: np.ndarray  # (K,)
    counts: np.ndarray  # (K,) visible joints scored
    mean: float  # over joints not excluded by the protocol, weighted by count

    def mean_over(self, joints: Sequence[int]) -> float:
        """Mean over the scored instances of ``joints`` (weighted by count, like :attr:`mean`)."""
        idx = list(joints)
        total = self.counts[idx].sum()
        return float(np.nansum(self.per_joint[idx] * self.counts[idx]) / total) if total else float("nan")

    def table(self, layout: KeypointLayout, metric: str = "PCKh") -> str:
        lines = [f"{'joint':<16}{metric + '@' + str(self.threshold):>10}{'count':>8}"]
        for name, acc, n in zip(layout.names, self.per_joint, self.counts, strict=True):
            lines.append(f"{name:<16}{acc:>10.4f}{int(n):>8d}")
        lines.append(f"{'Mean':<16}{self.mean:>10.4f}{int(self.counts.sum()):>8d}")
        return "\n".join(lines)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_size: np.ndarray,
    threshold: float = 0.5,
    layout: KeypointLayout | None = None,
) -> PCKhResult:
    """PCKh over N figures: pred, gt ``(N, K, 2)``, visible ``(N, K)``, head_size ``(N,)``.

    The mean is taken over all visible joints of the non-excluded kinds (MPII's
    ``Mean`` column), so joints weigh by how often they are visible.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    vis = np.asarray(visible).astype(bool)
    head = np.asarray(head_size, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2), got {pred.shape} and {gt.shape}")
    if vis.shape != pred.shape[:2] or head.shape != pred.shape[:1]:
        raise ValueError("visible must be (N, K) and head_size (N,)")
    if np.any(head[vis.any(axis=1)] <= 0):
        raise ValueError("head sizes must be positive")
    dist = np.linalg.norm(pred - gt, axis=2) / np.where(head > 0, head, 1.0)[:, None]
    hit = (dist <= threshold) & vis
    counts = vis.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = hit.sum(axis=0) / counts
    layout = layout or KeypointLayout.default_for(pred.shape[1])
    included = np.array([name not in MPII_PCKH_EXCLUDED for name in layout.names])
    total = counts[included].sum()
    mean = float(hit[:, included].sum() / total) if total else float("nan")
    return PCKhResult(threshold=threshold, per_joint=per_joint, counts=counts, mean=mean)
