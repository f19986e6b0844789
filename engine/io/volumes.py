"""Volumes in physical space: the geometry convention of every ZYX image, and resampling between grids.

Convention (the one ImageMeta states): everything is written in the array's axis order (z, y, x). A voxel at
index (k, j, i) lies at `origin + direction @ (spacing * (k, j, i))`, where the physical point is given as its
patient (DICOM LPS) coordinates in the same reversed order, (z_LPS, y_LPS, x_LPS) in mm. An axial DICOM series
read slice by slice therefore has the identity direction; a NIfTI file (RAS, index order i, j, k) is converted
by `engine.io.nifti`. Nothing here knows about DICOM or NIfTI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.data import ZYX, ImageMeta, ModalityImage


@dataclass(frozen=True)
class Grid:
    """A regular 3-D grid: shape (z, y, x), spacing (mm), origin (centre of voxel 0) and direction, array order."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, image: ModalityImage) -> Grid:
        if image.axes != ZYX:
            raise ValueError(f"{image.modality} image: a volume (axes ZYX) is needed, got {image.axes}.")
        meta = image.meta
        return cls(tuple(int(s) for s in image.array.shape),
                   tuple(meta.spacing) if meta.spacing is not None else (1.0, 1.0, 1.0),
                   tuple(meta.origin) if meta.origin is not None else (0.0, 0.0, 0.0),
                   tuple(meta.direction) if meta.direction is not None else tuple(np.eye(3).ravel()))

    @classmethod
    def centred(cls, centre: np.ndarray, shape: tuple[int, int, int], spacing: float | tuple[float, ...],
                direction: tuple[float, ...] | None = None) -> Grid:
        """A grid of `shape` voxels whose centre lies at the physical point `centre` (z, y, x order)."""
        spacing = (float(spacing),) * 3 if np.isscalar(spacing) else tuple(float(s) for s in spacing)
        d = np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)
        half = (np.asarray(shape, float) - 1) / 2 * np.asarray(spacing)
        origin = np.asarray(centre, float) - d @ half
        return cls(tuple(int(s) for s in shape), spacing, tuple(origin.tolist()), tuple(d.ravel().tolist()))

    @property
    def matrix(self) -> np.ndarray:
        """3x3: index step -> mm (direction scaled by spacing)."""
        return np.asarray(self.direction, float).reshape(3, 3) * np.asarray(self.spacing)[None, :]

    def to_physical(self, index: np.ndarray) -> np.ndarray:
        """(..., 3) voxel indices (z, y, x) -> physical points (z, y, x order, mm)."""
        return np.asarray(index, float) @ self.matrix.T + np.asarray(self.origin)

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) physical points -> continuous voxel indices."""
        return (np.asarray(points, float) - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T

    @property
    def centre(self) -> np.ndarray:
        return self.to_physical((np.asarray(self.shape, float) - 1) / 2)

    def meta(self, bit_depth: int, units: str, **kwargs) -> ImageMeta:
        return ImageMeta(bit_depth, units, self.spacing, origin=self.origin, direction=self.direction, **kwargs)

    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def physical_coordinates(self) -> np.ndarray:
        """(z, y, x, 3) physical point of every voxel (for phantoms and analytic masks; small grids only)."""
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return self.to_physical(idx)


def resample(array: np.ndarray, source: Grid, target: Grid, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """`array` (on `source`) sampled at the voxel centres of `target`, in physical space (linear by default,
    nearest with order=0); points outside the source get `cval`. float32 out (order 0 keeps the dtype)."""
    if tuple(array.shape) != tuple(source.shape):
        raise ValueError(f"resample: array shape {array.shape} does not match its grid {source.shape}.")
    # index_target -> physical -> index_source is one affine map: source_idx = A @ target_idx + b
    inv = np.linalg.inv(source.matrix)
    a = inv @ target.matrix
    b = inv @ (np.asarray(target.origin) - np.asarray(source.origin))
    data = array if order == 0 else array.astype(np.float32, copy=False)
    out = ndimage.affine_transform(data, a, offset=b, output_shape=target.shape, order=order, mode="constant",
                                   cval=cval, prefilter=False)
    return out if order == 0 else out.astype(np.float32, copy=False)


def resample_image(image: ModalityImage, target: Grid, order: int = 1, cval: float = 0.0) -> ModalityImage:
    """The image on `target` (units and provenance kept)."""
    array = resample(image.array, Grid.of(image), target, order, cval)
    meta = target.meta(32 if order else image.meta.bit_depth, image.meta.units, source=dict(image.meta.source),
                       extra=dict(image.meta.extra))
    return ModalityImage(image.modality, array, meta, ZYX)
