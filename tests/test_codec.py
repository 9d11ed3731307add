"""The heatmap decoder alone, on random sub-pixel Gaussians with known centres.

Errors are per coordinate (mean |dx| and |dy|), in heatmap pixels: ``dark`` under 0.05,
``quarter`` under 0.15, ``none`` about 0.25-0.3 (a uniform sub-pixel offset left in).
"""

from __future__ import annotations

import numpy as np
import pytest

from pose.codec import (
    HeatmapCodec,
    _blurred_window,
    flip_heatmaps,
    gaussian_blur,
    heatmap_to_input,
    input_to_heatmap,
)
from pose.layout import MPII
from tests.helpers.models import gaussian_heatmaps

HEATMAP = (64, 48)  # (h, w): not square, to catch swapped axes


def random_gaussians(count: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(count, 1, h, w)`` heatmaps with random centres, widths and amplitudes, and their centres."""
    rng = np.random.default_rng(seed)
    h, w = HEATMAP
    centres = np.column_stack([rng.uniform(4, w - 5, count), rng.uniform(4, h - 5, count)])
    sigmas = rng.uniform(1.0, 2.5, count)
    amplitude = rng.uniform(0.3, 1.0, count)
    maps = np.stack(
        [a * gaussian_heatmaps(c[None], HEATMAP, s)[0] for c, s, a in zip(centres, sigmas, amplitude, strict=True)]
    )
    return maps[:, None], centres


@pytest.fixture(scope="module")
def gaussians() -> tuple[np.ndarray, np.ndarray]:
    return random_gaussians()


@pytest.mark.parametrize(("refine", "low", "high"), [("dark", 0.0, 0.05), ("quarter", 0.0, 0.15), ("none", 0.2, 0.35)])
def test_decoder_error_on_random_gaussians(gaussians, refine, low, high):
    maps, centres = gaussians
    codec = HeatmapCodec(input_size=(HEATMAP[0] * 4, HEATMAP[1] * 4), stride=4)
    coords, scores = codec.decode(maps, refine)
    found = input_to_heatmap(coords[:, 0].astype(np.float64), 4)
    error = np.abs(found - centres).mean()
    assert low <= error < high, f"{refine}: mean error {error:.4f} heatmap px"
    assert scores.shape == (len(maps), 1)


def test_dark_beats_quarter_beats_none(gaussians):
    maps, centres = gaussians
    codec = HeatmapCodec(input_size=(HEATMAP[0] * 4, HEATMAP[1] * 4), stride=4)
    errors = {
        refine: np.abs(input_to_heatmap(codec.decode(maps, refine)[0][:, 0].astype(np.float64), 4) - centres).mean()
        for refine in ("dark", "quarter", "none")
    }
    assert errors["dark"] < errors["quarter"] < errors["none"]


def test_score_is_the_peak_value():
    maps = 0.7 * gaussian_heatmaps(np.array([[10.0, 20.0]]), HEATMAP)[None]
    codec = HeatmapCodec(input_size=(HEATMAP[0] * 4, HEATMAP[1] * 4), stride=4)
    _, scores = codec.decode(maps, "dark")
    assert scores[0, 0] == pytest.approx(0.7, abs=1e-6)


def test_coordinate_convention_round_trip():
    h = np.array([0.0, 12.25, 63.0])
    np.testing.assert_allclose(heatmap_to_input(h, 4), (h + 0.5) * 4 - 0.5)
    np.testing.assert_allclose(input_to_heatmap(heatmap_to_input(h, 4), 4), h)


def test_flip_heatmaps_mirrors_and_swaps_pairs():
    w = HEATMAP[1]
    peaks = np.column_stack([np.linspace(5, 40, 16), np.linspace(5, 50, 16)])
    maps = gaussian_heatmaps(peaks, HEATMAP)[None]
    flipped = flip_heatmaps(maps, MPII.flip_index)
    codec = HeatmapCodec(input_size=(HEATMAP[0] * 4, HEATMAP[1] * 4), stride=4)
    coords, _ = codec.decode(flipped, "dark")
    found = input_to_heatmap(coords[0].astype(np.float64), 4)
    mirror = np.array(MPII.flip_index)
    expected = np.column_stack([w - 1 - peaks[mirror, 0], peaks[mirror, 1]])
    np.testing.assert_allclose(found, expected, atol=0.05)


def map_by_map_decode(maps: np.ndarray, stride: int, refine: str) -> tuple[np.ndarray, np.ndarray]:
    """The rule written plainly, one map at a time: the first maximum, then (``quarter``) a quarter pixel toward
    the strictly higher neighbour on each axis, except on the map's border."""
    h, w = maps.shape[-2:]
    coords, scores = [], []
    for m in maps.reshape(-1, h, w):
        y, x = divmod(int(m.argmax()), w)
        fx, fy = float(x), float(y)
        if refine == "quarter" and 0 < x < w - 1:
            fx += 0.25 * (int(m[y, x + 1] > m[y, x - 1]) - int(m[y, x + 1] < m[y, x - 1]))
        if refine == "quarter" and 0 < y < h - 1:
            fy += 0.25 * (int(m[y + 1, x] > m[y - 1, x]) - int(m[y + 1, x] < m[y - 1, x]))
        coords.append([(fx + 0.5) * stride - 0.5, (fy + 0.5) * stride - 0.5])
        scores.append(m[y, x])
    return np.array(coords).reshape(*maps.shape[:-2], 2), np.array(scores).reshape(maps.shape[:-2])


@pytest.mark.parametrize("refine", ["none", "quarter"])
@pytest.mark.filterwarnings("error")  # no RuntimeWarning from inf - inf either
def test_decoder_matches_the_rule_map_by_map(refine):
    """Peaks in every corner and on every edge, infinite peaks and neighbours, NaN, a tie, two leading axes."""
    h, w = HEATMAP
    maps = np.random.default_rng(3).random((2, 3, 16, h, w), dtype=np.float32)
    flat = maps.reshape(-1, h, w)
    spots = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, 7), (h - 1, 9), (5, 0), (6, w - 1), (10, 11)]
    for i, (y, x) in enumerate(spots):
        flat[i, y, x] = 2.0
    special = flat[len(spots) :]
    special[0, 0, 3] = np.inf  # on the top edge
    special[1, 0, w - 2 :] = np.inf  # in the corner, its only horizontal neighbour infinite too
    special[2, 9, 9:11] = np.inf  # inside, its right neighbour infinite too
    special[3, 4, 5:7] = 2.0  # a tie: the first maximum wins
    special[4, 20, 20] = np.nan  # argmax takes the first NaN
    special[5, 0, :2] = np.nan  # NaN in the corner and beside it
    flat[-1, h - 1, w - 1] = 2.0  # the last pixel of all: no neighbour past it
    codec = HeatmapCodec(input_size=(h * 4, w * 4), stride=4)
    coords, scores = codec.decode(maps, refine)
    expected_coords, expected_scores = map_by_map_decode(maps, 4, refine)
    assert coords.dtype == np.float32 and scores.dtype == np.float32
    assert coords.shape == (2, 3, 16, 2) and scores.shape == (2, 3, 16)
    np.testing.assert_array_equal(coords, expected_coords)
    np.testing.assert_array_equal(scores, expected_scores)
    assert np.isfinite(coords).all()
    mirrored = maps[..., ::-1]  # not contiguous
    np.testing.assert_array_equal(codec.decode(mirrored, refine)[0], map_by_map_decode(mirrored, 4, refine)[0])


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_dark_blurs_the_window_exactly_as_the_whole_map(sigma):
    """``dark`` blurs only the 5x5 window around each peak: the same float32 values as :func:`gaussian_blur` of the
    whole map (edge padding) read at those pixels, the window's own pixels clamped to the map."""
    h, w = HEATMAP
    rng = np.random.default_rng(4)
    maps = rng.random((40, h, w), dtype=np.float32)
    ys, xs = rng.integers(0, h, 40), rng.integers(0, w, 40)
    ys[:4], xs[4:8] = [0, 1, h - 2, h - 1], [0, 1, w - 2, w - 1]  # windows and kernels reaching past every edge
    window = _blurred_window(maps, np.column_stack([xs, ys]).astype(np.float32), sigma, half=2)
    rows = np.clip(ys[:, None] + np.arange(-2, 3), 0, h - 1)
    cols = np.clip(xs[:, None] + np.arange(-2, 3), 0, w - 1)
    whole = gaussian_blur(maps, sigma)[np.arange(40)[:, None, None], rows[:, :, None], cols[:, None, :]]
    np.testing.assert_array_equal(window, whole)
