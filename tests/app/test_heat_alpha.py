"""Heat layers (issue 18, item 11): alpha proportional to the value, so a zero-heat region shows the image's
own pixels and a weak one only tints it (the non-tumor FL Grad-CAM was a dark veil over the specimen)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from test_image_panel import shown

from app.widgets.image_panel import ImagePanel

pytestmark = pytest.mark.gui


def _pixels(panel: ImagePanel) -> np.ndarray:
    image = panel.graphics.grab().toImage().convertToFormat(panel.graphics.grab().toImage().Format.Format_RGB888)
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes()).reshape(image.height(), -1)
    return data[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)


def _window(panel: ImagePanel, rows: slice, cols: slice) -> tuple[slice, slice]:
    """The widget pixels (rows, cols) showing that part of the image, a pixel in from its edges."""
    top_left = panel.graphics.mapFromScene(panel.image.mapToScene(QPointF(cols.start, rows.start)))
    bottom_right = panel.graphics.mapFromScene(panel.image.mapToScene(QPointF(cols.stop, rows.stop)))
    return slice(top_left.y() + 2, bottom_right.y() - 2), slice(top_left.x() + 2, bottom_right.x() - 2)


def test_zero_heat_leaves_the_image_unchanged_and_weak_heat_only_tints_it(qtbot):
    panel = ImagePanel()
    host = shown(qtbot, panel)  # noqa: F841  (kept alive while drawn)
    image = np.tile(np.linspace(40, 220, 60, dtype=np.uint8), (40, 1))  # a grey ramp: a veil would darken it
    panel.set_image(image)
    heat = np.zeros((40, 60), np.float32)
    heat[:, 40:50] = 0.1  # weak evidence
    heat[:, 50:] = 1.0  # strong evidence
    panel.set_heat(heat, visible=False)
    panel.set_heat_opacity(1.0)
    panel.fit()
    qtbot.wait(100)
    plain = _pixels(panel)
    panel.set_heat_visible(True)
    qtbot.wait(50)
    heated = _pixels(panel)
    zero, weak, strong = (_window(panel, slice(0, 40), cols) for cols in (slice(0, 40), slice(40, 50), slice(50, 60)))
    assert min(s.stop - s.start for window in (zero, weak, strong) for s in window) > 5  # on screen
    assert np.abs(heated[zero] - plain[zero]).max() <= 1, "a zero-heat region must show the image's own pixels"
    lut = panel.heat_colormap.getLookupTable(0.0, 1.0, nPts=11, alpha=True)

    def alpha_seen(window, value: float) -> float:
        """How opaque the layer looks: the change over the change full opacity would make (colour - image)."""
        colour = lut[round(10 * value), :3].astype(int)
        return np.abs(heated[window] - plain[window]).sum() / np.abs(colour - plain[window]).sum()

    assert alpha_seen(weak, 0.1) < 0.2 and alpha_seen(strong, 1.0) > 0.8, (alpha_seen(weak, 0.1),
                                                                           alpha_seen(strong, 1.0))
    assert np.allclose(lut[:, 3], np.linspace(0, 255, 11), atol=2)  # alpha proportional to the value
