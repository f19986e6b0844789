"""One image panel for every case view: a pyqtgraph plot showing one image (grey with window/level, or RGB),
a heat layer, any number of named contour layers, a title and a "missing image" note, and a slice axis for
volumes.

Coordinates are the displayed plane's pixel indices (x = column, y = row), so heat maps, contours and a
reader's outline all line up with the image whatever the zoom. Pixel spacing sets the aspect (a coronal plane
of 3 mm slices is drawn three times as tall per row as it is wide per column).

Volumes (`ZYX`) and clips (`TYX`) show one plane at a time: `set_image(image, plane="axial"|"coronal"|
"sagittal")` picks the plane (a clip has only "frame"), `set_slice(i)` moves along the slice axis and
`slice_changed(i)` reports every move; the slider under the plot, the mouse wheel (Ctrl+wheel zooms) and
PageUp / PageDown move too. Heat volumes are cut with the image, and contour layers may give contours per
slice, so both follow the slice on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from app import theme
from app.widgets.view_link import ViewLink
from engine.data import TYX, YXC, ZYX, ModalityImage, plane_axes
from engine.palette import DISPLAY_PERCENTILES  # the grey window on load, shared with exported overlays

AXIAL, CORONAL, SAGITTAL, FRAME = "axial", "coronal", "sagittal", "frame"
PLANE_AXIS = {AXIAL: 0, CORONAL: 1, SAGITTAL: 2, FRAME: 0}  # the array axis a plane cuts across
_LEVEL_SAMPLE = 2_000_000  # voxels looked at for a volume's automatic window

# Contours of a layer: one list for every slice, {slice: list} for the plane on screen, or a function
# (plane, slice) -> list. A contour is an (N, 2) array of (row, col) points, or an object with such `.points`.
ContourSource = Sequence[Any] | Mapping[int, Sequence[Any]] | Callable[[str, int], Sequence[Any]]


def robust_levels(image: np.ndarray) -> tuple[float, float]:
    """Display window for a grey image or volume from its percentiles (never an empty range)."""
    values = np.asarray(image).ravel()
    if values.size > _LEVEL_SAMPLE:
        values = values[:: values.size // _LEVEL_SAMPLE + 1]
    low, high = (float(v) for v in np.percentile(values, DISPLAY_PERCENTILES))
    if high <= low:
        high = low + 1.0
    return low, high


def rgb_levels(array: np.ndarray) -> tuple[float, float]:
    """RGB shows as stored: 0-255 for 8-bit, the full range of other integer types, else min to max."""
    if np.issubdtype(array.dtype, np.integer):
        return 0.0, float(np.iinfo(array.dtype).max)
    return float(array.min()), float(array.max())


def fading_colormap(colormap: pg.ColorMap, ramp: float = theme.HEAT_FADE) -> pg.ColorMap:
    """The colour map with alpha proportional to the value (rising from 0 to opaque over the lowest `ramp` of the
    scale; the whole scale by default), so that zero shows the image unchanged, weak evidence barely tints it,
    and the map's extent leaves no hard edge."""
    positions = np.linspace(0.0, 1.0, 256)
    lut = colormap.getLookupTable(0.0, 1.0, nPts=256, alpha=True).astype(np.float64)
    lut[:, 3] = 255 * np.clip(positions / ramp, 0.0, 1.0)
    return pg.ColorMap(positions, lut.astype(np.ubyte))


def diverging_colormap(colormap: pg.ColorMap, ramp: float = theme.HEAT_FADE) -> pg.ColorMap:
    """A diverging map for signed evidence around 0.5: transparent at the centre, opaque towards both ends
    (over `ramp` of each half), so neutral pixels leave the image visible."""
    positions = np.linspace(0.0, 1.0, 256)
    lut = colormap.getLookupTable(0.0, 1.0, nPts=256, alpha=True).astype(np.float64)
    lut[:, 3] = 255 * np.clip(np.abs(positions - 0.5) * 2 / ramp, 0.0, 1.0)
    return pg.ColorMap(positions, lut.astype(np.ubyte))


def heat_colormap(name: str, fade: bool | str = True) -> pg.ColorMap:
    """The named map, fading in from transparent (`fade` True), opaque (False) or "diverging" (signed maps)."""
    colormap = pg.colormap.get(name)
    if fade == "diverging":
        return diverging_colormap(colormap)
    return fading_colormap(colormap) if fade else colormap


def _points(contour: Any) -> np.ndarray:
    return np.asarray(getattr(contour, "points", contour), dtype=float)


class ContourLayer:
    """One named set of contours on a panel, drawn in one pen; it redraws for the slice on screen."""

    def __init__(self, plot: pg.PlotItem, name: str, color: str, width: float, z: float) -> None:
        self.plot = plot
        self.name = name
        self.pen = pg.mkPen(color, width=width)
        self.z = z
        self.visible = True
        self.source: ContourSource = []
        self.items: list[pg.PlotCurveItem] = []

    def contours_for(self, plane: str, index: int) -> Sequence[Any]:
        source = self.source
        if callable(source):
            return source(plane, index) or []
        if isinstance(source, Mapping):
            return source.get(index, [])
        return source

    def draw(self, plane: str, index: int) -> None:
        for item in self.items:
            self.plot.removeItem(item)
        self.items = []
        for contour in self.contours_for(plane, index):
            points = _points(contour)
            if len(points) < 2:
                continue
            loop = np.vstack([points, points[:1]]) + 0.5  # pixel centres
            item = pg.PlotCurveItem(loop[:, 1], loop[:, 0], pen=self.pen, antialias=True)
            item.setZValue(self.z)
            item.setVisible(self.visible)
            self.plot.addItem(item)
            self.items.append(item)

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        for item in self.items:
            item.setVisible(visible)


class _SliceViewBox(pg.ViewBox):
    """The wheel moves through slices when the panel shows a volume (Ctrl+wheel still zooms)."""

    def __init__(self, panel: ImagePanel) -> None:
        super().__init__()
        self.panel = panel

    def wheelEvent(self, ev, axis=None) -> None:
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if self.panel.slice_count > 1 and not ctrl and axis is None:
            self.panel.set_slice(self.panel.slice_index + (1 if ev.delta() > 0 else -1))
            ev.accept()
            return
        super().wheelEvent(ev, axis)


class ImagePanel(QWidget):
    """A plot of one image with its overlays (see the module docstring). Linked panels: `view_link.link_views`."""

    slice_changed = Signal(int)  # the user or set_slice moved along the slice axis (set_image / set_plane: silent)

    def __init__(self, title: str = "", parent: QWidget | None = None, *, title_size: str = "14pt",
                 heat_colormap_name: str = theme.HEAT_COLORMAP, fade: bool = True) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(theme.PLOT_BACKGROUND)
        self.graphics.setAcceptDrops(False)  # files dropped on images go to the main window
        self.viewbox = _SliceViewBox(self)
        self.plot: pg.PlotItem = self.graphics.addPlot(viewBox=self.viewbox)
        for axis in ("left", "bottom"):
            self.plot.hideAxis(axis)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.titleLabel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.viewbox.setAspectLocked(True)
        self.viewbox.invertY(True)  # row 0 at the top, as a camera sees it
        self.viewbox.disableAutoRange()  # the view link fits; an automatic range would undo a user's zoom
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat.setZValue(10)
        self.heat.setVisible(False)
        self.heat_colormap = heat_colormap(heat_colormap_name, fade)
        self.heat.setColorMap(self.heat_colormap)
        self.missing = pg.TextItem("", color=theme.TEXT_FAINT, anchor=(0.5, 0.5))
        font = QFont()
        font.setPointSize(14)
        self.missing.setFont(font)
        self.missing.setZValue(40)
        for item in (self.image, self.heat, self.missing):
            self.plot.addItem(item)

        self.slice_slider = QSlider(Qt.Orientation.Horizontal)
        self.slice_slider.setToolTip("Slice (mouse wheel, PageUp / PageDown)")
        self.slice_label = QLabel("")
        self.slice_label.setObjectName("smallPrint")
        self.slice_label.setMinimumWidth(110)
        slice_row = QHBoxLayout()
        slice_row.setContentsMargins(6, 0, 6, 0)
        slice_row.addWidget(self.slice_slider, 1)
        slice_row.addWidget(self.slice_label)
        self.slice_bar = QWidget()
        self.slice_bar.setLayout(slice_row)
        self.slice_bar.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.slice_bar)
        for key, step in ((QKeySequence.StandardKey.MoveToPreviousPage, -1), (QKeySequence.StandardKey.MoveToNextPage, 1)):
            shortcut = QShortcut(key, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda s=step: self.set_slice(self.slice_index + s))
        self.slice_slider.valueChanged.connect(self.set_slice)

        self._title = ""
        self._title_size = title_size
        self._source: np.ndarray | None = None  # the whole array (plane or volume)
        self._axes = ""
        self._spacing: tuple[float, ...] | None = None
        self._z_up = True
        self._plane = ""
        self._index = 0
        self._plane_array: np.ndarray | None = None
        self.auto_levels: tuple[float, float] | None = None
        self._heat_source: np.ndarray | None = None
        self._heat_shown = False  # what the user wants; the layer shows only when there is a map
        self.layers: dict[str, ContourLayer] = {}
        self.histogram: pg.HistogramLUTWidget | None = None
        self.link = ViewLink([self])
        self.set_title(title)

    # -- title and notes ----------------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return self._title

    def set_title(self, text: str, available: bool = True) -> None:
        self._title = text
        self.plot.setTitle(text, size=self._title_size, color=theme.TITLE if available else theme.TEXT_FAINT)

    def set_missing(self, text: str, shape: tuple[int, int] | None = None) -> None:
        """A note in the middle of the image (or of `shape`, rows x columns, when there is no image)."""
        shape = self.plane_shape or shape
        self.missing.setText(text)
        self.missing.setPos(QPointF(shape[1] / 2, shape[0] / 2) if shape else QPointF(0, 0))

    # -- the image -------------------------------------------------------------------------------------------

    def set_image(self, image: ModalityImage | np.ndarray | None, *, plane: str | None = None,
                  levels: tuple[float, float] | None = None, slice_index: int | None = None,
                  auto_levels: tuple[float, float] | None = None) -> None:
        """Show `image` (None: nothing), forgetting the heat map and contours drawn on the one before.

        `levels`: the grey window (default: robust percentiles) or RGB range (default: the dtype's);
        `plane`: for a volume, the plane to cut (default axial); `slice_index`: default the middle slice;
        `auto_levels`: the automatic window when the caller knows it (a large volume's percentiles computed on a
        worker), instead of computing it here."""
        self.set_heat(None)
        for layer in self.layers.values():
            layer.source = []
            layer.draw("", 0)
        if image is None:
            self._source, self._axes, self._plane_array, self.auto_levels = None, "", None, None
            self._plane, self._index = "", 0
            self.image.clear()
            self.image.setVisible(False)
            self._update_slice_bar()
            self._show_histogram(False)
            return
        if isinstance(image, ModalityImage):
            array, axes, spacing = image.array, image.axes, image.meta.spacing
            direction = image.meta.direction
        else:
            array, axes, spacing, direction = np.asarray(image), plane_axes(np.asarray(image)), None, None
        self._source, self._axes = array, axes
        self._spacing = tuple(spacing) if spacing else None
        # Coronal and sagittal planes put the head up: rows run towards -z only when the direction says z
        # indices go down the patient.
        self._z_up = direction is None or len(direction) != 9 or direction[0] >= 0
        self.auto_levels = auto_levels or (rgb_levels(array) if axes == YXC else robust_levels(array))
        self._plane = ""
        self.image.setVisible(True)
        self.missing.setText("")
        self.set_plane(plane or (FRAME if axes == TYX else AXIAL), slice_index, levels or self.auto_levels)
        self._show_histogram(axes != YXC)
        if axes != YXC and self.histogram is not None:
            self._reset_histogram_range()

    def clear(self) -> None:
        self.set_image(None)
        self.set_missing("")

    def replace_pixels(self, array: np.ndarray) -> bool:
        """Live video: new pixels for the plane image on screen, of the same shape and type, keeping the window,
        heat layer, contours and zoom (no percentiles, no redraw of the layers). False, and nothing changed, when
        the panel shows something else (call `set_image`). The histogram keeps the earlier frame's counts until
        `refresh_histogram`: recounting and repainting it for every frame would double the GUI thread's work."""
        shown = self._plane_array
        if (self._source is None or self._plane or shown is None or array.shape != shown.shape
                or array.dtype != shown.dtype):
            return False
        self._source = self._plane_array = array
        blocked = self.image.blockSignals(True)  # sigImageChanged: the histogram's recount
        try:
            self.image.setImage(array, autoLevels=False)
        finally:
            self.image.blockSignals(blocked)
        return True

    def refresh_histogram(self) -> None:
        """Recount the histogram of the pixels on screen (after `replace_pixels`)."""
        if self.histogram is not None and self._source is not None:
            self.histogram.item.imageChanged()

    @property
    def has_image(self) -> bool:
        return self._source is not None

    @property
    def array(self) -> np.ndarray | None:
        """The whole array shown (plane or volume), as given."""
        return self._source

    @property
    def plane_shape(self) -> tuple[int, int] | None:
        """Rows and columns of the plane on screen."""
        return None if self._plane_array is None else self._plane_array.shape[:2]

    def image_rect(self) -> QRectF | None:
        shape = self.plane_shape
        return None if shape is None else QRectF(0, 0, shape[1], shape[0])

    # -- slices ---------------------------------------------------------------------------------------------

    @property
    def plane(self) -> str:
        """"" for a plane image; "axial", "coronal" or "sagittal" for a volume; "frame" for a clip."""
        return self._plane

    @property
    def slice_axis(self) -> int | None:
        """The axis of the shown array that the slider moves along (None for a plane image)."""
        return PLANE_AXIS[self._plane] if self._plane else None

    @property
    def slice_count(self) -> int:
        axis = self.slice_axis
        return 1 if axis is None or self._source is None else int(self._source.shape[axis])

    @property
    def slice_index(self) -> int:
        return self._index

    def set_plane(self, plane: str, slice_index: int | None = None,
                  levels: tuple[float, float] | None = None) -> None:
        """Cut the volume across `plane` (ignored for plane images) at `slice_index` (default: the middle)."""
        if self._source is None:
            return
        volume = self._axes in (ZYX, TYX)
        if volume and plane not in ((FRAME,) if self._axes == TYX else (AXIAL, CORONAL, SAGITTAL)):
            raise ValueError(f"A {self._axes} image has no {plane!r} plane.")
        self._plane = plane if volume else ""
        count = self.slice_count
        self._index = -1  # set_slice below always redraws
        aspect = self._plane_spacing()
        self.viewbox.setAspectLocked(True, ratio=aspect[1] / aspect[0])
        self.viewbox.invertY(not (self._plane in (CORONAL, SAGITTAL) and self._z_up))
        self._update_slice_bar()
        self._show_slice(count // 2 if slice_index is None else slice_index, levels)

    def set_slice(self, index: int) -> None:
        """Show slice `index` (clamped to the volume) with its heat and contours; emits `slice_changed`."""
        index = int(min(max(index, 0), self.slice_count - 1))
        if index != self._index and self._source is not None:
            self._show_slice(index, None)
            self.slice_changed.emit(index)

    def _show_slice(self, index: int, levels: tuple[float, float] | None) -> None:
        index = int(min(max(index, 0), self.slice_count - 1))
        self._index = index
        self._plane_array = self._cut(self._source, index)
        levels = levels or self.levels or self.auto_levels
        self.image.setImage(self._plane_array, autoLevels=False, levels=levels)
        self._draw_heat()
        for layer in self.layers.values():
            layer.draw(self._plane, index)
        self.slice_slider.blockSignals(True)
        self.slice_slider.setValue(index)
        self.slice_slider.blockSignals(False)
        word = "Frame" if self._plane == FRAME else "Slice"
        self.slice_label.setText(f"{word} {index + 1} / {self.slice_count}")

    def _cut(self, array: np.ndarray, index: int, count: int | None = None) -> np.ndarray:
        """The plane of `array` at `index` of `count` slices (a heat volume may have fewer than the image)."""
        axis = self.slice_axis
        if axis is None or array.ndim < 3:
            return array
        count = count or self.slice_count
        own = array.shape[axis]
        return np.take(array, min(own - 1, index * own // max(count, 1)), axis=axis)

    def _plane_spacing(self) -> tuple[float, float]:
        """(row, column) spacing of the plane on screen; (1, 1) when unknown."""
        spacing = self._spacing
        if not spacing:
            return 1.0, 1.0
        if len(spacing) == 3:
            keep = [a for a in range(3) if a != PLANE_AXIS.get(self._plane or AXIAL, 0)]
            return spacing[keep[0]], spacing[keep[1]]
        return spacing[-2], spacing[-1]

    def _update_slice_bar(self) -> None:
        count = self.slice_count
        self.slice_slider.blockSignals(True)
        self.slice_slider.setRange(0, max(count - 1, 0))
        self.slice_slider.blockSignals(False)
        self.slice_bar.setVisible(count > 1)

    # -- window / level ---------------------------------------------------------------------------------------

    @property
    def levels(self) -> tuple[float, float] | None:
        levels = self.image.levels
        return None if levels is None or self._source is None else (float(levels[0]), float(levels[1]))

    def set_levels(self, low: float, high: float) -> None:
        self.image.setLevels((low, high))
        if self.histogram is not None:
            self.histogram.setLevels(low, high)

    def reset_levels(self) -> None:
        """Back to the automatic window (grey) or range (RGB)."""
        if self.auto_levels is not None:
            self.set_levels(*self.auto_levels)

    def histogram_widget(self, tooltip: str = "Window/level: drag the region or its edges") -> pg.HistogramLUTWidget:
        """The window/level histogram of this panel (made on first call), for the view to place."""
        if self.histogram is None:
            self.histogram = pg.HistogramLUTWidget(image=self.image, orientation="horizontal",
                                                   background=theme.PLOT_BACKGROUND)
            self.histogram.setToolTip(tooltip)
            self.histogram.setFixedHeight(100)
            self._show_histogram(self._source is not None and self._axes != YXC)
            if self._source is not None and self._axes != YXC:
                self._reset_histogram_range()
        return self.histogram

    def _show_histogram(self, visible: bool) -> None:
        if self.histogram is not None:
            self.histogram.setVisible(visible)

    def _reset_histogram_range(self) -> None:
        low, high = self.levels or self.auto_levels
        self.histogram.setLevels(low, high)
        low_auto, high_auto = self.auto_levels
        values = self._plane_array
        # The window and as much again above it, not every hot pixel.
        self.histogram.setHistogramRange(float(values.min()), min(float(values.max()), high_auto + (high_auto - low_auto)))

    # -- heat layer -------------------------------------------------------------------------------------------

    def set_heat(self, heat: np.ndarray | None, *, visible: bool | None = None) -> None:
        """A map in [0, 1] over the image (a plane, stretched to the image; or a volume, cut with it)."""
        self._heat_source = None if heat is None else np.asarray(heat)
        if visible is not None:
            self._heat_shown = visible
        self._draw_heat()

    def set_heat_visible(self, visible: bool) -> None:
        self._heat_shown = visible
        self._draw_heat()

    def set_heat_opacity(self, opacity: float) -> None:
        self.heat.setOpacity(min(max(opacity, 0.0), 1.0))

    def set_heat_colormap(self, name: str, fade: bool | str = True) -> None:
        self.heat_colormap = heat_colormap(name, fade)
        self.heat.setColorMap(self.heat_colormap)

    @property
    def has_heat(self) -> bool:
        return self._heat_source is not None

    def _draw_heat(self) -> None:
        rect = self.image_rect()
        if self._heat_source is None or rect is None:
            self.heat.setVisible(False)
            return
        self.heat.setImage(self._cut(self._heat_source, self._index), autoLevels=False, levels=(0.0, 1.0))
        self.heat.setRect(rect)
        self.heat.setVisible(self._heat_shown)

    # -- contour layers --------------------------------------------------------------------------------------

    def set_contours(self, name: str, contours: ContourSource, *, color: str | None = None, width: float = 2.0,
                     z: float = 20) -> ContourLayer:
        """Draw `contours` as layer `name` (made on first use with `color` and `width`; later calls keep them)."""
        layer = self.layers.get(name)
        if layer is None:
            layer = self.layers[name] = ContourLayer(self.plot, name, color or theme.PREDICTION, width, z)
        layer.source = contours
        layer.draw(self._plane, self._index)
        return layer

    def contour_layer(self, name: str, *, color: str | None = None, width: float = 2.0, z: float = 20) -> ContourLayer:
        """The layer `name` (an empty one is made with `color` and `width` when there is none yet)."""
        return self.layers.get(name) or self.set_contours(name, [], color=color, width=width, z=z)

    def set_contours_visible(self, name: str, visible: bool) -> None:
        self.contour_layer(name).set_visible(visible)

    # -- view -------------------------------------------------------------------------------------------------

    def fit(self, padding: float = 0.02) -> None:
        """Zoom so that the whole image shows (in every panel linked to this one); kept through resizes until
        the user zooms or pans."""
        self.link.fit(padding)

    @property
    def aspect(self) -> float:
        """Screen pixels per column over screen pixels per row (the locked aspect of the plot)."""
        locked = self.viewbox.state["aspectLocked"]
        return float(locked) if locked else 1.0
