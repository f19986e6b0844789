"""HD and HD95 against MONAI's `compute_hausdorff_distance` (an independent implementation: KD-tree distances
between the edges that `get_mask_edges` finds by 'mask XOR its erosion', face-connected structure, after
cropping to the union's box with a margin of zeros, i.e. the same border rule as here; percentiles by
`torch.quantile`, linear interpolation like numpy's; the larger directed value). MONAI works in float32, so
values agree to about 1e-5 relative. Empty masks follow the conventions table of the module docstring, which
differs from MONAI on purpose: both empty, MONAI nan and here 0; one empty, HD inf in both, HD95 nan in MONAI
and inf here."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from engine.metrics.segmentation import hausdorff, hd95, segmentation_metrics, surface_distances


def monai_hd(x: np.ndarray, y: np.ndarray, spacing=None, percentile=None) -> float:
    def batch(m):
        return torch.from_numpy(np.asarray(m, dtype=np.float32)[None, None])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty masks and deprecated arguments
        value = compute_hausdorff_distance(batch(x), batch(y), include_background=True, percentile=percentile,
                                           spacing=None if spacing is None else list(spacing))
    return float(value[0, 0])


def assert_like_monai(x, y, spacing=None):
    for ours, percentile in ((hausdorff(x, y, spacing), None), (hd95(x, y, spacing), 95)):
        assert ours == pytest.approx(monai_hd(x, y, spacing, percentile), rel=2e-6, abs=2e-5), percentile


def blobs(rng: np.random.Generator, shape, smooth: float, fill: float) -> np.ndarray:
    """Random blobby masks with holes and islands: thresholded smoothed noise."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), smooth)
    return field > np.quantile(field, 1 - fill)


def test_random_2d_masks_match_monai():
    rng = np.random.default_rng(0)
    for k in range(12):
        shape = (int(rng.integers(20, 70)), int(rng.integers(20, 70)))
        x = blobs(rng, shape, rng.uniform(1, 5), rng.uniform(0.05, 0.5))
        y = blobs(rng, shape, rng.uniform(1, 5), rng.uniform(0.05, 0.5)) if k % 3 else x ^ (rng.random(shape) < 0.02)
        spacing = None if k % 2 else tuple(rng.uniform(0.2, 3.0, 2))
        assert_like_monai(x, y, spacing)


def test_salt_and_pepper_masks_touching_the_border_match_monai():
    rng = np.random.default_rng(1)
    for _ in range(4):
        x, y = rng.random((25, 31)) < 0.4, rng.random((25, 31)) < 0.6
        assert_like_monai(x, y)
        assert_like_monai(x, y, (0.5, 1.7))


def disk(shape, centre, radius, spacing=(1.0, 1.0)):
    grid = np.indices(shape).astype(float)
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing))) < radius


def adversarial_cases():
    square = np.zeros((300, 300), bool)
    square[20:160, 20:160] = True
    island = square.copy()
    island[220:235, 220:235] = True  # 15 x 15 false island, 60 px beyond a corner
    speck = square.copy()
    speck[280, 285] = True  # a single far pixel
    ring = disk((120, 120), (60, 60), 40) & ~disk((120, 120), (60, 60), 30)
    filled = disk((120, 120), (60, 60), 40)
    holed = filled & ~disk((120, 120), (50, 70), 8) & ~disk((120, 120), (75, 55), 5)
    thin = np.zeros((60, 200), bool)
    thin[30, 10:190] = True  # a one-pixel line: every pixel is boundary
    return {
        "island": (island, square), "island reversed": (square, island), "speck": (speck, square),
        "ring vs disk": (ring, filled), "holes": (holed, filled), "line vs bar": (thin, ndimage.binary_dilation(thin)),
        "disjoint": (disk((80, 80), (20, 20), 10), disk((80, 80), (60, 65), 12)),
    }


@pytest.mark.parametrize("name", list(adversarial_cases()))
@pytest.mark.parametrize("spacing", [None, (1.0, 1.0), (0.3, 2.1), (4.0, 0.25)])
def test_adversarial_masks_match_monai(name, spacing):
    x, y = adversarial_cases()[name]
    assert_like_monai(x, y, spacing)


def test_the_island_case_pooled_against_monai():
    x, y = adversarial_cases()["island"]
    pooled = float(np.percentile(np.concatenate(surface_distances(x, y)), 95))
    assert pooled == 0.0
    assert hd95(x, y) == pytest.approx(monai_hd(x, y, percentile=95), rel=1e-6)
    assert hd95(x, y) == pytest.approx(95.4778, abs=1e-4)


def test_random_3d_masks_with_anisotropic_spacing_match_monai():
    rng = np.random.default_rng(2)
    for k in range(6):
        shape = (int(rng.integers(8, 20)), int(rng.integers(16, 36)), int(rng.integers(16, 36)))
        x = blobs(rng, shape, rng.uniform(1, 3), rng.uniform(0.05, 0.4))
        y = blobs(rng, shape, rng.uniform(1, 3), rng.uniform(0.05, 0.4)) if k % 2 else x ^ (rng.random(shape) < 0.01)
        spacing = (rng.uniform(1.5, 5.0), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))  # thick slices
        assert_like_monai(x, y, spacing)
        assert_like_monai(x, y)


def test_3d_sphere_with_a_far_island_matches_monai():
    spacing = (3.0, 0.8, 0.8)
    y = disk((30, 64, 64), (12, 30, 30), 14, spacing)
    x = y.copy()
    x[26:29, 55:60, 55:60] = True
    assert_like_monai(x, y, spacing)


@pytest.mark.parametrize("empty", ["x", "y"])
def test_one_empty_mask_is_infinite(empty):
    """MONAI's HD is inf too; its HD95 comes out nan only because torch.quantile of all-inf distances is nan."""
    full = disk((30, 30), (15, 15), 8)
    none = np.zeros_like(full)
    x, y = (none, full) if empty == "x" else (full, none)
    assert math.isinf(monai_hd(x, y)) and math.isinf(hausdorff(x, y))
    assert math.isnan(monai_hd(x, y, percentile=95)) and math.isinf(hd95(x, y))


def test_both_empty_is_zero_here_and_nan_in_monai():
    none = np.zeros((10, 10), bool)
    assert math.isnan(monai_hd(none, none, percentile=95))
    assert segmentation_metrics(none, none)["hd95"] == 0.0
