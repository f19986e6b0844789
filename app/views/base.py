"""What every case view offers the main window, and the placeholder shown when no case is open."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from app import theme
from app.widgets.image_panel import heat_colormap
from engine.cases.model import Case
from engine.data import Prediction


class CaseView(QWidget):
    """Base of the central views. The main window only calls these methods; a view ignores what it lacks."""

    opacity_changed = Signal(float)  # heatmap opacity the user chose (0-1), so the window can remember it
    method_changed = Signal(str)  # the user picked another model (views of kinds that offer a choice)
    model_controls: list[QWidget]  # widgets about model output, hidden while a reader reads unaided
    drawing = None  # a ContourDrawing where a reader can outline the tumor (reader studies with contours)

    def set_model_controls_visible(self, visible: bool) -> None:
        """Show or hide every control that concerns model output (unaided reading hides them)."""
        for widget in getattr(self, "model_controls", []):
            widget.setVisible(visible)

    @staticmethod
    def prepare(case: Case, predictions: list[Prediction]) -> object | None:
        """Worker thread, no Qt: heavy work for showing `case` and `predictions` (contours, metrics), handed to
        `use_prepared` on the GUI thread before `show_case` / `show_prediction`. None: nothing to prepare."""
        return None

    def use_prepared(self, prepared: object | None) -> None:
        """Keep what `prepare` computed; a view uses it only for the arrays it was computed from."""

    def show_case(self, case: Case) -> None:
        """Display a case's images; forgets any prediction shown before."""

    def show_prediction(self, predictions: list[Prediction]) -> None:
        """Overlay what the models returned for the case on display."""

    def clear(self) -> None:
        """Show nothing (no case open)."""

    def set_methods(self, methods: list, current: str | None) -> None:
        """Offer these model choices (`engine.cases.kinds.Method`) with `current` selected; no signal."""

    def set_drawing(self, enabled: bool, polygons=None) -> None:
        """Let a reader outline the tumor, showing `polygons` (views with a `drawing`)."""

    def set_note(self, text: str) -> None:
        """The one-line hint above the images (views with a `note` label)."""
        note = getattr(self, "note", None)
        if note is not None:
            note.setText(text)

    def fit(self) -> None:
        """Zoom so the whole image is visible."""

    def reset_levels(self) -> None:
        """Return window/level to the automatic setting."""

    # Views with a `heatmap_checkbox`, an `opacity_slider` (0-100) and `_slider_moved` get these for free.

    def heatmap_visible(self) -> bool:
        box = getattr(self, "heatmap_checkbox", None)
        return bool(box is not None and box.isChecked())

    def set_heatmap_visible(self, visible: bool) -> None:
        """Show or hide explanation heatmaps."""
        box = getattr(self, "heatmap_checkbox", None)
        if box is not None:
            box.setChecked(visible)

    def opacity(self) -> float:
        slider = getattr(self, "opacity_slider", None)
        return 0.0 if slider is None else slider.value() / 100.0

    def set_opacity(self, opacity: float) -> None:
        """Heatmap opacity, 0 (invisible) to 1 (opaque)."""
        slider = getattr(self, "opacity_slider", None)
        if slider is not None:
            slider.setValue(round(min(max(opacity, 0.0), 1.0) * 100))
            self._slider_moved(slider.value())


class PlaceholderView(CaseView):
    """Shown when no case is open, or when a case's kind has no view yet."""

    DEFAULT_TEXT = (
        "Open a case\n\n"
        "Pick one in the case list, press Ctrl+O to open image files,\n"
        "Ctrl+Shift+O to open a case bundle, or drop files on this window."
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("placeholderView")
        self.label = QLabel(self.DEFAULT_TEXT)
        self.label.setObjectName("placeholderText")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)

    def set_message(self, text: str | None) -> None:
        self.label.setText(text or self.DEFAULT_TEXT)

    def show_case(self, case: Case) -> None:
        self.set_message(
            f"Case {case.id} is a '{case.kind}' case; this version of OncoLens has no view for it yet."
        )

    def clear(self) -> None:
        self.set_message(None)


def heatmap_controls(colormap_name: str, what: str = "Grad-CAM", fade: bool = True
                     ) -> tuple[QLabel, QSlider, QLabel, list[QWidget]]:
    """The heat layer's controls: an "Opacity" title, the opacity slider (0-100; [ and ] step it), the label
    showing its value, and the legend (low, the colour strip as the images show it, high)."""
    title = QLabel("Opacity")
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setSingleStep(5)
    slider.setPageStep(10)
    slider.setFixedWidth(120)
    slider.setToolTip(f"{what} opacity  ([ and ])")
    value = QLabel()
    value.setMinimumWidth(48)
    low, high = QLabel("low"), QLabel("high")
    for label in (low, high):
        label.setObjectName("viewNote")
    strip = colormap_legend(heat_colormap(colormap_name, fade), f"{what} colour scale ({colormap_name}): low to high")
    return title, slider, value, [low, strip, high]


def colormap_legend(colormap: pg.ColorMap, tooltip: str, width: int = 96, height: int = 12) -> QLabel:
    """A small low-to-high strip of a colour map, over the plot background as the images show it."""
    pixmap = QPixmap(width, height)
    pixmap.fill(QColor(theme.PLOT_BACKGROUND))
    painter = QPainter(pixmap)
    painter.fillRect(pixmap.rect(), colormap.getGradient(QPointF(0, 0), QPointF(width, 0)))
    painter.end()
    legend = QLabel()
    legend.setPixmap(pixmap)
    legend.setToolTip(tooltip)
    return legend


def view_buttons(view: CaseView, levels_tip: str = "Reset the window/level to the automatic setting",
                 fit_tip: str = "Zoom to show the whole image") -> list[QPushButton]:
    """"Fit (F)" and "Reset W/L", wired to the view's `fit` and `reset_levels`."""
    fit_button = QPushButton("Fit (F)")
    fit_button.setToolTip(fit_tip)
    fit_button.clicked.connect(view.fit)
    levels_button = QPushButton("Reset W/L")
    levels_button.setToolTip(levels_tip)
    levels_button.clicked.connect(view.reset_levels)
    return [fit_button, levels_button]
