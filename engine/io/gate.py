"""The input gate every image passes, loose file or bundle alike: what cannot be meant is refused, what is
unambiguous is converted and the conversion is said.

Two stages, both here:
- `check_header` reads a file's header only (size, frames, mode) and refuses a decompression bomb, an
  animated or multi-page file under a still-image name, or a size past the limit, before anything is decoded.
- `normalise_array` looks at the decoded array: dtype (bool, complex, wide or signed integers, floats of
  raw counts), NaN and infinity, channel layout (alpha, single-channel colour) and size.

`admit_role` (engine.cases.admission) then checks an image against the modality role a case kind gives it.
Errors are ImageReadError naming the input and what would work.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

DEFAULT_MAX_MEGAPIXELS = 64.0
MAPPED_MAX_VOXELS = 1024 * 1024 * 30 * 60 * 10  # a memory-mapped clip: ten minutes of 1024-pixel frames at 30 fps
MIN_SIDE = 8  # smaller cannot be an image a model reads; quality checks ask for more before a call
FRAME_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """An image file or array cannot be used; the message names it and what was expected."""


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1e6)  # per plane (volumes: per slice), header-checked
    max_voxels: int = 512 * 512 * 2000  # volumes and clips in all

    @classmethod
    def from_settings(cls) -> ImageLimits:
        """The user's `max_image_megapixels` setting (default 64)."""
        from engine.settings import load_settings

        try:
            megapixels = float(load_settings().max_image_megapixels)
        except ValueError:
            megapixels = DEFAULT_MAX_MEGAPIXELS
        return cls(max_pixels=int(megapixels * 1e6))


@dataclass(frozen=True)
class HeaderInfo:
    width: int
    height: int
    frames: int
    mode: str  # PIL mode: L, I;16, RGB, RGBA, P, LA, F, 1, ...
    format: str


def _too_large(where: str, width: int, height: int, limits: ImageLimits) -> ImageReadError:
    return ImageReadError(
        f"{where}: {width} x {height} pixels ({width * height / 1e6:.0f} megapixels) is larger than the "
        f"{limits.max_pixels / 1e6:.0f}-megapixel limit. Crop or downscale it, or raise max_image_megapixels in "
        "the settings if the image really is that large.")


def check_header(path: Path, limits: ImageLimits | None = None) -> HeaderInfo:
    """Size, frames and mode from the file's header, without decoding pixels; refuses what cannot be meant."""
    from PIL import Image, UnidentifiedImageError

    limits = limits or ImageLimits.from_settings()
    where = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            with Image.open(path) as image:
                width, height = image.size
                frames = int(getattr(image, "n_frames", 1) or 1)
                info = HeaderInfo(int(width), int(height), frames, str(image.mode), str(image.format or ""))
    except Image.DecompressionBombError:
        raise ImageReadError(f"{where}: its header declares an image far larger than the "
                             f"{limits.max_pixels / 1e6:.0f}-megapixel limit (a decompression bomb?). "
                             "It was not decoded.") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{where}: not a readable {path.suffix[1:].upper() or 'image'} file (corrupt, truncated "
                             "or another format under this name). Re-export it as PNG or TIFF.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{where}: the header cannot be read ({exc}). Re-export it as PNG or TIFF.") from None
    if info.width * info.height > limits.max_pixels:
        raise _too_large(where, info.width, info.height, limits)
    if info.frames > 1:
        raise ImageReadError(f"{where}: holds {info.frames} frames or pages, but a {path.suffix} still image was "
                             "expected. Export the one frame to read as a single image (a video or a volume is "
                             "opened as such, not as a still image).")
    if min(info.width, info.height) < MIN_SIDE:
        raise ImageReadError(f"{where}: {info.width} x {info.height} pixels is too small to be an image a model "
                             f"can read (at least {MIN_SIDE} x {MIN_SIDE}).")
    return info


def check_npy_header(path: Path, limits: ImageLimits | None = None, mapped: bool = False
                     ) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file from its header only (no pickle, no data read). `mapped`: the array will be
    memory-mapped, not read, so a long clip is not held to the voxel limit (each plane still is to the pixel limit)."""
    limits = limits or ImageLimits.from_settings()
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"format version {version} is not supported")
    except (ValueError, OSError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: not a valid .npy array ({exc}).") from None
    if dtype.hasobject:
        raise ImageReadError(f"{path}: holds Python objects, not numbers; OncoLens never loads pickled data. "
                             "Save the image as numbers (e.g. np.save of a uint16 array).")
    check_shape(shape, str(path), limits if not mapped else replace(limits, max_voxels=MAPPED_MAX_VOXELS))
    return tuple(int(s) for s in shape), dtype


def check_shape(shape: tuple[int, ...], where: str, limits: ImageLimits) -> None:
    """Rank and size limits of an array about to be read or just read."""
    if len(shape) not in (2, 3, 4):
        raise ImageReadError(f"{where}: an array of shape {tuple(shape)} is not an image (expected 2-D grey, "
                             "(H, W, 3) colour, or a 3-D volume).")
    if any(int(s) <= 0 for s in shape):
        raise ImageReadError(f"{where}: the array is empty (shape {tuple(shape)}).")
    total = int(np.prod([int(s) for s in shape], dtype=np.int64))
    if len(shape) == 2 or (len(shape) == 3 and int(shape[-1]) in (1, 3, 4)):
        h, w = int(shape[0]), int(shape[1])
        if h * w > limits.max_pixels:
            raise _too_large(where, w, h, limits)
    elif total > limits.max_voxels:
        raise ImageReadError(f"{where}: {total / 1e6:.0f} million voxels is more than the "
                             f"{limits.max_voxels / 1e6:.0f} million a volume may hold. Crop it to the region needed.")


def normalise_array(array: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """The array as an image OncoLens can read, and the unambiguous conversions made (in words).

    Refused: bool (a mask, not an image), complex, NaN/inf, a colour image with transparent pixels, layouts
    that are no image. Converted: a single channel stored as 3-D (dropped axis), opaque alpha (dropped),
    non-negative integers wider than 16 bits whose values fit 16 bits, floats holding whole numbers 0-65535
    (raw counts stored as float)."""
    notes: list[str] = []
    if array.dtype == np.bool_:
        raise ImageReadError(f"{where}: holds true/false values (a mask), not an image. Open the image it "
                             "belongs to; a mask goes with a case as its truth.")
    if np.iscomplexobj(array):
        raise ImageReadError(f"{where}: holds complex numbers (raw k-space or a Fourier transform?), not an image.")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageReadError(f"{where}: values of type {array.dtype} are not image intensities.")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
        notes.append("single-channel image stored with a channel axis: read as grey")
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[..., 3]
        opaque = np.iinfo(array.dtype).max if np.issubdtype(array.dtype, np.integer) else 1.0
        if not np.all(alpha == opaque):
            raise ImageReadError(f"{where}: has transparent pixels (an alpha channel that is not fully opaque); "
                                 "OncoLens cannot tell what lies behind them. Export it without transparency.")
        array = np.ascontiguousarray(array[..., :3])
        notes.append("fully opaque alpha channel dropped")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageReadError(f"{where}: contains NaN or infinite values; re-export the image from its source.")
        if array.size and float(array.min()) >= 0 and float(array.max()) <= 65535 and float(array.max()) > 1.0 \
                and np.array_equal(array, np.round(array)):
            array = array.astype(np.uint16)
            notes.append("float values that are all whole numbers 0-65535 read as 16-bit counts")
    elif array.dtype not in (np.uint8, np.uint16) and array.size:
        low, high = int(array.min()), int(array.max())
        if low < -32768 or high > 65535:
            raise ImageReadError(f"{where}: integer values from {low} to {high} do not fit 16 bits; OncoLens reads 8- to "
                                 "16-bit intensities (and signed 16-bit values such as CT Hounsfield units).")
        if low >= 0:
            target = np.uint8 if high <= 255 and array.dtype.itemsize == 1 else np.uint16
            notes.append(f"{array.dtype} values {low}-{high} stored as {np.dtype(target).name}")
            array = array.astype(target)
    return array, notes


def is_grey_as_colour(array: np.ndarray) -> bool:
    """A colour image whose three channels are equal everywhere (grey saved as RGB)."""
    return array.ndim == 3 and array.shape[2] == 3 and bool(
        np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]))
