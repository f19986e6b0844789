"""Segmentation metrics: hand-computed small cases, the Dice + FPSR + FNSR identity, empty masks, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics.segmentation import (
    boundary,
    dice,
    fnsr,
    fpsr,
    hausdorff,
    hd95,
    segmentation_metrics,
    summarise,
    summarise_metrics,
    surface_distances,
)


def grid(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


# X: 6 pixels, Y: 4 pixels, 3 shared -> Dice 6/10, FPSR 3/10, FNSR 1/10.
X = grid("""
###.
###.
....
....
""")
Y = grid("""
.##.
.#..
.#..
....
""")


def test_overlap_metrics_on_a_4x4_case():
    assert dice(X, Y) == pytest.approx(0.6)
    assert fpsr(X, Y) == pytest.approx(0.3)
    assert fnsr(X, Y) == pytest.approx(0.1)
    # FPSR and FNSR swap when prediction and truth swap; Dice is symmetric.
    assert fpsr(Y, X) == pytest.approx(0.1)
    assert dice(Y, X) == pytest.approx(0.6)


def test_non_bool_masks_count_nonzero_as_foreground():
    assert dice(X.astype(np.uint8) * 255, Y.astype(np.int32)) == pytest.approx(0.6)


def test_dice_fpsr_fnsr_sum_to_one():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.random((17, 23)) < rng.random()
        y = rng.random((17, 23)) < rng.random()
        if x.any() or y.any():
            m = segmentation_metrics(x, y)
            assert m["dice"] + m["fpsr"] + m["fnsr"] == pytest.approx(1.0)


def squares(shift_cols: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((30, 40), bool)
    y = np.zeros((30, 40), bool)
    x[10:20, 10:20] = True
    y[10:20, 10 + shift_cols:20 + shift_cols] = True
    return x, y


def test_hausdorff_between_shifted_squares_in_pixels_and_mm():
    x, y = squares(4)
    assert hausdorff(x, y) == pytest.approx(4.0)
    # Column spacing 2 mm: the 4-column shift is 8 mm; the 0.5 mm rows never offer a shorter way round.
    assert hausdorff(x, y, spacing=(0.5, 2.0)) == pytest.approx(8.0)
    assert hausdorff(x, y, spacing=(2.0, 0.5)) == pytest.approx(2.0)
    assert hausdorff(x, x) == 0.0


def test_hd95_is_the_larger_directed_95th_percentile():
    # X is a 1x5 line and Y its first pixel: distances X->Y are 0..4, Y->X is [0].
    x = np.zeros((3, 7), bool)
    y = np.zeros((3, 7), bool)
    x[1, 1:6] = True
    y[1, 1] = True
    assert hausdorff(x, y) == pytest.approx(4.0)
    assert hd95(x, y) == pytest.approx(3.8)  # position 0.95 * 4 = 3.8 in [0, 1, 2, 3, 4]
    assert hd95(y, x) == pytest.approx(3.8)  # symmetric
    assert hd95(x, y, spacing=(1.0, 0.2)) == pytest.approx(0.76)
    # The pooled convention of earlier versions gave 3.75: position 4.75 in [0, 0, 1, 2, 3, 4].
    assert np.percentile(np.concatenate(surface_distances(x, y)), 95) == pytest.approx(3.75)


def test_a_far_false_island_is_not_hidden_by_the_larger_truth():
    """Prediction = a 140 x 140 truth square plus a 15 x 15 island beyond a corner: the island is 10 % of X's
    boundary but under 5 % of both boundaries, so pooling the two directed sets gave HD95 = 0."""
    y = np.zeros((300, 300), bool)
    y[20:160, 20:160] = True
    x = y.copy()
    x[220:235, 220:235] = True
    d_xy, d_yx = surface_distances(x, y)
    assert np.percentile(np.concatenate([d_xy, d_yx]), 95) == 0.0  # the old, pooled value
    assert not d_yx.any()
    assert hd95(x, y) == pytest.approx(np.percentile(d_xy, 95)) and hd95(x, y) > 90
    assert hausdorff(x, y) == pytest.approx(math.hypot(234 - 159, 234 - 159))


def test_boundary_of_a_filled_square_is_its_outline():
    x, _ = squares(0)
    assert boundary(x).sum() == 36  # 4 x 10 - 4 corners counted twice


def test_concentric_disks_have_distances_equal_to_the_radius_gap():
    rr, cc = np.mgrid[:80, :80]
    r = np.hypot(rr - 40, cc - 40)
    m = segmentation_metrics(r < 20, r < 25)
    assert m["hausdorff"] == pytest.approx(5.0, abs=1.0)
    assert m["hd95"] == pytest.approx(5.0, abs=1.0)
    assert m["fpsr"] == 0.0


@pytest.mark.parametrize(
    ("x_empty", "y_empty", "expected"),
    [
        (True, True, {"dice": 1.0, "fpsr": 0.0, "fnsr": 0.0, "hausdorff": 0.0, "hd95": 0.0}),
        (True, False, {"dice": 0.0, "fpsr": 0.0, "fnsr": 1.0, "hausdorff": math.inf, "hd95": math.inf}),
        (False, True, {"dice": 0.0, "fpsr": 1.0, "fnsr": 0.0, "hausdorff": math.inf, "hd95": math.inf}),
    ],
)
def test_empty_mask_conventions(x_empty, y_empty, expected):
    empty = np.zeros((4, 4), bool)
    m = segmentation_metrics(empty if x_empty else X, empty if y_empty else Y, spacing=(0.1, 0.1))
    for name, value in expected.items():
        assert m[name] == value, name
    assert hausdorff(empty if x_empty else X, empty if y_empty else Y) == expected["hausdorff"]
    assert dice(empty if x_empty else X, empty if y_empty else Y) == expected["dice"]


def test_bad_inputs_raise_with_the_problem_named():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        dice(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(X, Y, spacing=(0.1, -1.0))
    with pytest.raises(ValueError, match=r"3 positive \(z, y, x\)"):
        hd95(np.ones((2, 4, 4)), np.ones((2, 4, 4)), spacing=(1.0, 1.0))


def test_summarise_skips_undefined_values_and_counts_them():
    s = summarise([0.5, 0.7, math.inf, 0.9, math.nan])
    assert s["n"] == 3 and s["n_undefined"] == 2
    assert s["mean"] == pytest.approx(0.7)
    assert s["median"] == pytest.approx(0.7)
    assert s["sd"] == pytest.approx(0.2)
    assert math.isnan(summarise([math.inf])["mean"])
    rows = [segmentation_metrics(X, Y), segmentation_metrics(np.zeros((4, 4)), Y)]
    summary = summarise_metrics(rows)
    assert summary["dice"]["mean"] == pytest.approx(0.3)
    assert summary["hausdorff"]["n_undefined"] == 1


def test_3d_boundary_is_face_connected():
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    assert boundary(cube).sum() == 5 ** 3 - 3 ** 3  # everything but the 3x3x3 core
    cube[3, 3, 3] = False  # a one-voxel cavity makes its 6 face neighbours boundary, not the 12 edge ones
    assert boundary(cube).sum() == 5 ** 3 - 3 ** 3 + 6


def test_3d_cubes_shifted_along_z_with_thick_slices():
    x = np.zeros((20, 12, 12), bool)
    x[4:10, 3:9, 3:9] = True
    y = np.roll(x, 3, axis=0)
    m = segmentation_metrics(x, y, spacing=(2.5, 0.5, 0.5))
    assert m["hausdorff"] == pytest.approx(7.5) and m["hd95"] == pytest.approx(7.5)
    assert m["dice"] == pytest.approx(0.5)
    assert hausdorff(x, y) == pytest.approx(3.0)
    assert hausdorff(x, y, spacing=0.5) == pytest.approx(1.5)  # one number: isotropic


def test_3d_empty_mask_conventions():
    empty = np.zeros((3, 4, 4), bool)
    some = empty.copy()
    some[1, 1:3, 1:3] = True
    assert segmentation_metrics(empty, empty)["hd95"] == 0.0
    assert segmentation_metrics(empty, some, spacing=(2.0, 1.0, 1.0))["hd95"] == math.inf
