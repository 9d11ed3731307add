"""Keypoints <-> heatmaps, in one coordinate convention.

Convention (used by training targets, the decoder and the service):
pixel centres sit at integer coordinates, so the centre of the top-left pixel is
(0, 0). A heatmap coordinate ``h`` maps to network-input coordinate
``(h + 0.5) * stride - 0.5`` and back with :func:`input_to_heatmap`.

With this convention mirroring is exact: flipping an input of width ``W`` maps
``x -> W - 1 - x`` and flipping its heatmap of width ``w = W / stride`` maps
``h -> w - 1 - h``, so flip averaging needs no half-pixel shift.

Pure numpy: the service imports it without torch, training imports it for its
targets, so encoder and decoder cannot drift apart.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pose.contract import DEFAULT_HEATMAP_STRIDE, DEFAULT_INPUT_SIZE

Refine = Literal["none", "quarter", "dark"]
REFINE_METHODS: tuple[str, ...] = ("none", "quarter", "dark")


def heatmap_to_input(h: np.ndarray | float, stride: int) -> np.ndarray | float:
    """Heatmap coordinate -> network-input coordinate."""
    return (h + 0.5) * stride - 0.5


def input_to_heatmap(x: np.ndarray | float, stride: int) -> np.ndarray | float:
    """Network-input coordinate -> heatmap coordinate."""
    return (x + 0.5) / stride - 0.5


def flip_heatmaps(heatmaps: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
    """Heatmaps of a mirrored image, brought back to the original image's frame.

    ``heatmaps`` is ``(..., K, h, w)``; the width axis is reversed and each joint
    takes the channel of its mirror partner.
    """
    return np.ascontiguousarray(heatmaps[..., list(flip_index), :, ::-1])


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of radius ceil(3 sigma)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(heatmaps: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes (edge padding), any leading shape."""
    kernel = gaussian_kernel1d(sigma)
    r = len(kernel) // 2
    lead = [(0, 0)] * (heatmaps.ndim - 2)
    out = heatmaps.astype(np.float32, copy=False)
    h, w = out.shape[-2:]
    padded = np.pad(out, [*lead, (0, 0), (r, r)], mode="edge")
    out = sum(kernel[i] * padded[..., :, i : i + w] for i in range(len(kernel)))
    padded = np.pad(out, [*lead, (r, r), (0, 0)], mode="edge")
    return sum(kernel[i] * padded[..., i : i + h, :] for i in range(len(kernel)))


class HeatmapCodec:
    """Encode keypoints as Gaussian heatmaps and decode heatmaps to keypoints.

    Coordinates on both sides are network-input pixels, ``(..., K, 2)`` as (x, y).
    """

    def __init__(
        self,
        input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
        stride: int = DEFAULT_HEATMAP_STRIDE,
        sigma: float = 1.0,
        dark_blur_sigma: float = 1.0,
    ) -> None:
        height, width = input_size
        if height % stride or width % stride:
            raise ValueError(f"input size {input_size} is not a multiple of the stride {stride}")
        if sigma <= 0 or dark_blur_sigma <= 0:
            raise ValueError("sigma must be positive")
        self.input_size = (int(height), int(width))
        self.stride = int(stride)
        self.heatmap_size = (height // stride, width // stride)
        self.sigma = float(sigma)
        self.dark_blur_sigma = float(dark_blur_sigma)

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints: np.ndarray, visible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training targets for one figure.

        ``keypoints`` is ``(K, 2)`` input pixels, ``visible`` ``(K,)`` truthy where
        the joint is labelled and visible. Returns heatmaps ``(K, h, w)`` float32
        (peak 1 at the exact sub-pixel location) and per-joint weights ``(K,)``
        float32: 0 for invisible joints and for joints whose Gaussian centre lies
        off the heatmap.
        """
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim != 2 or keypoints.shape[1] != 2:
            raise ValueError(f"keypoints must be (K, 2), got {keypoints.shape}")
        k = keypoints.shape[0]
        vis = np.ones(k, bool) if visible is None else np.asarray(visible).astype(bool)
        if vis.shape != (k,):
            raise ValueError(f"visible must be ({k},), got {vis.shape}")
        hh, hw = self.heatmap_size
        mu = input_to_heatmap(keypoints, self.stride)
        inside = (
            np.isfinite(mu).all(axis=1)
            & (mu[:, 0] >= -0.5)
            & (mu[:, 0] <= hw - 0.5)
            & (mu[:, 1] >= -0.5)
            & (mu[:, 1] <= hh - 0.5)
        )
        weights = (vis & inside).astype(np.float32)
        mu = np.where(np.isfinite(mu), mu, 0.0)
        xs = np.arange(hw, dtype=np.float32)
        ys = np.arange(hh, dtype=np.float32)
        gx = np.exp(-((xs[None, :] - mu[:, 0:1]) ** 2) / (2 * self.sigma**2))
        gy = np.exp(-((ys[None, :] - mu[:, 1:2]) ** 2) / (2 * self.sigma**2))
        heatmaps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]
        return heatmaps.astype(np.float32), weights

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: np.ndarray, refine: Refine = "quarter") -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from heatmaps ``(..., K, h, w)``.

        Returns ``(coords, scores)``: coords ``(..., K, 2)`` float32 (x, y) in
        network-input pixels, scores ``(..., K)`` float32, the heatmap value at
        the peak (the first maximum; the first NaN in a map holding one). Vectorised
        over every leading axis. ``none`` and ``quarter`` coordinates are finite
        whatever the maps hold.
        """
        if refine not in REFINE_METHODS:
            raise ValueError(f"refine must be one of {REFINE_METHODS}, got {refine!r}")
        hm = np.asarray(heatmaps, dtype=np.float32)
        if hm.ndim < 3:
            raise ValueError(f"heatmaps must be (..., K, h, w), got {hm.shape}")
        lead, (h, w) = hm.shape[:-2], hm.shape[-2:]
        rows = hm.reshape(-1, h * w)  # a contiguous copy only when ``heatmaps`` is not
        table = _peak_table(h, w, self.stride)
        idx = rows.argmax(axis=1)
        # each peak and its four neighbours in one gather: (M, 5) values, peak first
        around = rows.reshape(-1)[table.around[idx] + (idx + np.arange(0, rows.size, h * w))[:, None]]
        if refine == "quarter":
            # -1, 0 or 1 per axis: toward the strictly higher neighbour; 0 on the border (see _PeakTable) and
            # wherever the two are equal or not comparable (inf and inf, NaN), so coordinates are always finite.
            # Comparisons, not the sign of a difference: inf - inf would warn and give NaN.
            ahead, behind = around[:, 1:3], around[:, 3:]
            toward = (ahead > behind).astype(np.float32) - (ahead < behind)
            coords = table.centre[idx] + np.float32(0.25 * self.stride) * toward  # a quarter heatmap pixel
        elif refine == "dark":
            peaks = table.xy[idx]
            offset = _dark_offset(rows.reshape(-1, h, w), peaks, self.dark_blur_sigma)
            coords = heatmap_to_input(peaks + offset, self.stride).astype(np.float32, copy=False)
        else:
            coords = table.centre[idx]
        return coords.reshape(*lead, 2), around[:, 0].reshape(lead)


@dataclass(frozen=True)
class _PeakTable:
    """Per flat position ``y * w + x`` of an ``h x w`` heatmap: what decoding a peak there needs.

    Batch 1 is the common case and its 16 maps are tiny, so decoding costs numpy calls, not arithmetic, and in
    the service each call starts with caches the model has just emptied (``bench/decoder.py`` times both):
    looking these up by the argmax index replaces a dozen index computations per call.
    """

    xy: np.ndarray  # (h*w, 2) float32: the pixel (x, y)
    centre: np.ndarray  # (h*w, 2) float32: the pixel centre in network-input coordinates
    # (h*w, 5) int: flat offsets of the pixel and its right, lower, left and upper neighbours. A neighbour off
    # the map is replaced by the one opposite it (by the pixel itself on a 1-pixel axis), so that on the border
    # right - left and lower - upper are 0: no quarter-pixel shift there.
    around: np.ndarray


@functools.lru_cache(maxsize=8)
def _peak_table(h: int, w: int, stride: int) -> _PeakTable:
    """The :class:`_PeakTable` of ``h x w`` heatmaps of a network with this ``stride``, built once per shape."""
    ys, xs = np.divmod(np.arange(h * w), w)
    right = np.where(xs < w - 1, 1, np.where(xs > 0, -1, 0))
    left = np.where(xs > 0, -1, right)
    down = np.where(ys < h - 1, w, np.where(ys > 0, -w, 0))
    up = np.where(ys > 0, -w, down)
    xy = np.stack([xs, ys], axis=1).astype(np.float32)
    centre = np.asarray(heatmap_to_input(xy, stride), dtype=np.float32)
    around = np.stack([np.zeros_like(xs), right, down, left, up], axis=1)
    for table in (xy, centre, around):
        table.setflags(write=False)  # shared by every call
    return _PeakTable(xy, centre, around)


def _dark_offset(flat: np.ndarray, peaks: np.ndarray, blur_sigma: float) -> np.ndarray:
    """Distribution-aware refinement (Zhang et al., CVPR 2020).

    Blur the heatmap, take its log and move the peak by one Newton step,
    ``-H^-1 grad``, with central differences at the integer maximum. Steps that
    are not a local maximum or land more than a pixel away are dropped. Only the
    5x5 window the differences read is blurred (same values as blurring the whole
    map with :func:`gaussian_blur`, at a fraction of the cost).
    """
    m = flat.shape[0]
    logs = np.log(np.maximum(_blurred_window(flat, peaks, blur_sigma, half=2), 1e-10))

    def at(dy: int, dx: int) -> np.ndarray:
        return logs[:, 2 + dy, 2 + dx].astype(np.float64)

    centre = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = (det > 1e-12) & (hxx < 0)  # negative definite: a true maximum
    safe = np.where(ok, det, 1.0)
    ox = -(hyy * gx - hxy * gy) / safe
    oy = -(hxx * gy - hxy * gx) / safe
    ok &= (np.abs(ox) <= 1.0) & (np.abs(oy) <= 1.0)
    offset = np.stack([np.where(ok, ox, 0.0), np.where(ok, oy, 0.0)], axis=1)
    return offset.reshape(m, 2).astype(np.float32)


def _blurred_window(flat: np.ndarray, peaks: np.ndarray, sigma: float, half: int) -> np.ndarray:
    """:func:`gaussian_blur` of ``(M, h, w)`` maps, evaluated only at the ``(2 half + 1)^2`` pixels around
    each peak (coordinates clamped to the map, like edge padding): ``(M, 2 half + 1, 2 half + 1)``.
    """
    kernel = gaussian_kernel1d(sigma)
    taps = len(kernel)
    m, h, w = flat.shape
    window = np.arange(-half, half + 1)
    reach = np.arange(taps) - taps // 2
    ys = np.clip(peaks[:, 1].astype(np.int64)[:, None] + window, 0, h - 1)
    xs = np.clip(peaks[:, 0].astype(np.int64)[:, None] + window, 0, w - 1)
    rows = np.clip(ys[:, :, None] + reach, 0, h - 1)  # (M, window, taps)
    cols = np.clip(xs[:, :, None] + reach, 0, w - 1)
    maps = flat.astype(np.float32, copy=False)
    patch = maps[np.arange(m)[:, None, None, None, None], rows[:, :, :, None, None], cols[:, None, None, :, :]]
    across = sum(kernel[i] * patch[..., i] for i in range(taps))  # (M, window y, taps, window x): the row pass
    return sum(kernel[j] * across[:, :, j, :] for j in range(taps))  # then the column pass
