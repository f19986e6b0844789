"""DGFNet preprocessing: the nodule box on each image, the paper's square crop, windowing, targets.

Crops (Li et al., Methods, "Region of Interest Extraction"): grow the nodule's region by a margin (the paper
dilates the clinician's mask 40 times (US) or 25 times (CT) with a 3 x 3 kernel, i.e. 40 / 25 pixels), take
the bounding rectangle, make a square of side max(h, w) about its centre, crop (zero padding past the image),
resize (288 / 96 px in the paper). In OncoLens the region is the user's box (a mask when one exists).

US screen captures carry burned-in text, depth scales and calibration marks. Before cropping, everything
outside the ultrasound image area is zeroed (the area from DICOM's region calibration, else found as the
largest textured region), and saturated thin strokes inside it (overlay labels) are inpainted, so no overlay
enters a crop. The CT tissue-boundary target is bilateral filter + Canny on the windowed uint8 crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

US, CT = "US", "CT"
ROI_KEY = "roi"  # ImageMeta.extra key of the nodule box: {"x0", "y0", "x1", "y1"} in pixels, x1/y1 exclusive
OVERLAY_LEVEL = 250  # grey levels at or above this, in thin strokes, are burned-in overlay


class RoiError(ValueError):
    """A nodule box is missing, empty or outside its image; the message names the image and the fix."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned nodule box in pixels (x1, y1 exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def parse(cls, value, where: str = "box") -> Box:
        """From 'x0,y0,x1,y1', a sequence of four numbers or a dict with those keys."""
        try:
            if isinstance(value, Mapping):
                numbers = [float(value[k]) for k in ("x0", "y0", "x1", "y1")]
            elif isinstance(value, str):
                numbers = [float(v) for v in value.replace(";", ",").split(",")]
            else:
                numbers = [float(v) for v in value]
        except (KeyError, TypeError, ValueError):
            raise RoiError(f"{where}: a box is four numbers x0,y0,x1,y1 in pixels, got {value!r}.") from None
        if len(numbers) != 4 or not all(np.isfinite(numbers)):
            raise RoiError(f"{where}: a box is four finite numbers x0,y0,x1,y1 in pixels, got {value!r}.")
        return cls(*numbers)

    def to_dict(self) -> dict[str, float]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1}

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def checked(self, shape: tuple[int, int], where: str) -> Box:
        """Self when it is non-empty and overlaps the (H, W) image; a RoiError saying what is wrong otherwise."""
        h, w = shape[:2]
        if self.width < 2 or self.height < 2:
            raise RoiError(f"{where}: the nodule box {self.as_text()} is empty (under 2 pixels wide or high). Draw "
                           "a box around the whole nodule.")
        inside = Box(max(self.x0, 0), max(self.y0, 0), min(self.x1, w), min(self.y1, h))
        if inside.width <= 0 or inside.height <= 0:
            raise RoiError(f"{where}: the nodule box {self.as_text()} lies outside the {w} x {h} image. Boxes are in "
                           "pixels of this image (x to the right, y down); redraw it on the image.")
        if inside.width * inside.height < 0.5 * self.width * self.height:
            raise RoiError(f"{where}: the nodule box {self.as_text()} is mostly outside the {w} x {h} image; "
                           "redraw it on the image.")
        return self

    def as_text(self) -> str:
        return f"({self.x0:g}, {self.y0:g}, {self.x1:g}, {self.y1:g})"


def image_roi(meta_extra: Mapping, where: str, shape: tuple[int, int]) -> Box:
    """The nodule box stored with an image (ImageMeta.extra['roi']); a RoiError telling how to give one."""
    if ROI_KEY not in meta_extra or meta_extra[ROI_KEY] is None:
        raise RoiError(f"{where}: no nodule box. Draw a box around the nodule (GUI), or give --roi "
                       f"{where.split()[0]}=x0,y0,x1,y1 / a CSV of boxes to `oncolens predict`.")
    return Box.parse(meta_extra[ROI_KEY], where).checked(shape, where)


def store_roi(image, box) -> Box:
    """Check a box against a ModalityImage and keep it in the image's metadata (ImageMeta.extra['roi'])."""
    where = f"{image.modality} image {image.meta.file_name or ''}".strip()
    checked = Box.parse(box, where).checked(image.spatial_shape, where)
    image.meta.extra[ROI_KEY] = checked.to_dict()
    return checked


def box_of_mask(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    if not len(ys):
        raise RoiError("the nodule mask is empty.")
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


# ----------------------------------------------------------------------------------------------------
# Ultrasound image area and overlay


def detect_us_region(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the ultrasound image inside a screen capture: the largest region of non-black,
    textured pixels after an opening that removes text strokes and tick marks."""
    h, w = grey.shape
    signal = (grey > 6).astype(np.uint8)
    k = max(5, min(h, w) // 25)
    opened = cv2.morphologyEx(signal, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    if n <= 1:
        return 0, 0, w, h
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    if bw * bh < 0.1 * h * w:
        return 0, 0, w, h  # nothing like an image area: keep the whole capture
    return x, y, x + bw, y + bh


def clean_us_capture(grey: np.ndarray, region: tuple[int, int, int, int] | None = None
                     ) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
    """Zero everything outside the image area and inpaint saturated thin overlay strokes inside it.

    Returns (cleaned uint8, area, overlay pixels inpainted)."""
    x0, y0, x1, y1 = region if region is not None else detect_us_region(grey)
    out = np.zeros_like(grey)
    out[y0:y1, x0:x1] = grey[y0:y1, x0:x1]
    bright = (out >= OVERLAY_LEVEL).astype(np.uint8)
    n_overlay = int(bright.sum())
    if n_overlay:
        out = cv2.inpaint(out, cv2.dilate(bright, np.ones((3, 3), np.uint8)), 3, cv2.INPAINT_TELEA)
    return out, (x0, y0, x1, y1), n_overlay


# ----------------------------------------------------------------------------------------------------
# Crops


@dataclass(frozen=True)
class Crop:
    """Where a square crop came from: its top-left corner and side in the original image, and the output size."""

    top: float
    left: float
    side: float
    size: int

    def matrix(self) -> np.ndarray:
        """2 x 3 affine from original pixels to crop pixels."""
        s = self.size / self.side
        return np.array([[s, 0, -self.left * s], [0, s, -self.top * s]], np.float32)

    def cut(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The crop of `image` at the output size; zeros past the image edge."""
        flag = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if self.side > self.size else cv2.INTER_LINEAR)
        return cv2.warpAffine(image, self.matrix(), (self.size, self.size), flags=flag,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def to_original(self, array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A (size, size) map placed back on the (H, W) grid of the original image (zero outside the crop)."""
        return cv2.warpAffine(array.astype(np.float32), self.matrix(), (shape[1], shape[0]),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)


def square_crop(box: Box, margin: float, size: int) -> Crop:
    """The paper's square: the box grown by `margin` pixels on every side, side = max(h, w), same centre."""
    h, w = box.height + 2 * margin, box.width + 2 * margin
    side = max(h, w)
    cy, cx = (box.y0 + box.y1) / 2, (box.x0 + box.x1) / 2
    return Crop(cy - side / 2, cx - side / 2, side, size)


def window_ct(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """HU -> uint8 through the window [low, high] (the paper's Canny needs uint8)."""
    return np.round(np.clip((hu.astype(np.float32) - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def boundary_band(mask: np.ndarray, fraction: float = 0.08) -> np.ndarray:
    """US boundary target: dilated minus eroded mask, round(0.5 d) iterations of a 3 x 3 kernel each, d = f L."""
    iterations = max(1, int(round(0.5 * fraction * mask.shape[0])))
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    return (cv2.dilate(m, kernel, iterations=iterations) - cv2.erode(m, kernel, iterations=iterations)) > 0


def tissue_edges(ct_uint8: np.ndarray, constants: Mapping) -> np.ndarray:
    """CT tissue-boundary target: bilateral filter then Canny on the windowed uint8 crop (1-px edges)."""
    smooth = cv2.bilateralFilter(ct_uint8, int(constants["bilateral_d"]), float(constants["bilateral_sigma_color"]),
                                 float(constants["bilateral_sigma_space"]))
    return cv2.Canny(smooth, float(constants["canny_low"]), float(constants["canny_high"])) > 0


def us_crop_unit(grey: np.ndarray, box: Box, constants: Mapping, region=None) -> tuple[np.ndarray, Crop, int]:
    """The cleaned US crop as float32 [0, 1] (S, S), its Crop and the overlay pixels removed from the capture."""
    cleaned, _area, n_overlay = clean_us_capture(grey, region)
    crop = square_crop(box, float(constants["margin_px"][US]), int(constants["size"][US]))
    return crop.cut(cleaned).astype(np.float32) / 255.0, crop, n_overlay


def ct_crop_unit(hu: np.ndarray, box: Box, constants: Mapping) -> tuple[np.ndarray, np.ndarray, Crop]:
    """The windowed CT crop as float32 [0, 1] and uint8 (S, S), and its Crop (zero padding is air-black)."""
    crop = square_crop(box, float(constants["margin_px"][CT]), int(constants["size"][CT]))
    low, high = constants["ct_window"]
    windowed = crop.cut(window_ct(hu, low, high))
    return windowed.astype(np.float32) / 255.0, windowed, crop


def to_input(unit: np.ndarray, constants: Mapping) -> np.ndarray:
    """(S, S) [0, 1] -> (3, S, S) float32 standardised with the card's mean/std (grey replicated to 3 channels)."""
    mean = np.asarray(constants["mean"], np.float32)[:, None, None]
    std = np.asarray(constants["std"], np.float32)[:, None, None]
    return np.ascontiguousarray((np.repeat(unit[None], 3, axis=0) - mean) / std, dtype=np.float32)


def preprocessing_constants(us_size: int, ct_size: int) -> dict:
    """The card's preprocessing section (paper values except the output sizes of the compact configuration)."""
    return {
        "kind": "thyroid_us_ct",
        "size": {US: us_size, CT: ct_size},
        "margin_px": {US: 40, CT: 25},
        "crop": "square about the nodule box grown by margin_px, side max(h, w), zero padding, resized to size",
        "us": "8-bit grey (RGB captures converted, 16-bit refused); outside the ultrasound area zeroed; overlay "
              f"strokes at >= {OVERLAY_LEVEL} inpainted (Telea)",
        "ct_window": [-100, 200],
        "ct": "HU windowed to uint8 with ct_window, then [0, 1]",
        "boundary_fraction": 0.08,
        "bilateral_d": 7, "bilateral_sigma_color": 100, "bilateral_sigma_space": 100,
        "canny_low": -100, "canny_high": 200,
        "channels": "grey replicated to 3 channels",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
