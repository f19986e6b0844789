"""Glioma specimen view: NIR-II fluorescence and white light side by side, with Grad-CAM overlays."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.views.base import CaseView, colormap_legend, opacity_controls
from engine.cases.model import FL, WL, Case
from engine.data import Prediction

HEATMAP_COLORMAP = "inferno"  # perceptually uniform, readable on a dark background
HEATMAP_TASKS = (("Tumor", "tumor"), ("Grade", "grade"), ("Ki-67", "ki67"))
PANEL_TITLES = {FL: "NIR-II fluorescence (FL)", WL: "White light (WL)"}
DISPLAY_PERCENTILES = (0.5, 99.5)  # FL window on load: robust to hot pixels and the dark tray
BACKGROUND = "#0b0f14"
TITLE_COLOR = "#d8dee9"


def robust_levels(image: np.ndarray) -> tuple[float, float]:
    """Display window for a grey image from its percentiles (never an empty range)."""
    low, high = (float(v) for v in np.percentile(image, DISPLAY_PERCENTILES))
    if high <= low:
        high = low + 1.0
    return low, high


class _ImagePanel:
    """One modality's plot: the image, its heatmap overlay and a 'no image' note."""

    def __init__(self, plot: pg.PlotItem, modality: str, colormap: pg.ColorMap) -> None:
        self.modality = modality
        self.plot = plot
        plot.setTitle(PANEL_TITLES[modality], size="14pt", color=TITLE_COLOR)
        for axis in ("left", "bottom"):
            plot.hideAxis(axis)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        self.viewbox: pg.ViewBox = plot.getViewBox()
        self.viewbox.setAspectLocked(True)
        self.viewbox.invertY(True)  # row 0 at the top, as the camera sees it
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat.setColorMap(colormap)
        self.heat.setZValue(10)
        self.heat.setVisible(False)
        self.missing = pg.TextItem("", color="#8a96a8", anchor=(0.5, 0.5))
        font = QFont()
        font.setPointSize(15)
        self.missing.setFont(font)
        for item in (self.image, self.heat, self.missing):
            plot.addItem(item)

    def show_image(self, array: np.ndarray | None, levels: tuple[float, float] | None) -> None:
        self.heat.setVisible(False)
        if array is None:
            self.image.clear()
            self.image.setVisible(False)
            return
        self.image.setVisible(True)
        self.image.setImage(array, autoLevels=False, levels=levels)
        self.missing.setText("")

    def show_missing(self, text: str, centre: QPointF) -> None:
        self.missing.setText(text)
        self.missing.setPos(centre)


class GliomaView(CaseView):
    """FL and WL images of one specimen (linked zoom/pan), FL window/level, Grad-CAM overlay controls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gliomaView")
        self._case: Case | None = None
        self._heatmaps: dict[tuple[str, str], np.ndarray] = {}  # (task, modality) -> map in [0, 1]
        self._calls: dict[tuple[str, str], str] = {}  # (task, modality) -> call, to explain a missing map
        self._fl_levels: tuple[float, float] | None = None
        self._shape: tuple[int, int] | None = None
        self._colormap = pg.colormap.get(HEATMAP_COLORMAP)

        self.heatmap_checkbox = QCheckBox("Grad-CAM (H)")
        self.heatmap_checkbox.setChecked(True)
        self.heatmap_checkbox.setToolTip("Show the Grad-CAM heatmap over both images")
        self.heatmap_combo = QComboBox()
        for title, task in HEATMAP_TASKS:
            self.heatmap_combo.addItem(title, task)
        self.heatmap_combo.setToolTip("Which model's Grad-CAM to overlay")
        self.opacity_slider, self.opacity_label = opacity_controls()
        self.legend = colormap_legend(self._colormap, HEATMAP_COLORMAP)
        fit_button = QPushButton("Fit (F)")
        fit_button.clicked.connect(self.fit)
        levels_button = QPushButton("Reset W/L")
        levels_button.setToolTip("Reset the fluorescence window/level to the automatic setting")
        levels_button.clicked.connect(self.reset_levels)

        controls = QHBoxLayout()
        controls.setSpacing(8)
        opacity_title = QLabel("Opacity")
        controls.addWidget(self.heatmap_checkbox)
        controls.addWidget(self.heatmap_combo)
        controls.addWidget(opacity_title)
        controls.addWidget(self.opacity_slider)
        controls.addWidget(self.opacity_label)
        controls.addStretch(1)
        controls.addWidget(fit_button)
        controls.addWidget(levels_button)

        self.note = QLabel("Grad-CAM appears after prediction (F5).")
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.note.setMinimumWidth(120)
        note_row = QHBoxLayout()
        note_row.setSpacing(6)
        note_row.addWidget(self.note, 1)
        low, high = QLabel("low"), QLabel("high")
        low.setObjectName("viewNote")
        high.setObjectName("viewNote")
        for widget in (low, self.legend, high):
            note_row.addWidget(widget)
        self.model_controls = [self.heatmap_checkbox, self.heatmap_combo, opacity_title, self.opacity_slider,
                               self.opacity_label, low, self.legend, high]

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(BACKGROUND)
        self.graphics.setAcceptDrops(False)  # files dropped on the images go to the main window
        self.fl_panel = _ImagePanel(self.graphics.addPlot(row=0, col=0), FL, self._colormap)
        self.wl_panel = _ImagePanel(self.graphics.addPlot(row=0, col=1), WL, self._colormap)
        self.wl_panel.plot.setXLink(self.fl_panel.plot)
        self.wl_panel.plot.setYLink(self.fl_panel.plot)
        self.fl_histogram = pg.HistogramLUTItem(image=self.fl_panel.image, orientation="horizontal")
        self.fl_histogram.setToolTip("FL window/level: drag the region or its edges (raw 16-bit counts)")
        self.fl_histogram.setMaximumHeight(110)
        self.graphics.addItem(self.fl_histogram, row=1, col=0)
        self.wl_caption = pg.LabelItem("", color="#8a96a8", size="11pt")
        self.graphics.addItem(self.wl_caption, row=1, col=1)
        self.graphics.ci.layout.setRowStretchFactor(0, 10)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(controls)
        layout.addLayout(note_row)
        layout.addWidget(self.graphics, 1)

        self.heatmap_checkbox.toggled.connect(self._update_overlays)
        self.heatmap_combo.currentIndexChanged.connect(self._update_overlays)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        self.set_opacity(0.45)

    # -- CaseView ---------------------------------------------------------------------------------

    def show_case(self, case: Case) -> None:
        self._case = case
        self._heatmaps.clear()
        self._calls.clear()
        images = case.images
        reference = images.get(FL) or images.get(WL)
        self._shape = reference.array.shape[:2] if reference is not None else None
        fl = images[FL].array if FL in images else None
        self._fl_levels = robust_levels(fl) if fl is not None else None
        self.fl_panel.show_image(fl, self._fl_levels)
        if self._fl_levels is not None:
            self.fl_histogram.setLevels(*self._fl_levels)
            low, high = self._fl_levels  # show the window and as much again above it, not every hot pixel
            self.fl_histogram.setHistogramRange(float(fl.min()), min(float(fl.max()), high + (high - low)))
        wl = images[WL].array if WL in images else None
        self.wl_panel.show_image(wl, (0, 255) if wl is not None and wl.dtype == np.uint8 else None)
        centre = QPointF(self._shape[1] / 2, self._shape[0] / 2) if self._shape else QPointF(0, 0)
        for panel, array in ((self.fl_panel, fl), (self.wl_panel, wl)):
            if array is None:
                panel.show_missing(f"No {panel.modality} image", centre)
        self.fl_histogram.setVisible(fl is not None)
        self.wl_caption.setText(self._wl_caption(case))
        self.note.setText("Grad-CAM appears after prediction (F5).")
        self.fit()

    def show_prediction(self, predictions: list[Prediction]) -> None:
        self._heatmaps.clear()
        self._calls.clear()
        for prediction in predictions:
            modalities = set()
            for key, heatmap in prediction.heatmaps.items():
                task, _, modality = key.partition("/")
                self._heatmaps[(task, modality)] = heatmap
                modalities.add(modality)
            modality = prediction.variant or next(iter(modalities), "")
            for task, call in prediction.calls.items():
                self._calls[(task, modality)] = call
        self._update_overlays()

    def clear(self) -> None:
        self._case = None
        self._shape = None
        self._heatmaps.clear()
        self._calls.clear()
        for panel in (self.fl_panel, self.wl_panel):
            panel.show_image(None, None)
            panel.show_missing("", QPointF(0, 0))

    def fit(self) -> None:
        if self._shape is not None:
            height, width = self._shape
            self.fl_panel.viewbox.setRange(QRectF(0, 0, width, height), padding=0.02)

    def reset_levels(self) -> None:
        if self._fl_levels is not None:
            self.fl_panel.image.setLevels(self._fl_levels)
            self.fl_histogram.setLevels(*self._fl_levels)

    # -- internals --------------------------------------------------------------------------------

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in (self.fl_panel, self.wl_panel):
            panel.heat.setOpacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _update_overlays(self) -> None:
        task = self.heatmap_combo.currentData()
        title = self.heatmap_combo.currentText()
        show = self.heatmap_checkbox.isChecked()
        notes = []
        for panel in (self.fl_panel, self.wl_panel):
            heatmap = self._heatmaps.get((task, panel.modality))
            if heatmap is None or self._shape is None:
                panel.heat.setVisible(False)
                call = self._calls.get((task, panel.modality))
                if call and self._heatmaps:
                    notes.append(f"{panel.modality}: no {title} map ({call})")
                continue
            panel.heat.setImage(heatmap, autoLevels=False, levels=(0.0, 1.0))
            panel.heat.setRect(QRectF(0, 0, self._shape[1], self._shape[0]))
            panel.heat.setOpacity(self.opacity())
            panel.heat.setVisible(show)
        if not self._heatmaps:
            self.note.setText("Grad-CAM appears after prediction (F5).")
        elif not show:
            self.note.setText("Grad-CAM hidden (press H to show).")
        else:
            self.note.setText("   ·   ".join(notes) or f"Grad-CAM of the {title} model on each image.")

    @staticmethod
    def _wl_caption(case: Case) -> str:
        parts = []
        for modality in (FL, WL):
            if modality in case.images:
                meta = case.images[modality].meta
                array = case.images[modality].array
                parts.append(f"{modality}: {array.shape[1]}×{array.shape[0]} px, {meta.bit_depth}-bit {meta.units}")
        return "<br>".join(parts)

