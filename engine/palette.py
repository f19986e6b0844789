"""The colours OncoLens draws images with, shared by the GUI (app/theme.py) and the engine's exports.

An exported overlay PNG and the report must look like the screen: the same contour colours (prediction yellow,
truth green, as in the source papers' figures), the same colour maps, the same fade of heat layers and the same
default grey window. They live here, below every other engine module and free of Qt, so neither side can drift.
"""

from __future__ import annotations

import numpy as np

OVERLAY_COLORS: dict[str, str] = {
    "prediction": "#ffd400",  # model contour: yellow
    "truth": "#2ee65c",  # ground-truth contour: green
    "drawn": "#ff4fd8",  # a reader's outline: magenta, neither of the two above
}
POSITIVE_COLOR = "#ffb347"  # a result at or above its operating threshold (amber)
NEGATIVE_COLOR = "#5fa8d3"  # below it (blue)

HEAT_COLORMAP = "inferno"  # Grad-CAM: perceptually uniform, readable on a dark background
PROBABILITY_COLORMAP = "viridis"  # segmentation probability
HEAT_FADE = 1.0  # heat layers' alpha rises with the value over the whole scale: low values never veil the image
DEFAULT_HEAT_OPACITY = 0.45  # the heat layer's opacity before the user moves the slider
DISPLAY_PERCENTILES = (0.5, 99.5)  # grey window on load: robust to hot pixels and a dark background


def rgb(color: str) -> tuple[int, int, int]:
    """'#ffd400' -> (255, 212, 0)."""
    text = color.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"Colour {color!r}: write it as #rrggbb.")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def fade_alpha(positions: np.ndarray, ramp: float = HEAT_FADE) -> np.ndarray:
    """Opacity (0-1) of a heat layer at values `positions` in [0, 1]: rising from 0 to 1 over the lowest `ramp`."""
    return np.clip(np.asarray(positions, dtype=np.float64) / ramp, 0.0, 1.0)


def heat_lut(name: str = HEAT_COLORMAP, fade: bool = True, points: int = 256) -> np.ndarray:
    """(points, 4) uint8 RGBA lookup table of a matplotlib colour map, alpha faded as on screen."""
    from matplotlib import colormaps

    positions = np.linspace(0.0, 1.0, points)
    lut = colormaps[name](positions)
    if fade:
        lut[:, 3] = fade_alpha(positions)
    return np.round(lut * 255).astype(np.uint8)
