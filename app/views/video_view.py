"""Review of a recorded fluorescence video (`fluoro_video` cases): the clip played back with the outlines the live
view drew while recording, or with the per-frame contours of "predict again" (F5); play and pause, frame-by-frame
stepping, the frame number and time. Live, a slow model leaves an outline on screen over later frames; the
review says so: "outline from frame 1231 (3 frames earlier)"."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app import theme
from app.views.base import CaseView, view_buttons
from app.widgets.image_panel import ImagePanel
from engine.cases.model import Case
from engine.data import ModalityImage, Prediction
from engine.kinds.fluoro_video import MODALITY
from engine.live.recording import read_clip
from engine.predict.fluoro import method_label
from engine.predict.fluoro_video import frame_of_key

PREDICTION = "prediction"
RECORDED, PREDICTED, NO_OUTLINE = "recorded", "predicted", "none"
IN_MEMORY_BYTES = 512 * 2**20  # clips up to this size are read into memory on the worker (playback reads no disk)
DEFAULT_FPS = 30.0


@dataclass
class ClipOutlines:
    """The outline drawn with every frame of a clip: contours by the frame number they were computed on, and for
    each frame index the number of the frame whose outline it shows (-1: none yet)."""

    label: str
    contours: dict[int, list[np.ndarray]]
    source: np.ndarray  # (T,) frame number of the outline shown with frame i, -1 for none
    probability: dict[int, float] = field(default_factory=dict)

    def at(self, index: int) -> tuple[list[np.ndarray], int]:
        number = int(self.source[index]) if 0 <= index < len(self.source) else -1
        return (self.contours.get(number, []), number)


def outlines_for(numbers: list[int], computed: dict[int, list[np.ndarray]], label: str,
                 probability: dict[int, float] | None = None) -> ClipOutlines:
    """For each frame, the latest outline computed on it or on an earlier frame (what the live view showed)."""
    done = sorted(computed)
    source = np.full(len(numbers), -1, dtype=np.int64)
    for i, number in enumerate(numbers):
        k = bisect.bisect_right(done, number)
        if k:
            source[i] = done[k - 1]
    return ClipOutlines(label, computed, source, probability or {})


def recorded_outlines(folder: Path, numbers: list[int]) -> ClipOutlines | None:
    clip = read_clip(folder)
    if not clip.overlays:
        return None
    methods = sorted({str(r.get("method", "")) for r in clip.overlays.values()})
    computed = {n: [np.asarray(c, dtype=float) for c in r.get("contours", [])] for n, r in clip.overlays.items()}
    probability = {n: float(r.get("probability", 0.0)) for n, r in clip.overlays.items()}
    label = "Recorded live (" + ", ".join(method_label(m) for m in methods if m) + ")"
    return outlines_for(numbers, computed, label, probability)


def predicted_outlines(prediction: Prediction, count: int) -> ClipOutlines | None:
    """A 'predict again' result: contours keyed by frame index (every k-th frame of a long clip)."""
    computed = {}
    for key, contours in prediction.contours.items():
        index = frame_of_key(key)
        if index is not None:
            computed[index] = [np.asarray(c, dtype=float) for c in contours]
    if not computed:
        return None
    step = int(prediction.measures.get("frame_step", 1) or 1)
    label = f"Predicted again ({method_label(prediction.variant)}" + (f", every {step} frames)" if step > 1 else ")")
    return outlines_for(list(range(count)), computed, label)


def _frame_contours(prediction: Prediction) -> bool:
    return any(frame_of_key(k) is not None for k in prediction.contours)


@dataclass
class PreparedClip:
    """Worked out on a worker (`VideoView.prepare`): the frames (in memory when small), the recording's frame
    numbers and times, and the outlines; used only for the very array it was made from."""

    source: object
    frames: np.ndarray
    numbers: list[int]
    times: list[float]
    fps: float
    recorded: ClipOutlines | None = None
    predicted: list[tuple[object, ClipOutlines]] = field(default_factory=list)  # (prediction.contours, outlines)


def prepare_clip(case: Case, predictions: list[Prediction]) -> PreparedClip | None:
    image = case.images.get(MODALITY)
    if image is None or image.axes != "TYX":
        return None
    array = image.array
    frames = np.array(array) if array.nbytes <= IN_MEMORY_BYTES else array
    count = len(frames)
    fps = float(image.meta.source.get("fps") or DEFAULT_FPS)
    numbers, times, recorded = list(range(count)), [i / fps for i in range(count)], None
    folder = next((Path(p).parent for k, p in case.attachments.items() if k in ("overlays", "frames", "clip")), None)
    if folder is not None and folder.is_dir():
        clip = read_clip(folder)
        if len(clip.numbers) == count:
            numbers, times = clip.numbers, clip.times
        recorded = recorded_outlines(folder, numbers)
    prepared = PreparedClip(array, frames, numbers, times, fps, recorded)
    for prediction in predictions:
        if _frame_contours(prediction):
            outlines = predicted_outlines(prediction, count)
            if outlines is not None:
                prepared.predicted.append((prediction.contours, outlines))
    return prepared


class VideoView(CaseView):
    """A recorded clip: the frame slider, play/pause and stepping, the outline of the chosen source."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoView")
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._case: Case | None = None
        self._prepared: PreparedClip | None = None
        self.clip: PreparedClip | None = None
        self.outlines: dict[str, ClipOutlines] = {}

        self.outline_combo = QComboBox()
        self.outline_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.outline_combo.setToolTip("Which outline to draw: the one recorded live, or a new prediction (F5)")
        self.back_button = QPushButton("◀ Frame")
        self.play_button = QPushButton("Play")
        self.next_button = QPushButton("Frame ▶")
        self.back_button.setToolTip("One frame back (Left or ,)")
        self.next_button.setToolTip("One frame on (Right or .)")
        self.play_button.setToolTip("Play / pause at the recording's frame rate (Space)")
        controls = QHBoxLayout()
        controls.setSpacing(8)
        for widget in (QLabel("Outline"), self.outline_combo, self.back_button, self.play_button, self.next_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        for button in view_buttons(self):
            controls.addWidget(button)
        self.note = QLabel("")
        self.note.setObjectName("viewNote")
        self.note.setWordWrap(True)
        self.position = QLabel("")
        self.position.setObjectName("videoPosition")
        self.position.setTextFormat(Qt.TextFormat.RichText)
        self.panel = ImagePanel("NIR fluorescence video")
        self.layer = self.panel.contour_layer(PREDICTION, color=theme.PREDICTION, z=21)
        self.histogram = self.panel.histogram_widget("Window/level: drag the region or its edges (raw counts)")
        self.model_controls = [self.outline_combo]
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addLayout(controls)
        layout.addWidget(self.note)
        layout.addWidget(self.position)
        layout.addWidget(self.panel, 1)
        layout.addWidget(self.histogram)

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.play_button.clicked.connect(self.toggle_play)
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.outline_combo.currentIndexChanged.connect(lambda _i: self._redraw())
        self.panel.slice_changed.connect(lambda _i: self._show_position())
        for keys, slot in ((("Space",), self.toggle_play), (("Left", ","), lambda: self.step(-1)),
                           (("Right", "."), lambda: self.step(1)), (("Home",), lambda: self.go_to(0)),
                           (("End",), lambda: self.go_to(self.frame_count - 1))):
            for key in keys:
                shortcut = QShortcut(QKeySequence(key), self)
                shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                shortcut.activated.connect(slot)

    # -- CaseView ---------------------------------------------------------------------------------------

    @staticmethod
    def prepare(case: Case, predictions: list[Prediction]) -> PreparedClip | None:
        """Worker thread: the frames into memory (small clips), frame numbers and times, every outline source."""
        return prepare_clip(case, predictions)

    def use_prepared(self, prepared: PreparedClip | None) -> None:
        self._prepared = prepared

    def show_case(self, case: Case) -> None:
        self.pause()
        self._case = case
        image = case.images[MODALITY]
        prepared = self._prepared
        if prepared is None or prepared.source is not image.array:
            prepared = prepare_clip(case, [])
        self.clip = prepared
        self.outlines = {RECORDED: prepared.recorded} if prepared.recorded is not None else {}
        self.panel.set_image(ModalityImage(MODALITY, prepared.frames, image.meta, "TYX"), slice_index=0)
        self.panel.set_title(f"NIR fluorescence video · {prepared.frames.shape[2]}×{prepared.frames.shape[1]} px · "
                             f"{len(prepared.frames)} frames at {prepared.fps:.0f} fps")
        self._fill_outline_combo(RECORDED)
        self.note.setText(case.notes)
        self._redraw()
        self.fit()

    def show_prediction(self, predictions: list[Prediction]) -> None:
        if self.clip is None:
            return
        prepared = self._prepared
        for prediction in predictions:
            if not _frame_contours(prediction):
                continue
            ready = None if prepared is None else next(
                (o for source, o in prepared.predicted if source is prediction.contours), None)
            outlines = ready or predicted_outlines(prediction, self.frame_count)
            if outlines is not None:
                self.outlines[PREDICTED] = outlines
        self._fill_outline_combo(self.outline_combo.currentData() or RECORDED)
        self._redraw()

    def clear(self) -> None:
        self.pause()
        self._case = self.clip = self._prepared = None
        self.outlines = {}
        self.panel.clear()
        self.position.setText("")

    def fit(self) -> None:
        self.panel.fit()

    def reset_levels(self) -> None:
        self.panel.reset_levels()

    # -- playback ---------------------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        return 0 if self.clip is None else len(self.clip.frames)

    @property
    def index(self) -> int:
        return self.panel.slice_index

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if self.clip is None or self.frame_count < 2:
            return
        if self.index >= self.frame_count - 1:
            self.go_to(0)
        self.timer.start(max(1, round(1000.0 / self.clip.fps)))
        self.play_button.setText("Pause")

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setText("Play")

    def step(self, delta: int) -> None:
        """One frame back or on (pauses playback)."""
        self.pause()
        self.go_to(self.index + delta)

    def go_to(self, index: int) -> None:
        if self.clip is not None:
            self.panel.set_slice(index)

    def _tick(self) -> None:
        if self.index >= self.frame_count - 1:
            self.pause()
            return
        self.panel.set_slice(self.index + 1)

    # -- outlines ---------------------------------------------------------------------------------------

    def _fill_outline_combo(self, keep: str) -> None:
        combo = self.outline_combo
        combo.blockSignals(True)
        combo.clear()
        for key in (RECORDED, PREDICTED):
            if key in self.outlines:
                combo.addItem(self.outlines[key].label, key)
        combo.addItem("No outline", NO_OUTLINE)
        combo.setCurrentIndex(max(0, combo.findData(keep)))
        combo.blockSignals(False)

    def current_outlines(self) -> ClipOutlines | None:
        return self.outlines.get(self.outline_combo.currentData())

    def _contours_at(self, _plane: str, index: int) -> list[np.ndarray]:
        outlines = self.current_outlines()
        return [] if outlines is None else outlines.at(index)[0]

    def _redraw(self) -> None:
        self.panel.set_contours(PREDICTION, self._contours_at)  # set_image forgets a layer's contours
        self._show_position()

    def outline_provenance(self, index: int | None = None) -> str:
        """Where the outline on frame `index` comes from, in words."""
        index = self.index if index is None else index
        outlines = self.current_outlines()
        if outlines is None or self.clip is None:
            return "no outline"
        _contours, source = outlines.at(index)
        if source < 0:
            return "no outline yet (the model had not finished a frame)"
        own = self.clip.numbers[index] if outlines is self.outlines.get(RECORDED) else index
        probability = outlines.probability.get(source)
        p = "" if probability is None else f", p = {probability:.2f}"
        if source == own:
            return f"outline computed on this frame{p}"
        label = "frame" if outlines is self.outlines.get(RECORDED) else "frame index"
        gap = own - source
        return theme.span(f"outline from {label} {source} ({gap} frame{'' if gap == 1 else 's'} earlier){p}",
                          theme.WARNING)

    def _show_position(self) -> None:
        if self.clip is None:
            return
        i = self.index
        numbers, times = self.clip.numbers, self.clip.times
        self.position.setText(f"<b>Frame {i + 1} / {self.frame_count}</b> · camera frame {numbers[i]} · "
                              f"{times[i]:.2f} s / {times[-1]:.2f} s · {self.outline_provenance(i)}")
