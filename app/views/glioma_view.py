"""Glioma specimen view: NIR-II fluorescence and white light side by side, with Grad-CAM overlays."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app import theme
from app.views.base import CaseView, heatmap_controls, view_buttons
from app.widgets.flow_layout import FlowLayout
from app.widgets.image_panel import ImagePanel
from app.widgets.view_link import PanelGrid, link_views
from engine.cases.model import FL, WL, Case
from engine.data import Prediction

HEATMAP_TASKS = (("Tumor", "tumor"), ("Grade", "grade"), ("Ki-67", "ki67"))
PANEL_TITLES = {FL: "NIR-II fluorescence (FL)", WL: "White light (WL)"}
NOTE_BEFORE_PREDICTION = "Grad-CAM appears after prediction (F5)."


class GliomaView(CaseView):
    """FL and WL images of one specimen (linked zoom/pan), FL window/level, Grad-CAM overlay controls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gliomaView")
        self._case: Case | None = None
        self._heatmaps: dict[tuple[str, str], np.ndarray] = {}  # (task, modality) -> map in [0, 1]
        self._calls: dict[tuple[str, str], str] = {}  # (task, modality) -> call, to explain a missing map

        self.heatmap_checkbox = QCheckBox("Grad-CAM (H)")
        self.heatmap_checkbox.setChecked(True)
        self.heatmap_checkbox.setToolTip("Show the Grad-CAM heatmap over both images")
        self.heatmap_combo = QComboBox()
        for title, task in HEATMAP_TASKS:
            self.heatmap_combo.addItem(title, task)
        self.heatmap_combo.setToolTip("Which model's Grad-CAM to overlay")
        opacity_title, self.opacity_slider, self.opacity_label, legend = heatmap_controls(theme.HEAT_COLORMAP)
        self.legend = legend[1]
        controls = FlowLayout()  # wraps on narrow screens (1366 px beside both docks)
        for widget in (self.heatmap_checkbox, self.heatmap_combo, opacity_title, self.opacity_slider,
                       self.opacity_label):
            controls.addWidget(widget)
        for button in view_buttons(self, "Reset the fluorescence window/level to the automatic setting"):
            controls.addWidget(button)

        self.note = QLabel(NOTE_BEFORE_PREDICTION)
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.note.setMinimumWidth(120)
        note_row = QHBoxLayout()
        note_row.setSpacing(6)
        note_row.addWidget(self.note, 1)
        for widget in legend:
            note_row.addWidget(widget)
        self.model_controls = [self.heatmap_checkbox, self.heatmap_combo, opacity_title, self.opacity_slider,
                               self.opacity_label, *legend]

        self.fl_panel = ImagePanel(PANEL_TITLES[FL])
        self.wl_panel = ImagePanel(PANEL_TITLES[WL])
        self.panels = {FL: self.fl_panel, WL: self.wl_panel}
        link_views(self.fl_panel, self.wl_panel)
        self.fl_histogram = self.fl_panel.histogram_widget("FL window/level: drag the region or its edges "
                                                           "(raw 16-bit counts)")
        self.wl_caption = QLabel("")
        self.wl_caption.setObjectName("smallPrint")
        footer = QHBoxLayout()
        footer.addWidget(self.fl_histogram, 1)
        footer.addWidget(self.wl_caption, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(controls)
        layout.addLayout(note_row)
        layout.addWidget(PanelGrid([[self.fl_panel, self.wl_panel]]), 1)
        layout.addLayout(footer)

        self.heatmap_checkbox.toggled.connect(self._update_overlays)
        self.heatmap_combo.currentIndexChanged.connect(self._update_overlays)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        self.set_opacity(0.45)

    # -- CaseView ---------------------------------------------------------------------------------

    def show_case(self, case: Case) -> None:
        self._case = case
        self._heatmaps.clear()
        self._calls.clear()
        reference = case.images.get(FL) or case.images.get(WL)
        shape = reference.array.shape[:2] if reference is not None else None
        for modality, panel in self.panels.items():
            panel.set_image(case.images.get(modality))
            panel.set_missing("" if modality in case.images else f"No {modality} image", shape)
        self.wl_caption.setText(self._caption(case))
        self.note.setText(NOTE_BEFORE_PREDICTION)
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
        self._heatmaps.clear()
        self._calls.clear()
        for panel in self.panels.values():
            panel.clear()

    def fit(self) -> None:
        self.fl_panel.fit()

    def reset_levels(self) -> None:
        self.fl_panel.reset_levels()

    # -- internals --------------------------------------------------------------------------------

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in self.panels.values():
            panel.set_heat_opacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _update_overlays(self) -> None:
        task = self.heatmap_combo.currentData()
        title = self.heatmap_combo.currentText()
        show = self.heatmap_checkbox.isChecked()
        notes = []
        for modality, panel in self.panels.items():
            heatmap = self._heatmaps.get((task, modality))
            panel.set_heat(heatmap if panel.has_image else None, visible=show)
            call = self._calls.get((task, modality))
            if heatmap is None and call and self._heatmaps:
                notes.append(f"{modality}: no {title} map ({call})")
        if not self._heatmaps:
            self.note.setText(NOTE_BEFORE_PREDICTION)
        elif not show:
            self.note.setText("Grad-CAM hidden (press H to show).")
        else:
            self.note.setText("   ·   ".join(notes) or f"Grad-CAM of the {title} model on each image.")

    @staticmethod
    def _caption(case: Case) -> str:
        parts = []
        for modality in (FL, WL):
            if modality in case.images:
                meta = case.images[modality].meta
                array = case.images[modality].array
                parts.append(f"{modality}: {array.shape[1]}×{array.shape[0]} px, {meta.bit_depth}-bit {meta.units}")
        return "<br>".join(parts)
