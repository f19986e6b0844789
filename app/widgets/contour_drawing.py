"""Reader-drawn contours on an image plot: click to place points, double-click (or Space) to close a polygon.

Used by the fluorescence view in reader studies that ask for a tumor outline. Points are in image pixels
(x = column, y = row, pixel centres at +0.5 as the plots draw them), stored without the 0.5 shift so that they
match the frame's pixel grid (`engine.studies.contours.polygons_to_mask`). A polygon needs at least 3 points;
several polygons outline several regions, and one drawn inside another is a hole (even-odd rule).

Keys (bound by the reading controller): Space closes the open polygon, Backspace removes the last point
(or reopens the last closed polygon), Delete clears everything drawn on the case.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal

from app import theme

DRAWN_COLOR = theme.DRAWN  # magenta: neither the prediction's yellow nor the truth's green
MIN_POINTS = 3
_SAME_POINT_PX = 1.0  # a double-click's first click lands on the point it closes


class ContourDrawing(QObject):
    """Polygon drawing on one `pg.PlotItem`; `changed` carries the closed polygons whenever they change."""

    changed = Signal(list)  # list of polygons, each a list of (x, y)

    def __init__(self, plot: pg.PlotItem, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.plot = plot
        self.enabled = False
        self.bounds: tuple[int, int] | None = None  # (height, width) of the image; clicks outside are ignored
        self.closed: list[list[tuple[float, float]]] = []
        self.open: list[tuple[float, float]] = []
        self._closed_items: list[pg.PlotCurveItem] = []
        pen = pg.mkPen(DRAWN_COLOR, width=2.5)
        self._open_item = pg.PlotDataItem([], [], pen=pg.mkPen(DRAWN_COLOR, width=2, style=Qt.PenStyle.DashLine),
                                          symbol="o", symbolSize=7, symbolBrush=DRAWN_COLOR, symbolPen=None)
        self._open_item.setZValue(31)
        self._pen = pen
        plot.addItem(self._open_item)
        plot.scene().sigMouseClicked.connect(self._clicked)

    # -- state ------------------------------------------------------------------------------------

    def set_enabled(self, enabled: bool, bounds: tuple[int, int] | None = None) -> None:
        self.enabled = enabled
        self.bounds = bounds
        self.open = []
        self._redraw_open()

    def polygons(self) -> list[list[tuple[float, float]]]:
        return [list(p) for p in self.closed]

    def set_polygons(self, polygons) -> None:
        """Show saved polygons (e.g. the reader's earlier answer) without emitting `changed`."""
        self.closed = [[(float(x), float(y)) for x, y in p] for p in (polygons or []) if len(p) >= MIN_POINTS]
        self.open = []
        self._redraw()

    # -- editing ----------------------------------------------------------------------------------

    def add_point(self, x: float, y: float) -> bool:
        """Add a point to the open polygon; False when outside the image or drawing is off."""
        if not self.enabled:
            return False
        if self.bounds is not None and not (0 <= x <= self.bounds[1] and 0 <= y <= self.bounds[0]):
            return False
        self.open.append((float(x), float(y)))
        self._redraw_open()
        return True

    def close_polygon(self) -> bool:
        """Close the open polygon when it has enough points; `changed` is emitted."""
        points = self._without_repeats(self.open)
        if not self.enabled or len(points) < MIN_POINTS:
            return False
        self.closed.append(points)
        self.open = []
        self._redraw()
        self.changed.emit(self.polygons())
        return True

    def undo(self) -> None:
        """Remove the last point; with no open polygon, reopen the last closed one minus its last point."""
        if not self.enabled:
            return
        if self.open:
            self.open.pop()
            self._redraw_open()
            return
        if self.closed:
            self.open = self.closed.pop()[:-1]
            self._redraw()
            self.changed.emit(self.polygons())

    def clear_drawing(self) -> None:
        if not self.enabled or not (self.closed or self.open):
            return
        had_closed = bool(self.closed)
        self.closed, self.open = [], []
        self._redraw()
        if had_closed:
            self.changed.emit([])

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _without_repeats(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        kept: list[tuple[float, float]] = []
        for p in points:
            if not kept or np.hypot(p[0] - kept[-1][0], p[1] - kept[-1][1]) > _SAME_POINT_PX:
                kept.append(p)
        if len(kept) > 1 and np.hypot(kept[0][0] - kept[-1][0], kept[0][1] - kept[-1][1]) <= _SAME_POINT_PX:
            kept.pop()
        return kept

    def _clicked(self, event) -> None:
        if not self.enabled or event.button() != Qt.MouseButton.LeftButton:
            return
        viewbox = self.plot.getViewBox()
        if not viewbox.sceneBoundingRect().contains(event.scenePos()):
            return
        point = viewbox.mapSceneToView(event.scenePos())
        x, y = point.x() - 0.5, point.y() - 0.5  # plot coordinates draw pixel centres at +0.5
        if event.double():
            self.close_polygon()
        elif self.add_point(x, y):
            event.accept()

    def _redraw_open(self) -> None:
        if self.open:
            xs, ys = zip(*self.open, strict=True)
            self._open_item.setData(np.array(xs) + 0.5, np.array(ys) + 0.5)
        else:
            self._open_item.setData([], [])

    def _redraw(self) -> None:
        for item in self._closed_items:
            self.plot.removeItem(item)
        self._closed_items = []
        for polygon in self.closed:
            loop = np.array(polygon + polygon[:1]) + 0.5
            item = pg.PlotCurveItem(loop[:, 0], loop[:, 1], pen=self._pen, antialias=True)
            item.setZValue(30)
            self.plot.addItem(item)
            self._closed_items.append(item)
        self._redraw_open()
