"""An image admitted to a case kind's modality role: the role-level half of the input gate (engine.io.gate
does the file-level half). Used for loose files and bundles alike, so both pass the same checks.

Refused: axes the role does not take (a volume where a plane is expected), colour where grey is expected
unless the channels are equal (converted, and said), grey where colour is expected, negative values where
the units cannot be negative (counts, a.u., RGB), floats that are neither unit-scaled nor whole counts, and a
declared bit depth the values do not fit.
"""

from __future__ import annotations

import numpy as np

from engine.cases.kinds import CaseKind, ModalityRole
from engine.cases.model import Case
from engine.data import HU, SUV, YX, YXC, ImageMeta, ModalityImage, dtype_bit_depth
from engine.io.gate import ImageReadError, is_grey_as_colour

SIGNED_UNITS = (HU,)  # units whose values may be negative
NON_NEGATIVE_FLOAT_UNITS = (SUV,)  # units that are floats by nature


def _where(image: ModalityImage, where: str | None) -> str:
    name = image.meta.file_name
    return where or (f"{image.modality} image {name}" if name else f"{image.modality} image")


def _nearly_grey(array: np.ndarray) -> bool:
    """Colour channels that differ by at most 2 % of full scale on average (a video grab of a grey picture)."""
    if not np.issubdtype(array.dtype, np.integer):
        return False
    scale = float(np.iinfo(array.dtype).max)
    step = max(1, int(np.sqrt(array.shape[0] * array.shape[1] / 250_000)))  # a sample is enough
    sample = array[::step, ::step].astype(np.float32)
    spread = (np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])).mean() / 2
    return bool(spread <= 0.02 * scale)


def admit_image(image: ModalityImage, role: ModalityRole, where: str | None = None) -> ModalityImage:
    """The image checked (and, where unambiguous, converted) for `role`; ImageReadError naming it otherwise."""
    where = _where(image, where)
    array, meta, axes = image.array, image.meta, image.axes
    notes = list(meta.extra.get("conversions") or [])
    if axes not in role.axes:
        if axes == YXC and YX in role.axes and is_grey_as_colour(array):
            array, axes = np.ascontiguousarray(array[..., 0]), YX
            notes.append("grey image saved as RGB: one channel kept")
        elif axes == YXC and YX in role.axes and _nearly_grey(array):
            array, axes = np.round(array.mean(axis=2)).astype(array.dtype), YX
            notes.append("colour grab of a grey picture (channels within 2 % of each other): channels averaged")
        elif axes == YXC and YX in role.axes:
            raise ImageReadError(f"{where}: is a colour image, but the {role.title} must be grey. Open the grey "
                                 "export of the camera, or assign the image to a colour role.")
        elif axes == YX and YXC in role.axes:
            raise ImageReadError(f"{where}: is a grey image, but the {role.title} must be a colour (RGB) image.")
        else:
            raise ImageReadError(f"{where}: has axes {axes} (shape {array.shape}), but the {role.title} takes "
                                 f"{' or '.join(role.axes)}.")
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())
        if role.units not in SIGNED_UNITS + NON_NEGATIVE_FLOAT_UNITS and (low < 0 or high > 1):
            raise ImageReadError(f"{where}: floating-point values from {low:g} to {high:g} are neither a 0-1 scale "
                                 "nor whole-number counts; OncoLens cannot tell their meaning. Save the raw counts as "
                                 "a 16-bit PNG/TIFF, or scale the image to 0-1.")
    elif role.units not in SIGNED_UNITS and array.size and int(array.min()) < 0:
        raise ImageReadError(f"{where}: holds negative values (down to {int(array.min())}), but {role.title} "
                             f"intensities ({role.units or 'counts'}) cannot be negative.")
    if np.issubdtype(array.dtype, np.integer) and array.size:
        capacity = dtype_bit_depth(array)
        if meta.bit_depth > capacity:
            raise ImageReadError(f"{where}: declares {meta.bit_depth}-bit data stored as {array.dtype}; the bit "
                                 "depth and the data disagree.")
        if np.issubdtype(array.dtype, np.unsignedinteger) and int(array.max()) > 2 ** meta.bit_depth - 1:
            raise ImageReadError(f"{where}: declares {meta.bit_depth}-bit data but holds values up to "
                                 f"{int(array.max())}; the bit depth and the data disagree.")
    if array is image.array and axes == image.axes and notes == list(meta.extra.get("conversions") or []):
        return image
    extra = {**meta.extra, "conversions": notes} if notes else dict(meta.extra)
    new_meta = ImageMeta(meta.bit_depth, meta.units, meta.spacing, origin=meta.origin, direction=meta.direction,
                         source=dict(meta.source), extra=extra)
    return ModalityImage(image.modality, array, new_meta, axes)


def admit_case(case: Case, kind: CaseKind, where: str = "") -> Case:
    """Every image of `case` admitted to its role in `kind`; an image the kind has no role for, or truth masks
    that do not fit the images, are refused naming the case."""
    label = where or f"Case {case.id}"
    unknown = [m for m in case.images if m not in kind.modality_codes]
    if unknown:
        raise ImageReadError(f"{label}: '{kind.name}' cases have no {', '.join(unknown)} image (their images are "
                             f"{', '.join(kind.modality_codes)}). Remove it or open the case as another kind.")
    for code, image in list(case.images.items()):
        case.images[code] = admit_image(image, kind.role(code), f"{label}: {_where(image, None)}")
    if case.truth is not None and case.truth.masks and case.images:
        shapes = {m: img.spatial_shape for m, img in case.images.items()}
        for name, mask in case.truth.masks.items():
            mask = np.asarray(mask)
            if mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer):
                pass
            else:
                raise ImageReadError(f"{label}: truth mask '{name}' holds {mask.dtype} values; a mask is 0/1 or "
                                     "0/255 integers.")
            if tuple(mask.shape) not in shapes.values():
                listing = ", ".join(f"{m} {'x'.join(map(str, s))}" for m, s in shapes.items())
                raise ImageReadError(f"{label}: truth mask '{name}' is {'x'.join(map(str, mask.shape))} but the "
                                     f"images are {listing}; a mask must match its image's grid.")
    return case
