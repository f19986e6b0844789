"""Overlap and boundary metrics for binary segmentations: Dice, Hausdorff, HD95, FPSR, FNSR.

X is the predicted mask and Y the reference (truth) mask, both 2-D and of the same shape; any non-zero
value counts as foreground. The definitions follow Hou, Zou and Wang (Surg Innov 2024), eqs. 1-5:

- Dice = 2 |X and Y| / (|X| + |Y|)
- FPSR = |X - Y| / (|X| + |Y|)   (false-positive segmentation rate: predicted pixels outside the truth)
- FNSR = |Y - X| / (|X| + |Y|)   (false-negative segmentation rate: truth pixels that were missed)

Because |X| + |Y| = 2 |X and Y| + |X - Y| + |Y - X|, Dice + FPSR + FNSR = 1 whenever |X| + |Y| > 0.

Distances are measured between the boundary pixels of the two masks: a foreground pixel is on the boundary
when one of its 4 neighbours is background or lies outside the image. With `spacing` = (row, col) pixel size in
mm the distances are in mm (anisotropic pixels are handled exactly); without it they are in pixels.

- hausdorff: max over both directions of the largest distance from a boundary pixel of one mask to the
  nearest boundary pixel of the other (eqs. 2-3 of the paper, evaluated on boundaries).
- hd95: the 95th percentile (linear interpolation, numpy's default) of the pooled set of surface
  distances, i.e. the distances from every boundary pixel of X to Y together with those from every boundary
  pixel of Y to X. Some tools instead take the larger of the two directed 95th percentiles; the pooled form is
  used here and gives the same or a slightly smaller value.

Empty masks never raise; the conventions are:

| case                 | Dice | FPSR | FNSR | hausdorff, hd95 |
|----------------------|------|------|------|-----------------|
| both empty           | 1    | 0    | 0    | 0               |
| X empty, Y not       | 0    | 0    | 1    | inf             |
| Y empty, X not       | 0    | 1    | 0    | inf             |

A distance to an empty set is unbounded, hence inf (not nan): it sorts as the worst value and is not mistaken
for a missing measurement. Averages over cases must not include it silently; `summarise` reports mean, SD
and median over the finite values and counts the others as undefined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

METRIC_NAMES = ("dice", "fpsr", "fnsr", "hausdorff", "hd95")
_CROSS = ndimage.generate_binary_structure(2, 1)


def _as_masks(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays after checking they are 2-D and of the same shape."""
    x, y = np.asarray(x), np.asarray(y)
    for name, m in (("prediction X", x), ("truth Y", y)):
        if m.ndim != 2:
            raise ValueError(f"Segmentation metrics need 2-D masks; {name} has shape {m.shape}.")
    if x.shape != y.shape:
        raise ValueError(
            f"Prediction X has shape {x.shape} but truth Y has shape {y.shape}; resample one onto the other's grid."
        )
    return x.astype(bool, copy=False), y.astype(bool, copy=False)


def _check_spacing(spacing) -> tuple[float, float] | None:
    if spacing is None:
        return None
    s = tuple(float(v) for v in spacing)
    if len(s) != 2 or not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"spacing must be two positive (row, col) sizes in mm, got {spacing!r}.")
    return s


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
    """Foreground pixels with a 4-neighbour in the background or outside the image."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(x, y, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary pixel of X to the boundary of Y, and from each of Y to X.

    Both masks must be non-empty (the distance to an empty set is undefined)."""
    x, y = _as_masks(x, y)
    sampling = _check_spacing(spacing)
    if not x.any() or not y.any():
        raise ValueError("Surface distances need two non-empty masks.")
    bx, by = boundary(x), boundary(y)
    # The EDT gives, at every pixel, the distance to the nearest zero: so zeros must mark the other boundary.
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
    d_xy, d_yx = surface_distances(x, y, spacing)
    pooled = np.concatenate([d_xy, d_yx])
    return float(pooled.max()), float(np.percentile(pooled, 95))


def hausdorff(x, y, spacing=None) -> float:
    """Symmetric Hausdorff distance between the mask boundaries (mm with spacing, else pixels)."""
    x, y = _as_masks(x, y)
    return _distance_summary(x, y, _check_spacing(spacing))[0]


def hd95(x, y, spacing=None) -> float:
    """95th percentile of the pooled symmetric boundary distances (mm with spacing, else pixels)."""
    x, y = _as_masks(x, y)
    return _distance_summary(x, y, _check_spacing(spacing))[1]


def segmentation_metrics(x, y, spacing=None) -> dict[str, float]:
    """All five metrics of one prediction X against truth Y, plus the two mask sizes in pixels.

    Distances are in mm when `spacing` (row, col mm) is given, else in pixels."""
    x, y = _as_masks(x, y)
    spacing = _check_spacing(spacing)
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
