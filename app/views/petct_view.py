"""PET-CT view (sarcoma_petct): axial, coronal and sagittal planes with a linked crosshair, PET alone (inverted
grey, SUV 0-6), CT with window presets, or the two fused (CT grey + PET hot with an opacity slider); the rotating
PET maximum-intensity projection; CHMFL's tumour contours in every plane, its 3-D Grad-CAM as a heat layer, and
the tumour measures with P(distant metastasis) against the card's threshold.

Everything heavy runs on workers (`engine.explain.petct_display`): placing the PET on the CT's overlay grid once
per case, the contours and heat layer once per prediction, the MIP angles streamed one by one. A slice change
only cuts planes out of volumes already in memory.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.views.base import CaseView, heatmap_controls, view_buttons
from app.widgets.flow_layout import FlowLayout
from app.widgets.fused_plane import TUMOUR, FusedPlane
from app.widgets.image_panel import fading_colormap
from app.widgets.mip_panel import RotatingMIPPanel
from app.widgets.view_link import PanelGrid
from app.workers import error_text, report_error, submit
from engine.cases.model import Case
from engine.data import Prediction
from engine.explain.petct_display import (
    AXIAL,
    CORONAL,
    CT_PRESETS,
    PET_GREY_SUV,
    PLANE_AXIS,
    PLANES,
    SAGITTAL,
    FusionVolumes,
    PredictionOverlays,
    fusion_volumes,
    prediction_overlays,
    suv_factor_lines,
    window_to_levels,
)

PET, CT = "PET", "CT"
TASK = "distant_metastasis"
MASK_KEY, HEAT_KEY = "tumor", f"{TASK}/fusion"
MODE_PET, MODE_CT, MODE_FUSED = "PET", "CT", "Fused"
MODES = (MODE_PET, MODE_CT, MODE_FUSED)
CUSTOM = "Custom"
PLANE_TITLES = {AXIAL: "Axial", CORONAL: "Coronal", SAGITTAL: "Sagittal"}
PET_FUSION_COLORMAP = "hot"
NOTE_BEFORE_PREDICTION = "Tumour contours, Grad-CAM and measures appear after prediction (F5)."


def _inverted_grey() -> pg.ColorMap:
    return pg.ColorMap([0.0, 1.0], [(255, 255, 255, 255), (0, 0, 0, 255)])


def _hot() -> pg.ColorMap:
    return fading_colormap(pg.colormap.get(PET_FUSION_COLORMAP, source="matplotlib"), ramp=0.12)


class PetCtView(CaseView):
    """Tri-planar PET-CT with fusion, rotating MIP, CHMFL overlays and measures (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("petctView")
        self._case: Case | None = None
        self._generation = 0  # bumps with every case shown: late worker results of an older one are dropped
        self.volumes: FusionVolumes | None = None
        self.overlays: PredictionOverlays | None = None
        self.prediction: Prediction | None = None
        self._pending: list[Prediction] | None = None  # predictions that arrived before the volumes
        self.point = [0, 0, 0]  # the crosshair, as a CT (reference) voxel index (z, y, x)
        self.mode = MODE_FUSED
        self._grey, self._hot = _inverted_grey(), _hot()

        # -- controls: display mode, CT window, PET scale and fusion opacity --
        self.mode_buttons: dict[str, QPushButton] = {}
        self.mode_group = QButtonGroup(self)
        mode_row = QHBoxLayout()
        mode_row.setSpacing(4)
        mode_row.addWidget(QLabel("Show"))
        for mode, tip in ((MODE_PET, "PET alone: inverted grey, SUV 0 to the PET maximum"),
                          (MODE_CT, "CT alone, with the window below"),
                          (MODE_FUSED, "CT grey with the PET in hot colours over it")):
            button = QPushButton(mode)
            button.setCheckable(True)
            button.setObjectName("modeButton")
            button.setToolTip(f"{tip}  (M cycles)")
            self.mode_group.addButton(button)
            self.mode_buttons[mode] = button
            mode_row.addWidget(button)
            button.clicked.connect(lambda _checked, m=mode: self.set_mode(m))
        self.preset_combo = QComboBox()
        for name, (width, level) in CT_PRESETS.items():
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, f"W {width:g} / L {level:g} HU",
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.addItem(CUSTOM, CUSTOM)
        self.preset_combo.setToolTip("CT window preset")
        self.width_spin = QDoubleSpinBox()
        self.level_spin = QDoubleSpinBox()
        for spin, label, low, high in ((self.width_spin, "W ", 1, 6000), (self.level_spin, "L ", -1500, 3000)):
            spin.setRange(low, high)
            spin.setDecimals(0)
            spin.setSingleStep(10)
            spin.setPrefix(label)
            spin.setSuffix(" HU")
            spin.setKeyboardTracking(False)
        self.width_spin.setToolTip("CT window width (HU)")
        self.level_spin.setToolTip("CT window level (HU)")
        self.suv_spin = QDoubleSpinBox()
        self.suv_spin.setRange(0.5, 50.0)
        self.suv_spin.setSingleStep(0.5)
        self.suv_spin.setDecimals(1)
        self.suv_spin.setPrefix("SUV 0–")
        self.suv_spin.setValue(PET_GREY_SUV[1])
        self.suv_spin.setToolTip("PET display range: SUV 0 to this value")
        self.fusion_title = QLabel("PET opacity")
        self.fusion_slider = QSlider(Qt.Orientation.Horizontal)
        self.fusion_slider.setRange(0, 100)
        self.fusion_slider.setValue(60)
        self.fusion_slider.setFixedWidth(90)
        self.fusion_slider.setToolTip("Opacity of the PET over the CT in the fused view")
        self.fusion_value = QLabel("60 %")
        self.fusion_value.setMinimumWidth(40)
        mode_box = QWidget()
        mode_box.setLayout(mode_row)
        mode_row.setContentsMargins(0, 0, 0, 0)
        controls = FlowLayout()  # wraps on narrow screens (1366 px beside both docks)
        controls.addWidget(mode_box)
        for widget in (self.preset_combo, self.width_spin, self.level_spin):
            controls.addWidget(widget)
        for button in view_buttons(self, "Back to the soft-tissue window and SUV 0-6",
                                   "Zoom to show the whole plane in every panel"):
            controls.addWidget(button)

        # -- model output: contours, Grad-CAM --
        self.contour_checkbox = QCheckBox("Tumour (yellow)")
        self.contour_checkbox.setChecked(True)
        self.contour_checkbox.setToolTip("CHMFL's tumour segmentation as contours in every plane")
        self.heatmap_checkbox = QCheckBox("Grad-CAM (H)")
        self.heatmap_checkbox.setToolTip("The 3-D Grad-CAM of CHMFL's classification head")
        _title, self.opacity_slider, self.opacity_label, legend = heatmap_controls(theme.HEAT_COLORMAP)
        overlay_row = FlowLayout()
        self.opacity_slider.setFixedWidth(90)
        self.legend = legend[1]  # the colour strip alone (its tooltip says low to high): the row fits beside the docks
        for widget in (self.suv_spin, self.fusion_title, self.fusion_slider, self.fusion_value, self.contour_checkbox,
                       self.heatmap_checkbox, self.opacity_slider, self.opacity_label, self.legend):
            overlay_row.addWidget(widget)
        self.note = QLabel(NOTE_BEFORE_PREDICTION)
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.measures_label = QLabel("")
        self.measures_label.setObjectName("segMetrics")
        self.measures_label.setWordWrap(True)
        self.measures_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.suv_label = QLabel("")
        self.suv_label.setObjectName("smallPrint")
        self.suv_label.setWordWrap(True)
        self.suv_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_controls = [self.contour_checkbox, self.heatmap_checkbox, self.opacity_slider,
                               self.opacity_label, self.legend, self.measures_label]

        # -- the planes and the MIP --
        self.planes = {plane: FusedPlane(plane, PLANE_TITLES[plane]) for plane in PLANES}
        self.mip = RotatingMIPPanel(self._grey)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(controls)
        layout.addLayout(overlay_row)
        layout.addWidget(self.measures_label)
        layout.addWidget(self.note)
        layout.addWidget(self.suv_label)
        layout.addWidget(PanelGrid([[self.planes[AXIAL], self.planes[CORONAL]],
                                    [self.planes[SAGITTAL], self.mip]]), 1)

        for plane, panel in self.planes.items():
            panel.slice_changed.connect(lambda index, p=plane: self._slice_moved(p, index))
            panel.clicked.connect(lambda row, col, p=plane: self._clicked(p, row, col))
        self.preset_combo.currentIndexChanged.connect(self._preset_picked)
        self.width_spin.valueChanged.connect(self._window_typed)
        self.level_spin.valueChanged.connect(self._window_typed)
        self.suv_spin.valueChanged.connect(lambda _v: self._apply_mode())
        self.fusion_slider.valueChanged.connect(self._fusion_moved)
        self.contour_checkbox.toggled.connect(self._contours_toggled)
        self.heatmap_checkbox.toggled.connect(self._heat_toggled)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        shortcut = QShortcut(QKeySequence("M"), self)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(self.cycle_mode)
        self._set_window(*CT_PRESETS["Soft tissue"])
        self.set_opacity(0.5)
        self.set_mode(MODE_FUSED)
        self._set_enabled(False)

    # -- CaseView ---------------------------------------------------------------------------------

    def show_case(self, case: Case) -> None:
        """Show the case's planes once a worker has placed its PET on the CT's overlay grid; the MIP angles follow
        one by one."""
        self._forget_case()
        self._case = case
        self._generation += 1
        generation = self._generation
        for panel in self.planes.values():
            panel.clear_volumes()
            panel.set_missing("Preparing the volumes…", (1, 1))
        self.note.setText(NOTE_BEFORE_PREDICTION)
        self.suv_label.setText("   ".join(suv_factor_lines(case.images.get(PET))))
        images = dict(case.images)
        submit(fusion_volumes, images, description="Preparing the PET-CT volumes", context=self,
               on_result=lambda volumes: self._volumes_ready(generation, volumes),
               on_error=lambda exc, tb: self._failed(generation, exc, tb))
        if PET in images:
            self.mip.start(images[PET])
        else:
            self.mip.stop("No PET volume")

    def show_prediction(self, predictions: list[Prediction]) -> None:
        prediction = next((p for p in predictions if TASK in p.tasks or MASK_KEY in p.masks), None)
        if prediction is None or self._case is None:
            return
        self.prediction = prediction
        self._show_measures()
        if self.volumes is None:
            self._pending = [prediction]
            return
        self._start_overlays(prediction)

    def clear(self) -> None:
        self._forget_case()
        self._case = None
        self._generation += 1
        for panel in self.planes.values():
            panel.clear_volumes()
        self.mip.stop()
        self.suv_label.setText("")
        self.note.setText(NOTE_BEFORE_PREDICTION)
        self._set_enabled(False)

    def fit(self) -> None:
        for panel in self.planes.values():
            panel.fit()
        self.mip.fit()

    def reset_levels(self) -> None:
        """Soft-tissue CT window and PET SUV 0-6."""
        self.suv_spin.setValue(PET_GREY_SUV[1])
        self.set_ct_window(*CT_PRESETS["Soft tissue"])

    def set_note(self, text: str) -> None:
        self.note.setText(text)

    # -- modes and windows ----------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown display mode {mode!r}: use one of {', '.join(MODES)}.")
        self.mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._apply_mode()

    def cycle_mode(self) -> None:
        self.set_mode(MODES[(MODES.index(self.mode) + 1) % len(MODES)])

    def set_ct_preset(self, name: str) -> None:
        index = self.preset_combo.findData(name)
        if index < 0:
            raise ValueError(f"Unknown CT window preset {name!r}: use one of {', '.join(CT_PRESETS)}.")
        self.preset_combo.setCurrentIndex(index)

    def set_ct_window(self, width: float, level: float) -> None:
        """A free CT window (the preset combo shows Custom unless it matches a preset)."""
        self._set_window(width, level)
        self._window_typed()

    @property
    def ct_levels(self) -> tuple[float, float]:
        return window_to_levels(self.width_spin.value(), self.level_spin.value())

    def _set_window(self, width: float, level: float) -> None:
        for spin, value in ((self.width_spin, width), (self.level_spin, level)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self._apply_mode()

    def _preset_picked(self, _index: int) -> None:
        name = self.preset_combo.currentData()
        if name in CT_PRESETS:
            self._set_window(*CT_PRESETS[name])

    def _window_typed(self, *_args) -> None:
        current = (self.width_spin.value(), self.level_spin.value())
        match = next((n for n, wl in CT_PRESETS.items() if wl == current), CUSTOM)
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(match))
        self.preset_combo.blockSignals(False)
        self._apply_mode()

    def _fusion_moved(self, value: int) -> None:
        self.fusion_value.setText(f"{value} %")
        self._apply_mode()

    def _apply_mode(self) -> None:
        """CT and PET layers of every plane as the mode says; the CT controls only where CT shows. A case with only
        one of the two volumes shows that one whatever the mode."""
        mode, volumes = self.mode, self.volumes
        has_ct = volumes is None or volumes.reference_modality == CT
        has_pet = volumes is None or volumes.pet is not None
        suv_levels = (0.0, self.suv_spin.value())
        for panel in self.planes.values():
            panel.image.setVisible(has_ct and (mode != MODE_PET or not has_pet))
            if has_ct:
                panel.image.setLevels(self.ct_levels)
            pet = panel.pet
            pet.setVisible(has_pet and (mode != MODE_CT or not has_ct))
            if mode == MODE_FUSED and has_ct:
                pet.setColorMap(self._hot)
                pet.setOpacity(self.fusion_slider.value() / 100.0)
            else:
                pet.setColorMap(self._grey)
                pet.setOpacity(1.0)
            pet.setLevels(suv_levels)
        self.mip.set_levels(suv_levels)
        for widget in (self.preset_combo, self.width_spin, self.level_spin):
            widget.setEnabled(has_ct and (mode != MODE_PET or not has_pet))
        for widget in (self.fusion_title, self.fusion_slider, self.fusion_value):
            widget.setEnabled(mode == MODE_FUSED and has_ct and has_pet)

    # -- crosshair and slices -------------------------------------------------------------------------

    def set_point(self, z: int, y: int, x: int) -> None:
        """Put the crosshair on CT voxel (z, y, x): every plane moves to it."""
        if self.volumes is None:
            return
        shape = self.volumes.reference.shape
        self.point = [int(min(max(v, 0), n - 1)) for v, n in zip((z, y, x), shape)]
        for plane, panel in self.planes.items():
            panel.set_slice(self.point[PLANE_AXIS[plane]])
        self._update_crosshairs()

    def _slice_moved(self, plane: str, index: int) -> None:
        self.point[PLANE_AXIS[plane]] = index
        self._update_crosshairs()

    def _clicked(self, plane: str, row: float, col: float) -> None:
        point = list(self.point)
        rows, cols = {AXIAL: (1, 2), CORONAL: (0, 2), SAGITTAL: (0, 1)}[plane]
        point[rows], point[cols] = int(row), int(col)
        self.set_point(*point)

    def _update_crosshairs(self) -> None:
        z, y, x = self.point
        self.planes[AXIAL].set_crosshair(y, x)
        self.planes[CORONAL].set_crosshair(z, x)
        self.planes[SAGITTAL].set_crosshair(z, y)

    # -- workers' results -----------------------------------------------------------------------------

    def _volumes_ready(self, generation: int, volumes: FusionVolumes) -> None:
        if generation != self._generation or self._case is None:
            return
        self.volumes = volumes
        case = self._case
        reference = case.images[volumes.reference_modality]
        self.point = [n // 2 for n in volumes.reference.shape]
        levels = self.ct_levels if volumes.reference_modality == CT else (0.0, self.suv_spin.value())
        for plane, panel in self.planes.items():
            panel.set_missing("")
            panel.show_volumes(volumes, reference, self.point[PLANE_AXIS[plane]], levels)
            panel.set_heat_wanted(self.heatmap_checkbox.isChecked())
        self._update_crosshairs()
        self._set_enabled(True)
        self._apply_mode()
        self.fit()
        pending, self._pending = self._pending, None
        if pending:
            self._start_overlays(pending[0])

    def _failed(self, generation: int, exc: BaseException, tb: str) -> None:
        """A worker's error: said in the planes (when it concerns the case on screen) and in a message box."""
        if generation == self._generation:
            for panel in self.planes.values():
                panel.set_missing("Cannot show this case", (1, 1))
            self.note.setText(f"Cannot show this case: {error_text(exc)}")
        report_error(exc, tb, self, "OncoLens — PET-CT viewer")

    def _start_overlays(self, prediction: Prediction) -> None:
        generation, volumes = self._generation, self.volumes
        pet = self._case.images.get(PET) if self._case is not None else None
        submit(prediction_overlays, volumes, pet, prediction.masks.get(MASK_KEY), prediction.heatmaps.get(HEAT_KEY),
               prediction.measures, description="Drawing the CHMFL tumour and Grad-CAM", context=self,
               on_result=lambda overlays: self._overlays_ready(generation, prediction, overlays),
               on_error=lambda exc, tb: self._failed(generation, exc, tb))

    def _overlays_ready(self, generation: int, prediction: Prediction, overlays: PredictionOverlays) -> None:
        if generation != self._generation or prediction is not self.prediction:
            return
        self.overlays = overlays
        for plane, panel in self.planes.items():
            per_slice = overlays.contours.get(plane, {})
            panel.set_contours(TUMOUR, lambda _plane, _index, p=panel, s=per_slice: s.get(p.overlay_index, []))
            panel.tumour_layer.set_visible(self.contour_checkbox.isChecked())
            panel.set_heat_volume(overlays.heat)
        self.heatmap_checkbox.setEnabled(overlays.heat is not None)
        self._show_measures()
        if any(overlays.contours.get(p) for p in PLANES):
            self.note.setText("Yellow: CHMFL tumour segmentation. Click a plane to move the crosshair there.")
            self.go_to_tumour()
        else:
            self.note.setText("CHMFL found no tumour voxels in this volume.")

    def go_to_tumour(self) -> None:
        """Move the crosshair to the middle of the segmented tumour (overlay slices that hold contours)."""
        if self.overlays is None or self.volumes is None:
            return
        point = []
        for plane in PLANES:
            slices = sorted(self.overlays.contours.get(plane, {}))
            if not slices:
                return
            axis = PLANE_AXIS[plane]
            f = self.volumes.factors[axis]
            point.append(slices[len(slices) // 2] * f + (f - 1) // 2)
        self.set_point(*point)

    def _show_measures(self) -> None:
        prediction = self.prediction
        if prediction is None:
            self.measures_label.setText("")
            return
        measures = dict(prediction.measures)
        if self.overlays is not None:
            measures = {**self.overlays.measures, **measures}
        self.measures_label.setText(measures_text(prediction, measures))

    # -- overlays' controls -----------------------------------------------------------------------------

    def _contours_toggled(self, visible: bool) -> None:
        for panel in self.planes.values():
            panel.tumour_layer.set_visible(visible)

    def _heat_toggled(self, visible: bool) -> None:
        for panel in self.planes.values():
            panel.set_heat_wanted(visible)

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in self.planes.values():
            panel.heat_layer.setOpacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    # -- internals ------------------------------------------------------------------------------------

    def _forget_case(self) -> None:
        self.mip.stop()
        self.volumes = self.overlays = self.prediction = None
        self._pending = None
        self.measures_label.setText("")
        self.heatmap_checkbox.setEnabled(False)

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (*self.mode_buttons.values(), self.suv_spin):
            widget.setEnabled(enabled)


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def measures_text(prediction: Prediction, measures: dict[str, float]) -> str:
    """The measures line: SUVmax, SUVpeak (1 cm³), SUVmean, MTV, TLG, then P(DM) against the card's threshold."""
    parts = [f"SUVmax {_number(measures.get('suv_max'))}",
             f"SUVpeak (1 cm³) {_number(measures.get('suv_peak'))}",
             f"SUVmean {_number(measures.get('suv_mean'))}",
             f"MTV {_number(measures.get('mtv_ml'), 1)} ml",
             f"TLG {_number(measures.get('tlg'), 1)}"]
    result = prediction.tasks.get(TASK)
    if result is not None and result.probability is not None:
        positive = result.threshold is not None and result.probability >= result.threshold
        sign = "≥" if positive else "&lt;"  # rich text
        threshold = "" if result.threshold is None else f" {sign} {result.threshold:.2f}"
        call = theme.span(f"P(DM) {result.probability:.2f}{threshold} → {result.call}",
                          theme.POSITIVE if positive else theme.NEGATIVE, font_weight="bold")
        parts.append(call)
    return "   ·   ".join(parts)

