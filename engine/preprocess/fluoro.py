"""Grey NIR fluorescence frames in and out of the segmentation nets, driven by the model card.

A frame of any size is scaled so its long side is the card's `work_size` (the paper works on
1024 x 1024 frames; the compact demo nets on 256), converted to [0, 1] by its bit depth and
standardised per frame (mean 0, SD 1), which takes out the exposure and gain that differ between
devices. The net pads to a multiple of 32 itself. Tumor probabilities come back at work scale and
are resized to the frame (bilinear) before the threshold, so masks and contours are in the frame's
own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.io.images import ImageReadError, validate_image_array
from engine.preprocess.common import rgb_to_grey, to_float_unit


def preprocessing_constants(work_size: int, crop_size: int) -> dict:
    """What the card records; training and the predictor read these."""
    return {
        "kind": "nir_fluorescence_frame",
        "work_size": int(work_size),
        "train_crop": int(crop_size),
        "resize": ("frame scaled so its long side is work_size (area interpolation when shrinking, linear when "
                   "enlarging); the net pads bottom/right to a multiple of 32 with edge values and crops back"),
        "intensity": "counts / (2^bit_depth - 1), grey (RGB averaged), then standardised per frame",
        "output": "sigmoid probability resized to the frame (bilinear), tumor where >= threshold",
        "threshold": 0.5,
    }


@dataclass(frozen=True)
class FrameGeometry:
    height: int  # the frame as given
    width: int
    work_height: int  # what the net sees
    work_width: int

    def to_frame(self, work_map: np.ndarray) -> np.ndarray:
        """A work-scale map (probabilities) back to the frame's pixels."""
        if work_map.shape[:2] == (self.height, self.width):
            return work_map.astype(np.float32, copy=False)
        return cv2.resize(work_map.astype(np.float32), (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def to_work(self, frame_map: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        if frame_map.shape[:2] == (self.work_height, self.work_width):
            return frame_map
        return cv2.resize(frame_map, (self.work_width, self.work_height), interpolation=interpolation)


def frame_geometry(shape: tuple[int, int], work_size: int) -> FrameGeometry:
    h, w = int(shape[0]), int(shape[1])
    scale = work_size / max(h, w)
    return FrameGeometry(h, w, max(1, int(round(h * scale))), max(1, int(round(w * scale))))


def grey_unit(image: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
    """Any fluorescence frame (grey, or RGB from a video grabber) as float32 grey in [0, 1]."""
    image = validate_image_array(np.asarray(image), "fluorescence frame")
    unit = to_float_unit(image, bit_depth)
    if unit.ndim == 3:
        if unit.shape[2] == 4:
            unit = unit[..., :3]
        if unit.shape[2] != 3:
            raise ImageReadError(f"fluorescence frame: expected a grey or RGB image, got {unit.shape[2]} channels.")
        unit = rgb_to_grey(unit)
    return unit.astype(np.float32, copy=False)


def standardise(unit: np.ndarray) -> np.ndarray:
    mean, sd = float(unit.mean()), float(unit.std())
    return ((unit - mean) / max(sd, 1e-6)).astype(np.float32)


def prepare_frame(image: np.ndarray, constants: dict, bit_depth: int | None = None) -> tuple[np.ndarray, FrameGeometry]:
    """(H, W) standardised float32 at work scale, and the geometry that maps results back."""
    unit = grey_unit(image, bit_depth)
    geometry = frame_geometry(unit.shape, int(constants["work_size"]))
    shrink = geometry.work_height < geometry.height
    work = geometry.to_work(unit, cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return standardise(work), geometry


def mask_to_work(mask: np.ndarray, geometry: FrameGeometry) -> np.ndarray:
    """A truth mask at work scale (area-weighted, then >= 0.5), for training."""
    return geometry.to_work(mask.astype(np.float32)) >= 0.5
