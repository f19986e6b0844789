"""A nodule box on an image panel, edited with the mouse and the keyboard.

The box is a pyqtgraph rectangle ROI in the panel's pixel coordinates (x = column, y = row; x1 / y1 exclusive,
as `engine.preprocess.us_ct.Box`): drag it to move it, drag a corner handle to resize it, Ctrl+drag on the image
(or drag after `start_drawing`) to draw a new one. `move` and `resize` step it from the keyboard. Every finished
change is reported once through `changed`; whether the box is acceptable is the engine's call (`Box.checked`).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal

from app import theme
from app.widgets.image_panel import ImagePanel
from engine.preprocess.us_ct import Box

BOX_Z = 35  # above the image, the heat layer and the contours; the draw surface lies just under it
MIN_DRAWN = 2.0  # a drawn box narrower than this (a click) is no box


class _DrawSurface(pg.GraphicsObject):
    """An invisible item over the image that turns a left drag into a new box (in drawing mode or with Ctrl);
    any other drag falls through to the plot, which pans."""

    def __init__(self, editor: NoduleBoxEditor) -> None:
        super().__init__()
        self.editor = editor
        self._rect = QRectF()

    def set_rect(self, rect: QRectF | None) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(rect) if rect is not None else QRectF()

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter, *args) -> None:
        pass

    def mouseDragEvent(self, ev) -> None:
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if ev.button() != Qt.MouseButton.LeftButton or not self.editor.editable or not (self.editor.drawing or ctrl):
            ev.ignore()
            return
        ev.accept()
        self.editor.draw_between(ev.buttonDownPos(), ev.pos(), finished=ev.isFinish())


class NoduleBoxEditor(QObject):
    """The box of one panel; the view owns one per image and decides which is active."""

    changed = Signal()  # the user finished a change (drag released, key step, box drawn)
    activated = Signal()  # the user started working on this box with the mouse

    def __init__(self, panel: ImagePanel, name: str) -> None:
        super().__init__(panel)
        self.panel = panel
        self.name = name
        self.editable = True
        self.drawing = False
        self.active = False
        self.roi: pg.RectROI | None = None
        self.surface = _DrawSurface(self)
        self.surface.setZValue(BOX_Z - 1)
        panel.plot.addItem(self.surface)

    # -- state -------------------------------------------------------------------------------------

    def box(self) -> Box | None:
        if self.roi is None:
            return None
        (x, y), (w, h) = self.roi.pos(), self.roi.size()
        return Box(float(x), float(y), float(x + w), float(y + h))

    def set_box(self, box: Box | None) -> None:
        """Show `box` (None: no box) without reporting a change."""
        if box is None:
            if self.roi is not None:
                self.panel.plot.removeItem(self.roi)
                self.roi = None
            return
        if self.roi is None:
            self.roi = pg.RectROI((box.x0, box.y0), (box.width, box.height), translateSnap=True, scaleSnap=True,
                                  snapSize=1.0, rotatable=False)
            self.roi.addScaleHandle([0, 0], [1, 1])
            self.roi.setZValue(BOX_Z)
            self.roi.sigRegionChangeStarted.connect(lambda _roi: self.activated.emit())
            self.roi.sigRegionChangeFinished.connect(lambda _roi: self.changed.emit())
            self.panel.plot.addItem(self.roi)
            self._style()
            self._set_roi_editable()
        else:
            self.roi.setPos((box.x0, box.y0), update=False, finish=False)
            self.roi.setSize((box.width, box.height), finish=False)

    def set_image_rect(self, rect: QRectF | None) -> None:
        """Where the image lies (the surface a new box is drawn on)."""
        self.surface.set_rect(rect)

    def set_active(self, active: bool) -> None:
        self.active = active
        self._style()

    def set_editable(self, editable: bool) -> None:
        self.editable = editable
        if not editable:
            self.drawing = False
        self._set_roi_editable()

    def start_drawing(self) -> None:
        """The next left drag on the image draws a new box."""
        self.drawing = self.editable

    # -- edits ---------------------------------------------------------------------------------------

    def move(self, dx: float, dy: float) -> bool:
        """Shift the box by (dx, dy) pixels; False when there is no box to move."""
        box = self.box()
        if box is None or not self.editable:
            return False
        self.set_box(Box(box.x0 + dx, box.y0 + dy, box.x1 + dx, box.y1 + dy))
        self.changed.emit()
        return True

    def resize(self, dw: float, dh: float) -> bool:
        """Grow (or shrink, negative) the box's right and bottom edges; it never gets thinner than 1 pixel."""
        box = self.box()
        if box is None or not self.editable:
            return False
        self.set_box(Box(box.x0, box.y0, max(box.x0 + 1, box.x1 + dw), max(box.y0 + 1, box.y1 + dh)))
        self.changed.emit()
        return True

    def draw_between(self, start: QPointF, end: QPointF, finished: bool) -> None:
        """The box spanned by a drag from `start` to `end` (clamped to the image), whole pixels."""
        rect = self.surface.boundingRect()
        x0, x1 = sorted((start.x(), end.x()))
        y0, y1 = sorted((start.y(), end.y()))
        if rect.isValid():
            x0, x1 = max(x0, rect.left()), min(x1, rect.right())
            y0, y1 = max(y0, rect.top()), min(y1, rect.bottom())
        x0, y0, x1, y1 = round(x0), round(y0), round(x1), round(y1)
        if x1 - x0 >= MIN_DRAWN and y1 - y0 >= MIN_DRAWN:
            self.set_box(Box(x0, y0, x1, y1))
        if finished:
            self.drawing = False
            self.changed.emit()
        else:
            self.activated.emit()

    # -- drawing ---------------------------------------------------------------------------------------

    def _style(self) -> None:
        if self.roi is None:
            return
        color = theme.COLORS["roi_active" if self.active else "roi"]
        pen = pg.mkPen(color, width=2.5 if self.active else 1.5,
                       style=Qt.PenStyle.SolidLine if self.active else Qt.PenStyle.DashLine)
        self.roi.setPen(pen)
        self.roi.hoverPen = pg.mkPen(theme.COLORS["roi_active"], width=3)
        for handle in self.roi.getHandles():
            handle.pen = pg.mkPen(color, width=2)
            handle.currentPen = handle.pen
            handle.setVisible(self.editable)
            handle.update()

    def _set_roi_editable(self) -> None:
        if self.roi is None:
            return
        self.roi.translatable = self.editable
        self.roi.resizable = self.editable
        for handle in self.roi.getHandles():
            handle.setVisible(self.editable)
