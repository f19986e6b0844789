"""CHMFL preprocessing, driven by the card: PET (SUV) and CT (HU) resampled in physical space onto one isotropic
box centred on the tumour, then intensity handling per modality.

Steps (paper: isotropic resampling, a fixed tumour-centred box, standardisation; the rest are the choices written
in the card): linear interpolation for both images (PET clipped at 0), nearest for masks; padding with air (CT
-1000 HU) and zero SUV outside the field of view; CT clipped to [-1000, 1000] HU and PET to [0, 20] SUV, then each
z-scored over the box. The box centre is the image's `roi_center_mm` when the case has one (the GTV centroid in the
paper's setting; a user's click in the viewer), otherwise the SUVpeak location of the PET volume. 2-D models read
the box's central axial slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.data import SUV, ModalityImage
from engine.io.volumes import Grid, resample
from engine.metrics.pet import suv_peak_location

PET, CT = "PET", "CT"
PAD = {PET: 0.0, CT: -1000.0}
CENTRE_KEY = "roi_center_mm"  # ImageMeta.extra of the PET (or CT) image: box centre, physical (z, y, x) mm


def preprocessing_constants(preset: str = "compact") -> dict[str, Any]:
    """The card's preprocessing section for a preset (paper: 1 mm, 144 x 112 x 112 voxels = 144 x 112 x 112 mm)."""
    if preset == "paper":
        spacing, box = 1.0, [144, 112, 112]
    elif preset == "compact":
        spacing, box = 3.5, [32, 32, 32]
    else:
        raise ValueError(f"Unknown CHMFL preset {preset!r}: use 'paper' or 'compact'.")
    return {
        "kind": "petct_box",
        "spacing_mm": spacing,
        "box_voxels_zyx": box,
        "box_mm_zyx": [round(spacing * b, 3) for b in box],
        "interpolation": {"PET": "linear, clipped at 0", "CT": "linear", "mask": "nearest"},
        "pad": {"PET": PAD[PET], "CT": PAD[CT]},
        "ct_clip_hu": [-1000.0, 1000.0],
        "pet_clip_suv": [0.0, 20.0],
        "normalisation": "z-score over the box, per modality",
        "contrast_enhancement": "off (the paper cites Foracchia luminosity/contrast normalisation without its "
                                "window; not applied here)",
        "centre": f"ImageMeta.extra['{CENTRE_KEY}'] when present (GTV centroid for training and the phantom; "
                  "a user's click), else the PET SUVpeak location",
        "slice_2d": "the box's central axial slice (2-D variants)",
    }


@dataclass(frozen=True)
class BoxInput:
    """The net input and where it came from: (M, Z, Y, X) float32 (or (M, Y, X) for 2-D), the box grid and
    how its centre was chosen."""

    array: np.ndarray
    grid: Grid
    centre: tuple[float, float, float]
    centre_rule: str


def box_grid(centre: np.ndarray, constants: Mapping[str, Any]) -> Grid:
    return Grid.centred(np.asarray(centre, float), tuple(constants["box_voxels_zyx"]), float(constants["spacing_mm"]))


def box_centre(images: Mapping[str, ModalityImage]) -> tuple[np.ndarray, str]:
    """(physical centre, rule used): the images' roi_center_mm, else the PET SUVpeak, else the CT volume centre."""
    for code in (PET, CT):
        image = images.get(code)
        if image is not None and CENTRE_KEY in image.meta.extra:
            centre = np.asarray(image.meta.extra[CENTRE_KEY], float)
            if centre.shape != (3,) or not np.all(np.isfinite(centre)):
                raise ValueError(f"{code} image: {CENTRE_KEY} must be three finite numbers (z, y, x mm), got "
                                 f"{image.meta.extra[CENTRE_KEY]!r}.")
            return centre, CENTRE_KEY
    if PET in images:
        pet = images[PET]
        grid = Grid.of(pet)
        return grid.to_physical(np.asarray(suv_peak_location(pet.array, grid.spacing), float)), "SUVpeak"
    return Grid.of(images[CT]).centre, "CT volume centre"


def check_petct(images: Mapping[str, ModalityImage], modalities: tuple[str, ...]) -> None:
    """Clear errors for what CHMFL cannot read: missing images, planes instead of volumes, PET not in SUV,
    NaN values, PET and CT without any overlap."""
    for code in modalities:
        if code not in images:
            raise KeyError(f"CHMFL needs {' + '.join(modalities)} volumes; {code} is missing (the case has "
                           f"{', '.join(images) or 'nothing'}).")
        image = images[code]
        if not image.is_volume:
            raise ValueError(f"{code} image: CHMFL reads volumes (axes ZYX), got {image.axes} of shape "
                             f"{image.array.shape}.")
        if not np.all(np.isfinite(image.array)):
            raise ValueError(f"{code} image: the volume holds NaN or infinite values ({image.meta.file_name or 'no file'});"
                             " re-export it.")
    if PET in modalities and images[PET].meta.units != SUV:
        raise ValueError(f"PET image is in {images[PET].meta.units!r}, not SUV: read the DICOM series with SUV "
                         "conversion (oncolens dicom info shows the factor) or give a NIfTI already in SUV.")
    if PET in modalities and CT in modalities:
        a, b = Grid.of(images[PET]), Grid.of(images[CT])
        lo_a, hi_a = _bounds(a)
        lo_b, hi_b = _bounds(b)
        if np.any(np.minimum(hi_a, hi_b) < np.maximum(lo_a, lo_b)):
            raise ValueError("PET and CT volumes do not overlap in physical space: they are not of one study or one "
                             "frame of reference. Open the PET and CT series of the same PET-CT acquisition.")


def _bounds(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[i, j, k] for i in (0, grid.shape[0] - 1) for j in (0, grid.shape[1] - 1)
                        for k in (0, grid.shape[2] - 1)], float)
    pts = grid.to_physical(corners)
    return pts.min(0), pts.max(0)


def normalise(code: str, box: np.ndarray, constants: Mapping[str, Any]) -> np.ndarray:
    lo, hi = constants["pet_clip_suv"] if code == PET else constants["ct_clip_hu"]
    x = np.clip(box, lo, hi)
    return ((x - x.mean()) / max(float(x.std()), 1e-6)).astype(np.float32)


def preprocess_petct(images: Mapping[str, ModalityImage], modalities: tuple[str, ...],
                     constants: Mapping[str, Any], dims: int = 3) -> BoxInput:
    """The CHMFL input for one case, per the card's constants."""
    check_petct(images, modalities)
    centre, rule = box_centre(images)
    grid = box_grid(centre, constants)
    channels = []
    for code in modalities:
        image = images[code]
        box = resample(image.array, Grid.of(image), grid, order=1, cval=PAD[code])
        channels.append(normalise(code, box, constants))
    array = np.stack(channels)
    if dims == 2:
        array = np.ascontiguousarray(array[:, array.shape[1] // 2])
    return BoxInput(array, grid, tuple(float(c) for c in centre), rule)
