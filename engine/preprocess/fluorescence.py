"""Fluorescence intensity handling: raw counts (8/16-bit) to a displayable, contrast-normalised image.

FL-CNN (Shen et al. 2021) notes that NIR-II pixel values are signal intensities, not grey levels,
so they are first normalised non-linearly; then autocontrast and denoising are applied where needed.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.preprocess.common import rgb_to_grey


def log_normalise(raw: np.ndarray, bit_depth: int | None = None, gain: float = 100.0) -> np.ndarray:
    """log1p(gain * x / full_scale) / log1p(gain): raw intensities -> float32 in [0, 1].

    Working on the fraction of the sensor's full scale makes 8- and 16-bit exports of one scene agree;
    `gain` sets how strongly dim signal is expanded relative to bright signal."""
    grey = rgb_to_grey(raw) if raw.ndim == 3 else raw
    if np.issubdtype(raw.dtype, np.integer):
        full_scale = float(2 ** (bit_depth or (16 if raw.dtype == np.uint16 else 8)) - 1)
    else:
        full_scale = float(max(np.max(grey), 1e-6))
    out = grey.astype(np.float32)  # one working array, changed in place: large images stay affordable
    out /= full_scale
    np.clip(out, 0.0, 1.0, out=out)
    out *= np.float32(gain)
    np.log1p(out, out=out)
    out /= np.log1p(gain)
    return out


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Robust white-noise estimate: MAD of the residual after a 3x3 median filter (image in [0, 1])."""
    residual = cv2.medianBlur(image.astype(np.float32, copy=False), 3)
    np.subtract(image, residual, out=residual)
    residual -= np.median(residual)
    np.abs(residual, out=residual)
    return float(1.4826 * np.median(residual))


def denoise_if_needed(image: np.ndarray, noise_threshold: float, kernel: int = 3) -> tuple[np.ndarray, bool]:
    """Median-filter when the estimated noise exceeds `noise_threshold`; returns (image, applied)."""
    if estimate_noise_sigma(image) <= noise_threshold:
        return image, False
    return cv2.medianBlur(image.astype(np.float32), kernel), True


def autocontrast(image: np.ndarray, low_percent: float, high_percent: float, min_range: float = 1e-3) -> np.ndarray:
    """Stretch the [low, high] percentiles to [0, 1]; a flat image is left flat (no division blow-up)."""
    lo, hi = np.percentile(image, [low_percent, high_percent])
    if hi - lo < min_range:
        return np.zeros_like(image, dtype=np.float32)
    out = np.empty(image.shape, np.float32)
    rows = max(1, (1 << 22) // max(1, image[0].size))  # the float64 arithmetic of a few megabytes at a time
    for start in range(0, image.shape[0], rows):
        block = (image[start:start + rows] - lo) / (hi - lo)
        out[start:start + rows] = np.clip(block, 0.0, 1.0)
    return out


def normalise_fluorescence(raw: np.ndarray, bit_depth: int | None, constants: dict) -> np.ndarray:
    """The full FL intensity pipeline, driven by a model card's preprocessing constants."""
    image = log_normalise(raw, bit_depth, constants["log_gain"])
    image, _ = denoise_if_needed(image, constants["denoise_noise_threshold"], constants["denoise_kernel"])
    return autocontrast(image, constants["autocontrast_low_percent"], constants["autocontrast_high_percent"])
