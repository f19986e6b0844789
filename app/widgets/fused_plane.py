"""One plane of the PET-CT viewer: the shared `ImagePanel` showing the CT (its slice axis, wheel, PageUp /
PageDown, zoom and pan), with the PET and the Grad-CAM drawn over it from the overlay grid
(`engine.explain.petct_display`), the tumour contours and a crosshair. A left click reports the point clicked.

Coordinates are the CT plane's pixel indices, as everywhere on an `ImagePanel`; an overlay plane is one image
stretched over the CT pixels it covers (overlay voxel p spans CT voxels p*f .. p*f+f-1) and drawn smoothly
interpolated, as PET workstations show it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter

from app import theme
from app.widgets.image_panel import ImagePanel
from engine.explain.petct_display import PLANE_AXIS, PLANE_ROWS_COLS, FusionVolumes, overlay_slice

PET_Z, HEAT_Z, CONTOUR_Z, CROSSHAIR_Z = 5, 10, 20, 30
TUMOUR = "tumour"


class SmoothImageItem(pg.ImageItem):
    """An image drawn with bilinear interpolation when scaled (coarse PET voxels over fine CT pixels). Images with
    alpha are kept premultiplied: Qt scales and blends those on its fast path (non-premultiplied ARGB took several
    ms per plane)."""

    def render(self) -> None:
        super().render()
        image = self.qimage
        if image is not None and image.hasAlphaChannel() and image.format() != QImage.Format.Format_ARGB32_Premultiplied:
            self.qimage = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)

    def paint(self, painter: QPainter, *args) -> None:
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        super().paint(painter, *args)


class FusedPlane(ImagePanel):
    """CT plane + PET + Grad-CAM + tumour contours + crosshair; `clicked(row, col)` in CT plane pixels."""

    clicked = Signal(float, float)

    def __init__(self, plane: str, title: str) -> None:
        super().__init__(title, title_size="11pt")
        self.plane_name = plane
        self.image.setAutoDownsample(False)  # one CT plane is at most 512 x 512: drawing it scaled is cheaper
        self.pet = SmoothImageItem(axisOrder="row-major")
        self.pet.setZValue(PET_Z)
        self.heat_layer = SmoothImageItem(axisOrder="row-major")
        self.heat_layer.setZValue(HEAT_Z)
        self.heat_layer.setColorMap(self.heat_colormap)
        self.heat_layer.setVisible(False)
        pen = pg.mkPen(theme.COLORS["accent_light"], width=1, style=Qt.PenStyle.DashLine)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for item in (self.pet, self.heat_layer, self.vline, self.hline):
            if isinstance(item, pg.InfiniteLine):
                item.setZValue(CROSSHAIR_Z)
            self.plot.addItem(item)
        self.tumour_layer = self.contour_layer(TUMOUR, color=theme.PREDICTION, width=2.0, z=CONTOUR_Z)
        self.volumes: FusionVolumes | None = None
        self.pet_volume: np.ndarray | None = None
        self.heat_volume: np.ndarray | None = None
        self.heat_wanted = False
        self._shown_overlay: tuple[int, int] = (-1, -1)  # (overlay slice of PET, of heat) on screen
        self.plot.scene().sigMouseClicked.connect(self._scene_clicked)
        self.slice_changed.connect(lambda _index: self._draw_overlays())

    # -- content ------------------------------------------------------------------------------------

    def show_volumes(self, volumes: FusionVolumes, reference_image, slice_index: int,
                     levels: tuple[float, float] | None) -> None:
        """The CT (reference) across this plane at `slice_index`, with the PET overlay (no prediction yet)."""
        self.volumes = volumes
        self.pet_volume = volumes.pet
        self.heat_volume = None
        self._shown_overlay = (-1, -1)
        self.set_image(reference_image, plane=self.plane_name, slice_index=slice_index, levels=levels,
                       auto_levels=levels or (0.0, 1.0))
        self._place_overlay_rect()
        self._draw_overlays()

    def clear_volumes(self) -> None:
        self.volumes = self.pet_volume = self.heat_volume = None
        self.clear()
        self.pet.clear()
        self.heat_layer.clear()
        self.heat_layer.setVisible(False)
        self._shown_overlay = (-1, -1)

    def set_heat_volume(self, heat: np.ndarray | None) -> None:
        self.heat_volume = heat
        self._shown_overlay = (self._shown_overlay[0], -1)
        self._draw_overlays()

    def set_heat_wanted(self, wanted: bool) -> None:
        self.heat_wanted = wanted
        self._draw_overlays()

    @property
    def overlay_index(self) -> int:
        """The overlay slice shown with the CT slice on screen."""
        volumes = self.volumes
        if volumes is None:
            return 0
        axis = PLANE_AXIS[self.plane_name]
        return overlay_slice(self.slice_index, volumes.factors[axis], volumes.overlay.shape[axis])

    def _place_overlay_rect(self) -> None:
        volumes = self.volumes
        if volumes is None:
            return
        rows, cols = PLANE_ROWS_COLS[self.plane_name]
        height = volumes.overlay.shape[rows] * volumes.factors[rows]
        width = volumes.overlay.shape[cols] * volumes.factors[cols]
        self._overlay_rect = QRectF(0, 0, width, height)

    def _draw_overlays(self) -> None:
        """Cut the PET and heat volumes at the overlay slice of the CT slice on screen (only when it changed)."""
        volumes = self.volumes
        if volumes is None:
            return
        index = self.overlay_index
        axis = PLANE_AXIS[self.plane_name]
        pet_shown, heat_shown = self._shown_overlay
        if self.pet_volume is not None and pet_shown != index:
            self.pet.setImage(np.take(self.pet_volume, index, axis=axis), autoLevels=False)
            self.pet.setRect(self._overlay_rect)
            pet_shown = index
        show_heat = self.heat_wanted and self.heat_volume is not None
        if show_heat and heat_shown != index:
            self.heat_layer.setImage(np.take(self.heat_volume, index, axis=axis), autoLevels=False, levels=(0.0, 1.0))
            self.heat_layer.setRect(self._overlay_rect)
            heat_shown = index
        self.heat_layer.setVisible(show_heat)
        self._shown_overlay = (pet_shown, heat_shown)

    # -- crosshair and clicks -----------------------------------------------------------------------

    def set_crosshair(self, row: float, col: float) -> None:
        """Crosshair through the centre of plane pixel (row, col)."""
        self.vline.setPos(col + 0.5)
        self.hline.setPos(row + 0.5)

    def set_crosshair_visible(self, visible: bool) -> None:
        self.vline.setVisible(visible)
        self.hline.setVisible(visible)

    def _scene_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double() or self.plane_shape is None:
            return
        if not self.viewbox.sceneBoundingRect().contains(event.scenePos()):
            return
        point = self.viewbox.mapSceneToView(event.scenePos())
        rows, cols = self.plane_shape
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        if 0 <= row < rows and 0 <= col < cols:
            event.accept()
            self.clicked.emit(float(row), float(col))
