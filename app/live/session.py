"""A live session: the engine's LivePipeline run through the streaming worker, its state handed to the GUI thread.

The pipeline's callbacks run on its own threads and only note the newest overlay and status in an `UpdateHub`. A stream generator (`app.streaming.stream`, latest only) wakes on each note, packs the newest state
into a `LiveUpdate` (with the outline ready to draw, the stats, a window/level when one was asked for) and yields
it; the GUI thread draws what it gets and never waits. An update carries state, not events, so one the GUI had no
time for costs a frame on screen and nothing else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.streaming import StreamHandle, stream
from app.widgets.image_panel import rgb_levels, robust_levels
from engine.live.pipeline import ENDED, LivePipeline, LiveSettings, Overlay
from engine.live.recording import ClipRecorder
from engine.live.sources import Frame, FrameSource

HUD_PERIOD_S = 0.25  # the HUD refreshes at least this often, frames or not (signal lost, frozen)
STARTING = "starting"


def outline_xy(contours: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every contour as one polyline for a single curve item: closed loops through the pixel centres (x = column,
    y = row), NaN between loops (drawn with connect='finite')."""
    xs, ys = [], []
    for contour in contours:
        points = np.asarray(contour, dtype=float)
        if len(points) < 2:
            continue
        loop = np.vstack([points, points[:1]]) + 0.5
        xs += [loop[:, 1], [np.nan]]
        ys += [loop[:, 0], [np.nan]]
    if not xs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys)


def frame_levels(frame: Frame) -> tuple[float, float]:
    """An automatic window for one frame: robust percentiles for grey, the full range for colour."""
    image = frame.image
    return rgb_levels(image) if image.ndim == 3 else robust_levels(image[::2, ::2])


@dataclass
class LiveUpdate:
    """What the GUI draws and writes in the HUD; always the newest state."""

    status: str
    detail: str
    overlay: Overlay | None  # the newest processed frame
    outline: tuple[np.ndarray, np.ndarray]  # its contours as one NaN-separated polyline (x, y)
    stats: dict
    levels: tuple[float, float] | None  # a window for `overlay`'s frame, when one was asked for
    method: str
    path: str  # the inference path (e.g. 'ONNX Runtime', 'eager PyTorch (fallback: ...)')
    source: str
    smoothing: float | None


class UpdateHub:
    """Where the pipeline's threads leave the newest overlay and status, waking the stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._overlay: Overlay | None = None
        self._status = (STARTING, "")
        self._levels_wanted = True  # the first frame sets the window

    def on_overlay(self, overlay: Overlay) -> None:
        with self._lock:
            self._overlay = overlay
        self._wake.set()

    def on_status(self, status: str, detail: str) -> None:
        with self._lock:
            self._status = (status, detail)
        self._wake.set()

    def want_levels(self) -> None:
        with self._lock:
            self._levels_wanted = True
        self._wake.set()

    def wait(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def take(self) -> tuple[Overlay | None, tuple[str, str], bool]:
        """The newest overlay and status, and whether a window is wanted (then it is no longer, if an
        overlay is there to compute it on)."""
        with self._lock:
            wanted = self._levels_wanted and self._overlay is not None
            if wanted:
                self._levels_wanted = False
            return self._overlay, self._status, wanted


def path_label(segmenter) -> str:
    """The segmenter's inference path as engine.fastpath names it ('' when it has none)."""
    return str(getattr(getattr(segmenter, "fast", None), "label", "") or "")


def live_updates(pipeline: LivePipeline, hub: UpdateHub, period_s: float = HUD_PERIOD_S):
    """Stream generator: start the pipeline, yield a LiveUpdate on every change and at least every `period_s`,
    and stop the pipeline when the stream is aborted or the source ends."""
    pipeline.start()
    drawn: tuple[Overlay | None, tuple[np.ndarray, np.ndarray]] = (None, outline_xy([]))
    try:
        while True:
            hub.wait(period_s)
            overlay, (status, detail), want_levels = hub.take()
            if overlay is not None and drawn[0] is not overlay:
                drawn = (overlay, outline_xy(overlay.contours))
            segmenter = pipeline.segmenter
            yield LiveUpdate(status, detail, overlay, drawn[1], pipeline.stats.snapshot(),
                             frame_levels(overlay.frame) if want_levels else None, segmenter.method,
                             path_label(segmenter), pipeline.source.label, pipeline.settings.smoothing)
            if status == ENDED:
                return ENDED
    finally:
        pipeline.stop()


class LiveSession(QObject):
    """One source through one segmenter, on the GUI's terms: `updated` delivers LiveUpdates on the GUI thread;
    freezing, smoothing and a recorder are switched from the GUI thread. The probability heat layer needs no
    work of its own: it is the map each overlay's outline was drawn from (`Overlay.work`)."""

    updated = Signal(object)  # LiveUpdate
    ended = Signal(str)  # the stream is over: 'ended' (the file ended), 'stopped' (asked) or 'failed'
    failed = Signal(object, str)  # an error in the stream (exception, traceback)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pipeline: LivePipeline | None = None
        self.hub: UpdateHub | None = None
        self.handle: StreamHandle | None = None
        self.recorder: ClipRecorder | None = None
        self.frozen = False

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.is_running

    def start(self, source: FrameSource, segmenter, settings: LiveSettings | None = None) -> None:
        """Stream `source` through `segmenter` (both ready: the source opens on the capture thread)."""
        if self.running:
            raise RuntimeError("A live session is already running; stop it first.")
        self.hub = hub = UpdateHub()
        self.frozen = False
        self.pipeline = LivePipeline(source, segmenter, on_overlay=hub.on_overlay, on_status=hub.on_status,
                                     settings=settings or LiveSettings())
        self.handle = stream(live_updates, self.pipeline, hub, on_yield=self.updated.emit,
                             on_finish=lambda why: self.ended.emit(why or ENDED),
                             on_abort=lambda: self.ended.emit("stopped"), on_error=self._failed,
                             description="Live video", context=self, latest_only=True)

    def _failed(self, exc: BaseException, tb: str) -> None:
        self.failed.emit(exc, tb)
        self.ended.emit("failed")

    def stop(self) -> None:
        """End the stream; the pipeline stops on the worker (its threads are joined there, not here)."""
        if self.handle is not None and self.handle.is_running:
            self.handle.abort()

    # -- switches (GUI thread; each is a flag or a short lock in the pipeline) --------------------------

    def freeze(self, frozen: bool) -> None:
        """Frozen: the model stops (capture and recording go on) and the view keeps the frame it shows."""
        self.frozen = frozen
        if self.pipeline is not None:
            self.pipeline.pause_inference(frozen)

    def set_smoothing(self, weight: float | None) -> None:
        if self.pipeline is not None:
            self.pipeline.set_smoothing(weight)

    def request_levels(self) -> None:
        """The next update carries an automatic window for its frame (computed on the stream's thread)."""
        if self.hub is not None:
            self.hub.want_levels()

    def set_segmenter(self, segmenter) -> None:
        if self.pipeline is not None:
            self.pipeline.set_segmenter(segmenter)

    def mark_shown(self, overlay: Overlay) -> None:
        if self.pipeline is not None:
            self.pipeline.mark_shown(overlay)

    # -- recording --------------------------------------------------------------------------------------

    def attach_recorder(self, recorder: ClipRecorder) -> None:
        """Every source frame and every overlay from now on go to `recorder` (on the pipeline's threads)."""
        if self.pipeline is None:
            raise RuntimeError("Start the live video before recording.")
        self.recorder = recorder
        self.pipeline.add_frame_consumer(recorder.add_frame)
        self.pipeline.add_overlay_consumer(recorder.add_overlay)

    def detach_recorder(self) -> ClipRecorder | None:
        """Stop feeding the recorder (it still has to be stopped, off the GUI thread: it drains to disk)."""
        recorder, self.recorder = self.recorder, None
        if recorder is not None and self.pipeline is not None:
            self.pipeline.remove_consumer(recorder.add_frame)
            self.pipeline.remove_consumer(recorder.add_overlay)
        return recorder
