"""Training augmentations on [0, 1] float images (H, W, 3), as the FL-CNN paper lists them."""

from __future__ import annotations

import numpy as np


def random_brightness_contrast(image: np.ndarray, rng: np.random.Generator, brightness: float,
                               contrast: float) -> np.ndarray:
    """Multiply brightness by U[1-b, 1+b] and scale contrast about the mean by U[1-c, 1+c] (clipped at 0)."""
    b = rng.uniform(max(0.0, 1 - brightness), 1 + brightness)
    c = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
    out = image * b
    mean = out.mean()
    return np.clip((out - mean) * c + mean, 0.0, 1.0)


def random_crop_with_padding(image: np.ndarray, rng: np.random.Generator, padding: int) -> np.ndarray:
    """Zero-pad by `padding` on every side, then crop back to the original size at a random offset."""
    h, w = image.shape[:2]
    padded = np.zeros((h + 2 * padding, w + 2 * padding) + image.shape[2:], dtype=image.dtype)
    padded[padding:padding + h, padding:padding + w] = image
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    return padded[top:top + h, left:left + w]


def augment_specimen(image: np.ndarray, rng: np.random.Generator, params: dict) -> np.ndarray:
    """One random draw of the card's augmentation recipe (keys: brightness, contrast, vflip, hflip,
    rot90, crop_padding)."""
    out = image
    if params.get("brightness", 0) or params.get("contrast", 0):
        out = random_brightness_contrast(out, rng, params.get("brightness", 0.0), params.get("contrast", 0.0))
    if params.get("vflip") and rng.random() < 0.5:
        out = out[::-1]
    if params.get("hflip") and rng.random() < 0.5:
        out = out[:, ::-1]
    if params.get("rot90"):
        out = np.rot90(out, k=int(rng.integers(0, 4)))
    if params.get("crop_padding", 0):
        out = random_crop_with_padding(out, rng, int(params["crop_padding"]))
    return np.ascontiguousarray(out, dtype=np.float32)


def augment_aligned(stack: np.ndarray, rng: np.random.Generator, params: dict) -> np.ndarray:
    """One random horizontal flip and rotation applied identically to every channel of an (S, S, 3M) stack,
    so the aligned modalities of a node stay pixel-aligned (MFI-FFP: random horizontal flip and rotation).

    params: hflip (bool), rotation_degrees (rotation drawn from U[-d, d]; corners filled with zeros)."""
    import cv2

    out = stack
    if params.get("hflip") and rng.random() < 0.5:
        out = out[:, ::-1]
    degrees = float(params.get("rotation_degrees", 0.0))
    if degrees:
        h, w = out.shape[:2]
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(rng.uniform(-degrees, degrees)), 1.0)
        out = cv2.warpAffine(np.ascontiguousarray(out), matrix, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if out.ndim == 2:
            out = out[..., None]
    return np.ascontiguousarray(out, dtype=np.float32)
