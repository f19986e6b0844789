"""Every colour OncoLens draws with, in one place: the dark operating-room theme, the overlay colours of the
source papers' figures (prediction yellow, truth green), the result colours and the colour maps.

Views and widgets import the names below; `resources/style.qss` writes `@name` for a colour of `COLORS` and
`stylesheet()` fills them in, so the stylesheet, the palette and the plots cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtGui import QColor, QPalette

COLORS: dict[str, str] = {
    # surfaces, darkest first
    "plot": "#0b0f14",  # image plots and the gaps between docks
    "base": "#0f1318",  # fields, tables, lists
    "bar": "#10141a",  # menu bar, status bar, scroll bars
    "window": "#151a21",
    "row_alternate": "#151b23",
    "base_alternate": "#1a2029",
    "popup": "#1b212b",  # menus, drop-down lists, progress bars
    "header": "#1d242e",  # dock titles, table headers
    "raised": "#232a35",  # palette buttons, tooltips
    "button": "#26303c",
    "track": "#2a313c",  # slider grooves, probability bars
    "hover": "#2a3340",
    "button_hover": "#2f3b4a",
    "scroll_handle": "#35404e",
    # lines
    "line_table": "#262e39",
    "line": "#2b3440",
    "line_menu": "#2f3947",
    "line_field": "#334050",
    "line_button": "#3a4757",
    # text, brightest first
    "text_strong": "#ffffff",
    "tick": "#f2f4f8",  # the operating-threshold tick on a probability bar
    "text": "#e6e9ef",
    "title": "#d8dee9",  # plot titles
    "text_dim": "#c3cad5",
    "text_header": "#aab4c3",
    "text_muted": "#9aa5b4",  # notes, small print
    "text_faint": "#8a96a8",  # "no image" notes, captions, placeholders
    "text_gated": "#7d8797",
    "text_disabled": "#6b7483",
    # accents
    "accent": "#2f6fb3",  # selection, focus, checked buttons
    "accent_light": "#7fb8ff",
    "banner": "#3a0d0d",  # research-use banner
    "amber": "#ffb347",  # at or above the operating threshold; warnings
    "amber_light": "#ffc870",
    "amber_line": "#6b5428",
    "amber_surface": "#3a2d12",
    "aid_surface": "#231d12",
    "blue": "#5fa8d3",  # below the operating threshold
    "blue_text": "#8cc4e8",
    "blue_light": "#9cc4ef",
    "blue_surface": "#1f2b3a",
    "truth_text": "#b7e4a8",
    "saved": "#8fd18a",
    # overlays on images (the source papers' figure colours)
    "prediction": "#ffd400",  # model contour: yellow
    "truth": "#2ee65c",  # ground-truth contour: green
    "drawn": "#ff4fd8",  # a reader's outline: magenta, neither of the two above
}

PLOT_BACKGROUND = COLORS["plot"]
TITLE = COLORS["title"]
TEXT_MUTED = COLORS["text_muted"]
TEXT_FAINT = COLORS["text_faint"]
POSITIVE = COLORS["amber"]  # a result at or above its operating threshold
NEGATIVE = COLORS["blue"]  # below it
WARNING = COLORS["amber"]
TRACK = COLORS["track"]
TICK = COLORS["tick"]
PREDICTION = COLORS["prediction"]
TRUTH = COLORS["truth"]
DRAWN = COLORS["drawn"]

HEAT_COLORMAP = "inferno"  # Grad-CAM: perceptually uniform, readable on a dark background
PROBABILITY_COLORMAP = "viridis"  # segmentation probability
HEAT_FADE = 1.0  # heat layers' alpha rises with the value over the whole scale: low values never veil the image

_TOKEN = re.compile(r"@([a-z_]+)\b")


def qcolor(name: str) -> QColor:
    return QColor(COLORS[name])


def stylesheet(text: str) -> str:
    """A stylesheet with every `@name` replaced by its colour; an unknown name is an error that lists it."""
    unknown = sorted({m for m in _TOKEN.findall(text) if m not in COLORS})
    if unknown:
        raise KeyError(f"The stylesheet names colours the theme does not have: {', '.join('@' + u for u in unknown)}.")
    return _TOKEN.sub(lambda m: COLORS[m.group(1)], text)


def load_stylesheet(path: Path) -> str:
    return stylesheet(path.read_text(encoding="utf-8"))


def palette() -> QPalette:
    """The dark palette under the stylesheet (what Fusion draws where the stylesheet says nothing)."""
    roles = {
        QPalette.ColorRole.Window: "window",
        QPalette.ColorRole.WindowText: "text",
        QPalette.ColorRole.Base: "base",
        QPalette.ColorRole.AlternateBase: "base_alternate",
        QPalette.ColorRole.Text: "text",
        QPalette.ColorRole.Button: "raised",
        QPalette.ColorRole.ButtonText: "text",
        QPalette.ColorRole.Highlight: "accent",
        QPalette.ColorRole.HighlightedText: "text_strong",
        QPalette.ColorRole.ToolTipBase: "raised",
        QPalette.ColorRole.ToolTipText: "text",
        QPalette.ColorRole.PlaceholderText: "text_gated",
        QPalette.ColorRole.Link: "accent_light",
    }
    result = QPalette()
    for role, name in roles.items():
        result.setColor(role, qcolor(name))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        result.setColor(QPalette.ColorGroup.Disabled, role, qcolor("text_disabled"))
    return result


def span(text: str, color: str, **style: str) -> str:
    """`text` in a rich-text span of a theme colour (name or value), e.g. for result lines in labels."""
    css = ";".join([f"color:{COLORS.get(color, color)}", *(f"{k.replace('_', '-')}:{v}" for k, v in style.items())])
    return f"<span style='{css}'>{text}</span>"
