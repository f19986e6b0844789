"""Fluorescence-frame phantoms: well-formed, deterministic, distinct per dataset, fast, and not thresholdable."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from engine.cases.bundle import read_bundle
from engine.metrics.segmentation import dice
from engine.phantoms.fluoro_frames import (
    DATASETS,
    frame_to_case,
    make_fluoro_dataset,
    make_frame,
    write_fluoro_demo_cases,
)
from engine.seg.contours import region_count

SIZE = 256


@pytest.fixture(scope="module")
def frames():
    return {key: make_fluoro_dataset(key, 8, seed=5, size=SIZE) for key in DATASETS}


def test_frames_are_well_formed(frames):
    for key, frs in frames.items():
        spec = DATASETS[key]
        for f in frs:
            assert f.dataset == key and f.bit_depth == spec.bit_depth
            assert f.image.shape == (SIZE, SIZE) and f.mask.shape == (SIZE, SIZE)
            assert f.image.dtype == (np.uint8 if spec.bit_depth == 8 else np.uint16)
            assert f.mask.dtype == bool and f.mask.any() and not f.mask.all()
            assert int(f.image.max()) <= 2**spec.bit_depth - 1
            # Pixel size scales with the frame: the field of view stays that of a 1024-pixel frame.
            assert f.spacing_mm == pytest.approx((spec.spacing_mm * 1024 / SIZE,) * 2)
    assert frames["A"][0].image.dtype == np.uint16


def test_same_seed_same_frames_and_stable_prefixes():
    a = make_fluoro_dataset("B", 3, seed=11, size=128)
    b = make_fluoro_dataset("B", 2, seed=11, size=128)
    c = make_fluoro_dataset("B", 2, seed=12, size=128)
    for x, y in zip(a, b):
        assert x.frame_id == y.frame_id
        assert np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask)
    assert not np.array_equal(a[0].image, c[0].image)
    one = make_frame(np.random.default_rng(3), "C", 128)
    two = make_frame(np.random.default_rng(3), "C", 128)
    assert np.array_equal(one.image, two.image) and one.frame_id == two.frame_id


def test_datasets_differ_like_devices_and_organs(frames):
    def mean(key, fn):
        return float(np.mean([fn(f) for f in frames[key]]))

    fraction = {k: mean(k, lambda f: f.mask.mean()) for k in DATASETS}
    regions = {k: mean(k, lambda f: region_count(f.mask)) for k in DATASETS}
    # A: several small lesions; B: large tumors; C in between.
    assert regions["A"] > regions["B"] and regions["A"] > regions["C"]
    assert fraction["A"] < fraction["C"] < fraction["B"]

    def contrast(f):
        """Median inside the tumor over the median of a band 10-30 pixels outside it (both minus black level)."""
        img = f.image.astype(np.float32) - np.percentile(f.image, 0.5)
        m = f.mask.astype(np.uint8)
        near = cv2.dilate(m, np.ones((61, 61), np.uint8)).astype(bool) & ~cv2.dilate(m, np.ones((21, 21), np.uint8)).astype(bool)
        return np.median(img[f.mask]) / max(np.median(img[near]), 1e-6)

    ratio = {k: mean(k, contrast) for k in DATASETS}
    assert all(r > 1.1 for r in ratio.values()), ratio  # the tumor is brighter than its surroundings
    assert ratio["C"] < ratio["B"], ratio  # liver frames have the lowest contrast
    # Noise differs by device: the raw 12-bit camera is the noisiest relative to its signal.
    def noise(f):
        img = f.image.astype(np.float32)
        residual = img - cv2.medianBlur(img, 3) if f.image.dtype == np.uint8 else img - cv2.blur(img, (3, 3))
        return np.median(np.abs(residual)) / max(np.percentile(img, 99) - np.percentile(img, 1), 1.0)
    assert mean("A", noise) > mean("B", noise)


def test_a_global_threshold_gets_only_part_of_the_tumor(frames):
    for key, frs in frames.items():
        scores = []
        for f in frs:
            smooth = cv2.GaussianBlur(f.image.astype(np.float32), (0, 0), 1.0)
            grey = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
            _, otsu = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
            scores.append(dice(otsu.astype(bool), f.mask))
        # B (large, fairly clear tumors) is the easiest, as in the paper; A and C defeat a threshold.
        assert 0.05 < np.mean(scores) < (0.85 if key == "B" else 0.6), (key, np.round(scores, 2))


def test_full_size_frames_are_fast():
    rng = np.random.default_rng(0)
    make_frame(rng, "A", 1024)  # warm the cached fixed-pattern noise
    start = time.perf_counter()
    for key in DATASETS:
        frame = make_frame(rng, key, 1024)
        assert frame.image.shape == (1024, 1024)
    assert (time.perf_counter() - start) / 3 < 1.0  # about 0.15 s each on a quiet machine


def test_frame_to_case_and_demo_bundles(tmp_path):
    frame = make_frame(np.random.default_rng(1), "C", 128, frame_id="f-1")
    case = frame_to_case(frame)
    assert case.id == "f-1" and case.kind == "fluoro_frame"
    image = case.image("NIR")
    assert image.meta.spacing == frame.spacing_mm and image.meta.bit_depth == 8
    assert image.meta.extra["stands_for"] == "DTHL"
    assert case.truth.masks["tumor"] is frame.mask and case.truth.labels == {"tumor": 1}
    empty = make_frame(np.random.default_rng(1), "C", 128, tumor_free=True)  # a bed with no residual tumor
    assert not empty.mask.any() and frame_to_case(empty).truth.labels == {"tumor": 0}
    assert empty.image.std() > 0  # tissue, vessels and noise are still drawn

    paths = write_fluoro_demo_cases(tmp_path, seed=3, count=3, size=128)
    assert [p.name for p in paths] == ["demo-fluoro-01", "demo-fluoro-02", "demo-fluoro-03"]
    cases = [read_bundle(p) for p in paths]
    assert [c.image("NIR").meta.extra["phantom_dataset"] for c in cases] == ["A", "B", "C"]
    assert cases[0].image("NIR").array.dtype == np.uint16
    again = write_fluoro_demo_cases(tmp_path / "again", seed=3, count=1, size=128)
    assert np.array_equal(read_bundle(again[0]).image("NIR").array, cases[0].image("NIR").array)
    assert np.array_equal(cases[2].truth.masks["tumor"].astype(bool),
                          make_frame(np.random.default_rng([3, 2]), "C", 128).mask)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="Unknown fluorescence phantom dataset"):
        make_frame(np.random.default_rng(0), "D")
    with pytest.raises(ValueError, match="at least 64"):
        make_frame(np.random.default_rng(0), "A", 32)
