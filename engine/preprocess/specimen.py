"""Model input for specimen classifiers (FL-CNN): one image -> (3, S, S) float tensor + geometry."""

from __future__ import annotations

import numpy as np

from engine.io.images import ImageReadError, validate_image_array
from engine.preprocess.common import (
    Geometry,
    grey_to_rgb,
    normalise_channels,
    square_resize,
    to_float_unit,
)
from engine.preprocess.fluorescence import normalise_fluorescence


def display_image(image: np.ndarray, constants: dict, bit_depth: int | None = None) -> np.ndarray:
    """The [0, 1] float image the net sees before padding, resizing and standardising.

    FL: raw intensities -> log normalisation, denoise when noisy, autocontrast (grey, replicated to RGB).
    WL: natural RGB scaled to [0, 1] (grey input replicated to 3 channels)."""
    method = constants["kind"]
    if method == "fluorescence":
        return grey_to_rgb(normalise_fluorescence(image, bit_depth, constants))
    if method == "natural_rgb":
        return grey_to_rgb(to_float_unit(image, bit_depth))
    raise ValueError(f"Unknown preprocessing kind '{method}' in model card (expected fluorescence or natural_rgb).")


def preprocess_specimen(image: np.ndarray, constants: dict, bit_depth: int | None = None,
                        where: str = "image") -> tuple[np.ndarray, Geometry]:
    """Card-driven preprocessing for one specimen image. Returns ((3, S, S) float32, geometry)."""
    image = validate_image_array(np.asarray(image), where)
    if constants["kind"] == "natural_rgb" and image.ndim == 2 and constants.get("require_rgb", False):
        raise ImageReadError(f"{where}: a white-light model needs an RGB image, got a grey one.")
    unit = display_image(image, constants, bit_depth)
    resized, geometry = square_resize(unit, int(constants["input_size"]))
    return normalise_channels(resized, constants["mean"], constants["std"]), geometry
