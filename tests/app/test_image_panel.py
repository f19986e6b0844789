"""The shared image panel, offscreen: grey and RGB images with window/level, the heat layer, named contour layers,
title and missing-image note, the slice axis of volumes (planes, slider, wheel, keys, heat and contours following
the slice), and linked zoom/pan that shows the same rectangle by construction."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QHBoxLayout, QWidget

from app import theme
from app.widgets.image_panel import AXIAL, CORONAL, SAGITTAL, ImagePanel, robust_levels
from app.widgets.view_link import PanelGrid, link_views
from engine.data import ZYX, ImageMeta, ModalityImage

pytestmark = pytest.mark.gui


def shown(qtbot, *panels: ImagePanel, size=(900, 500)) -> QWidget:
    host = QWidget()
    row = QHBoxLayout(host)
    for panel in panels:
        row.addWidget(panel)
    qtbot.addWidget(host)
    host.resize(*size)
    host.show()
    qtbot.waitExposed(host)
    return host


def volume(shape=(8, 20, 30), spacing=(3.0, 1.0, 1.0)) -> ModalityImage:
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    array = (100 * z + y + x).astype(np.uint16)  # each slice has its own values
    return ModalityImage("CT", array, ImageMeta(16, "HU", spacing), ZYX)


def ranges(panel: ImagePanel) -> list[float]:
    (x0, x1), (y0, y1) = panel.viewbox.viewRange()
    return [x0, x1, y0, y1]


def test_grey_image_with_window_level_and_histogram(qtbot):
    panel = ImagePanel("FL")
    histogram = panel.histogram_widget()
    host = shown(qtbot, panel)  # noqa: F841  (keeps the panel alive)
    image = np.random.default_rng(0).integers(0, 4000, (40, 60)).astype(np.uint16)
    panel.set_image(image)
    assert panel.image.image.shape == (40, 60) and panel.plane_shape == (40, 60) and panel.plane == ""
    assert panel.levels == pytest.approx(robust_levels(image)) and panel.auto_levels == pytest.approx(panel.levels)
    assert histogram.isVisible() and not panel.slice_bar.isVisible()
    histogram.setLevels(10, 20)
    assert panel.levels == (10, 20)
    panel.reset_levels()
    assert panel.levels == pytest.approx(panel.auto_levels)
    panel.set_image(np.zeros((10, 12, 3), np.uint8))  # RGB: shown as stored, no grey histogram
    assert panel.levels == (0, 255) and not histogram.isVisible()


def test_heat_layer_fades_in_and_follows_visibility_and_opacity(qtbot):
    panel = ImagePanel()
    panel.set_image(np.zeros((20, 30), np.uint8))
    panel.set_heat(np.linspace(0, 1, 600).reshape(20, 30), visible=True)
    assert panel.heat.isVisible() and panel.heat.boundingRect().width() == 30  # stretched over the image
    panel.set_heat_opacity(0.3)
    assert panel.heat.opacity() == pytest.approx(0.3)
    panel.set_heat_visible(False)
    assert not panel.heat.isVisible()
    panel.set_heat_visible(True)
    lut = panel.heat_colormap.getLookupTable(0.0, 1.0, nPts=5, alpha=True)
    assert lut[0, 3] == 0 and lut[-1, 3] == 255  # low values never hide the image
    panel.set_image(np.zeros((20, 30), np.uint8))  # a new image forgets the old map
    assert not panel.has_heat and not panel.heat.isVisible()


def test_named_contour_layers_colour_width_and_visibility(qtbot):
    panel = ImagePanel()
    panel.set_image(np.zeros((50, 50), np.uint8))
    square = np.array([[10, 10], [10, 20], [20, 20], [20, 10]], float)  # (row, col)
    truth = panel.set_contours("truth", [square], color=theme.TRUTH)
    prediction = panel.set_contours("prediction", [square + 2, square + 20], color=theme.PREDICTION, width=3)
    assert truth.pen.color().name() == theme.TRUTH and prediction.pen.widthF() == 3
    assert len(truth.items) == 1 and len(prediction.items) == 2
    xs, ys = truth.items[0].getData()
    assert (xs[0], ys[0]) == (10.5, 10.5) and len(xs) == 5  # pixel centres, closed
    panel.set_contours_visible("truth", False)
    assert not truth.items[0].isVisible() and prediction.items[0].isVisible()
    panel.set_contours("truth", [square])  # new contours keep the layer's visibility and pen
    assert not truth.items[0].isVisible() and truth.pen.color().name() == theme.TRUTH


def test_title_and_missing_note(qtbot):
    panel = ImagePanel("White light (WL)")
    assert panel.title == "White light (WL)"
    panel.set_image(None)
    panel.set_missing("No WL image", (40, 80))
    assert panel.missing.textItem.toPlainText() == "No WL image" and panel.missing.pos() == QPointF(40, 20)
    assert not panel.image.isVisible()
    panel.set_title("White light (WL) — not available", available=False)
    assert panel.title.endswith("not available")


def test_volume_planes_slices_spacing_and_signal(qtbot):
    panel = ImagePanel()
    host = shown(qtbot, panel)  # noqa: F841  (keeps the panel alive)
    moves = []
    panel.slice_changed.connect(moves.append)
    panel.set_image(volume())
    assert panel.plane == AXIAL and panel.slice_axis == 0 and panel.slice_count == 8 and panel.slice_index == 4
    assert panel.plane_shape == (20, 30) and panel.slice_bar.isVisible()
    assert panel.image.image[0, 0] == 400
    panel.set_slice(6)
    assert moves == [6] and panel.image.image[0, 0] == 600 and panel.slice_slider.value() == 6
    panel.set_slice(99)  # clamped
    assert panel.slice_index == 7 and moves == [6, 7]
    panel.slice_slider.setValue(2)
    assert panel.slice_index == 2 and moves[-1] == 2
    assert panel.slice_label.text() == "Slice 3 / 8"
    panel.set_plane(CORONAL)  # rows are z (3 mm), columns x (1 mm): drawn three times as tall per row
    assert panel.plane_shape == (8, 30) and panel.slice_count == 20 and panel.aspect == pytest.approx(1 / 3)
    assert not panel.viewbox.yInverted()  # the head (high z) at the top
    panel.set_plane(SAGITTAL, 5)
    assert panel.plane_shape == (8, 20) and panel.slice_index == 5 and panel.slice_axis == 2
    with pytest.raises(ValueError, match="no 'frame' plane"):
        panel.set_plane("frame")


def test_heat_and_contours_follow_the_slice(qtbot):
    panel = ImagePanel()
    image = volume()
    panel.set_image(image)
    heat = np.zeros(image.array.shape, np.float32)
    heat[3] = 1.0
    panel.set_heat(heat, visible=True)
    ring = np.array([[2, 2], [2, 8], [8, 8], [8, 2]], float)
    per_slice = {3: [ring], 5: [ring, ring + 10]}
    panel.set_contours("tumor", per_slice)
    panel.set_contours("body", lambda plane, index: [ring + index] if plane == AXIAL else [])
    panel.set_slice(3)
    assert panel.heat.image.max() == 1.0 and len(panel.layers["tumor"].items) == 1
    assert panel.layers["body"].items[0].getData()[0][0] == pytest.approx(5.5)
    panel.set_slice(5)
    assert panel.heat.image.max() == 0.0 and len(panel.layers["tumor"].items) == 2
    panel.set_slice(4)
    assert panel.layers["tumor"].items == []
    panel.set_plane(CORONAL)
    assert panel.layers["body"].items == [] and panel.heat.image.shape == (8, 30)


def test_wheel_and_page_keys_move_through_slices_ctrl_wheel_zooms(qtbot):
    panel = ImagePanel()
    host = shown(qtbot, panel, size=(500, 500))  # noqa: F841
    panel.set_image(volume())
    panel.fit()
    start, before = panel.slice_index, ranges(panel)
    centre = panel.graphics.mapFromScene(panel.viewbox.sceneBoundingRect().center())
    viewport = panel.graphics.viewport()
    qtbot.wait(10)
    _wheel(viewport, centre, 120)
    assert panel.slice_index == start + 1 and ranges(panel) == pytest.approx(before)
    _wheel(viewport, centre, -120)
    _wheel(viewport, centre, -120)
    assert panel.slice_index == start - 1
    _wheel(viewport, centre, 120, Qt.KeyboardModifier.ControlModifier)
    assert panel.slice_index == start - 1 and ranges(panel)[1] - ranges(panel)[0] < before[1] - before[0]
    panel.graphics.setFocus()
    QTest.keyClick(panel.graphics, Qt.Key.Key_PageDown)
    assert panel.slice_index == start


def _wheel(viewport, pos: QPoint, delta: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    from PySide6.QtCore import QPointF as P
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    local = P(pos)
    event = QWheelEvent(local, P(viewport.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, delta),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def test_linked_panels_share_centre_and_scale_whatever_their_size(qtbot):
    small, large = ImagePanel(), ImagePanel()
    link_views(small, large)
    host = QWidget()
    row = QHBoxLayout(host)
    row.addWidget(small, 1)
    row.addWidget(large, 2)
    qtbot.addWidget(host)
    host.resize(900, 400)
    host.show()
    qtbot.waitExposed(host)
    for panel in (small, large):
        panel.set_image(np.zeros((100, 120), np.uint8))
    small.fit()
    for panel in (small, large):  # the image fits the smaller panel, so both show all of it
        x0, x1, y0, y1 = ranges(panel)
        assert x0 <= 0 and x1 >= 120 and y0 <= 0 and y1 >= 100
    large.viewbox.setRange(QRectF(30, 40, 20, 20), padding=0)
    for panel in (small, large):
        x0, x1, y0, y1 = ranges(panel)
        assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((40, 50))
    units_per_pixel = [(ranges(p)[1] - ranges(p)[0]) / p.viewbox.width() for p in (small, large)]
    assert units_per_pixel[0] == pytest.approx(units_per_pixel[1])


def test_panels_of_a_grid_show_the_same_rectangle_and_stay_fitted_through_resizes(qtbot):
    panels = [ImagePanel(f"P{i}") for i in range(4)]
    link_views(*panels)
    grid = PanelGrid([panels[:2], panels[2:]])
    qtbot.addWidget(grid)
    grid.resize(801, 603)  # odd sizes: a layout would give one column a pixel more
    grid.show()
    qtbot.waitExposed(grid)
    for panel in panels:
        panel.set_image(np.zeros((64, 64), np.uint8))
    panels[3].fit()
    assert len({(p.viewbox.width(), p.viewbox.height()) for p in panels}) == 1
    first = ranges(panels[0])
    assert all(ranges(p) == pytest.approx(first, abs=1e-9) for p in panels)
    grid.resize(1001, 503)
    qtbot.waitUntil(lambda: panels[0].viewbox.width() > first[1] - first[0], timeout=2000)
    qtbot.wait(20)
    for panel in panels:  # still fitted: a resize keeps the whole image in view
        x0, x1, y0, y1 = ranges(panel)
        assert x0 <= 0 and x1 >= 64 and y0 <= 0 and y1 >= 64
        assert ranges(panel) == pytest.approx(ranges(panels[0]), abs=1e-9)
    panels[1].viewbox.scaleBy((0.5, 0.5))  # a zoom: the others follow, and a resize no longer fits
    zoomed = ranges(panels[1])
    assert all(ranges(p) == pytest.approx(zoomed, abs=1e-9) for p in panels)
    grid.resize(1003, 503)
    qtbot.wait(20)
    width = ranges(panels[0])[1] - ranges(panels[0])[0]
    assert width == pytest.approx(zoomed[1] - zoomed[0], rel=0.01)  # the zoom kept, not fitted again
