"""Is an image fit for a model's call? Plain measures of input quality and the findings drawn from them.

A `Finding` either blocks the call ("input not assessable: <reason>": a flat, saturated, noise-only or
too-small image, or no object where the kind expects one) or is a warning that travels with the prediction.
The thresholds were set on the phantoms of every kind (the lowest structure-to-noise of a genuine phantom
image is about 10; pure noise stays below 1) and are deliberately loose: a dim but real specimen must still
be assessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.data import NOT_ASSESSABLE, ModalityImage

MIN_ASSESSABLE_SIDE = 64
WORK_SIDE = 1024  # measures are taken on the image area-averaged to at most this side (memory, speed)
NOISE_BLOCK, NOISE_WARN = 3.0, 6.0  # structure-to-noise below these: noise only / low signal
SATURATED_BLOCK, SATURATED_WARN = 0.25, 0.05  # share of pixels at full scale


@dataclass(frozen=True)
class Finding:
    modality: str
    message: str
    blocking: bool

    def text(self) -> str:
        return f"{self.modality}: {self.message}"


def _raw_plane(image: ModalityImage) -> np.ndarray:
    """The stored plane (a volume's middle slice, a clip's first frame), not copied."""
    array = image.array
    if image.axes == "ZYX":
        return array[array.shape[0] // 2]
    if image.axes == "TYX":
        return array[0]
    return array


def _plane(image: ModalityImage) -> np.ndarray:
    """One float plane for the measures: colour averaged, area-averaged to at most WORK_SIDE pixels a side
    (a 64-megapixel image costs a few megabytes here, not gigabytes)."""
    array = _raw_plane(image)
    h, w = array.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        array = cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    array = array.astype(np.float32)
    return array.mean(axis=2) if array.ndim == 3 else array


def full_scale(image: ModalityImage) -> float | None:
    """The largest value the image's bit depth can hold (None for floats without a fixed scale)."""
    if np.issubdtype(image.array.dtype, np.integer) and image.meta.units not in ("HU",):
        return float(2 ** image.meta.bit_depth - 1)
    return 1.0 if np.issubdtype(image.array.dtype, np.floating) and image.meta.units in ("a.u.", "RGB", "") else None


def structure_to_noise(plane: np.ndarray) -> float:
    """Range of the smoothed image (1st-99th percentile) over the pixel noise (robust SD of the residual)."""
    sigma = max(1.5, 2.0 * max(plane.shape) / 128.0)
    smooth = cv2.GaussianBlur(plane, (0, 0), sigma)
    residual = plane - smooth
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    low, high = np.percentile(smooth, [1, 99])
    if noise <= 1e-9:
        return float("inf") if high > low else 0.0
    return float(high - low) / noise


def standard_findings(image: ModalityImage, min_side: int = MIN_ASSESSABLE_SIDE) -> list[Finding]:
    """Size, flatness, saturation and noise of one image; the checks every kind applies."""
    code = image.modality
    shape = image.spatial_shape
    if min(shape[-2:]) < min_side:
        return [Finding(code, f"too small to assess ({shape[-1]} x {shape[-2]} px; a model needs at least "
                              f"{min_side} x {min_side})", True)]
    plane = _plane(image)
    low, high = np.percentile(plane, [0.5, 99.5])
    if high - low <= 0:
        return [Finding(code, "flat image: (nearly) every pixel has the same value", True)]
    findings = []
    scale = full_scale(image)
    if scale is not None:
        raw = _raw_plane(image)  # saturation is counted on the stored pixels, not on averages
        top = raw.min(axis=2) if raw.ndim == 3 else raw  # colour: clipped to white in every channel
        saturated = float(np.count_nonzero(top >= (scale - 0.5 if scale > 1 else scale))) / top.size
        if saturated > SATURATED_BLOCK:
            findings.append(Finding(code, f"saturated: {saturated:.0%} of pixels at full scale", True))
        elif saturated > SATURATED_WARN:
            findings.append(Finding(code, f"partly saturated: {saturated:.0%} of pixels at full scale", False))
    snr = structure_to_noise(plane)
    if snr < NOISE_BLOCK:
        findings.append(Finding(code, f"no image structure above the noise (structure-to-noise {snr:.1f}): a blank, "
                                      "unexposed or noise-only image", True))
    elif snr < NOISE_WARN:
        findings.append(Finding(code, f"low signal-to-noise (structure-to-noise {snr:.1f})", False))
    return findings


def object_share(plane: np.ndarray) -> float:
    """Share of the image Otsu's threshold puts in the foreground (an object against its background)."""
    unit = cv2.normalize(plane, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(cv2.GaussianBlur(unit, (0, 0), 2.0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(np.mean(mask > 0))


def object_findings(image: ModalityImage, what: str, low: float = 0.005, high: float = 0.98) -> list[Finding]:
    """No object (blocking) or one that fills the whole image (warning), by Otsu foreground share."""
    share = object_share(_plane(image))
    if share < low:
        return [Finding(image.modality, f"no {what} found in the image", True)]
    if share > high:
        return [Finding(image.modality, f"the {what} seems to fill the whole image; check the framing", False)]
    return []


def not_assessable_reason(findings: list[Finding]) -> str | None:
    """'input not assessable: FL: flat image; ...' when any finding blocks the call, else None."""
    blocking = [f.text() for f in findings if f.blocking]
    return (f"{NOT_ASSESSABLE}: " + "; ".join(blocking)) if blocking else None
