"""What the PET-CT viewer draws, computed once per case without Qt (on a worker; the CLI's benchmark and the tests
call the same functions).

Display geometry: the CT is shown on its own grid, untouched (a 512 x 512 x 300 CT is not copied). PET, the
Grad-CAM and the tumour mask live on the PET grid, whose voxels are larger and may be tilted or flipped against
the CT's; they are resampled once, in physical space, onto an *overlay grid*: the CT's axes, each CT axis
grouped by a whole factor (about the PET voxel size), so that overlay voxel p along an axis covers CT voxels
p*f .. p*f+f-1. A CT slice then shows overlay slice `index // f`, and an overlay plane is drawn over the CT plane
as one stretched image (the viewer interpolates it). Memory: about the PET's own size, not the CT's.

The rotating PET maximum-intensity projection (MIP) is precomputed for a set of angles about the patient's
long axis; each image has the head up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from engine.data import ZYX, ModalityImage
from engine.io.volumes import Grid, resample
from engine.metrics.pet import pet_measures
from engine.seg.contours import mask_to_contours

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES = (AXIAL, CORONAL, SAGITTAL)
PLANE_AXIS = {AXIAL: 0, CORONAL: 1, SAGITTAL: 2}  # the ZYX axis a plane cuts across
PLANE_ROWS_COLS = {AXIAL: (1, 2), CORONAL: (0, 2), SAGITTAL: (0, 1)}  # the ZYX axes of a plane's rows, columns
MIP_ANGLES = 36  # 10 degree steps over a full turn
MIP_MAX_SIDE = 160  # in-plane voxels of the MIP volume at most (keeps the precomputation to seconds)
PET_GREY_SUV = (0.0, 6.0)  # inverted grey, SUV 0 to 6: how nuclear-medicine physicians read PET
CT_PRESETS = {"Soft tissue": (400.0, 40.0), "Lung": (1500.0, -600.0), "Bone": (2000.0, 400.0)}  # width, level HU


def window_to_levels(width: float, level: float) -> tuple[float, float]:
    """(low, high) display range of a window width and level (HU)."""
    return level - width / 2.0, level + width / 2.0


def overlay_factors(reference: Grid, pet: Grid) -> tuple[int, int, int]:
    """Per reference axis, how many reference voxels one overlay voxel spans: the PET voxel's extent along that
    axis (its footprint when the grids are tilted) over the reference spacing, rounded, at least 1."""
    axes = np.asarray(reference.direction, float).reshape(3, 3)  # columns: unit vectors of the reference axes
    steps = pet.matrix  # columns: one PET index step in mm
    factors = []
    for a in range(3):
        extent = float(np.abs(axes[:, a] @ steps).sum())
        factors.append(max(1, int(round(extent / reference.spacing[a]))))
    return tuple(factors)


def overlay_grid(reference: Grid, factors: tuple[int, int, int]) -> Grid:
    """The reference grid with each axis grouped by its factor (voxel p covers reference voxels p*f..p*f+f-1)."""
    f = np.asarray(factors, float)
    shape = tuple(int(math.ceil(n / k)) for n, k in zip(reference.shape, factors))
    origin = reference.to_physical((f - 1) / 2)
    return Grid(shape, tuple(float(s * k) for s, k in zip(reference.spacing, factors)), tuple(origin.tolist()),
                reference.direction)


def overlay_slice(reference_index: int, factor: int, count: int) -> int:
    """The overlay slice shown with reference slice `reference_index`."""
    return int(min(max(reference_index // factor, 0), count - 1))


@dataclass
class FusionVolumes:
    """A case's volumes as the viewer shows them: the reference (CT, else PET) as is, PET on the overlay grid."""

    reference: Grid
    reference_array: np.ndarray  # the CT (HU) as stored, or the PET itself when there is no CT
    reference_modality: str
    overlay: Grid
    factors: tuple[int, int, int]
    pet: np.ndarray | None  # SUV on the overlay grid (float32)
    pet_grid: Grid | None  # the PET's own grid (masks and heat maps of predictions come on it)
    ct_levels: tuple[float, float] | None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def overlay_nbytes(self) -> int:
        return 0 if self.pet is None else int(self.pet.nbytes)

    def to_overlay(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """A volume on the PET grid (mask, heat map) resampled onto the overlay grid (float32)."""
        if self.pet_grid is None:
            raise ValueError("This case has no PET volume to place the map on.")
        return resample(np.asarray(volume, np.float32), self.pet_grid, self.overlay, order=order, cval=0.0)

    def overlay_to_reference(self, plane: str, points: np.ndarray) -> np.ndarray:
        """(row, col) points of an overlay plane -> (row, col) of the reference plane (pixel indices)."""
        rows, cols = PLANE_ROWS_COLS[plane]
        f = np.asarray([self.factors[rows], self.factors[cols]], float)
        return np.asarray(points, float) * f + (f - 1) / 2


def fusion_volumes(images: Mapping[str, ModalityImage], pet: str = "PET", ct: str = "CT") -> FusionVolumes:
    """Place the case's PET on the overlay grid of its CT (see the module docstring); a case without CT shows the
    PET as the reference. Raises ValueError naming the image when neither is a volume."""
    import time

    t0 = time.perf_counter()
    pet_image, ct_image = images.get(pet), images.get(ct)
    for code, image in ((pet, pet_image), (ct, ct_image)):
        if image is not None and image.axes != ZYX:
            raise ValueError(f"{code} image: the PET-CT viewer shows volumes (axes ZYX), got {image.axes}.")
    if pet_image is None and ct_image is None:
        raise ValueError(f"Neither a {pet} nor a {ct} volume in this case: nothing to show.")
    base = ct_image if ct_image is not None else pet_image
    reference = Grid.of(base)
    pet_grid = Grid.of(pet_image) if pet_image is not None else None
    factors = overlay_factors(reference, pet_grid) if pet_grid is not None else (1, 1, 1)
    overlay = overlay_grid(reference, factors)
    pet_on_overlay = None
    if pet_image is not None:
        pet_on_overlay = resample(pet_image.array, pet_grid, overlay, order=1, cval=0.0)
    ct_levels = None
    if ct_image is not None:
        ct_levels = window_to_levels(*CT_PRESETS["Soft tissue"])
    return FusionVolumes(reference, base.array, ct if ct_image is not None else pet, overlay, factors, pet_on_overlay,
                         pet_grid, ct_levels, {"fusion": (time.perf_counter() - t0) * 1e3})


PlaneContours = dict[str, dict[int, list[np.ndarray]]]  # plane -> overlay slice -> (N, 2) (row, col) reference px


def plane_contours(volumes: FusionVolumes, mask_overlay: np.ndarray, level: float = 0.5) -> PlaneContours:
    """Contours of a (resampled) mask in every plane, per overlay slice that holds some of it, as (row, col)
    points in the reference plane's pixels."""
    out: PlaneContours = {}
    present = mask_overlay >= level
    for plane in PLANES:
        axis = PLANE_AXIS[plane]
        others = tuple(a for a in range(3) if a != axis)
        slices = np.flatnonzero(present.any(axis=others))
        per_slice: dict[int, list[np.ndarray]] = {}
        for index in slices:
            cut = np.take(mask_overlay, int(index), axis=axis)
            contours = mask_to_contours(cut, threshold=level)
            per_slice[int(index)] = [volumes.overlay_to_reference(plane, c.points) for c in contours]
        out[plane] = per_slice
    return out


@dataclass
class PredictionOverlays:
    """A CHMFL prediction as the viewer draws it: tumour contours per plane, the Grad-CAM on the overlay grid, the
    measures of the segmented tumour (the prediction's own; computed from the mask when it came without them)."""

    contours: PlaneContours
    heat: np.ndarray | None
    measures: dict[str, float]
    mask_source: object = None  # the prediction's mask array these were computed from (identity check)


def prediction_overlays(volumes: FusionVolumes, pet: ModalityImage | None, mask: np.ndarray | None,
                        heat: np.ndarray | None, measures: Mapping[str, float] | None = None) -> PredictionOverlays:
    """Contours, heat layer and measures of one prediction (mask and heat on the PET grid)."""
    contours: PlaneContours = {p: {} for p in PLANES}
    found = dict(measures or {})
    if mask is not None and volumes.pet_grid is not None:
        if tuple(np.shape(mask)) != tuple(volumes.pet_grid.shape):
            raise ValueError(f"The tumour mask is {np.shape(mask)}, the PET volume {volumes.pet_grid.shape}: the "
                             "prediction belongs to another image; run the prediction again.")
        contours = plane_contours(volumes, volumes.to_overlay(np.asarray(mask, np.float32)))
        if pet is not None and "suv_max" not in found:
            found.update(pet_measures(pet.array, np.asarray(mask), tuple(pet.meta.spacing or (1.0, 1.0, 1.0))))
    heat_overlay = None
    if heat is not None and volumes.pet_grid is not None and tuple(np.shape(heat)) == tuple(volumes.pet_grid.shape):
        heat_overlay = np.clip(volumes.to_overlay(heat), 0.0, 1.0)
    return PredictionOverlays(contours, heat_overlay, found, mask)


@dataclass(frozen=True)
class MIPFrame:
    """One PET maximum-intensity projection about the long axis: seen from `angle_deg` (0 = from the front), rows
    top to bottom = head to feet, `spacing` = (row, column) mm; `index` of `count` angles over a full turn."""

    index: int
    count: int
    angle_deg: float
    image: np.ndarray
    spacing: tuple[float, float]


def mip_angles(n_angles: int = MIP_ANGLES) -> tuple[float, ...]:
    return tuple(360.0 * i / n_angles for i in range(n_angles))


def iter_mip(pet: ModalityImage, n_angles: int = MIP_ANGLES, max_side: int = MIP_MAX_SIDE) -> Iterator[MIPFrame]:
    """MIPs of the PET at `n_angles` angles over a full turn, one by one (a worker streams them to the viewer).
    The volume is first put on square in-plane voxels (at most `max_side` of them), so a rotation keeps
    distances."""
    if pet.axes != ZYX:
        raise ValueError(f"{pet.modality} image: a MIP needs a volume (axes ZYX), got {pet.axes}.")
    volume = np.asarray(pet.array, np.float32)
    sz, sy, sx = tuple(pet.meta.spacing or (1.0, 1.0, 1.0))
    side_mm = max(volume.shape[1] * sy, volume.shape[2] * sx)
    step = max(min(sy, sx), side_mm / max_side)
    zoom = (1.0, sy / step, sx / step)
    if any(abs(z - 1.0) > 1e-6 for z in zoom):
        volume = ndimage.zoom(volume, zoom, order=1, prefilter=False)
    direction = np.asarray(pet.meta.direction or np.eye(3).ravel(), float).reshape(3, 3)
    head_up = direction[0, 0] >= 0  # z indices run towards the head: flip so that row 0 is the top
    for i, angle in enumerate(mip_angles(n_angles)):
        rotated = volume if angle == 0 else ndimage.rotate(volume, angle, axes=(2, 1), reshape=False, order=1,
                                                           mode="constant", cval=0.0, prefilter=False)
        image = rotated.max(axis=1)  # project front to back (along y)
        yield MIPFrame(i, n_angles, angle, np.ascontiguousarray(image[::-1] if head_up else image), (sz, step))


def rotating_mip(pet: ModalityImage, n_angles: int = MIP_ANGLES, max_side: int = MIP_MAX_SIDE) -> list[MIPFrame]:
    """Every frame of `iter_mip` at once."""
    return list(iter_mip(pet, n_angles, max_side))


def suv_factor_lines(image: ModalityImage | None) -> list[str]:
    """The PET's SUV factor and the inputs it came from, in words (empty when the PET came without them, e.g.
    NIfTI already in SUV or a phantom)."""
    if image is None:
        return []
    suv = image.meta.extra.get("suv")
    if not suv:
        return []
    inputs = dict(suv.get("inputs", {}))
    entered = set(inputs.pop("entered_by_user", []) or [])
    parts = []
    for key, label, scale, unit in (("weight_kg", "weight", 1.0, "kg"), ("dose_bq", "dose", 1e-6, "MBq"),
                                    ("decay_s", "decay time", 1 / 60, "min"), ("half_life_s", "half-life", 1 / 60,
                                                                               "min")):
        if inputs.get(key) is not None:
            mark = " (entered)" if key in entered else ""
            parts.append(f"{label} {float(inputs[key]) * scale:.4g} {unit}{mark}")
    lines = [f"{suv.get('kind', 'SUV')} factor {float(suv['factor']):.6g}  ({suv.get('method', '')})"]
    if parts:
        lines.append("inputs: " + ", ".join(parts))
    return lines
