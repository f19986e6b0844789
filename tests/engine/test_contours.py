"""Mask <-> contour conversion: round trips, holes, areas, region counts, sub-pixel levels, exports."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from engine.seg.contours import (
    Contour,
    contours_to_mask,
    export_contours_csv,
    export_contours_json,
    mask_to_contours,
    net_area,
    read_contours_json,
    region_count,
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def shapes() -> dict[str, np.ndarray]:
    rr, cc = np.mgrid[:90, :120]
    r = np.hypot(rr - 45, cc - 60)
    square_with_hole = np.zeros((90, 120), bool)
    square_with_hole[10:70, 20:90] = True
    square_with_hole[30:50, 40:60] = False
    island_in_hole = square_with_hole.copy()
    island_in_hole[38:42, 48:52] = True
    diagonal = np.zeros((90, 120), bool)
    diagonal[[5, 6, 7, 30], [5, 6, 7, 80]] = True
    return {
        "disk": r < 30,
        "ring": (r < 35) & (r >= 20),
        "square_with_hole": square_with_hole,
        "island_in_hole": island_in_hole,
        "two_blobs": (np.hypot(rr - 20, cc - 20) < 9) | (np.hypot(rr - 60, cc - 90) < 15),
        "diagonal_pixels": diagonal,
        "touches_border": r < 60,
    }


@pytest.mark.parametrize("name", list(shapes()))
def test_mask_contour_mask_round_trip(name):
    mask = shapes()[name]
    contours = mask_to_contours(mask)
    back = contours_to_mask(contours, mask.shape)
    assert iou(back, mask) > 0.98
    assert np.array_equal(back, mask)  # binary masks come back exactly


@pytest.mark.parametrize("name", list(shapes()))
def test_topology_matches_opencv(name):
    mask = shapes()[name]
    contours = mask_to_contours(mask)
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv_holes = int((hierarchy[0][:, 3] >= 0).sum())
    cv_outer = len(hierarchy[0]) - cv_holes
    outer = sum(not c.is_hole for c in contours)
    assert outer == cv_outer == region_count(mask)
    # RETR_CCOMP puts an island inside a hole at the top level, so holes compare directly.
    assert sum(c.is_hole for c in contours) == cv_holes


def test_holes_point_to_their_outer_contour():
    contours = mask_to_contours(shapes()["island_in_hole"])
    flags = [(c.is_hole, c.parent) for c in contours]
    assert flags[0] == (False, None)  # the largest outer contour comes first
    assert (True, 0) in flags  # the square's hole belongs to the square
    island = [i for i, c in enumerate(contours) if not c.is_hole and i > 0]
    assert len(island) == 1


def test_areas_match_pixel_counts():
    square = np.zeros((40, 40), bool)
    square[5:25, 10:30] = True
    (contour,) = mask_to_contours(square)
    # The 0.5 level cuts each of the 4 corners by an eighth of a pixel.
    assert contour.area_px == pytest.approx(400 - 0.5)
    assert contour.perimeter_px == pytest.approx(4 * 19 + 4 * math.sqrt(0.5))
    for name in ("disk", "ring", "square_with_hole", "two_blobs"):
        mask = shapes()[name]
        assert net_area(mask_to_contours(mask)) == pytest.approx(mask.sum(), rel=0.01)


def test_millimetre_areas_and_perimeters_use_the_spacing():
    square = np.zeros((40, 40), bool)
    square[5:25, 10:30] = True
    (contour,) = mask_to_contours(square, spacing=(0.5, 2.0))
    assert contour.area_mm2 == pytest.approx((400 - 0.5) * 1.0)
    diagonal = math.hypot(0.5 * 0.5, 0.5 * 2.0)
    assert contour.perimeter_mm == pytest.approx(2 * 19 * 0.5 + 2 * 19 * 2.0 + 4 * diagonal)
    assert np.allclose(contour.points_mm, contour.points * [0.5, 2.0])
    assert net_area([contour], mm=True) == pytest.approx(399.5)
    with pytest.raises(ValueError, match="spacing"):
        net_area(mask_to_contours(square), mm=True)


def bilinear(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    r, c = points[:, 0], points[:, 1]
    r0 = np.clip(np.floor(r).astype(int), 0, field.shape[0] - 2)
    c0 = np.clip(np.floor(c).astype(int), 0, field.shape[1] - 2)
    fr, fc = r - r0, c - c0
    top = field[r0, c0] * (1 - fc) + field[r0, c0 + 1] * fc
    bottom = field[r0 + 1, c0] * (1 - fc) + field[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def test_probability_map_contours_lie_on_the_threshold_level():
    rr, cc = np.mgrid[:64, :64]
    prob = np.exp(-((rr - 30.3) ** 2 + (cc - 33.7) ** 2) / (2 * 9.0**2))
    prob += 0.6 * np.exp(-((rr - 10) ** 2 + (cc - 50) ** 2) / (2 * 4.0**2))
    for threshold in (0.3, 0.5, 0.8):
        contours = mask_to_contours(prob, threshold=threshold)
        assert contours
        for contour in contours:
            assert np.allclose(bilinear(prob, contour.points), threshold, atol=1e-9)
        assert np.array_equal(contours_to_mask(contours, prob.shape), prob >= threshold)
    assert region_count(prob, threshold=0.5) == 2
    # The disk's level-0.5 circle has radius 9 * sqrt(2 ln 2): sub-pixel points sit on it closely.
    (disk,) = mask_to_contours(np.exp(-((rr - 30.3) ** 2 + (cc - 33.7) ** 2) / (2 * 9.0**2)))
    radius = np.hypot(disk.points[:, 0] - 30.3, disk.points[:, 1] - 33.7)
    assert np.abs(radius - 9 * math.sqrt(2 * math.log(2))).max() < 0.15


def test_empty_full_and_bad_inputs():
    assert mask_to_contours(np.zeros((8, 8), bool)) == []
    assert not contours_to_mask([], (8, 8)).any()
    assert region_count(np.zeros((8, 8))) == 0
    (full,) = mask_to_contours(np.ones((8, 8), np.uint8))
    assert full.area_px == pytest.approx(64 - 0.5)
    assert contours_to_mask([full], (8, 8)).all()
    with pytest.raises(ValueError, match="2-D"):
        mask_to_contours(np.zeros((2, 8, 8), bool))
    with pytest.raises(ValueError, match="NaN"):
        mask_to_contours(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="spacing"):
        mask_to_contours(np.zeros((8, 8), bool), spacing=(0.1,))


def test_plain_point_arrays_rasterise_too():
    square = np.array([[1.5, 1.5], [1.5, 6.5], [6.5, 6.5], [6.5, 1.5]])
    mask = contours_to_mask([square], (10, 10))
    assert mask[2:7, 2:7].all() and mask.sum() == 25
    triangle = np.array([[0.2, 0.2], [8.7, 0.2], [8.7, 8.7]])  # centres on the diagonal edge count as inside
    assert contours_to_mask([triangle], (10, 10)).sum() == sum(range(1, 9))


def test_json_and_csv_exports(tmp_path):
    mask = shapes()["square_with_hole"]
    contours = mask_to_contours(mask, spacing=(0.1, 0.2))
    path = export_contours_json(contours, tmp_path / "c.json", shape=mask.shape, extra={"case_id": "x"})
    doc = json.loads(path.read_text())
    assert doc["format"] == "oncolens-contours" and doc["shape"] == [90, 120] and doc["case_id"] == "x"
    assert doc["spacing_mm"] == [0.1, 0.2]
    assert [c["is_hole"] for c in doc["contours"]] == [False, True]
    again, shape = read_contours_json(path)
    assert shape == mask.shape and isinstance(again[0], Contour)
    assert np.array_equal(contours_to_mask(again, shape), mask)

    path = export_contours_csv(contours, tmp_path / "c.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["contour_id", "point_index", "row", "col", "row_mm", "col_mm", "is_hole"]
    assert len(rows) == sum(len(c.points) for c in contours)
    first = rows[0]
    assert float(first["row_mm"]) == pytest.approx(float(first["row"]) * 0.1, abs=1e-4)
    assert {r["is_hole"] for r in rows if r["contour_id"] == "1"} == {"1"}

    plain = export_contours_csv(mask_to_contours(mask), tmp_path / "p.csv")
    assert plain.read_text().splitlines()[0] == "contour_id,point_index,row,col,is_hole"


def _dense(contours, per_segment: int = 8) -> np.ndarray:
    out = []
    for c in contours:
        pts = np.vstack([c.points, c.points[:1]])
        out += [pts[:-1] * (1 - t) + pts[1:] * t for t in np.linspace(0, 1, per_segment, endpoint=False)]
    return np.concatenate(out)


@pytest.mark.parametrize("seed", range(6))
def test_tracing_the_work_scale_map_matches_tracing_the_resized_frame_map(seed):
    """Contours traced on a 4x smaller map and refined onto its bilinear surface lie within about a pixel of the
    contours of the map resized to the frame (what the predictor traced before), here in frame pixels. The maps
    are tumor-like (a few smooth blobs, one touching the edge); at a saddle of the map the two tracings may join
    the lines differently, by up to a work cell, which tumor probability maps rarely show."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    work = np.zeros((64, 80), np.float32)
    for cy, cx, sy, sx in [(rng.uniform(8, 56), rng.uniform(8, 72), rng.uniform(4, 10), rng.uniform(4, 10))
                           for _ in range(3)] + [(0.0, rng.uniform(20, 60), 6.0, 8.0)]:
        work = np.maximum(work, np.exp(-((yy - cy) ** 2 / (2 * sy ** 2) + (xx - cx) ** 2 / (2 * sx ** 2))))
    frame = cv2.resize(work, (320, 256), interpolation=cv2.INTER_LINEAR)
    reference = mask_to_contours(frame, threshold=0.5)
    traced = mask_to_contours(work, threshold=0.5, frame_shape=frame.shape)
    assert len(traced) == len(reference)
    a, b = _dense(traced), _dense(reference)
    worst = max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max())
    assert worst < 1.2
    areas = sorted(c.area_px for c in reference)
    assert np.allclose(sorted(c.area_px for c in traced), areas, rtol=0.02, atol=4.0)
