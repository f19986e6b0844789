"""Overlap and boundary metrics for binary segmentations: Dice, Hausdorff, HD95, FPSR, FNSR, in 2-D and 3-D.

X is the predicted mask and Y the reference (truth) mask, of the same shape: 2-D (rows, cols) or 3-D (z, y, x);
any non-zero value counts as foreground. The definitions follow Hou, Zou and Wang (Surg Innov 2024), eqs. 1-5:

- Dice = 2 |X and Y| / (|X| + |Y|)
- FPSR = |X - Y| / (|X| + |Y|)   (false-positive segmentation rate: predicted pixels outside the truth)
- FNSR = |Y - X| / (|X| + |Y|)   (false-negative segmentation rate: truth pixels that were missed)

Because |X| + |Y| = 2 |X and Y| + |X - Y| + |Y - X|, Dice + FPSR + FNSR = 1 whenever |X| + |Y| > 0.

Distances are measured between the boundary voxels of the two masks: a foreground voxel is on the boundary when
one of its face neighbours (4 in 2-D, 6 in 3-D) is background or lies outside the array. `spacing` gives the voxel
size in mm per axis, (row, col) in 2-D and (z, y, x) in 3-D (one number for isotropic voxels); distances are then
exact Euclidean distances in mm, anisotropy included; without it they are in voxels.

- hausdorff: the larger of the two directed Hausdorff distances (the largest distance from a boundary voxel of
  one mask to the nearest boundary voxel of the other; eqs. 2-3 of the paper, evaluated on boundaries).
- hd95: the larger of the two directed 95th percentiles (linear interpolation), i.e. max(P95(d(X->Y)),
  P95(d(Y->X))). This is the convention of MONAI (`monai.metrics.compute_hausdorff_distance` with
  percentile=95) and of DeepMind's surface-distance package, and the tests check it against MONAI.
  An earlier version pooled the two directed sets before taking one percentile (medpy's convention). Pooling
  can hide a far false island: when the island is a few percent of X's boundary but less than 5 % of both
  boundaries together, the pooled value ignores it. Prediction = a 140 x 140 truth square plus a 15 x 15 false
  island 60 px diagonally beyond one corner: the pooled HD95 is 0.0 px, the MONAI HD95 95.5 px.

Empty masks never raise; the conventions are:

| case                 | Dice | FPSR | FNSR | hausdorff, hd95 |
|----------------------|------|------|------|-----------------|
| both empty           | 1    | 0    | 0    | 0               |
| X empty, Y not       | 0    | 0    | 1    | inf             |
| Y empty, X not       | 0    | 1    | 0    | inf             |

A distance to an empty set is unbounded, hence inf (not nan): it sorts as the worst value and is not mistaken
for a missing measurement. MONAI differs: with one mask empty its HD is inf but its HD95 nan (a quantile of
infinite distances), and with both empty both are nan; here two empty masks agree perfectly, hence 0. Averages over cases must not include inf silently; `summarise` reports
mean, SD and median over the finite values and counts the others as undefined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

METRIC_NAMES = ("dice", "fpsr", "fnsr", "hausdorff", "hd95")
HD95_CONVENTION = "the larger of the two directed 95th percentiles (MONAI / DeepMind surface-distance convention)"


def _as_masks(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays after checking they are 2-D or 3-D and of the same shape."""
    x, y = np.asarray(x), np.asarray(y)
    for name, m in (("prediction X", x), ("truth Y", y)):
        if m.ndim not in (2, 3):
            raise ValueError(f"Segmentation metrics need 2-D (rows, cols) or 3-D (z, y, x) masks; {name} has "
                             f"shape {m.shape}. Squeeze channel or batch axes first.")
    if x.shape != y.shape:
        raise ValueError(
            f"Prediction X has shape {x.shape} but truth Y has shape {y.shape}; resample one onto the other's grid."
        )
    return x.astype(bool, copy=False), y.astype(bool, copy=False)


def _check_spacing(spacing, ndim: int) -> tuple[float, ...] | None:
    """Voxel size per axis in mm (one number means isotropic), or None for distances in voxels."""
    if spacing is None:
        return None
    values = np.atleast_1d(np.asarray(spacing, dtype=float)).ravel()
    if values.size == 1:
        values = np.repeat(values, ndim)
    axes = "(row, col)" if ndim == 2 else "(z, y, x)"
    if values.size != ndim or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be {ndim} positive {axes} sizes in mm (or one for isotropic voxels), "
                         f"got {spacing!r}.")
    return tuple(float(v) for v in values)


def _counts(x: np.ndarray, y: np.ndarray) -> tuple[int, int, int]:
    """|X and Y|, |X - Y|, |Y - X|."""
    both = int(np.count_nonzero(x & y))
    return both, int(np.count_nonzero(x)) - both, int(np.count_nonzero(y)) - both


def dice(x, y) -> float:
    """Dice similarity coefficient 2|X and Y| / (|X| + |Y|); 1 when both masks are empty."""
    x, y = _as_masks(x, y)
    both, fp, fn = _counts(x, y)
    total = 2 * both + fp + fn
    return 1.0 if total == 0 else 2.0 * both / total


def fpsr(x, y) -> float:
    """False-positive segmentation rate |X - Y| / (|X| + |Y|); 0 when both masks are empty."""
    x, y = _as_masks(x, y)
    both, fp, fn = _counts(x, y)
    total = 2 * both + fp + fn
    return 0.0 if total == 0 else fp / total


def fnsr(x, y) -> float:
    """False-negative segmentation rate |Y - X| / (|X| + |Y|); 0 when both masks are empty."""
    x, y = _as_masks(x, y)
    both, fp, fn = _counts(x, y)
    total = 2 * both + fp + fn
    return 0.0 if total == 0 else fn / total


def boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a face neighbour (4 in 2-D, 6 in 3-D) in the background or outside the array."""
    mask = np.asarray(mask, dtype=bool)
    face = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=face, border_value=0)


def _union_box(x: np.ndarray, y: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of X or Y: everything outside it is background, so boundaries and the distances
    between them are the same inside it, and the distance transforms cost less."""
    hits = np.argwhere(x | y)
    return tuple(slice(lo, hi + 1) for lo, hi in zip(hits.min(axis=0), hits.max(axis=0)))


def surface_distances(x, y, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary voxel of X to the nearest boundary voxel of Y, and from each of Y to X.

    Both masks must be non-empty (the distance to an empty set is undefined)."""
    x, y = _as_masks(x, y)
    sampling = _check_spacing(spacing, x.ndim)
    if not x.any() or not y.any():
        raise ValueError("Surface distances need two non-empty masks.")
    box = _union_box(x, y)
    bx, by = boundary(x[box]), boundary(y[box])
    # The EDT gives, at every voxel, the distance to the nearest zero: so zeros must mark the other boundary.
    to_y = ndimage.distance_transform_edt(~by, sampling=sampling)
    to_x = ndimage.distance_transform_edt(~bx, sampling=sampling)
    return to_y[bx], to_x[by]


def _distance_summary(x: np.ndarray, y: np.ndarray, spacing) -> tuple[float, float]:
    """(Hausdorff, HD95) under the empty-mask conventions of the module docstring."""
    has_x, has_y = bool(x.any()), bool(y.any())
    if not has_x and not has_y:
        return 0.0, 0.0
    if not has_x or not has_y:
        return math.inf, math.inf
    directed = surface_distances(x, y, spacing)
    return (max(float(d.max()) for d in directed),
            max(float(np.percentile(d, 95)) for d in directed))


def hausdorff(x, y, spacing=None) -> float:
    """Symmetric Hausdorff distance between the mask boundaries (mm with spacing, else voxels)."""
    x, y = _as_masks(x, y)
    return _distance_summary(x, y, _check_spacing(spacing, x.ndim))[0]


def hd95(x, y, spacing=None) -> float:
    """The larger of the two directed 95th-percentile boundary distances, as MONAI computes it (mm with
    spacing, else voxels)."""
    x, y = _as_masks(x, y)
    return _distance_summary(x, y, _check_spacing(spacing, x.ndim))[1]


def segmentation_metrics(x, y, spacing=None) -> dict[str, float]:
    """All five metrics of one prediction X against truth Y, plus the two mask sizes in voxels.

    Distances are in mm when `spacing` ((row, col) or (z, y, x) mm) is given, else in voxels."""
    x, y = _as_masks(x, y)
    spacing = _check_spacing(spacing, x.ndim)
    both, fp, fn = _counts(x, y)
    total = 2 * both + fp + fn
    hd, hd_95 = _distance_summary(x, y, spacing)
    return {
        "dice": 1.0 if total == 0 else 2.0 * both / total,
        "fpsr": 0.0 if total == 0 else fp / total,
        "fnsr": 0.0 if total == 0 else fn / total,
        "hausdorff": hd,
        "hd95": hd_95,
        "pred_pixels": float(both + fp),
        "truth_pixels": float(both + fn),
    }


def summarise(values: Iterable[float]) -> dict[str, float]:
    """Mean, SD (n - 1), median, min and max over the finite values; non-finite ones are counted as undefined.

    Returns n (finite values used) and n_undefined (inf or nan); statistics of no values are nan, and the SD of
    one value is nan."""
    arr = np.asarray(list(values), dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    nan = math.nan
    return {
        "mean": float(finite.mean()) if n else nan,
        "sd": float(finite.std(ddof=1)) if n > 1 else nan,
        "median": float(np.median(finite)) if n else nan,
        "min": float(finite.min()) if n else nan,
        "max": float(finite.max()) if n else nan,
        "n": n,
        "n_undefined": int(arr.size - n),
    }


def summarise_metrics(rows: Sequence[Mapping[str, float]], names: Sequence[str] = METRIC_NAMES) -> dict[str, dict]:
    """`summarise` of each metric over many cases, e.g. the dicts returned by `segmentation_metrics`."""
    return {name: summarise(row[name] for row in rows) for name in names}
