"""Thyroid nodule view (DGFNet): the ultrasound capture and the CT slice side by side, each with its own zoom and
the nodule box the crops are cut around, edited with the mouse or the keyboard and saved with the case; the
predicted nodule masks and boundaries as contours; integrated gradients (|attribution| or signed) or Grad-CAM
of either site as the heat layer; P(central LNM) and P(lateral LNM) against their cards' thresholds; and each
site's US vs CT share of the attribution."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.views.base import CaseView, colormap_legend, heatmap_controls, view_buttons
from app.widgets.flow_layout import FlowLayout
from app.widgets.image_panel import ImagePanel, heat_colormap
from app.widgets.nodule_box import NoduleBoxEditor
from app.widgets.site_results import SiteResults
from engine.cases.model import Case
from engine.data import Prediction
from engine.kinds.thyroid_usct import CENTRAL, LATERAL, save_rois, stored_roi
from engine.preprocess.us_ct import CT, ROI_KEY, US, Box, RoiError
from engine.seg.contours import mask_to_contours

MODALITIES = (US, CT)
TITLES = {US: "Ultrasound (US)", CT: "CT slice (HU)"}
SITES = (CENTRAL, LATERAL)
SITE_WORDS = {CENTRAL: "central", LATERAL: "lateral"}
# heat layer choices: (label, heatmap key suffix, colour map, fade)
HEAT_LAYERS = {
    "ig": ("IG |attribution|", "", theme.HEAT_COLORMAP, True),
    "signed": ("IG signed", ".signed", theme.SIGNED_COLORMAP, "diverging"),
    "gradcam": ("Grad-CAM", ".gradcam", theme.HEAT_COLORMAP, True),
}
CT_DISPLAY_WINDOW = (-125.0, 225.0)  # HU: the soft-tissue neck window (level 50, width 350) the CT opens in
FLAT = 0.02  # a heat map whose peak is below this shows nothing worth drawing
NODULE, BOUNDARY = "nodule", "boundary"
BOUNDARY_MAPS = {US: "US/boundary", CT: "CT/edges"}  # the second segmentation head of each modality
SAVE_DELAY_MS = 500  # key steps in a row are saved once
STEP, BIG_STEP = 1, 10  # pixels per arrow key; with Ctrl
KEYS_HELP = ("Box keys: ←↑→↓ move · Shift+arrows resize · Ctrl = 10 px · Tab switches US/CT box · Ctrl+drag on "
             "an image draws a new box · drag the box or its corner handles with the mouse")
NOTE_BEFORE_PREDICTION = "Heat maps and contours appear after prediction (F5)."
ARROWS = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}


@dataclass
class PreparedContours:
    """Contours of a prediction's masks, computed on a worker; each kept with the very array it came from."""

    contours: dict[str, tuple[np.ndarray, list]] = field(default_factory=dict)


def _save_boxes(store, case_id: str, boxes: dict[str, dict]) -> str:
    """Worker job: keep the boxes with the stored case; the text for the status bar."""
    save_rois(store, case_id, boxes)
    return f"Nodule boxes of {case_id} saved."


class ThyroidView(CaseView):
    """US | CT with nodule boxes, overlays, both sites' probabilities and contribution bars."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thyroidView")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._case: Case | None = None
        self._prediction: Prediction | None = None
        self._prepared: PreparedContours | None = None
        self._editing = True
        self._boxes_changed = False  # since the prediction shown
        self.active = US
        self.problems: dict[str, str] = {}  # modality -> what is wrong with its box

        self.predict_button = QPushButton("Predict (F5)")
        self.predict_button.setToolTip("Run both sites' DGFNet models with the boxes as they are now")
        self.predict_button.clicked.connect(self.request_prediction)
        self.layer_combo = QComboBox()
        for key, (label, *_rest) in HEAT_LAYERS.items():
            self.layer_combo.addItem(label, key)
        self.layer_combo.setToolTip("Heat layer: integrated gradients (|attribution|, or signed: red pushes towards "
                                    "LNM, blue away) or Grad-CAM of the last encoder stage")
        self.site_combo = QComboBox()
        for site in SITES:
            self.site_combo.addItem(f"{SITE_WORDS[site].title()} LNM", site)
        self.site_combo.setToolTip("Whose explanation is drawn: the central-site or the lateral-site model")
        self.heatmap_checkbox = QCheckBox("Heat (H)")
        self.heatmap_checkbox.setChecked(True)
        opacity_title, self.opacity_slider, self.opacity_label, legend = heatmap_controls(theme.HEAT_COLORMAP, "Heat")
        self.legend_low, self.legend, self.legend_high = legend
        self.contours_checkbox = QCheckBox("Contours")
        self.contours_checkbox.setChecked(True)
        self.contours_checkbox.setToolTip("Predicted nodule (yellow) and boundary band / CT tissue edges (orange)")
        controls = FlowLayout()  # wraps on narrow screens (1366 px beside both docks)
        heat_widgets = [QLabel("Heat:"), self.layer_combo, QLabel("Site:"), self.site_combo, self.heatmap_checkbox,
                        self.contours_checkbox]
        for widget in (self.predict_button, *heat_widgets):
            controls.addWidget(widget)
        for button in view_buttons(self, "Reset the US to its automatic window and the CT to the soft-tissue window "
                                         "(L 50 / W 350 HU)", "Zoom both images to show them whole"):
            controls.addWidget(button)
        opacity_row = FlowLayout()
        opacity_widgets = [opacity_title, self.opacity_slider, self.opacity_label, *legend]
        for widget in opacity_widgets:
            opacity_row.addWidget(widget)
        heat_widgets += opacity_widgets

        self.results_widget = SiteResults({site: f"{SITE_WORDS[site]} LNM" for site in SITES}, MODALITIES,
                                          (theme.COLORS["modality_us"], theme.COLORS["modality_ct"]))
        self.probability_labels = self.results_widget.probability_labels
        self.probability_bars = self.results_widget.probability_bars
        self.share_bars = self.results_widget.share_bars

        self.note = QLabel(NOTE_BEFORE_PREDICTION)
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.box_label = QLabel("")
        self.box_label.setObjectName("viewNote")
        self.box_label.setTextFormat(Qt.TextFormat.RichText)
        self.box_label.setWordWrap(True)
        self.keys_label = QLabel(KEYS_HELP)
        self.keys_label.setObjectName("smallPrint")
        self.keys_label.setWordWrap(True)

        self.panels: dict[str, ImagePanel] = {m: ImagePanel(TITLES[m], title_size="13pt") for m in MODALITIES}
        self.editors: dict[str, NoduleBoxEditor] = {}
        images = QHBoxLayout()
        images.setSpacing(6)
        for modality, panel in self.panels.items():
            editor = NoduleBoxEditor(panel, modality)
            editor.changed.connect(partial(self._box_changed, modality))
            editor.activated.connect(partial(self.set_active, modality))
            self.editors[modality] = editor
            panel.setToolTip(KEYS_HELP)
            panel.graphics.installEventFilter(self)
            images.addWidget(panel, 1)
        self.caption = QLabel("")
        self.caption.setObjectName("smallPrint")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addLayout(opacity_row)
        layout.addWidget(self.results_widget)
        layout.addWidget(self.note)
        layout.addLayout(images, 1)
        layout.addWidget(self.box_label)
        layout.addWidget(self.keys_label)
        layout.addWidget(self.caption)
        self.model_controls = [*heat_widgets, self.results_widget]
        self.edit_controls = [self.predict_button, self.keys_label]

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_boxes)
        self.layer_combo.currentIndexChanged.connect(self._update_overlays)
        self.site_combo.currentIndexChanged.connect(self._update_overlays)
        self.heatmap_checkbox.toggled.connect(self._update_overlays)
        self.contours_checkbox.toggled.connect(self._update_overlays)
        self.opacity_slider.valueChanged.connect(self._slider_moved)
        self.set_opacity(0.5)
        self.clear()

    # -- CaseView ---------------------------------------------------------------------------------

    @staticmethod
    def prepare(case: Case, predictions: list[Prediction]) -> PreparedContours:
        prepared = PreparedContours()
        for prediction in predictions[:1]:
            for key, mask in prediction.masks.items():
                prepared.contours[key] = (mask, mask_to_contours(mask))
        return prepared

    def use_prepared(self, prepared: object | None) -> None:
        self._prepared = prepared if isinstance(prepared, PreparedContours) else None

    def show_case(self, case: Case) -> None:
        self._save_timer.stop()
        self._case = case
        self._prediction = None
        self._boxes_changed = False
        for modality in MODALITIES:
            panel, image = self.panels[modality], case.images.get(modality)
            panel.set_image(image, levels=CT_DISPLAY_WINDOW if modality == CT and image is not None else None)
            panel.set_title(TITLES[modality] if image is not None else f"{TITLES[modality]} — not available",
                            image is not None)
            panel.set_missing("" if image is not None else f"No {modality} image", (240, 320))
            editor = self.editors[modality]
            editor.set_image_rect(panel.image_rect())
            editor.set_box(stored_roi(case, modality))
        self.set_active(US)
        self._check_boxes()
        self.caption.setText(self._caption(case))
        self._show_results()
        self._update_overlays()
        self.fit()

    def show_prediction(self, predictions: list[Prediction]) -> None:
        self._prediction = next((p for p in predictions if any(s in p.tasks for s in SITES)), None)
        self._boxes_changed = False
        if self._prediction is not None and not self._site_has_maps(self.site()):
            other = next((s for s in SITES if self._site_has_maps(s)), None)
            if other is not None:  # e.g. an aided read of the lateral study: show the site it has
                self.site_combo.setCurrentIndex(SITES.index(other))
        self._show_results()
        self._update_overlays()

    def clear(self) -> None:
        self._save_timer.stop()
        self._case = None
        self._prediction = None
        for modality, panel in self.panels.items():
            panel.clear()
            panel.set_title(TITLES[modality])
            self.editors[modality].set_box(None)
            self.editors[modality].set_image_rect(None)
        self.problems = {}
        self.box_label.setText("")
        self.caption.setText("")
        self._show_results()

    def fit(self) -> None:
        for panel in self.panels.values():
            panel.fit()

    def reset_levels(self) -> None:
        """US: its automatic window; CT: the soft-tissue window."""
        self.panels[US].reset_levels()
        if self.panels[CT].has_image:
            self.panels[CT].set_levels(*CT_DISPLAY_WINDOW)

    def set_editing_allowed(self, allowed: bool) -> None:
        self._editing = allowed
        for editor in self.editors.values():
            editor.set_editable(allowed)
        for widget in self.edit_controls:
            widget.setVisible(allowed)
        if not allowed:
            self._save_timer.stop()
        self._check_boxes()

    def set_note(self, text: str) -> None:
        self.note.setText(text)

    # -- nodule boxes -------------------------------------------------------------------------------

    def set_active(self, modality: str) -> None:
        """The box the keys move (the other is drawn dashed)."""
        self.active = modality
        for name, editor in self.editors.items():
            editor.set_active(name == modality)

    def box(self, modality: str) -> Box | None:
        return self.editors[modality].box()

    def start_drawing(self, modality: str | None = None) -> None:
        """The next left drag on that image (default: the active one) draws its box anew."""
        self.set_active(modality or self.active)
        self.editors[self.active].start_drawing()

    def handle_box_key(self, key: int, modifiers: Qt.KeyboardModifier) -> bool:
        """Arrows move the active box, Shift+arrows resize it (Ctrl: 10 px), Tab / Shift+Tab switch boxes.
        True when the key was used."""
        if not self._editing or self._case is None:
            return False
        if key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
            self.set_active(CT if self.active == US else US)
            self.panels[self.active].graphics.setFocus(Qt.FocusReason.OtherFocusReason)
            return True
        if key not in ARROWS or modifiers & Qt.KeyboardModifier.AltModifier:
            return False
        dx, dy = ARROWS[key]
        step = BIG_STEP if modifiers & Qt.KeyboardModifier.ControlModifier else STEP
        editor = self.editors[self.active]
        done = (editor.resize(dx * step, dy * step) if modifiers & Qt.KeyboardModifier.ShiftModifier
                else editor.move(dx * step, dy * step))
        if not done:
            self.box_label.setText(theme.span(f"No {self.active} box to move: Ctrl+drag on the {self.active} image "
                                              "to draw one.", "amber"))
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and self.handle_box_key(event.key(), event.modifiers()):
            return True
        if event.type() == QEvent.Type.FocusIn and self._editing:
            for modality, panel in self.panels.items():
                if watched is panel.graphics:
                    self.set_active(modality)
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event) -> None:
        if not self.handle_box_key(event.key(), event.modifiers()):
            super().keyPressEvent(event)

    def focusNextPrevChild(self, next_child: bool) -> bool:
        if self._editing and self._case is not None and self.hasFocus():
            return False  # Tab reaches keyPressEvent: it switches the box
        return super().focusNextPrevChild(next_child)

    def save_boxes(self) -> None:
        """Hand the window the job that keeps the boxes with the case (now, instead of after the short delay)."""
        self._save_timer.stop()
        if self._case is None or not self._editing:
            return
        boxes = {m: b.to_dict() for m in MODALITIES if (b := self.box(m)) is not None and m not in self.problems}
        if boxes:
            self.case_edited.emit(partial(_save_boxes, case_id=self._case.id, boxes=boxes))

    def request_prediction(self) -> None:
        """Predict with the boxes as they are: refused, with the reason, while a box is missing or wrong."""
        if self._case is None:
            return
        self._check_boxes()
        if self.problems:
            QMessageBox.warning(self, "Nodule box", "\n\n".join(self.problems.values()))
            return
        if self._save_timer.isActive():
            self.save_boxes()
        self.predict_requested.emit()

    def _box_changed(self, modality: str) -> None:
        if self._case is None or not self._editing:
            return
        box = self.box(modality)
        image = self._case.images.get(modality)
        if box is not None and image is not None:
            # kept as drawn, even when wrong: a prediction then stops with the engine's reason, never runs on an
            # older box
            image.meta.extra[ROI_KEY] = box.to_dict()
        self._boxes_changed = self._prediction is not None
        self._check_boxes()
        if modality not in self.problems:
            self._save_timer.start()
        self._update_overlays()

    def _check_boxes(self) -> None:
        """What is wrong with each box (the engine's own check), and the boxes in words."""
        self.problems = {}
        parts: dict[str, str] = {}
        if self._case is None:
            self.box_label.setText("")
            return
        for modality in MODALITIES:
            image = self._case.images.get(modality)
            if image is None:
                continue
            box = self.box(modality)
            where = f"{modality} image {image.meta.file_name or ''}".strip()
            if box is None:
                self.problems[modality] = (f"{where}: no nodule box. Ctrl+drag on the {modality} image to draw one "
                                           "around the nodule.")
            else:
                try:
                    box.checked(image.spatial_shape, where)
                except RoiError as exc:
                    self.problems[modality] = str(exc)
            if modality not in self.problems:
                parts[modality] = f"{modality} box {box.width:g} × {box.height:g} px at ({box.x0:g}, {box.y0:g})"
            elif self._editing:  # a reader sees the images without boxes: nothing to fix
                parts[modality] = theme.span(self.problems[modality], "amber")
        self.box_label.setText(" &nbsp;·&nbsp; ".join(parts.values()))

    # -- overlays and results -------------------------------------------------------------------------

    def site(self) -> str:
        return self.site_combo.currentData()

    def layer(self) -> str:
        return self.layer_combo.currentData()

    def set_layer(self, layer: str, site: str | None = None) -> None:
        """Choose the heat layer ('ig', 'signed', 'gradcam') and, optionally, the site."""
        self.layer_combo.setCurrentIndex(self.layer_combo.findData(layer))
        if site is not None:
            self.site_combo.setCurrentIndex(self.site_combo.findData(site))

    def heat_key(self, modality: str) -> str:
        """The prediction's heatmap key drawn on `modality` now, e.g. 'central_lnm/US.signed'."""
        return f"{self.site()}/{modality}{HEAT_LAYERS[self.layer()][1]}"

    def _site_has_maps(self, site: str) -> bool:
        return self._prediction is not None and any(k.startswith(f"{site}/") for k in self._prediction.heatmaps)

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        for panel in self.panels.values():
            panel.set_heat_opacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _contours(self, key: str) -> list:
        mask = self._prediction.masks.get(key) if self._prediction is not None else None
        if mask is None:
            return []
        prepared = self._prepared.contours.get(key) if self._prepared is not None else None
        if prepared is not None and prepared[0] is mask:
            return prepared[1]
        contours = mask_to_contours(mask)  # aided reading hands masks without a worker pass (small images)
        if self._prepared is None:
            self._prepared = PreparedContours()
        self._prepared.contours[key] = (mask, contours)
        return contours

    def _update_overlays(self) -> None:
        label, _suffix, colormap, fade = HEAT_LAYERS[self.layer()]
        show_heat = self.heatmap_checkbox.isChecked()
        shown = []
        for modality, panel in self.panels.items():
            panel.set_heat_colormap(colormap, fade)
            heat = self._prediction.heatmaps.get(self.heat_key(modality)) if self._prediction is not None else None
            panel.set_heat(heat if panel.has_image else None, visible=show_heat)
            if heat is not None:
                shown.append(modality + self._heat_remark(heat))
            show_lines = self.contours_checkbox.isChecked() and not self._boxes_changed
            panel.set_contours(NODULE, self._contours(f"{modality}/nodule"), color=theme.PREDICTION, width=2.0)
            panel.set_contours(BOUNDARY, self._contours(BOUNDARY_MAPS[modality]), color=theme.COLORS["boundary"],
                               width=1.0, z=19)
            panel.set_contours_visible(NODULE, show_lines)
            panel.set_contours_visible(BOUNDARY, show_lines)
        self.legend.setPixmap(colormap_legend(heat_colormap(colormap, fade), "").pixmap())
        signed = self.layer() == "signed"
        self.legend_low.setText("away from LNM" if signed else "low")
        self.legend_high.setText("towards LNM" if signed else "high")
        self.legend.setToolTip(f"{label} colour scale: {self.legend_low.text()} to {self.legend_high.text()}")
        self.note.setText(self._note(label, shown, show_heat))

    def _heat_remark(self, heat: np.ndarray) -> str:
        """Why a map shows nothing to read: zero everywhere, or one value over the whole crop."""
        if self.layer() == "signed":
            return ""
        if float(np.max(heat)) < FLAT:
            return " (flat: no positive gradient)"
        inside = heat[heat > FLAT]
        if inside.size and float(np.mean(inside >= 0.95)) > 0.7:  # (the crop's rim is blurred by the resize)
            return " (uniform over the crop: its last encoder stage is a single cell)"
        return ""

    def _note(self, label: str, shown: list[str], show_heat: bool) -> str:
        if self._prediction is None:
            return NOTE_BEFORE_PREDICTION
        if self._boxes_changed:
            return "The boxes changed since this result: press Predict (F5) to run the models on the new crops."
        if not self._prediction.heatmaps:
            return ("This result was read back from the store without its heat maps and masks; press Predict (F5) "
                    "to compute them again.")
        if not show_heat:
            return "Heat layer hidden (press H to show)."
        if not shown:
            return f"No {label} of the {SITE_WORDS[self.site()]} model in this result."
        return (f"{label} of the {SITE_WORDS[self.site()]}-site model on {' and '.join(shown)}; contours: predicted "
                "nodule (yellow), US boundary band and CT tissue edges (orange).")

    def _show_results(self) -> None:
        self.results_widget.show_prediction(self._prediction)

    @staticmethod
    def _caption(case: Case) -> str:
        parts = []
        for modality in MODALITIES:
            image = case.images.get(modality)
            if image is not None:
                h, w = image.spatial_shape
                spacing = f", {image.meta.spacing[-1]:g} mm/px" if image.meta.spacing else ""
                parts.append(f"{modality}: {w}×{h} px{spacing}, {image.meta.bit_depth}-bit {image.meta.units}")
        return "  ·  ".join(parts)
