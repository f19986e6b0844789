"""Reading and writing 2-D images (8/16-bit, grey or RGB) through the input gate (engine.io.gate): header
checked before decoding, dtype and channels normalised, every refusal naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.data import ImageMeta, dtype_bit_depth
from engine.io.gate import (
    MIN_SIDE,
    ImageLimits,
    ImageReadError,
    check_header,
    check_npy_header,
    check_shape,
    normalise_array,
)

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".npy")


def read_image(path: str | Path, limits: ImageLimits | None = None) -> tuple[np.ndarray, ImageMeta]:
    """Read an image file as stored: uint8/uint16 grey (H, W) or RGB (H, W, 3); .npy keeps its dtype when it is
    unambiguous. What the gate converted is listed in `meta.extra["conversions"]`."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found.")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder; expected an image file ({', '.join(IMAGE_SUFFIXES)}).")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes). Re-export the image from the camera software.")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path}: unsupported file type '{suffix}'. Expected one of {', '.join(IMAGE_SUFFIXES)}.")
    limits = limits or ImageLimits.from_settings()
    if suffix == ".npy":
        check_npy_header(path, limits)
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ImageReadError(f"{path}: not a valid .npy array ({exc}).") from exc
    else:
        check_header(path, limits)
        array = _decode(path, suffix)
    array, notes = normalise_array(array, str(path))
    validate_image_array(array, str(path))
    extra = {"conversions": notes} if notes else {}
    return array, ImageMeta(bit_depth=dtype_bit_depth(array), source={"file": path.name}, extra=extra)


def _decode(path: Path, suffix: str) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageReadError(f"{path}: could not be decoded as {suffix[1:].upper()} ({exc.err}). Re-export it as "
                             "PNG or TIFF.") from None
    if array is None:
        raise ImageReadError(
            f"{path}: could not be decoded as {suffix[1:].upper()} (corrupt or truncated file). "
            "Re-export it as PNG or TIFF."
        )
    if array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)  # the gate decides what the alpha channel means
    elif array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return array


def validate_image_array(array: np.ndarray, where: str = "image") -> np.ndarray:
    """Reject plane arrays no model can use: wrong rank or channels, too small, NaN/inf."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ImageReadError(f"{where}: expected a grey (H, W) or RGB (H, W, 3) image, got shape {array.shape}.")
    if array.size == 0 or min(array.shape[:2]) < MIN_SIDE:
        raise ImageReadError(f"{where}: image is too small ({array.shape}); at least {MIN_SIDE}x{MIN_SIDE} pixels "
                             "are needed.")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ImageReadError(f"{where}: image contains NaN or infinite values.")
    return array


def write_image(path: str | Path, array: np.ndarray) -> None:
    """Write losslessly: uint8/uint16 as PNG, anything else as .npy (caller picks the suffix)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, array, allow_pickle=False)
        return
    out = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(path.suffix, out)
    if not ok:
        raise OSError(f"{path}: could not encode image of dtype {array.dtype}, shape {array.shape}.")
    buf.tofile(path)


__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "check_shape", "read_image", "validate_image_array", "write_image"]
