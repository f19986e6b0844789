"""Linked zoom and pan for image panels, deterministic by construction, and a grid that gives panels one size.

pyqtgraph's own X/Y links with locked aspect feed each panel's range back to the others, and where the panels
differ by a pixel the result depends on the order of updates (a test saw 1.6 px). Here one panel's change is
copied to the others as a centre and a scale (data units per screen pixel): every linked panel then shows the
same centre at the same magnification, and panels of equal size (`PanelGrid`) show exactly the same data
rectangle. `fit()` picks the scale at which the image fits the smallest panel, and keeps it through resizes
until the user zooms or pans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF, QRect, QRectF, QSize
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from app.widgets.image_panel import ImagePanel


class ViewLink(QObject):
    """Panels that zoom and pan together (every panel has one; `link_views` makes a shared one)."""

    def __init__(self, panels: Iterable[ImagePanel] = ()) -> None:
        super().__init__()
        self.panels: list[ImagePanel] = []
        self._busy = False
        self._fit_padding: float | None = None  # set while the view is "fitted" (no user zoom since)
        self._sizes: dict[int, tuple[float, float]] = {}
        for panel in panels:
            self.add(panel)

    def add(self, panel: ImagePanel) -> None:
        if panel in self.panels:
            return
        old = getattr(panel, "link", None)
        if old is not None and old is not self:
            old.remove(panel)
        panel.link = self
        self.panels.append(panel)
        viewbox = panel.viewbox
        viewbox.sigRangeChanged.connect(lambda *_args, p=panel: self._range_changed(p))
        viewbox.sigRangeChangedManually.connect(self._user_moved)
        viewbox.sigResized.connect(lambda *_args: self._resized())

    def remove(self, panel: ImagePanel) -> None:
        """Stop following `panel` (its signals stay connected but are ignored)."""
        if panel in self.panels:
            self.panels.remove(panel)

    # -- fitting ---------------------------------------------------------------------------------------

    def fit(self, padding: float = 0.02) -> None:
        self._fit_padding = padding
        self._apply_fit()

    def _apply_fit(self) -> None:
        rects = [r for r in (p.image_rect() for p in self.panels) if r is not None]
        if not rects:
            return
        rect = rects[0]
        for other in rects[1:]:
            rect = rect.united(other)
        pad = 1.0 + 2.0 * (self._fit_padding or 0.0)
        sized = [p for p in self.panels if _size(p)[0] > 0 and _size(p)[1] > 0]
        self._busy = True
        try:
            if not sized:  # not laid out yet: the first resize fits again
                for panel in self.panels:
                    panel.viewbox.setRange(rect, padding=self._fit_padding)
                return
            # units per screen pixel along x that fit the image in every panel (y follows from the aspect)
            scale = max(max(rect.width() * pad / w, rect.height() * pad / (p.aspect * h))
                        for p in sized for w, h in [_size(p)])
            for panel in self.panels:
                _show(panel, rect.center(), scale)
            self._remember_sizes()
        finally:
            self._busy = False

    # -- following ---------------------------------------------------------------------------------------

    def _range_changed(self, source: ImagePanel) -> None:
        if self._busy or source not in self.panels:
            return
        resized = self._sizes.get(id(source)) != _size(source)
        if resized and self._fit_padding is not None:
            return  # sigResized follows and fits every panel again
        if not resized:
            self._fit_padding = None  # a zoom or pan (mouse or code): the view is no longer "fitted"
        rect = source.viewbox.viewRect()
        width = _size(source)[0]
        self._busy = True
        try:
            for panel in self.panels:
                if panel is source:
                    continue
                if width > 0 and _size(panel)[0] > 0:
                    _show(panel, rect.center(), rect.width() / width)
                else:
                    panel.viewbox.setRange(rect, padding=0)
            self._remember_sizes()
        finally:
            self._busy = False

    def _user_moved(self, *_args) -> None:
        self._fit_padding = None

    def _resized(self) -> None:
        if self._busy:
            return
        if self._fit_padding is not None:
            self._apply_fit()
        else:
            self._remember_sizes()

    def _remember_sizes(self) -> None:
        self._sizes = {id(p): _size(p) for p in self.panels}


def _size(panel: ImagePanel) -> tuple[float, float]:
    viewbox = panel.viewbox
    return float(viewbox.width()), float(viewbox.height())


def _show(panel: ImagePanel, centre: QPointF, scale: float) -> None:
    """Show `centre` at `scale` data units per screen pixel along x (y: the panel's aspect)."""
    width, height = _size(panel)
    half_w, half_h = scale * width / 2, scale * panel.aspect * height / 2
    panel.viewbox.setRange(QRectF(centre.x() - half_w, centre.y() - half_h, 2 * half_w, 2 * half_h), padding=0)


def link_views(*panels: ImagePanel) -> ViewLink:
    """Zoom and pan these panels together; returns their shared link."""
    return ViewLink(panels)


class PanelGrid(QWidget):
    """Lays out panels in rows x columns of exactly equal cells (left-over pixels stay empty), so linked
    panels show the same data rectangle, not one a pixel wider."""

    def __init__(self, panels: Sequence[Sequence[QWidget | None]], spacing: int = 6,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows = [list(row) for row in panels]
        self.spacing = spacing
        for row in self.rows:
            for widget in row:
                if widget is not None:
                    widget.setParent(self)

    def _cells(self) -> tuple[int, int]:
        return len(self.rows), max(len(r) for r in self.rows)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._place()

    def _place(self) -> None:
        n_rows, n_cols = self._cells()
        width = (self.width() - self.spacing * (n_cols - 1)) // n_cols
        height = (self.height() - self.spacing * (n_rows - 1)) // n_rows
        for r, row in enumerate(self.rows):
            for c, widget in enumerate(row):
                if widget is not None:
                    widget.setGeometry(QRect(c * (width + self.spacing), r * (height + self.spacing), width, height))

    def minimumSizeHint(self) -> QSize:
        n_rows, n_cols = self._cells()
        return QSize(n_cols * 160 + self.spacing * (n_cols - 1), n_rows * 160 + self.spacing * (n_rows - 1))

    def sizeHint(self) -> QSize:
        n_rows, n_cols = self._cells()
        return QSize(n_cols * 420, n_rows * 420)
