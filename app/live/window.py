"""The live view: a camera, video file, GenICam camera or the phantom, with the tumor outline of the chosen net in
the prediction yellow, an optional probability heat layer, the HUD, and the surgeon's keys: Space freezes, C
classifies the frozen frame with the glioma FL-CNN cascade, S saves it as a case, R records a video case.

The GUI thread only draws: the pipeline's threads capture and segment, the stream (app.live.session) packs each
update, and opening sources, loading nets, classifying, saving and finishing recordings run on workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app import theme
from app.live import jobs
from app.live.controls import CameraSettings, FrameActions, OverlaySettings, SourcePicker
from app.live.hud import HudLayer, method_title, recording_text
from app.live.session import LiveSession, LiveUpdate
from app.main_window import BANNER_TEXT
from app.views.base import heatmap_controls
from app.widgets.image_panel import ImagePanel
from app.workers import error_text, submit
from engine.data import Prediction
from engine.live.pipeline import SIGNAL_LOST, STREAMING, LiveSettings, Overlay
from engine.live.sources import FrameSource

KEYS_HINT = "Space freeze · C classify · S save frame · R record · H heat layer · W auto window · F fit"
MESSAGE_MS = 10_000
HISTOGRAM_PERIOD_S = 1.0  # the window/level histogram is recounted this often while streaming, not every frame


class LazyModel:
    """A model built once, on whichever worker first needs it (loading weights is slow); thread-safe."""

    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._model = None

    def get(self):
        with self._lock:
            if self._model is None:
                self._model = self._factory()
            return self._model


def classification_html(prediction: Prediction, number: int) -> str:
    """The FL-CNN cascade's calls with their probabilities against each operating threshold."""
    from engine.kinds import find_kind

    kind = find_kind("glioma_specimen")
    rows = []
    for task, result in prediction.tasks.items():
        title = kind.task(task).title if kind is not None else task
        if result.probability is None:
            rows.append(f"{title}: {result.call}")
            continue
        positive = result.threshold is not None and result.probability >= result.threshold
        colour = theme.POSITIVE if positive else theme.NEGATIVE
        limit = "" if result.threshold is None else f" (threshold {result.threshold:.2f})"
        rows.append(f"{title}: {theme.span(result.call, colour, font_weight='bold')} "
                    f"p = {result.probability:.2f}{limit}")
    return f"<b>FL-CNN on frame {number}</b><br>" + "<br>".join(rows)


def classification_line(prediction: Prediction) -> str:
    """One line for the badge over the image, e.g. 'FL-CNN: tumor 0.91 · GBM 0.34 · Ki-67 >= 10% 0.72'."""
    parts = [f"{r.call} {r.probability:.2f}" for r in prediction.tasks.values() if r.probability is not None]
    return "FL-CNN: " + (" · ".join(parts) or "no call")


class LiveWindow(QWidget):
    """The live view window. `store` None: saving and recording are off (the bench runs it like this)."""

    case_saved = Signal(str)  # a frame or a recording became this case in the store
    frame_drawn = Signal(object)  # the Overlay just drawn (tests, bench)

    def __init__(self, store=None, *, segmenter_factory: Callable[[str], object] | None = None,
                 classifier_factory: Callable[[], object] | None = None, parent: QWidget | None = None) -> None:
        """`segmenter_factory(method)` and `classifier_factory()` build the models (on workers); default: the
        installed segmentation nets and the FL-CNN cascade (app.live.jobs)."""
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window)
        self.setWindowTitle("OncoLens — Live")
        self.setObjectName("liveWindow")
        self.store = store
        self.session = LiveSession(self)
        self.segmenter_factory = segmenter_factory or jobs.make_segmenter
        self._segmenters: dict[str, LazyModel] = {}
        self._classifier = LazyModel(classifier_factory or jobs.make_classifier)
        self.source: FrameSource | None = None
        self.last_update: LiveUpdate | None = None
        self.shown: Overlay | None = None  # the overlay on screen
        self.classification: tuple[Overlay, Prediction] | None = None
        self.frames_drawn = 0
        self._starting = self._classifying = self._recording_starts = False
        self._record_started = 0.0
        self._histogram_counted = 0.0
        self._resumed_at = 0.0  # perf_counter of the last unfreeze: overlays of frames captured before are stale
        self._controls_read = False

        self.banner = QLabel(BANNER_TEXT)
        self.banner.setObjectName("researchBanner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.panel = ImagePanel("", heat_colormap_name=theme.PROBABILITY_COLORMAP)
        self.outline = pg.PlotCurveItem(pen=pg.mkPen(theme.PREDICTION, width=2), connect="finite", antialias=True)
        self.outline.setZValue(21)
        self.panel.plot.addItem(self.outline)
        self.hud = HudLayer(self.panel)
        self.histogram = self.panel.histogram_widget("Window/level of the live frames: drag the region or its "
                                                     "edges (raw counts; W: automatic)")
        self.histogram.setFixedHeight(80)
        self.picker = SourcePicker()
        self.method_combo = QComboBox()
        self.method_combo.setToolTip("Segmentation net drawn on the live frames (DRLSE is too slow for video)")
        method_box = QGroupBox("Method")
        QFormLayout(method_box).addRow(self.method_combo)
        self.camera = CameraSettings()
        self.overlay = OverlaySettings()
        _t, self.opacity_slider, _v, _legend = heatmap_controls(theme.PROBABILITY_COLORMAP, "Probability")
        self.overlay.layout().addRow("Opacity", self.opacity_slider)
        self.actions = FrameActions()
        side = QWidget()
        side.setObjectName("liveSide")
        side_layout = QVBoxLayout(side)
        for box in (self.picker, method_box, self.camera, self.overlay, self.actions):
            side_layout.addWidget(box)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(side.sizeHint().width() + 16)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.hint = QLabel(KEYS_HINT)
        self.hint.setObjectName("smallPrint")
        self.message = QLabel("")
        self.message.setObjectName("liveMessage")
        self._message_timer = QTimer(self, singleShot=True, interval=MESSAGE_MS)
        self._message_timer.timeout.connect(lambda: self.message.setText(""))

        image_column = QVBoxLayout()
        image_column.addWidget(self.hud, 1)
        image_column.addWidget(self.histogram)
        body = QHBoxLayout()
        body.addLayout(image_column, 1)
        body.addWidget(scroll)
        footer = QHBoxLayout()
        footer.addWidget(self.hint)
        footer.addStretch(1)
        footer.addWidget(self.message)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.banner)
        body.setContentsMargins(8, 4, 8, 0)
        footer.setContentsMargins(8, 0, 8, 0)
        layout.addLayout(body, 1)
        layout.addLayout(footer)

        self._record_timer = QTimer(self, interval=500)
        self._record_timer.timeout.connect(self._show_recording)
        self._wire()
        self.panel.set_heat_opacity(0.45)
        self.opacity_slider.setValue(45)
        self._set_frame_actions()
        submit(jobs.live_methods, description="Listing segmentation nets", context=self,
               on_result=self._methods_ready, on_error=self._error("Listing the segmentation nets"))
        submit(jobs.camera_list, description="Looking for cameras", context=self, on_result=self.picker.set_cameras,
               on_error=lambda exc, _tb: self.picker.set_cameras([]))

    def _wire(self) -> None:
        self.session.updated.connect(self._on_update)
        self.session.ended.connect(self._on_ended)
        self.session.failed.connect(lambda exc, tb: self.show_error(exc, tb, "Live video failed"))
        self.picker.start_button.clicked.connect(self.start_from_picker)
        self.picker.stop_button.clicked.connect(self.stop)
        self.method_combo.activated.connect(lambda _i: self._method_picked())
        self.camera.control_changed.connect(self._set_control)
        o = self.overlay
        o.heat_box.toggled.connect(self._heat_toggled)
        o.smoothing_box.toggled.connect(lambda _on: self.session.set_smoothing(o.smoothing()))
        o.smoothing_weight.valueChanged.connect(lambda _w: self.session.set_smoothing(o.smoothing()))
        self.opacity_slider.valueChanged.connect(lambda v: self.panel.set_heat_opacity(v / 100.0))
        a = self.actions
        a.freeze_button.clicked.connect(self.toggle_freeze)
        a.classify_button.clicked.connect(self.classify)
        a.save_button.clicked.connect(self.save_frame)
        a.record_button.clicked.connect(self.toggle_recording)
        keys = {"Space": self.toggle_freeze, "C": self.classify, "S": self.save_frame, "R": self.toggle_recording,
                "H": lambda: o.heat_box.toggle(), "W": self.session.request_levels, "F": self.panel.fit}
        self.shortcuts = {}
        for key, slot in keys.items():
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts[key] = shortcut

    # -- starting and stopping --------------------------------------------------------------------------

    def _methods_ready(self, methods: list[tuple[str, str]]) -> None:
        current = self.method_combo.currentData()
        self.method_combo.clear()
        for method, label in methods:
            self.method_combo.addItem(label, method)
        if current:
            self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(current)))
        if not methods:
            self.say("No segmentation net is installed: train one with `oncolens train fluoro_seg`.")

    def _segmenter(self, method: str) -> LazyModel:
        if method not in self._segmenters:
            self._segmenters[method] = LazyModel(lambda m=method: self.segmenter_factory(m))
        return self._segmenters[method]

    def start_from_picker(self) -> None:
        """Start: the picked source is opened once and the net loaded on a worker, then streamed."""
        if self.session.running or self._starting:
            return
        method = self.method_combo.currentData()
        if not method:
            self.say("No segmentation net to run: train one with `oncolens train fluoro_seg`.")
            return
        choice = self.picker.choice()
        lazy = self._segmenter(method)
        self._starting = True
        self.picker.set_running(True)
        self.say(f"Opening {choice.describe()}…", keep=True)

        def ready(prepared) -> None:
            self._starting = False
            self.start(*prepared)

        def failed(exc: BaseException, tb: str) -> None:
            self._starting = False
            self.picker.set_running(False)
            self.show_error(exc, tb, "The source did not start")

        submit(jobs.prepare_live, choice, method, lambda _m: lazy.get(), description="Opening the live source",
               context=self, on_result=ready, on_error=failed)

    def start(self, source: FrameSource, segmenter) -> None:
        """Stream `source` through `segmenter` now (both ready: built on a worker, or by a test or the bench)."""
        self.source = source
        self.shown = self.classification = None
        self._controls_read = False
        self.camera.set_controls(None)
        self.hud.set_frozen(None)
        self.actions.result.setText("")
        method = getattr(segmenter, "method", "")
        if method and self.method_combo.findData(method) < 0:
            self.method_combo.addItem(method_title(method), method)
        self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(method)))
        settings = LiveSettings(smoothing=self.overlay.smoothing())
        self.session.start(source, segmenter, settings)
        self.picker.set_running(True)
        self.say(f"Streaming {source.label}.")
        self._set_frame_actions()

    def stop(self) -> None:
        """Stop the stream (a recording in progress is finished and saved first)."""
        if self.session.recorder is not None:
            self._finish_recording()
        self.session.stop()

    def _on_ended(self, why: str) -> None:
        if self.session.recorder is not None:
            self._finish_recording()
        self.picker.set_running(False)
        self._set_frame_actions()
        if why == "ended":
            self.hud.set_notice("Source ended", self.source.label if self.source else "")
        elif why == "stopped":
            self.hud.set_notice("Stopped")

    def _method_picked(self) -> None:
        method = self.method_combo.currentData()
        if not method or not self.session.running or method == self.session.pipeline.segmenter.method:
            return
        lazy = self._segmenter(method)
        self.say(f"Loading {method_title(method)}…", keep=True)
        submit(lazy.get, description=f"Loading {method}", context=self,
               on_result=lambda seg: (self.session.set_segmenter(seg), self.say(f"Now {method_title(method)}.")),
               on_error=self._error(f"Loading {method_title(method)}"))

    # -- drawing (the GUI thread's only real work) ---------------------------------------------------------

    def _on_update(self, update: LiveUpdate) -> None:
        self.last_update = update
        self.hud.show_update(update)
        if update.status == STREAMING and not self._controls_read and self.source is not None:
            self._controls_read = True
            self._read_controls()
        overlay = update.overlay
        if (overlay is not None and overlay is not self.shown and not self.session.frozen
                and overlay.frame.captured >= self._resumed_at):
            self._draw(overlay, update)
        elif update.levels is not None:
            self.panel.set_levels(*update.levels)

    def _draw(self, overlay: Overlay, update: LiveUpdate) -> None:
        image = overlay.frame.image
        if not self.panel.replace_pixels(image):
            self.panel.set_image(image, levels=update.levels)
            self.panel.set_title("")
            self.panel.fit()
        else:
            if update.levels is not None:
                self.panel.set_levels(*update.levels)
            if time.perf_counter() - self._histogram_counted > HISTOGRAM_PERIOD_S:
                self._histogram_counted = time.perf_counter()
                self.panel.refresh_histogram()
        self.outline.setData(*update.outline)
        if self.overlay.heat_box.isChecked():
            self.panel.set_heat(overlay.work, visible=True)  # the map this outline came from: same frame
        self.shown = overlay
        self.frames_drawn += 1
        self.session.mark_shown(overlay)
        self.frame_drawn.emit(overlay)
        self._set_frame_actions()

    def _heat_toggled(self, visible: bool) -> None:
        """The probability heat layer of the frame on screen (its net's work-scale map, stretched over the
        frame), then of every frame drawn while it is on."""
        if visible and self.shown is not None:
            self.panel.set_heat(self.shown.work, visible=True)
        else:
            self.panel.set_heat_visible(visible)

    # -- freeze, classify, save ----------------------------------------------------------------------------

    def toggle_freeze(self) -> None:
        self.set_frozen(not self.session.frozen)

    def set_frozen(self, frozen: bool) -> None:
        """Frozen: the model pauses and the frame on screen stays with its outline (capture and recording go on)."""
        if frozen and self.shown is None:
            self.say("Nothing on screen to freeze yet.")
            return
        self.session.freeze(frozen)
        self.actions.freeze_button.setText("Resume (Space)" if frozen else "Freeze (Space)")
        if not frozen:
            self._resumed_at = time.perf_counter()  # the frame in flight at the freeze is seconds old now
            self.classification = None
            self.actions.result.setText("")
        self._show_frozen()
        self._set_frame_actions()

    def _show_frozen(self) -> None:
        if not self.session.frozen or self.shown is None:
            self.hud.set_frozen(None)
            return
        text = f"FROZEN · frame {self.shown.frame.number} · Space resumes"
        if self.classification is not None and self.classification[0] is self.shown:
            text += "\n" + classification_line(self.classification[1])
        self.hud.set_frozen(text)

    def classify(self) -> None:
        """C: the FL-CNN cascade on the frame on screen (frozen first, so the answer matches the screen)."""
        if self.shown is None:
            self.say("Nothing on screen to classify yet.")
            return
        if self._classifying:
            return
        if not self.session.frozen:
            self.set_frozen(True)
        overlay, classifier = self.shown, self._classifier
        self._classifying = True
        self.actions.result.setText(f"Classifying frame {overlay.frame.number} with FL-CNN…")

        def done(prediction: Prediction) -> None:
            self._classifying = False
            self.classification = (overlay, prediction)
            self.actions.result.setText(classification_html(prediction, overlay.frame.number))
            self._show_frozen()

        def failed(exc: BaseException, tb: str) -> None:
            self._classifying = False
            self.actions.result.setText("Classification failed.")
            self.show_error(exc, tb, "Classification failed")

        submit(lambda: jobs.classify_frame(classifier.get(), overlay), description="Classifying the frozen frame",
               context=self, on_result=done, on_error=failed)

    def save_frame(self) -> None:
        """S: the frame on screen with its prediction (and its classification, if any) becomes a case."""
        if self.store is None:
            self.say("Saving needs the case store (open Live from the main window).")
            return
        overlay = self.shown
        if overlay is None:
            self.say("Nothing on screen to save yet.")
            return
        classification = self.classification[1] if self.classification and self.classification[0] is overlay \
            else None
        source = self.source
        segmenter = self.session.pipeline.segmenter if self.session.pipeline is not None else None
        self.say(f"Saving frame {overlay.frame.number}…", keep=True)
        submit(jobs.save_frame_case, self.store, overlay, source_label=source.label if source else "",
               spacing_mm=getattr(source, "spacing_mm", None), segmenter=segmenter, classification=classification,
               description="Saving the frozen frame", context=self,
               on_result=lambda case_id: self._saved(case_id, f"Frame {overlay.frame.number} saved as case "
                                                              f"{case_id}."),
               on_error=self._error("Saving the frame"))

    def _saved(self, case_id: str, text: str) -> None:
        self.say(text)
        self.case_saved.emit(case_id)

    # -- recording -----------------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.session.recorder is not None

    def toggle_recording(self) -> None:
        if self.recording:
            self._finish_recording()
            return
        if self._recording_starts:
            return
        if self.store is None:
            self.say("Recording needs the case store (open Live from the main window).")
            return
        if not self.session.running or self.source is None:
            self.say("Start a source before recording.")
            return
        self._recording_starts = True
        self.hud.set_recording("● REC starting…")

        def started(recorder) -> None:
            self._recording_starts = False
            if not self.session.running:  # the stream ended meanwhile: nothing to record
                submit(jobs.finish_recording, self.store, recorder, description="Closing an empty recording",
                       context=self, on_error=self._error("Closing the recording"))
                self.hud.set_recording(None)
                return
            self.session.attach_recorder(recorder)
            self._record_started = time.perf_counter()
            self._record_timer.start()
            self._show_recording()
            self._set_frame_actions()

        def failed(exc: BaseException, tb: str) -> None:
            self._recording_starts = False
            self.hud.set_recording(None)
            self.show_error(exc, tb, "Recording did not start")

        submit(jobs.start_recording, self.source, description="Starting a recording", context=self,
               on_result=started, on_error=failed)

    def _show_recording(self) -> None:
        recorder = self.session.recorder
        if recorder is not None:
            self.hud.set_recording(recording_text(time.perf_counter() - self._record_started, recorder.frames))

    def _finish_recording(self) -> None:
        recorder = self.session.detach_recorder()
        self._record_timer.stop()
        self.hud.set_recording(None)
        self._set_frame_actions()
        if recorder is None:
            return
        self.say("Saving the recording…", keep=True)

        def done(finished: jobs.FinishedRecording) -> None:
            s = finished.summary
            if not isValid(self):  # the window went while the clip was saved: the case is in the store anyway
                return
            if finished.case_id is None:
                self.say("Nothing was recorded.")
                return
            self._saved(finished.case_id, f"Recording saved as case {finished.case_id}: {s.frames} frames, "
                                          f"{s.overlays} with overlays, {s.seconds:.1f} s.")

        submit(jobs.finish_recording, self.store, recorder, description="Saving the recording", on_result=done,
               on_error=self._error("Saving the recording"))

    # -- camera settings -------------------------------------------------------------------------------

    def _read_controls(self) -> None:
        source = self.source
        submit(source.controls, description="Reading the camera settings", context=self,
               on_result=lambda controls: self.camera.set_controls(controls) if source is self.source else None,
               on_error=self._error("Reading the camera settings"))

    def _set_control(self, name: str, value) -> None:
        source = self.source
        if source is None:
            return

        def done(accepted: bool) -> None:
            if not accepted:
                self.say(f"{source.label} did not take {name} = {value}.")
            self._read_controls()

        submit(source.set_control, name, value, description=f"Setting {name}", context=self, on_result=done,
               on_error=self._error(f"Setting {name}"))

    # -- messages, state, closing ----------------------------------------------------------------------

    def _set_frame_actions(self) -> None:
        running = self.session.running
        has_frame = self.shown is not None
        a = self.actions
        a.freeze_button.setEnabled(has_frame)
        a.classify_button.setEnabled(has_frame)
        a.save_button.setEnabled(has_frame and self.store is not None)
        a.record_button.setEnabled((running and self.store is not None) or self.recording)
        a.record_button.setText("Stop recording (R)" if self.recording else "Record (R)")

    def say(self, text: str, keep: bool = False) -> None:
        self.message.setText(text)
        if keep:
            self._message_timer.stop()
        else:
            self._message_timer.start()

    def _error(self, what: str) -> Callable[[BaseException, str], None]:
        return lambda exc, tb: self.show_error(exc, tb, f"{what} failed")

    def show_error(self, exc: BaseException, tb: str = "", title: str = "Live video") -> None:
        from app.workers import report_error

        self.say(f"{title}: {error_text(exc).splitlines()[0]}")
        report_error(exc, tb, self, title)

    @property
    def signal_lost(self) -> bool:
        return self.last_update is not None and self.last_update.status == SIGNAL_LOST

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)
