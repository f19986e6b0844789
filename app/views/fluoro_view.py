"""Fluorescence segmentation view: one NIR frame with window/level, the predicted tumor contour (yellow)
and the ground-truth contour (green) as in the paper's figures, the method choice (the installed nets
and DRLSE), Dice / HD / FPSR / FNSR when truth exists, and export of the mask and contours."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.views.base import CaseView, heatmap_controls, view_buttons
from app.widgets.contour_drawing import ContourDrawing
from app.widgets.flow_layout import FlowLayout
from app.widgets.image_panel import ImagePanel
from app.workers import submit
from engine.cases.kinds import Method
from engine.cases.model import Case
from engine.data import Prediction
from engine.metrics.segmentation import segmentation_metrics
from engine.predict.fluoro import MODALITY, STRUCTURE, method_label
from engine.seg.contours import (
    Contour,
    export_contours_csv,
    export_contours_json,
    mask_to_contours,
    net_area,
    region_count,
)

PREDICTION_COLOR = theme.PREDICTION  # yellow, as in the paper's figures
TRUTH_COLOR = theme.TRUTH  # green
PREDICTION, TRUTH = "prediction", "truth"  # the panel's contour layers


def _spacing_of(case: Case) -> tuple[float, float] | None:
    spacing = case.images[MODALITY].meta.spacing
    return tuple(spacing) if spacing else None


def _truth_source(case: Case):
    """The case's own truth mask array (any dtype), or None."""
    return case.truth.masks.get(STRUCTURE) if case.truth is not None else None


def _truth_mask(case: Case) -> np.ndarray | None:
    truth = _truth_source(case)
    return None if truth is None else np.asarray(truth).astype(bool)


def _segmentation(predictions: list[Prediction]) -> Prediction | None:
    return next((p for p in predictions if STRUCTURE in p.masks), None)


def overlay_of(prediction: Prediction, truth: np.ndarray | None, spacing) -> tuple[list[Contour], dict[str, float]]:
    """The prediction's contours (of the probability map at the threshold, else of the mask) and, with truth,
    Dice / HD / HD95 / FPSR / FNSR (HD also in mm when the spacing is known)."""
    mask = np.asarray(prediction.masks[STRUCTURE]).astype(bool)
    probability = prediction.heatmaps.get(f"{STRUCTURE}/{MODALITY}")
    source = mask if probability is None else probability
    contours = mask_to_contours(source, spacing, threshold=prediction.thresholds.get(STRUCTURE, 0.5))
    if truth is None or truth.shape != mask.shape:
        return contours, {}
    metrics = segmentation_metrics(mask, truth)
    if spacing:
        in_mm = segmentation_metrics(mask, truth, spacing)
        metrics.update(hausdorff_mm=in_mm["hausdorff"], hd95_mm=in_mm["hd95"])
    return contours, metrics


@dataclass
class PreparedFrame:
    """Contours and metrics computed on a worker thread (`FluoroView.prepare`). Each result keeps the very
    array it was computed from, and the view uses it only when shown that same array (`is`)."""

    truth_source: object = None  # the case's truth mask array
    truth: np.ndarray | None = None
    truth_contours: list[Contour] = field(default_factory=list)
    overlays: list[tuple[object, list[Contour], dict[str, float]]] = field(default_factory=list)  # (mask, ...)

    def overlay_for(self, prediction: Prediction) -> tuple[list[Contour], dict[str, float]] | None:
        mask = prediction.masks[STRUCTURE]
        return next(((c, m) for source, c, m in self.overlays if source is mask), None)


class FluoroView(CaseView):
    """One NIR frame; the method combo asks the main window to segment again with another method."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fluoroView")
        self._case: Case | None = None
        self._shape: tuple[int, int] | None = None
        self._spacing: tuple[float, float] | None = None
        self.truth_mask: np.ndarray | None = None
        self.pred_mask: np.ndarray | None = None
        self.pred_contours: list[Contour] = []
        self.truth_contours: list[Contour] = []
        self.metrics: dict[str, float] = {}
        self._model = ""
        self._probability: np.ndarray | None = None
        self._prepared: PreparedFrame | None = None
        self._truth_source: object = None  # the shown case's truth mask array, to match prepared results

        self.method_combo = QComboBox()
        self.method_combo.setToolTip("Segmentation method: a trained network or the DRLSE level set (baseline)")
        self.pred_checkbox = QCheckBox("Prediction (yellow)")
        self.truth_checkbox = QCheckBox("Truth (green)")
        self.heatmap_checkbox = QCheckBox("Probability (H)")
        for box in (self.pred_checkbox, self.truth_checkbox):
            box.setChecked(True)
        self.heatmap_checkbox.setChecked(False)
        self.heatmap_checkbox.setToolTip("Overlay the network's tumor probability map")
        _title, self.opacity_slider, self.opacity_label, legend = heatmap_controls(theme.PROBABILITY_COLORMAP,
                                                                                   "Probability")
        self.legend = legend[1]
        self.legend.setToolTip("Tumor probability: 0 to 1")
        self.export_mask_button = QPushButton("Export mask…")
        self.export_mask_button.setToolTip("Save the predicted tumor mask as a PNG (tumor = 255)")
        self.export_contours_button = QPushButton("Export contours…")
        self.export_contours_button.setToolTip("Save the predicted contours as JSON or CSV (pixels and mm)")
        for button in (self.export_mask_button, self.export_contours_button):
            button.setEnabled(False)

        # Two rows of controls, so that the view fits a 1920-pixel screen beside both docks: what is drawn and how
        # to look at it; then the probability overlay and the exports.
        method_title = QLabel("Method")
        controls = FlowLayout()  # each row wraps where the screen is narrower (1366 px beside both docks)
        for widget in (method_title, self.method_combo, self.pred_checkbox, self.truth_checkbox):
            controls.addWidget(widget)
        for button in view_buttons(self):
            controls.addWidget(button)
        overlay = FlowLayout()
        for widget in (self.heatmap_checkbox, self.opacity_slider, self.opacity_label, self.legend):
            overlay.addWidget(widget)
        overlay.addWidget(self.export_mask_button)
        overlay.addWidget(self.export_contours_button)
        self.model_controls = [method_title, self.method_combo, self.pred_checkbox, self.heatmap_checkbox,
                               self.opacity_slider, self.opacity_label, self.legend, self.export_mask_button,
                               self.export_contours_button]

        self.note = QLabel("The tumor contour appears after prediction (F5).")
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.metrics_label = QLabel("")
        self.metrics_label.setObjectName("segMetrics")
        self.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.metrics_label.setWordWrap(True)

        self.panel = ImagePanel("NIR fluorescence", heat_colormap_name=theme.PROBABILITY_COLORMAP)
        self.graphics, self.plot, self.viewbox = self.panel.graphics, self.panel.plot, self.panel.viewbox
        self.image, self.heat = self.panel.image, self.panel.heat
        self.truth_layer = self.panel.contour_layer(TRUTH, color=TRUTH_COLOR, z=20)
        self.pred_layer = self.panel.contour_layer(PREDICTION, color=PREDICTION_COLOR, z=21)
        self.drawing = ContourDrawing(self.plot, self)  # reader studies that ask for an outline
        self.histogram = self.panel.histogram_widget("Window/level: drag the region or its edges (raw counts)")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(controls)
        layout.addLayout(overlay)
        layout.addWidget(self.note)
        layout.addWidget(self.metrics_label)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.histogram)

        self.pred_checkbox.toggled.connect(self.pred_layer.set_visible)
        self.truth_checkbox.toggled.connect(self.truth_layer.set_visible)
        self.heatmap_checkbox.toggled.connect(self.panel.set_heat_visible)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        self.method_combo.currentIndexChanged.connect(self._method_picked)
        self.export_mask_button.clicked.connect(self._ask_export_mask)
        self.export_contours_button.clicked.connect(self._ask_export_contours)
        self.set_opacity(0.4)

    # -- methods ----------------------------------------------------------------------------------

    def set_methods(self, methods: list[Method], current: str | None) -> None:
        """Offer these methods (from the kind: installed nets, then DRLSE) with `current` selected; no signal."""
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for method in methods:
            self.method_combo.addItem(method.label, method.id)
        index = self.method_combo.findData(current)
        self.method_combo.setCurrentIndex(max(index, 0))
        self.method_combo.blockSignals(False)

    def method(self) -> str:
        return self.method_combo.currentData() or ""

    def set_method(self, method: str) -> None:
        index = self.method_combo.findData(method)
        if index < 0:
            raise ValueError(f"Segmentation method {method!r} is not available here.")
        self.method_combo.setCurrentIndex(index)

    def _method_picked(self, _index: int) -> None:
        if self.method():
            self.method_changed.emit(self.method())

    # -- CaseView ---------------------------------------------------------------------------------

    @staticmethod
    def prepare(case: Case, predictions: list[Prediction]) -> PreparedFrame | None:
        """Worker thread: the truth contours and the segmentation's contours and metrics (about 0.5 s for a
        1024 x 1024 frame), so that showing them does not stall the window."""
        if MODALITY not in case.images:
            return None
        spacing = _spacing_of(case)
        truth = _truth_mask(case)
        prepared = PreparedFrame(_truth_source(case), truth, [] if truth is None else mask_to_contours(truth, spacing))
        prediction = _segmentation(predictions)
        if prediction is not None:
            prepared.overlays.append((prediction.masks[STRUCTURE], *overlay_of(prediction, truth, spacing)))
        return prepared

    def use_prepared(self, prepared: PreparedFrame | None) -> None:
        self._prepared = prepared

    def show_case(self, case: Case) -> None:
        self._case = case
        image = case.images[MODALITY]
        frame = image if image.array.ndim == 2 else image.array.mean(axis=2)  # a colour video grab: its grey
        self.panel.set_image(frame)
        self._shape = self.panel.plane_shape
        self._spacing = tuple(image.meta.spacing) if image.meta.spacing else None
        prepared = self._prepared
        self._truth_source = truth = _truth_source(case)
        if prepared is not None and truth is not None and prepared.truth_source is truth:
            self.truth_mask, self.truth_contours = prepared.truth, prepared.truth_contours
        else:
            self.truth_mask = _truth_mask(case)
            self.truth_contours = [] if self.truth_mask is None else mask_to_contours(self.truth_mask, self._spacing)
        self.panel.set_contours(TRUTH, self.truth_contours)
        self.truth_checkbox.setVisible(self.truth_mask is not None)  # nothing to toggle (or, reading: blinded)
        self._clear_prediction()
        self.set_drawing(False)
        self.panel.set_title(f"NIR fluorescence · {self._shape[1]}×{self._shape[0]} px")
        self.note.setText("The tumor contour appears after prediction (F5)."
                          + ("" if self.truth_mask is not None else " This frame has no ground truth."))
        self.fit()

    def show_prediction(self, predictions: list[Prediction]) -> None:
        prediction = _segmentation(predictions)
        if prediction is None or self._shape is None:
            return
        mask = np.asarray(prediction.masks[STRUCTURE]).astype(bool)
        if mask.shape != self._shape:
            self.note.setText(f"The prediction's mask is {mask.shape[1]}×{mask.shape[0]}, the frame "
                              f"{self._shape[1]}×{self._shape[0]}: not drawn.")
            return
        self.pred_mask = mask
        self._model = prediction.model
        ready = None if self._prepared is None else self._prepared.overlay_for(prediction)
        if ready is not None and self._prepared.truth_source is self._truth_source:
            self.pred_contours, metrics = ready
        else:
            self.pred_contours, metrics = overlay_of(prediction, self.truth_mask, self._spacing)
        self.panel.set_contours(PREDICTION, self.pred_contours)
        self._probability = prediction.heatmaps.get(f"{STRUCTURE}/{MODALITY}")
        self.heatmap_checkbox.setEnabled(self._probability is not None)
        self.panel.set_heat(self._probability, visible=self.heatmap_checkbox.isChecked())
        for button in (self.export_mask_button, self.export_contours_button):
            button.setEnabled(True)
        self.metrics = dict(metrics)
        self.metrics_label.setText(self._metrics_text(prediction))
        self.note.setText(f"{method_label(prediction.variant)}: yellow = prediction"
                          + (", green = ground truth." if self.truth_mask is not None else "."))

    def clear(self) -> None:
        self._case = None
        self._shape = None
        self._prepared = self._truth_source = None
        self.panel.clear()
        self.truth_mask = None
        self.truth_contours = []
        self._clear_prediction()
        self.set_drawing(False)

    def set_drawing(self, enabled: bool, polygons=None) -> None:
        """Let the reader outline the tumor on the frame (reader studies with contours), showing `polygons`."""
        self.drawing.set_enabled(enabled and self._shape is not None, self._shape)
        self.drawing.set_polygons(polygons if enabled else None)
        if enabled and self._shape is not None:
            self.note.setText("Outline the tumor: click points around it, double-click or Space to close the "
                              "outline; Backspace removes the last point, Delete clears. Draw nothing if there is "
                              "no tumor.")

    def fit(self) -> None:
        self.panel.fit()

    def reset_levels(self) -> None:
        self.panel.reset_levels()

    # -- export -----------------------------------------------------------------------------------

    def export_mask(self, path: str | Path) -> Path:
        """The predicted mask as an 8-bit PNG (tumor 255, background 0) at the frame's resolution."""
        if self.pred_mask is None:
            raise ValueError("Nothing to export: segment the frame first (F5).")
        return _write_mask_png(self.pred_mask, Path(path))

    def export_contours(self, path: str | Path) -> Path:
        """The predicted contours as JSON (with shape, spacing, method) or CSV, chosen by the suffix."""
        if self.pred_mask is None:
            raise ValueError("Nothing to export: segment the frame first (F5).")
        return _write_contours(self.pred_contours, Path(path), self._shape, self._spacing, self._export_extra())

    def _export_extra(self) -> dict:
        metrics = {k: (float(v) if np.isfinite(v) else None) for k, v in self.metrics.items()}  # strict JSON
        return {"case": self._case.id if self._case else None, "model": self._model, "metrics": metrics}

    def _ask_export_mask(self) -> None:
        name = f"{self._case.id if self._case else 'frame'}_mask.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export tumor mask", name, "PNG image (*.png)")
        if path and self.pred_mask is not None:
            self._export(_write_mask_png, self.pred_mask.copy(), Path(path))

    def _ask_export_contours(self) -> None:
        name = f"{self._case.id if self._case else 'frame'}_contours.json"
        path, _ = QFileDialog.getSaveFileName(self, "Export contours", name, "JSON (*.json);;CSV (*.csv)")
        if path and self.pred_mask is not None:
            self._export(_write_contours, list(self.pred_contours), Path(path), self._shape, self._spacing,
                         self._export_extra())

    def _export(self, write, *args) -> None:
        """Write on a worker (the GUI thread touches no disk); the note says where, a box says why not."""
        def failed(exc: BaseException, _tb: str) -> None:
            QMessageBox.warning(self, "Export failed", str(exc))

        submit(write, *args, description="Export", context=self,
               on_result=lambda written: self.note.setText(f"Saved {written}"), on_error=failed)

    # -- internals --------------------------------------------------------------------------------

    def _clear_prediction(self) -> None:
        self.pred_mask = None
        self.pred_contours = []
        self.metrics = {}
        self._probability = None
        self._model = ""
        self.panel.set_contours(PREDICTION, [])
        self.panel.set_heat(None)
        self.heatmap_checkbox.setEnabled(False)
        self.metrics_label.setText("")
        for button in (self.export_mask_button, self.export_contours_button):
            button.setEnabled(False)

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        self.panel.set_heat_opacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _metrics_text(self, prediction: Prediction) -> str:
        assert self.pred_mask is not None
        parts = [f"Area {int(self.pred_mask.sum())} px"]
        if self._spacing and self.pred_contours:
            parts[0] += f" ({net_area(self.pred_contours, mm=True):.1f} mm²)"
        parts.append(f"{region_count(self.pred_mask)} region(s)")
        if self.metrics:
            m = self.metrics
            hd = "n/a (one mask empty)" if not np.isfinite(m["hausdorff"]) else f"{m['hausdorff']:.1f} px"
            if "hausdorff_mm" in m and np.isfinite(m["hausdorff_mm"]):
                hd += f" ({m['hausdorff_mm']:.2f} mm)"
            parts += [f"Dice {m['dice']:.3f}", f"HD {hd}", f"FPSR {m['fpsr']:.3f}", f"FNSR {m['fnsr']:.3f}"]
        total = prediction.timings_ms.get("total")
        if total is not None:
            parts.append(f"{total:.0f} ms")
        return "   ·   ".join(parts)


def _write_mask_png(mask: np.ndarray, path: Path) -> Path:
    """An 8-bit PNG of a mask (tumor 255, background 0) at the frame's resolution."""
    import cv2

    path = path.with_suffix(".png")
    if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
        raise OSError(f"Could not write {path}.")
    return path


def _write_contours(contours: list[Contour], path: Path, shape, spacing, extra: dict) -> Path:
    if path.suffix.lower() == ".csv":
        return export_contours_csv(contours, path, spacing=spacing)
    return export_contours_json(contours, path.with_suffix(".json"), shape=shape, spacing=spacing, extra=extra)
