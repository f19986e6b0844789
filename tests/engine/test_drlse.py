"""DRLSE level-set baseline: converges on a blurred noisy disk, stops early, handles 16-bit, rejects bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.metrics.segmentation import dice
from engine.seg.drlse import DRLSEParams, drlse_segment, edge_indicator


def disk_phantom(size=160, radius=0.28, noise=10.0, seed=0, shape=None):
    """A bright disk with a blurred edge on a dark background plus Gaussian noise, and the disk itself."""
    h, w = shape or (size, size)
    rr, cc = np.mgrid[:h, :w]
    disk = np.hypot(rr - 0.45 * h, cc - 0.55 * w) < radius * min(h, w)
    img = cv2.GaussianBlur(disk.astype(np.float32), (0, 0), min(h, w) / 60) * 140 + 50
    img += np.random.default_rng(seed).normal(0, noise, (h, w)).astype(np.float32)
    return np.clip(img, 0, 255), disk


def test_converges_on_a_blurred_noisy_disk_and_stops_early():
    img, disk = disk_phantom()
    result = drlse_segment(img.astype(np.uint8))
    assert dice(result.mask, disk) > 0.9
    assert result.converged
    assert result.iterations < DRLSEParams().iterations
    assert result.mask.shape == disk.shape and result.mask.dtype == bool
    assert result.phi.shape == disk.shape
    assert result.params["mu"] == pytest.approx(0.2 / 5.0)


def test_sixteen_bit_frames_give_the_same_contour():
    img, disk = disk_phantom(seed=1)
    r8 = drlse_segment(img.astype(np.uint8))
    r16 = drlse_segment((img * 257).astype(np.uint16))
    assert dice(r16.mask, disk) > 0.9
    assert dice(r16.mask, r8.mask) > 0.97


def test_large_frames_run_downsampled_and_return_full_resolution_masks():
    img, disk = disk_phantom(shape=(600, 420), noise=14.0, seed=2)
    result = drlse_segment(img.astype(np.uint8))
    assert result.work_shape == (256, 179)
    assert result.mask.shape == (600, 420)
    assert dice(result.mask, disk) > 0.9


def test_a_box_around_the_object_shrinks_onto_it():
    img, disk = disk_phantom(seed=3)
    result = drlse_segment(img, init=(20, 30, 140, 150), iterations=400)
    assert dice(result.mask, disk) > 0.9


def test_a_seed_inside_grows_with_negative_alpha():
    img, disk = disk_phantom(seed=4)
    seed = np.zeros(disk.shape, bool)
    seed[62:82, 78:98] = True
    result = drlse_segment(img, init=seed, alpha=-3.0, iterations=400)
    assert dice(result.mask, disk) > 0.9


def test_constant_and_malformed_frames_are_refused():
    with pytest.raises(ValueError, match="constant"):
        drlse_segment(np.full((64, 64), 7, np.uint16))
    with pytest.raises(ValueError, match="grey"):
        drlse_segment(np.zeros((64, 64, 3), np.uint8))
    bad = np.ones((64, 64), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        drlse_segment(bad)
    with pytest.raises(ValueError, match="shape"):
        drlse_segment(disk_phantom()[0], init=np.ones((10, 10), bool))


def test_parameters_are_checked():
    img, _ = disk_phantom(size=64)
    with pytest.raises(ValueError, match="Unknown DRLSE parameter"):
        drlse_segment(img, lamda=3)
    with pytest.raises(ValueError, match="unstable"):
        drlse_segment(img, timestep=5.0, mu=0.1)
    assert DRLSEParams.from_kwargs(**{"lambda": 3.0}).lambda_ == 3.0


def test_edge_indicator_is_small_on_edges_and_one_on_flat_ground():
    img = np.zeros((40, 40), np.float32)
    img[:, 20:] = 200.0
    g = edge_indicator(img, 1.0)
    assert g[20, 5] == pytest.approx(1.0)
    assert g[20, 19] < 0.01
