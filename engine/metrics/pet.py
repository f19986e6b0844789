"""Standard PET tumour measures of a segmented volume: SUVmax, SUVpeak, SUVmean, MTV and TLG.

SUVpeak is the highest mean SUV in a 1 cm^3 sphere (radius 6.20 mm) centred on a voxel of the tumour (PERCIST
style; the sphere may reach outside the mask). Voxels count as in the sphere when their centres are, which on
coarse PET grids makes the sphere's true volume differ from 1 ml; `sphere_ml` in the result says by how much.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PEAK_SPHERE_ML = 1.0
MEASURE_UNITS = {"suv_max": "SUV", "suv_peak": "SUV", "suv_mean": "SUV", "mtv_ml": "ml", "tlg": "SUV*ml",
                 "peak_sphere_ml": "ml", "voxels": ""}


def sphere_kernel(spacing: tuple[float, ...], volume_ml: float = PEAK_SPHERE_ML) -> np.ndarray:
    """Boolean kernel of the voxels whose centres lie in a sphere of `volume_ml` (anisotropic spacing, mm)."""
    radius = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    half = [int(np.floor(radius / s)) for s in spacing]
    axes = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    return sum(a ** 2 for a in axes) <= radius ** 2 + 1e-9


def sphere_means(suv: np.ndarray, spacing: tuple[float, ...], volume_ml: float = PEAK_SPHERE_ML) -> np.ndarray:
    """Mean SUV in the 1 cm^3 sphere around every voxel (zero outside the volume)."""
    kernel = sphere_kernel(spacing, volume_ml).astype(np.float32)
    return ndimage.convolve(suv.astype(np.float32), kernel / kernel.sum(), mode="constant", cval=0.0)


def suv_peak_location(suv: np.ndarray, spacing: tuple[float, ...], within: np.ndarray | None = None) -> tuple:
    """Voxel index of the SUVpeak sphere's centre (in `within` when given)."""
    means = sphere_means(suv, spacing)
    if within is not None:
        means = np.where(within, means, -np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(means)), means.shape))


def pet_measures(suv: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """SUVmax, SUVpeak, SUVmean (SUV), MTV (ml), TLG (SUVmean x MTV) of the voxels in `mask`; an empty mask
    gives an MTV of 0 and no SUV values (NaN), never a made-up number."""
    if suv.shape != mask.shape:
        raise ValueError(f"PET measures: the SUV volume {suv.shape} and the mask {mask.shape} differ in shape; "
                         "resample the mask to the PET grid first.")
    mask = mask.astype(bool)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    kernel = sphere_kernel(spacing)
    n = int(mask.sum())
    if n == 0:
        nan = float("nan")
        return {"suv_max": nan, "suv_peak": nan, "suv_mean": nan, "mtv_ml": 0.0, "tlg": 0.0,
                "peak_sphere_ml": float(kernel.sum()) * voxel_ml, "voxels": 0.0}
    values = suv[mask].astype(np.float64)
    mean = float(values.mean())
    mtv = n * voxel_ml
    peak = float(sphere_means(suv, spacing)[mask].max())
    return {"suv_max": float(values.max()), "suv_peak": peak, "suv_mean": mean, "mtv_ml": mtv, "tlg": mean * mtv,
            "peak_sphere_ml": float(kernel.sum()) * voxel_ml, "voxels": float(n)}
