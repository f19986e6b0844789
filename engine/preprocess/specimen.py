"""Model input for specimen classifiers (FL-CNN): one image -> (3, S, S) float tensor + geometry.

Training (`specimen_unit`) and the predictor (`preprocess_specimen`) go through the same function. The work is
done on one channel, and a colour image is padded while still 8-bit, so that a 64-megapixel photo costs
about a gigabyte, not three: the result is the same as normalising, replicating and padding first.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.io.images import ImageReadError, validate_image_array
from engine.preprocess.common import Geometry, grey_to_rgb, normalise_channels, pad_to_square, to_float_unit
from engine.preprocess.fluorescence import normalise_fluorescence


def specimen_unit(image: np.ndarray, constants: dict, bit_depth: int | None = None) -> tuple[np.ndarray, Geometry]:
    """The (S, S, 3) float32 [0, 1] image the net sees before standardising, and how it maps back.

    FL: raw intensities -> log normalisation, denoise when noisy, autocontrast (grey, replicated to RGB).
    WL: natural RGB scaled to [0, 1] (grey input replicated to 3 channels). Zero-padded to square, resized."""
    method = constants["kind"]
    if method == "fluorescence":
        unit = normalise_fluorescence(image, bit_depth, constants)  # grey, float32 [0, 1]
    elif method == "natural_rgb":
        unit = image  # padded first, scaled after: zeros are zeros either way
    else:
        raise ValueError(f"Unknown preprocessing kind '{method}' in model card (expected fluorescence or natural_rgb).")
    h, w = unit.shape[:2]
    padded, top, left = pad_to_square(unit)
    if method == "natural_rgb":
        padded = to_float_unit(padded, bit_depth)
    size = int(constants["input_size"])
    interpolation = cv2.INTER_AREA if padded.shape[0] > size else cv2.INTER_LINEAR
    resized = cv2.resize(padded, (size, size), interpolation=interpolation)
    return grey_to_rgb(resized), Geometry(h, w, top, left, padded.shape[0], size)


def preprocess_specimen(image: np.ndarray, constants: dict, bit_depth: int | None = None,
                        where: str = "image") -> tuple[np.ndarray, Geometry]:
    """Card-driven preprocessing for one specimen image. Returns ((3, S, S) float32, geometry)."""
    image = validate_image_array(np.asarray(image), where)
    if constants["kind"] == "natural_rgb" and image.ndim == 2 and constants.get("require_rgb", False):
        raise ImageReadError(f"{where}: a white-light model needs an RGB image, got a grey one.")
    unit, geometry = specimen_unit(image, constants, bit_depth)
    return normalise_channels(unit, constants["mean"], constants["std"]), geometry
