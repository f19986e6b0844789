"""The live view's side panel: the source picker, the method picker, the camera's own settings (what its
`controls()` lists), the overlay settings (heat layer, temporal smoothing) and the frozen-frame actions.
Widgets only: the window wires them to the session and the workers."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.live.jobs import SOURCE_TYPES, SourceChoice
from engine.live.sources import GENTL_ENV, Control

PHANTOM_SIZES = (256, 512, 1024)
RESOLUTIONS = ("640x480", "1280x720", "1920x1080", "1024x1024", "2048x2048")
VIDEO_FILTER = "Video (*.mp4 *.avi *.mkv *.mov *.m4v *.mpg *.mpeg *.wmv *.npy);;All files (*)"


def _no_focus(*widgets: QWidget) -> None:
    """Buttons and boxes that should not keep the keyboard: Space, C, S and R belong to the live view."""
    for widget in widgets:
        widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class SourcePicker(QGroupBox):
    """Which source: the phantom (frame size), a camera (found ones, or a typed index / device path), a video file,
    or a GenICam camera through its vendor's GenTL producer (.cti)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self.type_combo = QComboBox()
        for source_type, title in SOURCE_TYPES.items():
            self.type_combo.addItem(title, source_type)
        self.phantom_size = QComboBox()
        for size in PHANTOM_SIZES:
            self.phantom_size.addItem(f"{size} × {size} px", size)
        self.phantom_size.setCurrentIndex(len(PHANTOM_SIZES) - 1)
        self.camera_combo = QComboBox()
        self.camera_combo.setEditable(True)
        self.camera_combo.setToolTip("A camera found on this machine, or type an index (0, 1, ...) or a device path")
        self.camera_raw = QCheckBox("Sensor format (e.g. 16-bit NIR)")
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("video file or .npy frame stack")
        self.file_button = QPushButton("Browse…")
        self.file_realtime = QCheckBox("Play at the file's frame rate")
        self.file_realtime.setChecked(True)
        self.file_loop = QCheckBox("Loop")
        self.producer_edit = QLineEdit(os.environ.get(GENTL_ENV, ""))
        self.producer_edit.setPlaceholderText("GenTL producer (.cti) from the camera vendor")
        self.producer_button = QPushButton("Browse…")

        self.pages = QStackedWidget()
        pages = {
            "phantom": [("Frame size", self.phantom_size)],
            "camera": [("Camera", self.camera_combo), ("", self.camera_raw)],
            "file": [("File", _path_row(self.file_edit, self.file_button)), ("", self.file_realtime),
                     ("", self.file_loop)],
            "genicam": [("Producer", _path_row(self.producer_edit, self.producer_button))],
        }
        for source_type in SOURCE_TYPES:
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            for label, widget in pages[source_type]:
                form.addRow(label, widget)
            self.pages.addWidget(page)
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.type_combo)
        layout.addWidget(self.pages)
        layout.addLayout(buttons)
        _no_focus(self.start_button, self.stop_button, self.file_button, self.producer_button, self.camera_raw,
                  self.file_realtime, self.file_loop)
        self.type_combo.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.file_button.clicked.connect(self._browse_file)
        self.producer_button.clicked.connect(self._browse_producer)

    def set_cameras(self, cameras: list[str]) -> None:
        current = self.camera_combo.currentText()
        self.camera_combo.clear()
        self.camera_combo.addItems(cameras or ["0"])
        if current:
            self.camera_combo.setCurrentText(current)

    def set_source_type(self, source_type: str) -> None:
        self.type_combo.setCurrentIndex(max(0, self.type_combo.findData(source_type)))

    def choice(self) -> SourceChoice:
        source_type = self.type_combo.currentData()
        if source_type == "phantom":
            return SourceChoice(source_type, str(self.phantom_size.currentData()))
        if source_type == "camera":
            return SourceChoice(source_type, self.camera_combo.currentText().strip() or "0",
                                {"raw": True} if self.camera_raw.isChecked() else {})
        if source_type == "file":
            return SourceChoice(source_type, self.file_edit.text().strip(),
                                {"realtime": self.file_realtime.isChecked(), "loop": self.file_loop.isChecked()})
        return SourceChoice(source_type, self.producer_edit.text().strip() or None)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for widget in (self.type_combo, self.pages):
            widget.setEnabled(not running)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", self.file_edit.text(), VIDEO_FILTER)
        if path:
            self.file_edit.setText(path)

    def _browse_producer(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GenTL producer", self.producer_edit.text(),
                                              "GenTL producer (*.cti);;All files (*)")
        if path:
            self.producer_edit.setText(path)


class CameraSettings(QGroupBox):
    """The settings the running source reports (`FrameSource.controls()`): resolution, exposure, gain, frame
    rate. `control_changed(name, value)` asks for one; the window sets it on a worker."""

    control_changed = Signal(str, object)
    NAMES = {"exposure": "Exposure", "gain": "Gain", "fps": "Frame rate"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Camera settings", parent)
        self.form = QFormLayout(self)
        self.note = QLabel("Start a source to see its settings.")
        self.note.setObjectName("smallPrint")
        self.note.setWordWrap(True)
        self.form.addRow(self.note)
        self.editors: dict[str, QWidget] = {}

    def set_controls(self, controls: dict[str, Control] | None) -> None:
        while self.form.rowCount() > 1:
            self.form.removeRow(1)
        self.editors = {}
        if controls is None:
            self.note.setText("Start a source to see its settings.")
            return
        if not controls:
            self.note.setText("This source has no settings to adjust.")
            return
        self.note.setText("As the source reports them; a camera may round what it is asked for.")
        if "width" in controls and "height" in controls:
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItems(RESOLUTIONS)
            combo.setCurrentText(f"{controls['width'].value:.0f}x{controls['height'].value:.0f}")
            combo.activated.connect(lambda _i, c=combo: self._resolution(c.currentText()))
            self.editors["resolution"] = combo
            self.form.addRow("Resolution", combo)
        for name, control in controls.items():
            if name in ("width", "height") or not isinstance(control.value, (int, float)):
                continue
            spin = QDoubleSpinBox()
            spin.setDecimals(3 if abs(float(control.value)) < 10 else 1)
            spin.setRange(control.minimum if control.minimum is not None else -1e9,
                          control.maximum if control.maximum is not None else 1e9)
            spin.setValue(float(control.value))
            spin.setSuffix(f" {control.unit}" if control.unit else "")
            spin.editingFinished.connect(lambda n=name, s=spin: self.control_changed.emit(n, s.value()))
            self.editors[name] = spin
            self.form.addRow(self.NAMES.get(name, name.capitalize()), spin)

    def _resolution(self, text: str) -> None:
        try:
            width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
        except ValueError:
            self.note.setText(f"'{text}' is not a resolution; write width x height, e.g. 1280x720.")
            return
        self.control_changed.emit("width", width)
        self.control_changed.emit("height", height)


class OverlaySettings(QGroupBox):
    """The probability heat layer (shown or not; the window adds its opacity) and temporal smoothing (an
    exponential moving average of the probability map, off by default)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Overlay", parent)
        self.heat_box = QCheckBox("Probability heat layer (H)")
        self.heat_box.setToolTip("The probability map each outline is drawn from, over the same frame")
        self.smoothing_box = QCheckBox("Temporal smoothing (EMA)")
        self.smoothing_box.setToolTip("Average the probability map over frames; steadier outline, slower to follow")
        self.smoothing_weight = QDoubleSpinBox()
        self.smoothing_weight.setRange(0.05, 1.0)
        self.smoothing_weight.setSingleStep(0.05)
        self.smoothing_weight.setValue(0.5)
        self.smoothing_weight.setPrefix("w = ")
        self.smoothing_weight.setToolTip("Weight of the newest frame (1: no smoothing)")
        form = QFormLayout(self)
        form.addRow(self.heat_box)
        form.addRow(self.smoothing_box)
        form.addRow("Newest frame", self.smoothing_weight)
        _no_focus(self.heat_box, self.smoothing_box)

    def smoothing(self) -> float | None:
        return round(self.smoothing_weight.value(), 3) if self.smoothing_box.isChecked() else None


class FrameActions(QGroupBox):
    """Freeze, classify, save and record, with the classification of the frozen frame."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Frame", parent)
        self.freeze_button = QPushButton("Freeze (Space)")
        self.classify_button = QPushButton("Classify (C)")
        self.classify_button.setToolTip("Glioma FL-CNN cascade on the frozen frame: tumor, then grade and Ki-67")
        self.save_button = QPushButton("Save frame (S)")
        self.save_button.setToolTip("Keep the frame on screen and its prediction as a case in the store")
        self.record_button = QPushButton("Record (R)")
        self.record_button.setToolTip("Record every source frame and the overlays into a video case")
        self.result = QLabel("")
        self.result.setObjectName("liveResult")
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.RichText)
        grid = QVBoxLayout(self)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.freeze_button)
        row1.addWidget(self.classify_button)
        row2.addWidget(self.save_button)
        row2.addWidget(self.record_button)
        grid.addLayout(row1)
        grid.addLayout(row2)
        grid.addWidget(self.result)
        _no_focus(self.freeze_button, self.classify_button, self.save_button, self.record_button)
