"""Geometry shared by every 2-D model input: zero-pad to square, resize, and map outputs back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Geometry:
    """How an original (H, W) image became the model's square input, so maps can be mapped back."""

    height: int
    width: int
    pad_top: int
    pad_left: int
    side: int  # padded square side
    input_size: int

    def to_original(self, array: np.ndarray) -> np.ndarray:
        """Map a (S, S) map in model-input space to the original (H, W) image grid."""
        square = cv2.resize(array.astype(np.float32), (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        return square[self.pad_top:self.pad_top + self.height, self.pad_left:self.pad_left + self.width]


def pad_to_square(image: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Zero-pad (H, W[, C]) symmetrically to a square, as the FL-CNN paper does at test time."""
    h, w = image.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    out[top:top + h, left:left + w] = image
    return out, top, left


def square_resize(image: np.ndarray, size: int) -> tuple[np.ndarray, Geometry]:
    """Pad to square then resize to (size, size). Works on float images with 1 or 3 channels."""
    h, w = image.shape[:2]
    padded, top, left = pad_to_square(image)
    interp = cv2.INTER_AREA if padded.shape[0] > size else cv2.INTER_LINEAR
    resized = cv2.resize(padded, (size, size), interpolation=interp)
    return resized, Geometry(h, w, top, left, padded.shape[0], size)


def to_float_unit(image: np.ndarray, bit_depth: int | None = None) -> np.ndarray:
    """Integer images to float32 in [0, 1] by their bit depth; float images are clipped to [0, 1]."""
    if np.issubdtype(image.dtype, np.integer):
        depth = bit_depth or (16 if image.dtype == np.uint16 else 8)
        out = image.astype(np.float32)
        out /= float(2**depth - 1)  # in place: a large colour image needs one float copy, not two
        return out
    out = image.astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def normalise_channels(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> (C, H, W) standardised float32 (what the nets take)."""
    image = (image - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def rgb_to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (image.astype(np.float32) @ weights).astype(np.float32)
