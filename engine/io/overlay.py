"""Overlays drawn without Qt: an image plane in its display window, a heat layer and contour layers, as RGB arrays
at the image's full resolution, in the colours the GUI uses (engine/palette.py). Exports and the case report call it.

A contour is an (N, 2) array of (row, col) points with pixel centres at integers (engine.seg.contours); cv2 draws
them with sub-pixel precision and anti-aliasing. Heat maps in [0, 1] on the image grid are blended with the
colour map's faded alpha times the layer's opacity, exactly as the image panel shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from engine.palette import (
    DEFAULT_HEAT_OPACITY,
    DISPLAY_PERCENTILES,
    HEAT_COLORMAP,
    OVERLAY_COLORS,
    heat_lut,
    rgb,
)

_SHIFT = 4  # cv2 fixed-point bits for sub-pixel contour points
_LEVEL_SAMPLE = 2_000_000


def display_levels(array: np.ndarray) -> tuple[float, float]:
    """The grey window the image panel opens with: robust percentiles (never an empty range)."""
    values = np.asarray(array).ravel()
    if values.size > _LEVEL_SAMPLE:
        values = values[:: values.size // _LEVEL_SAMPLE + 1]
    low, high = (float(v) for v in np.percentile(values, DISPLAY_PERCENTILES))
    return (low, high if high > low else low + 1.0)


def display_rgb(plane: np.ndarray, levels: tuple[float, float] | None = None) -> np.ndarray:
    """A grey (H, W) plane windowed to 8-bit grey RGB, or an (H, W, 3) colour image as 8-bit RGB."""
    plane = np.asarray(plane)
    if plane.ndim == 3:
        if plane.dtype == np.uint8:
            return np.ascontiguousarray(plane)
        top = float(np.iinfo(plane.dtype).max) if np.issubdtype(plane.dtype, np.integer) else float(plane.max()) or 1.0
        low = 0.0 if np.issubdtype(plane.dtype, np.integer) else float(plane.min())
        return np.clip((plane.astype(np.float32) - low) / max(top - low, 1e-9) * 255, 0, 255).round().astype(np.uint8)
    if plane.ndim != 2:
        raise ValueError(f"An overlay is drawn on a plane (H, W) or (H, W, 3); got shape {plane.shape}.")
    low, high = levels or display_levels(plane)
    grey = np.clip((plane.astype(np.float32) - low) / (high - low) * 255, 0, 255).round().astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def blend_heat(rgb_image: np.ndarray, heat: np.ndarray, colormap: str = HEAT_COLORMAP,
               opacity: float = DEFAULT_HEAT_OPACITY) -> np.ndarray:
    """`rgb_image` with a heat map in [0, 1] on top (stretched to the image if its grid is coarser)."""
    h, w = rgb_image.shape[:2]
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    lut = heat_lut(colormap).astype(np.float32) / 255.0
    index = np.clip(np.nan_to_num(heat) * (len(lut) - 1), 0, len(lut) - 1).round().astype(np.int32)
    colours = lut[index]
    alpha = colours[..., 3:4] * float(np.clip(opacity, 0.0, 1.0))
    out = rgb_image.astype(np.float32) * (1 - alpha) + colours[..., :3] * 255.0 * alpha
    return np.clip(out, 0, 255).round().astype(np.uint8)


def contour_width(shape: Sequence[int]) -> int:
    """Line width in pixels that reads at full resolution and when the image is shown small (about 1/250 of the
    shorter side, at least 1)."""
    return max(1, round(min(shape[:2]) / 250))


def draw_contours(rgb_image: np.ndarray, contours: Sequence[np.ndarray], color: str,
                  width: int | None = None) -> np.ndarray:
    """`rgb_image` with closed (row, col) contours drawn anti-aliased in `color` (#rrggbb or an OVERLAY_COLORS name)."""
    out = np.ascontiguousarray(rgb_image.copy())
    colour = rgb(OVERLAY_COLORS.get(color, color))
    polylines = []
    for contour in contours:
        points = np.asarray(getattr(contour, "points", contour), dtype=np.float64).reshape(-1, 2)
        if len(points) >= 2:
            polylines.append(np.round(points[:, ::-1] * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2))
    if polylines:
        cv2.polylines(out, polylines, True, colour, width or contour_width(out.shape), cv2.LINE_AA, _SHIFT)
    return out


def render_overlay(plane: np.ndarray, *, heat: np.ndarray | None = None, heat_colormap: str = HEAT_COLORMAP,
                   opacity: float = DEFAULT_HEAT_OPACITY, contours: Mapping[str, Sequence[np.ndarray]] | None = None,
                   levels: tuple[float, float] | None = None) -> np.ndarray:
    """The plane as the image panel shows it: windowed, heat layer blended, contour layers on top (truth first,
    so the prediction's line stays visible where both run together). Returns (H, W, 3) uint8 at full resolution."""
    out = display_rgb(plane, levels)
    if heat is not None:
        out = blend_heat(out, heat, heat_colormap, opacity)
    layers = dict(contours or {})
    for name in sorted(layers, key=lambda n: (n != "truth", n)):
        out = draw_contours(out, layers[name], name)
    return out


def write_png(rgb_image: np.ndarray, path: str | Path) -> Path:
    """An RGB (or grey) uint8 array as PNG, created readable by its owner only."""
    from engine.paths import open_private

    array = np.asarray(rgb_image)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"{path}: the image could not be encoded as PNG.")
    path = Path(path)
    with open_private(path, "wb") as fh:
        fh.write(encoded.tobytes())
    return path
