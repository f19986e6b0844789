"""NIfTI volumes (nibabel) to and from ZYX `ModalityImage`s, affines converted exactly.

A NIfTI affine maps voxel (i, j, k) to RAS+ mm. ImageMeta's geometry is LPS written in array order (z, y, x)
(engine.io.volumes): the array is the NIfTI data transposed to (k, j, i), the LPS affine is diag(-1, -1, 1) times
the RAS one, and both its rows and columns are then reversed. Sheared affines are refused. NIfTI holds no unit:
reading takes the unit from the caller (PET volumes are expected in SUV already, CT in HU); writing records it in
the header's description so OncoLens reads its own files back with their units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.data import ZYX, ImageMeta, ModalityImage

NIFTI_SUFFIXES = (".nii", ".nii.gz")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_DESCRIPTION_PREFIX = "oncolens units="


class NiftiError(ValueError):
    """A NIfTI file cannot be read as a volume: the message names the file and what would work."""


def is_nifti(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(NIFTI_SUFFIXES)


def _reverse(matrix: np.ndarray) -> np.ndarray:
    return matrix[::-1, ::-1]


def affine_to_geometry(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """RAS affine (4x4, index order i, j, k) -> (spacing, origin, direction) in ImageMeta's (z, y, x) convention."""
    lps = RAS_TO_LPS @ np.asarray(affine, float)[:3]
    m = _reverse(lps[:, :3])
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        raise NiftiError(f"the affine has a zero voxel size: {affine.tolist()}")
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise NiftiError("the affine is sheared (its axes are not orthogonal); resample the volume without shear.")
    return tuple(spacing.tolist()), tuple(lps[:, 3][::-1].tolist()), tuple(direction.ravel().tolist())


def geometry_to_affine(meta: ImageMeta) -> np.ndarray:
    """Inverse of `affine_to_geometry`."""
    spacing = np.asarray(meta.spacing or (1.0, 1.0, 1.0), float)
    origin = np.asarray(meta.origin or (0.0, 0.0, 0.0), float)
    direction = np.asarray(meta.direction, float).reshape(3, 3) if meta.direction is not None else np.eye(3)
    lps = np.eye(4)
    lps[:3, :3] = _reverse(direction * spacing[None, :])
    lps[:3, 3] = origin[::-1]
    out = np.eye(4)
    out[:3] = RAS_TO_LPS @ lps[:3]
    return out


def read_nifti(path: str | Path, modality: str, units: str | None = None) -> ModalityImage:
    """A 3-D NIfTI file as a ZYX image of `modality` (units from the caller, else from an OncoLens header)."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise NiftiError(f"{path}: file not found.")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for damaged files
        raise NiftiError(f"{path}: not a readable NIfTI file ({exc}).") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NiftiError(f"{path}: a {data.ndim}-D image of shape {data.shape}; OncoLens reads one 3-D volume per "
                         "file (split a 4-D series into volumes first).")
    try:
        spacing, origin, direction = affine_to_geometry(img.affine)
    except NiftiError as exc:
        raise NiftiError(f"{path}: {exc}") from exc
    description = bytes(img.header.get("descrip", b"")).decode("ascii", "ignore").strip("\x00 ")
    stored_units = description[len(_DESCRIPTION_PREFIX):] if description.startswith(_DESCRIPTION_PREFIX) else None
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise NiftiError(f"{path}: the volume holds NaN or infinite values.")
    bits = 16 if array.dtype in (np.int16, np.uint16) else 32
    meta = ImageMeta(bits, units or stored_units or "a.u.", spacing, origin=origin, direction=direction,
                     source={"file": str(path), "format": "NIfTI"})
    return ModalityImage(modality, array, meta, ZYX)


def write_nifti(image: ModalityImage, path: str | Path) -> Path:
    """Write a ZYX image as NIfTI-1 (.nii or .nii.gz) with its geometry as the RAS affine (qform and sform)."""
    import nibabel as nib

    if image.axes != ZYX:
        raise NiftiError(f"{image.modality}: only volumes (ZYX) are written as NIfTI, got {image.axes}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.transpose(image.array, (2, 1, 0))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    img = nib.Nifti1Image(np.ascontiguousarray(data), geometry_to_affine(image.meta))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header["descrip"] = (_DESCRIPTION_PREFIX + str(image.meta.units))[:79].encode("ascii", "ignore")
    nib.save(img, str(path))
    return path
