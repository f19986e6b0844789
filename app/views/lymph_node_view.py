"""Lymph-node view (MFI-FFP): WLI, FI and PCI of one excised node with linked zoom/pan, per-branch Grad-CAM,
and the fusion-layer Grad-CAM drawn on the white-light image as in Fig. 5 of Zhu et al. (IEEE TMI 2024)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app import theme
from app.views.base import CaseView, heatmap_controls, view_buttons
from app.widgets.flow_layout import FlowLayout
from app.widgets.image_panel import ImagePanel
from app.widgets.view_link import PanelGrid, link_views
from engine.cases.model import Case
from engine.data import Prediction
from engine.kinds.lymph_node import FI, NODE_MODALITIES, NODE_MODALITY_TITLES, PCI, WLI

FUSION = "fusion"  # heatmap key of the fusion-layer Grad-CAM ('<label>/fusion')
TASK = "metastatic"
FUSION_BASES = (WLI, PCI, FI)  # the fusion map is drawn on WLI (paper, Fig. 5), else on what the node has
NOTE_BEFORE_PREDICTION = "Grad-CAM appears after prediction (F5)."


class LymphNodeView(CaseView):
    """WLI, FI, PCI and the fusion map in a 2×2 grid, all zoomed and panned together; FI window/level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lymphNodeView")
        self._case: Case | None = None
        self._heatmaps: dict[str, np.ndarray] = {}  # WLI / FI / PCI / fusion -> map in [0, 1]
        self._prediction: Prediction | None = None
        self._fusion_base: str | None = None

        self.heatmap_checkbox = QCheckBox("Grad-CAM (H)")
        self.heatmap_checkbox.setChecked(True)
        self.heatmap_checkbox.setToolTip("Show each branch's Grad-CAM on its image and the fusion-layer map on WLI")
        opacity_title, self.opacity_slider, self.opacity_label, legend = heatmap_controls(theme.HEAT_COLORMAP)
        self.legend = legend[1]
        controls = FlowLayout()  # wraps on narrow screens (1366 px beside both docks)
        for widget in (self.heatmap_checkbox, opacity_title, self.opacity_slider, self.opacity_label, *legend):
            controls.addWidget(widget)
        self.model_controls = [self.heatmap_checkbox, opacity_title, self.opacity_slider, self.opacity_label,
                               *legend]
        for button in view_buttons(self, "Reset the FI window/level to the automatic setting",
                                   "Zoom all four images to show the whole node"):
            controls.addWidget(button)

        self.result_label = QLabel("")
        self.result_label.setObjectName("nodeResult")
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setWordWrap(True)
        self.note = QLabel(NOTE_BEFORE_PREDICTION)
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)

        self.panels: dict[str, ImagePanel] = {key: ImagePanel(title_size="13pt") for key in (*NODE_MODALITIES, FUSION)}
        link_views(*self.panels.values())
        self.fi_histogram = self.panels[FI].histogram_widget("FI window/level: drag the region or its edges")
        self.caption = QLabel("")
        self.caption.setObjectName("smallPrint")
        footer = QHBoxLayout()  # its own row: the four plots stay equal in size
        footer.addWidget(self.caption, 1)
        footer.addWidget(self.fi_histogram, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.result_label)
        layout.addWidget(self.note)
        layout.addWidget(PanelGrid([[self.panels[WLI], self.panels[FI]], [self.panels[PCI], self.panels[FUSION]]]), 1)
        layout.addLayout(footer)

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
        shape = images[present[0]].array.shape[:2] if present else None
        for modality in NODE_MODALITIES:
            panel = self.panels[modality]
            panel.set_image(images.get(modality))
            title = NODE_MODALITY_TITLES[modality]
            panel.set_title(title if modality in images else f"{title} — not available", modality in images)
            panel.set_missing("" if modality in images else f"No {modality} image\nfor this node", shape)
        self._fusion_base = next((m for m in FUSION_BASES if m in images), None)
        fusion = self.panels[FUSION]
        fusion.set_image(images.get(self._fusion_base) if self._fusion_base else None,
                         levels=self.panels[FI].auto_levels if self._fusion_base == FI else None)
        fusion.set_title(f"Fusion-layer Grad-CAM on {self._fusion_base or 'WLI'}", self._fusion_base is not None)
        fusion.set_missing("", shape)
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
        self._heatmaps.clear()
        self._prediction = None
        for key, panel in self.panels.items():
            panel.clear()
            panel.set_title(NODE_MODALITY_TITLES.get(key, "Fusion-layer Grad-CAM on WLI"))
        self.result_label.setText("")
        self.caption.setText("")

    def fit(self) -> None:
        self.panels[WLI].fit()

    def reset_levels(self) -> None:
        self.panels[FI].reset_levels()
        if self._fusion_base == FI:
            self.panels[FUSION].reset_levels()

    # -- queries for tests and the window -----------------------------------------------------------

    def missing_modalities(self) -> list[str]:
        return [m for m in NODE_MODALITIES if self._case is not None and m not in self._case.images]

    # -- internals --------------------------------------------------------------------------------

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in self.panels.values():
            panel.set_heat_opacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _update_overlays(self) -> None:
        show = self.heatmap_checkbox.isChecked()
        shown = []
        for key, panel in self.panels.items():
            heatmap = self._heatmaps.get(key) if panel.has_image else None
            panel.set_heat(heatmap, visible=show)
            if heatmap is not None:
                shown.append(key)
        fusion = self.panels[FUSION]
        if self._prediction is not None and FUSION not in self._heatmaps and self._fusion_base is not None:
            single = len([m for m in self._prediction.variant.split("+") if m]) == 1
            fusion.set_missing("No fusion layer\n(uni-modal model)" if single else "No fusion map")
        else:
            fusion.set_missing("")
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

    def _missing_text(self, present: list[str]) -> str:
        missing = [m for m in NODE_MODALITIES if m not in present]
        if not missing:
            return ""
        model = "+".join(present) or "none"
        kind = {1: "uni-modal", 2: "bi-modal"}.get(len(present), "")
        return (theme.span(f"{' and '.join(missing)} not available", "amber") + " "
                + theme.span(f"— the {kind} MFI-FFP model ({model}) is used.", "text_muted"))

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
        color = theme.POSITIVE if positive else theme.NEGATIVE
        modes = prediction.variant or prediction.model
        parts = [f"<span style='font-size:14pt'><b>P(metastatic) "
                 f"{'—' if probability is None else f'{100 * probability:.1f} %'}</b></span>"]
        if threshold is not None:
            parts.append(f"threshold {100 * threshold:.0f} %")
        parts.append(f"call <b style='color:{color}'>{call}</b>")
        parts.append(theme.span(f"MFI-FFP {modes}", "text_muted"))
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
