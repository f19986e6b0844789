"""The rotating PET maximum-intensity projection of the PET-CT viewer: an `ImagePanel` in inverted grey (SUV 0 to
the viewer's top), an angle slider and Play. The angles are computed by `engine.explain.petct_display.iter_mip`
on a worker stream and appear as they arrive; a new case aborts the stream of the old one."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from app.streaming import stream
from app.widgets.image_panel import ImagePanel
from engine.data import SUV, YX, ImageMeta, ModalityImage
from engine.explain.petct_display import PET_GREY_SUV, MIPFrame, iter_mip

STEP_MS = 80  # Play: one angle every 80 ms


class RotatingMIPPanel(QWidget):
    """`start(pet)` computes and shows the MIP angles; `frames[i]` is None until angle i has arrived."""

    def __init__(self, colormap: pg.ColorMap, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = ImagePanel("PET MIP", title_size="11pt")
        self.panel.image.setColorMap(colormap)
        self.panel.graphics.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("MIP angle about the long axis")
        self.play = QPushButton("Play")
        self.play.setCheckable(True)
        self.play.setObjectName("modeButton")
        self.play.setToolTip("Rotate the MIP")
        self.label = QLabel("")
        self.label.setObjectName("smallPrint")
        self.label.setMinimumWidth(110)
        row = QHBoxLayout()
        row.setContentsMargins(6, 0, 6, 0)
        row.addWidget(self.play)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.panel, 1)
        layout.addLayout(row)
        self.timer = QTimer(self)
        self.timer.setInterval(STEP_MS)
        self.frames: list[MIPFrame | None] = []
        self.levels = PET_GREY_SUV
        self._stream = None
        self._generation = 0
        self.slider.valueChanged.connect(self._show)
        self.play.toggled.connect(self._play_toggled)
        self.timer.timeout.connect(self._step)

    def start(self, pet: ModalityImage) -> None:
        """Forget what is shown and compute the MIP of `pet` on a worker, angle by angle."""
        self.stop()
        self._generation += 1
        generation = self._generation
        self.panel.clear()
        self.panel.set_missing("Computing the MIP…", (1, 1))
        self.slider.setEnabled(False)
        self._stream = stream(iter_mip, pet, description="Computing the PET MIP", context=self,
                              on_yield=lambda frame: self._arrived(generation, frame))

    def stop(self, message: str = "") -> None:
        """Abort the computation (if running) and show nothing, or `message`."""
        self._generation += 1
        if self._stream is not None and not self._stream.done:
            self._stream.abort()
        self._stream = None
        self.play.setChecked(False)
        self.frames = []
        self.label.setText("")
        self.panel.clear()
        if message:
            self.panel.set_missing(message, (1, 1))

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = levels
        self.panel.image.setLevels(levels)

    @property
    def ready(self) -> int:
        return sum(f is not None for f in self.frames)

    @property
    def angle(self) -> float | None:
        index = self.slider.value()
        frame = self.frames[index] if 0 <= index < len(self.frames) else None
        return None if frame is None else frame.angle_deg

    def fit(self) -> None:
        self.panel.fit()

    def _arrived(self, generation: int, frame: MIPFrame) -> None:
        if generation != self._generation:
            return
        if not self.frames:
            self.frames = [None] * frame.count
            self.slider.blockSignals(True)
            self.slider.setRange(0, frame.count - 1)
            self.slider.setValue(0)
            self.slider.blockSignals(False)
        self.frames[frame.index] = frame
        self.slider.setEnabled(True)
        if frame.index == 0:
            self.panel.set_missing("")
            self.panel.set_image(ModalityImage("PET", frame.image, ImageMeta(32, SUV, frame.spacing), YX),
                                 levels=self.levels, auto_levels=PET_GREY_SUV)
            self.panel.fit()
        self._update_label()

    def _show(self, index: int) -> None:
        frame = self.frames[index] if 0 <= index < len(self.frames) else None
        if frame is not None:
            self.panel.image.setImage(frame.image, autoLevels=False, levels=self.levels)
        self._update_label()

    def _update_label(self) -> None:
        angle, total = self.angle, len(self.frames)
        ready = "" if self.ready == total else f" ({self.ready}/{total} ready)"
        self.label.setText(("" if angle is None else f"{angle:.0f}°") + ready)

    def _play_toggled(self, playing: bool) -> None:
        self.play.setText("Pause" if playing else "Play")
        (self.timer.start if playing else self.timer.stop)()

    def _step(self) -> None:
        count = len(self.frames)
        if not count:
            return
        index = self.slider.value()
        for _ in range(count):  # the next angle that has arrived
            index = (index + 1) % count
            if self.frames[index] is not None:
                break
        self.slider.setValue(index)
