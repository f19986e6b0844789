"""Images with explicit axes and physical geometry: what every reader, bundle, predictor and view shares.

An array's axes are named, never guessed from its shape: `YX` (grey plane), `YXC` (colour plane, C = 3),
`ZYX` (volume) and `TYX` (a clip of grey frames). A 3-slice volume and an RGB image have the same shape and
mean different things; the axes string says which.

Geometry follows the convention of MONAI's MetaTensor affine and SimpleITK images, written in the array's
own axis order (z, y, x for a volume; y, x for a plane; T and C are not spatial):

    physical point (mm) = origin + direction @ (spacing * index)

`spacing` (mm per step along each spatial axis), `origin` (mm, the centre of the first voxel) and `direction`
(the spatial axes' unit vectors as columns of a row-major n x n matrix) are each sized to the spatial
dimensions; `None` means unknown (spacing) or the default (origin zero, identity direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

YX, YXC, ZYX, TYX = "YX", "YXC", "ZYX", "TYX"
AXES = (YX, YXC, ZYX, TYX)
SPATIAL_AXES = {YX: "YX", YXC: "YX", ZYX: "ZYX", TYX: "YX"}
COLOUR_CHANNELS = 3

# Units an image's values are in (free text is allowed; these are the ones the engine knows).
COUNTS, HU, SUV, AU, RGB = "counts", "HU", "SUV", "a.u.", "RGB"


def _floats(values: Any, what: str, n: int) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {n} numbers, got {values!r}.") from None
    if len(out) != n:
        raise ValueError(f"{what} must have {n} values (one per spatial axis), got {len(out)}: {values!r}.")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be finite, got {values!r}.")
    return out


@dataclass
class ImageMeta:
    """What an array means: source bit depth, value units, geometry and where it came from.

    `source` is free provenance: `file` (the file name it was read from), DICOM UIDs, device settings.
    `extra` holds acquisition details a generator or reader wants to keep (exposure, phantom dataset)."""

    bit_depth: int
    units: str = AU
    spacing: tuple[float, ...] | None = None
    origin: tuple[float, ...] | None = field(default=None, kw_only=True)
    direction: tuple[float, ...] | None = field(default=None, kw_only=True)
    source: dict[str, Any] = field(default_factory=dict, kw_only=True)
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        if self.spacing is not None:
            self.spacing = tuple(float(s) for s in self.spacing)
            if not all(math.isfinite(s) and s > 0 for s in self.spacing):
                raise ValueError(f"Pixel spacing must be positive and finite (mm), got {self.spacing!r}.")
        if self.origin is not None:
            self.origin = tuple(float(v) for v in self.origin)
        if self.direction is not None:
            self.direction = tuple(float(v) for v in self.direction)
        if isinstance(self.source, str):  # a bare file name (format 1 bundles)
            self.source = {"file": self.source}
        self.source = dict(self.source or {})

    @property
    def file_name(self) -> str | None:
        """The name of the file the image was read from, when known."""
        return self.source.get("file")

    def checked_for(self, n_spatial: int, where: str = "image") -> ImageMeta:
        """Self after checking that spacing, origin and direction fit `n_spatial` spatial axes."""
        if self.spacing is not None:
            _floats(self.spacing, f"{where}: spacing", n_spatial)
        if self.origin is not None:
            _floats(self.origin, f"{where}: origin", n_spatial)
        if self.direction is not None:
            matrix = np.asarray(_floats(self.direction, f"{where}: direction", n_spatial * n_spatial))
            matrix = matrix.reshape(n_spatial, n_spatial)
            if abs(abs(float(np.linalg.det(matrix))) - 1.0) > 1e-3:
                raise ValueError(f"{where}: direction must be an orthonormal {n_spatial}x{n_spatial} matrix "
                                 f"(|det| = 1), got {self.direction!r}.")
        return self

    def to_dict(self) -> dict:
        return {
            "bit_depth": self.bit_depth,
            "units": self.units,
            "spacing": None if self.spacing is None else list(self.spacing),
            "origin": None if self.origin is None else list(self.origin),
            "direction": None if self.direction is None else list(self.direction),
            "source": dict(self.source),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ImageMeta:
        """Inverse of `to_dict`; also reads format-1 metadata (source as a file name, no origin/direction)."""
        return cls(
            bit_depth=int(d["bit_depth"]),
            units=d.get("units", AU),
            spacing=d.get("spacing"),
            origin=d.get("origin"),
            direction=d.get("direction"),
            source=d.get("source") or {},
            extra=dict(d.get("extra") or {}),
        )


def plane_axes(array: np.ndarray) -> str:
    """YX for a 2-D array, YXC for an (H, W, 3) colour image; anything else needs its axes said explicitly."""
    if array.ndim == 2:
        return YX
    if array.ndim == 3 and array.shape[2] == COLOUR_CHANNELS:
        return YXC
    raise ValueError(f"An array of shape {array.shape} is not a plane image: say its axes (ZYX or TYX).")


@dataclass
class ModalityImage:
    """One modality of a case: the array, its axes and its metadata (checked against each other)."""

    modality: str
    array: np.ndarray
    meta: ImageMeta
    axes: str = ""  # "" only for plane images, where YX / YXC follow from the shape

    def __post_init__(self) -> None:
        self.axes = self.axes or plane_axes(self.array)
        where = f"{self.modality} image"
        if self.axes not in AXES:
            raise ValueError(f"{where}: axes must be one of {', '.join(AXES)}, got {self.axes!r}.")
        if self.array.ndim != len(self.axes):
            raise ValueError(f"{where}: axes {self.axes} need a {len(self.axes)}-D array, got shape "
                             f"{self.array.shape}.")
        if self.axes == YXC and self.array.shape[2] != COLOUR_CHANNELS:
            raise ValueError(f"{where}: YXC images have {COLOUR_CHANNELS} colour channels, got shape "
                             f"{self.array.shape}.")
        self.meta.checked_for(self.spatial_ndim, where)

    @property
    def spatial_axes(self) -> str:
        return SPATIAL_AXES[self.axes]

    @property
    def spatial_ndim(self) -> int:
        return len(self.spatial_axes)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Sizes along the spatial axes, in array order (e.g. (Z, Y, X) or (Y, X))."""
        return tuple(self.array.shape[self.axes.index(a)] for a in self.spatial_axes)

    @property
    def is_rgb(self) -> bool:
        return self.axes == YXC

    @property
    def is_volume(self) -> bool:
        return self.axes == ZYX

    def affine(self) -> np.ndarray:
        """(n+1) x (n+1) matrix from array index (spatial axes, array order) to physical mm; unknown spacing is 1."""
        n = self.spatial_ndim
        spacing = np.asarray(self.meta.spacing if self.meta.spacing is not None else (1.0,) * n)
        origin = np.asarray(self.meta.origin if self.meta.origin is not None else (0.0,) * n)
        direction = (np.asarray(self.meta.direction).reshape(n, n) if self.meta.direction is not None
                     else np.eye(n))
        out = np.eye(n + 1)
        out[:n, :n] = direction * spacing[None, :]
        out[:n, n] = origin
        return out


def dtype_bit_depth(array: np.ndarray) -> int:
    """The bit depth an array's dtype can hold (8 for uint8, 16 for uint16, else its item size in bits)."""
    if array.dtype == np.uint8:
        return 8
    if array.dtype == np.uint16:
        return 16
    return int(array.dtype.itemsize * 8)


def image_of(modality: str, array: np.ndarray, bit_depth: int | None = None, axes: str = "",
             **meta: Any) -> ModalityImage:
    """A ModalityImage from an array with little said about it: bit depth from the dtype unless given,
    axes from the shape for planes; other ImageMeta fields (units, spacing, ...) by keyword."""
    array = np.asarray(array)
    return ModalityImage(modality, array, ImageMeta(bit_depth or dtype_bit_depth(array), **meta), axes)
