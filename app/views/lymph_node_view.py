"""Lymph-node view (MFI-FFP): WLI, FI and PCI of one excised node with linked zoom/pan, per-branch Grad-CAM,
and the fusion-layer Grad-CAM drawn on the white-light image as in Fig. 5 of Zhu et al. (IEEE TMI 2024)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.views.base import CaseView, colormap_legend, opacity_controls
from app.views.glioma_view import BACKGROUND, HEATMAP_COLORMAP, TITLE_COLOR, robust_levels
from app.widgets.results_panel import NEGATIVE_COLOR, POSITIVE_COLOR
from engine.cases.model import Case
from engine.data import Prediction
from engine.kinds.lymph_node import FI, NODE_MODALITIES, NODE_MODALITY_TITLES, PCI, WLI

FUSION = "fusion"  # heatmap key of the fusion-layer Grad-CAM ('<label>/fusion')
TASK = "metastatic"
MISSING_COLOR = "#8a96a8"
FUSION_BASES = (WLI, PCI, FI)  # the fusion map is drawn on WLI (paper, Fig. 5), else on what the node has
NOTE_BEFORE_PREDICTION = "Grad-CAM appears after prediction (F5)."


def fading_colormap(colormap: pg.ColorMap, ramp: float = 0.35) -> pg.ColorMap:
    """The colour map with alpha rising from 0 to opaque over the lowest `ramp` of the scale, so weak
    Grad-CAM evidence leaves the image visible and the map's extent (the node crop) leaves no hard edge."""
    positions = np.linspace(0.0, 1.0, 256)
    lut = colormap.getLookupTable(0.0, 1.0, nPts=256, alpha=True).astype(np.float64)
    lut[:, 3] = 255 * np.clip(positions / ramp, 0.0, 1.0)
    return pg.ColorMap(positions, lut.astype(np.ubyte))


class _NodePanel:
    """One plot of the 2×2 grid: an image, its Grad-CAM overlay and a 'not available' note."""

    def __init__(self, plot: pg.PlotItem, key: str, colormap: pg.ColorMap) -> None:
        self.key = key
        self.plot = plot
        for axis in ("left", "bottom"):
            plot.hideAxis(axis)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        # The same size hints for every plot, whatever its title, so the four views get the same size and,
        # with linked ranges and locked aspect, show exactly the same part of the node.
        plot.setMinimumSize(120, 120)
        plot.setPreferredSize(240, 240)
        plot.titleLabel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.viewbox: pg.ViewBox = plot.getViewBox()
        self.viewbox.setAspectLocked(True)
        self.viewbox.invertY(True)  # row 0 at the top, as the camera sees it
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.heat.setColorMap(colormap)
        self.heat.setZValue(10)
        self.heat.setVisible(False)
        self.missing = pg.TextItem("", color=MISSING_COLOR, anchor=(0.5, 0.5))
        font = QFont()
        font.setPointSize(14)
        self.missing.setFont(font)
        self.missing.setZValue(20)
        for item in (self.image, self.heat, self.missing):
            plot.addItem(item)
        self.title = ""

    def set_title(self, text: str, available: bool = True) -> None:
        self.title = text
        self.plot.setTitle(text, size="13pt", color=TITLE_COLOR if available else MISSING_COLOR)

    def show_image(self, array: np.ndarray | None, levels: tuple[float, float] | None) -> None:
        self.heat.setVisible(False)
        if array is None:
            self.image.clear()
            self.image.setVisible(False)
            return
        self.image.setVisible(True)
        self.image.setImage(array, autoLevels=False, levels=levels)

    def show_missing(self, text: str, centre: QPointF) -> None:
        self.missing.setText(text)
        self.missing.setPos(centre)

    def show_heatmap(self, heatmap: np.ndarray | None, shape: tuple[int, int] | None, visible: bool,
                     opacity: float) -> bool:
        """Overlay `heatmap` ([0, 1]) stretched over the image; False when there is none to show."""
        if heatmap is None or shape is None:
            self.heat.setVisible(False)
            return False
        self.heat.setImage(heatmap, autoLevels=False, levels=(0.0, 1.0))
        self.heat.setRect(QRectF(0, 0, shape[1], shape[0]))
        self.heat.setOpacity(opacity)
        self.heat.setVisible(visible)
        return True


class LymphNodeView(CaseView):
    """WLI, FI, PCI and the fusion map in a 2×2 grid, all zoomed and panned together; FI window/level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lymphNodeView")
        self._case: Case | None = None
        self._shape: tuple[int, int] | None = None
        self._fi_levels: tuple[float, float] | None = None
        self._heatmaps: dict[str, np.ndarray] = {}  # WLI / FI / PCI / fusion -> map in [0, 1]
        self._prediction: Prediction | None = None
        self._fusion_base: str | None = None
        self._colormap = fading_colormap(pg.colormap.get(HEATMAP_COLORMAP))

        self.heatmap_checkbox = QCheckBox("Grad-CAM (H)")
        self.heatmap_checkbox.setChecked(True)
        self.heatmap_checkbox.setToolTip("Show each branch's Grad-CAM on its image and the fusion-layer map on WLI")
        self.opacity_slider, self.opacity_label = opacity_controls()
        self.legend = colormap_legend(self._colormap, HEATMAP_COLORMAP)
        fit_button = QPushButton("Fit (F)")
        fit_button.setToolTip("Zoom all four images to show the whole node")
        fit_button.clicked.connect(self.fit)
        levels_button = QPushButton("Reset W/L")
        levels_button.setToolTip("Reset the FI window/level to the automatic setting")
        levels_button.clicked.connect(self.reset_levels)

        controls = QHBoxLayout()
        controls.setSpacing(8)
        opacity_title = QLabel("Opacity")
        controls.addWidget(self.heatmap_checkbox)
        controls.addWidget(opacity_title)
        controls.addWidget(self.opacity_slider)
        controls.addWidget(self.opacity_label)
        low, high = QLabel("low"), QLabel("high")
        low.setObjectName("viewNote")
        high.setObjectName("viewNote")
        for widget in (low, self.legend, high):
            controls.addWidget(widget)
        self.model_controls = [self.heatmap_checkbox, opacity_title, self.opacity_slider, self.opacity_label, low,
                               self.legend, high]
        controls.addStretch(1)
        controls.addWidget(fit_button)
        controls.addWidget(levels_button)

        self.result_label = QLabel("")
        self.result_label.setObjectName("nodeResult")
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setWordWrap(True)
        self.note = QLabel(NOTE_BEFORE_PREDICTION)
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(BACKGROUND)
        self.graphics.setAcceptDrops(False)  # files dropped on the images go to the main window
        grid = {WLI: (0, 0), FI: (0, 1), PCI: (1, 0), FUSION: (1, 1)}
        self.panels: dict[str, _NodePanel] = {
            key: _NodePanel(self.graphics.addPlot(row=row, col=col), key, self._colormap)
            for key, (row, col) in grid.items()
        }
        master = self.panels[WLI].plot
        for key, panel in self.panels.items():
            if key != WLI:
                panel.plot.setXLink(master)
                panel.plot.setYLink(master)
        self.fi_histogram = pg.HistogramLUTItem(image=self.panels[FI].image, orientation="horizontal")
        self.fi_histogram.setToolTip("FI window/level: drag the region or its edges")
        self.fi_histogram.setMaximumHeight(90)
        self.caption = pg.LabelItem("", color=MISSING_COLOR, size="10pt", justify="left")
        footer = self.graphics.addLayout(row=2, col=0, colspan=2)  # its own columns: the plots stay equal in size
        footer.addItem(self.caption, row=0, col=0)
        footer.addItem(self.fi_histogram, row=0, col=1)
        footer.layout.setColumnStretchFactor(0, 1)
        footer.layout.setColumnStretchFactor(1, 1)
        layout_grid = self.graphics.ci.layout
        layout_grid.setRowStretchFactor(0, 10)
        layout_grid.setRowStretchFactor(1, 10)
        layout_grid.setRowStretchFactor(2, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.result_label)
        layout.addWidget(self.note)
        layout.addWidget(self.graphics, 1)

        self.heatmap_checkbox.toggled.connect(self._update_overlays)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        self.set_opacity(0.45)
        self.clear()

    # -- CaseView ---------------------------------------------------------------------------------

    def show_case(self, case: Case) -> None:
        self._case = case
        self._heatmaps.clear()
        self._prediction = None
        images = case.images
        present = [m for m in NODE_MODALITIES if m in images]
        self._shape = images[present[0]].array.shape[:2] if present else None
        centre = QPointF(self._shape[1] / 2, self._shape[0] / 2) if self._shape else QPointF(0, 0)
        fi = images[FI].array if FI in images else None
        self._fi_levels = robust_levels(fi) if fi is not None else None
        for modality in NODE_MODALITIES:
            panel = self.panels[modality]
            array = images[modality].array if modality in images else None
            levels = self._fi_levels if modality == FI else _rgb_levels(array)
            panel.show_image(array, levels)
            title = NODE_MODALITY_TITLES[modality]
            panel.set_title(title if array is not None else f"{title} — not available", array is not None)
            panel.show_missing("" if array is not None else f"No {modality} image\nfor this node", centre)
        self._fusion_base = next((m for m in FUSION_BASES if m in images), None)
        fusion = self.panels[FUSION]
        if self._fusion_base is None:
            fusion.show_image(None, None)
        else:
            base = images[self._fusion_base].array
            fusion.show_image(base, self._fi_levels if self._fusion_base == FI else _rgb_levels(base))
        fusion.set_title(f"Fusion-layer Grad-CAM on {self._fusion_base or 'WLI'}", self._fusion_base is not None)
        fusion.show_missing("", centre)
        if fi is not None:
            self.fi_histogram.setLevels(*self._fi_levels)
            low, high = self._fi_levels  # the window and as much again above it, not every hot pixel
            self.fi_histogram.setHistogramRange(float(fi.min()), min(float(fi.max()), high + (high - low)))
        self.fi_histogram.setVisible(fi is not None)
        self.caption.setText(self._caption(case))
        self.result_label.setText(self._missing_text(present))
        self.note.setText(NOTE_BEFORE_PREDICTION)
        self.fit()

    def show_prediction(self, predictions: list[Prediction]) -> None:
        self._heatmaps.clear()
        node = [p for p in predictions if TASK in p.probabilities or TASK in p.calls]
        self._prediction = node[0] if node else None  # the service lists the model with most modes first
        if self._prediction is not None:
            for key, heatmap in self._prediction.heatmaps.items():
                task, _, panel = key.partition("/")
                if task == TASK and panel in self.panels:
                    self._heatmaps[panel] = heatmap
        self.result_label.setText(self._result_text())
        self._update_overlays()

    def clear(self) -> None:
        self._case = None
        self._shape = None
        self._heatmaps.clear()
        self._prediction = None
        for key, panel in self.panels.items():
            panel.show_image(None, None)
            panel.show_missing("", QPointF(0, 0))
            panel.set_title(NODE_MODALITY_TITLES.get(key, "Fusion-layer Grad-CAM on WLI"))
        self.result_label.setText("")
        self.caption.setText("")

    def fit(self) -> None:
        if self._shape is not None:
            height, width = self._shape
            self.panels[WLI].viewbox.setRange(QRectF(0, 0, width, height), padding=0.02)

    def reset_levels(self) -> None:
        if self._fi_levels is not None:
            self.panels[FI].image.setLevels(self._fi_levels)
            self.fi_histogram.setLevels(*self._fi_levels)
            if self._fusion_base == FI:
                self.panels[FUSION].image.setLevels(self._fi_levels)

    # -- queries for tests and the window -----------------------------------------------------------

    def missing_modalities(self) -> list[str]:
        return [m for m in NODE_MODALITIES if self._case is not None and m not in self._case.images]

    # -- internals --------------------------------------------------------------------------------

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in self.panels.values():
            panel.heat.setOpacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _update_overlays(self) -> None:
        show = self.heatmap_checkbox.isChecked()
        shown = [key for key, panel in self.panels.items()
                 if panel.show_heatmap(self._heatmaps.get(key), self._shape, show, self.opacity())]
        fusion = self.panels[FUSION]
        if self._prediction is not None and FUSION not in self._heatmaps and self._fusion_base is not None:
            single = len([m for m in self._prediction.variant.split("+") if m]) == 1
            fusion.show_missing("No fusion layer\n(uni-modal model)" if single else "No fusion map", self._centre())
        else:
            fusion.show_missing("", self._centre())
        if self._prediction is None:
            self.note.setText(NOTE_BEFORE_PREDICTION)
        elif not self._heatmaps:
            self.note.setText("This result was read back from the store without its Grad-CAM maps; "
                              "press F5 to compute them again.")
        elif not show:
            self.note.setText("Grad-CAM hidden (press H to show).")
        else:
            branches = [k for k in shown if k != FUSION]
            text = f"Grad-CAM of the {'/'.join(branches)} branch{'es' if len(branches) > 1 else ''}"
            if FUSION in shown:
                text += f"; fusion layer on {self._fusion_base}"
            self.note.setText(text + ".")

    def _centre(self) -> QPointF:
        return QPointF(self._shape[1] / 2, self._shape[0] / 2) if self._shape else QPointF(0, 0)

    def _missing_text(self, present: list[str]) -> str:
        missing = [m for m in NODE_MODALITIES if m not in present]
        if not missing:
            return ""
        model = "+".join(present) or "none"
        kind = {1: "uni-modal", 2: "bi-modal"}.get(len(present), "")
        return (f"<span style='color:#ffb347'>{' and '.join(missing)} not available</span> "
                f"<span style='color:#9aa5b4'>— the {kind} MFI-FFP model ({model}) is used.</span>")

    def _result_text(self) -> str:
        prediction = self._prediction
        present = [m for m in NODE_MODALITIES if self._case is not None and m in self._case.images]
        missing = self._missing_text(present)
        if prediction is None:
            return missing
        probability = prediction.probabilities.get(TASK)
        threshold = prediction.thresholds.get(TASK)
        call = prediction.calls.get(TASK, "—")
        positive = probability is not None and threshold is not None and probability >= threshold
        color = (POSITIVE_COLOR if positive else NEGATIVE_COLOR).name()
        modes = prediction.variant or prediction.model
        parts = [f"<span style='font-size:14pt'><b>P(metastatic) "
                 f"{'—' if probability is None else f'{100 * probability:.1f} %'}</b></span>"]
        if threshold is not None:
            parts.append(f"threshold {100 * threshold:.0f} %")
        parts.append(f"call <b style='color:{color}'>{call}</b>")
        parts.append(f"<span style='color:#9aa5b4'>MFI-FFP {modes}</span>")
        text = " &nbsp;·&nbsp; ".join(parts)
        return f"{text}<br>{missing}" if missing else text

    @staticmethod
    def _caption(case: Case) -> str:
        parts = []
        for modality in NODE_MODALITIES:
            if modality in case.images:
                image = case.images[modality]
                h, w = image.array.shape[:2]
                parts.append(f"{modality}: {w}×{h} px, {image.meta.bit_depth}-bit {image.meta.units}")
        if FI in case.images:
            parts.append("FI window/level: drag the region on the right")
        return "<br>".join(parts)



def _rgb_levels(array: np.ndarray | None) -> tuple[float, float] | None:
    """RGB shows as stored: 0-255 for 8-bit, the full range of other integer types."""
    if array is None:
        return None
    if np.issubdtype(array.dtype, np.integer):
        return 0.0, float(np.iinfo(array.dtype).max)
    return float(array.min()), float(array.max())
