"""The real-time pipeline: capture thread -> latest-frame slot -> inference (probability map and contour) ->
overlay -> the caller (the GUI), with an optional heat layer on its own low-priority worker.

Frames are never queued for inference: the slot holds only the newest frame, and a frame the model had no
time for is replaced (and counted as dropped). Other consumers of the source (the recorder) get every
frame through their own callbacks, so a slow model never costs a recorded frame. Every stage stamps its
time with `time.perf_counter()`:

  captured   the source delivered the frame          taken      inference picked it from the slot
  inferred   the model's probability map is ready     contoured  the outline is traced (overlay ready)
  delivered  the overlay was handed to the caller     shown      the GUI drew it (`mark_shown`)

Temporal smoothing (an exponential moving average of the probability map, off by default) is a setting;
the overlay says when it is on so the HUD can state it. A source that stops is reopened every
`reconnect_s` until it returns; corrupt frames are skipped and counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.live.sources import CorruptFrame, Frame, FrameSource, SignalLost, SourceError
from engine.seg.contours import mask_to_contours, net_area

log = logging.getLogger(__name__)

STAGES = ("wait", "inference", "contour", "deliver", "capture_to_overlay")
STREAMING, SIGNAL_LOST, ENDED, STOPPED = "streaming", "signal lost", "ended", "stopped"


class Segmenter(Protocol):
    """What the pipeline needs of a segmentation method (engine.predict.fluoro.FluoroSegPredictor has it)."""

    threshold: float
    method: str

    def work_probabilities(self, image: np.ndarray, bit_depth: int | None = None) -> tuple[np.ndarray, object, dict]:
        """Probability map at the net's work scale, the geometry back to the frame (height, width), timings."""


@dataclass
class Overlay:
    """One processed frame: what the live view draws over it."""

    frame: Frame
    method: str
    contours: list[np.ndarray]  # (N, 2) row, col in frame pixels, outer outlines first, then holes
    probability: float  # the highest pixel probability (the frame-level answer)
    threshold: float
    area_px: float
    work: np.ndarray  # the probability map at work scale (smoothed when smoothing is on)
    smoothing: float | None  # the moving-average weight of the newest frame, None when off
    stamps: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def tumor(self) -> bool:
        return bool(self.contours)


@dataclass
class Heat:
    number: int  # the frame it belongs to
    map: np.ndarray  # at the frame's size, 0..1


@dataclass
class LiveSettings:
    smoothing: float | None = None  # EMA weight of the newest map (e.g. 0.5); None: off
    heat_every: int = 0  # compute the heat layer every N processed frames (0: only when asked)
    reconnect_s: float = 0.5
    window: int = 2000  # timings kept for the percentiles


class LiveStats:
    """Counters and recent timings, safe to read from any thread."""

    def __init__(self, window: int = 2000) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.processed = 0
        self.dropped = 0  # replaced in the slot before inference took them
        self.source_gaps = 0  # frame numbers the source skipped
        self.corrupt = 0
        self.signal_losses = 0
        self.reconnects = 0
        self.shown = 0
        self._in_times: deque[float] = deque(maxlen=240)
        self._out_times: deque[float] = deque(maxlen=240)
        self.stages: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self.started = time.perf_counter()

    def frame_in(self, t: float) -> None:
        with self._lock:
            self.frames_in += 1
            self._in_times.append(t)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def processed_frame(self, overlay: Overlay) -> None:
        s = overlay.stamps
        with self._lock:
            self.processed += 1
            self._out_times.append(s["delivered"])
            self.stages["wait"].append(s["taken"] - s["captured"])
            self.stages["inference"].append(s["inferred"] - s["taken"])
            self.stages["contour"].append(s["contoured"] - s["inferred"])
            self.stages["deliver"].append(s["delivered"] - s["contoured"])

    def shown_frame(self, overlay: Overlay) -> None:
        with self._lock:
            self.shown += 1
            self.stages["capture_to_overlay"].append(overlay.stamps["shown"] - overlay.stamps["captured"])

    @staticmethod
    def _rate(times: deque[float], now: float, span: float = 2.0) -> float:
        recent = [t for t in times if now - t <= span]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def snapshot(self) -> dict:
        """fps in and out over the last two seconds, the counters, and p50/p99 (ms) of each stage."""
        now = time.perf_counter()
        with self._lock:
            out = {"fps_in": self._rate(self._in_times, now), "fps_out": self._rate(self._out_times, now),
                   "frames_in": self.frames_in, "processed": self.processed, "dropped": self.dropped,
                   "source_gaps": self.source_gaps, "corrupt": self.corrupt, "signal_losses": self.signal_losses,
                   "reconnects": self.reconnects, "shown": self.shown}
            stages = {k: list(v) for k, v in self.stages.items()}
        for name, values in stages.items():
            if values:
                ms = np.asarray(values) * 1e3
                out[f"{name}_p50_ms"] = float(np.percentile(ms, 50))
                out[f"{name}_p99_ms"] = float(np.percentile(ms, 99))
        return out


class LatestSlot:
    """Holds at most one item: a new one replaces an untaken one (which counts as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item) -> bool:
        """Store `item`; True when it replaced one nobody took."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None):
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _lower_priority() -> None:
    """Make the calling thread yield the CPU to the others (Linux: a per-thread nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def frame_heat(frame: Frame, overlay: Overlay) -> np.ndarray:
    """The default heat layer: the probability map at the frame's size."""
    import cv2

    h, w = frame.image.shape[:2]
    return cv2.resize(overlay.work, (w, h), interpolation=cv2.INTER_LINEAR)


class LivePipeline:
    """Runs a source through a segmenter on background threads. Callbacks run on those threads: a GUI hands
    them to its own thread (a queued signal) and calls `mark_shown` when it has drawn an overlay."""

    def __init__(self, source: FrameSource, segmenter: Segmenter, *,
                 on_overlay: Callable[[Overlay], None] | None = None,
                 on_status: Callable[[str, str], None] | None = None,
                 on_heat: Callable[[Heat], None] | None = None,
                 heat: Callable[[Frame, Overlay], np.ndarray] = frame_heat,
                 settings: LiveSettings | None = None) -> None:
        self.source = source
        self._segmenter = segmenter
        self.on_overlay, self.on_status, self.on_heat, self.heat = on_overlay, on_status, on_heat, heat
        self.settings = settings or LiveSettings()
        self.stats = LiveStats(self.settings.window)
        self.status, self.status_detail = "starting", ""
        self._slot = LatestSlot()
        self._heat_slot = LatestSlot()
        self._frame_consumers: list[Callable[[Frame], None]] = []
        self._overlay_consumers: list[Callable[[Overlay], None]] = []
        self._consumer_lock = threading.Lock()
        self._running = threading.Event()
        self._source_ended = threading.Event()
        self._inference_paused = threading.Event()
        self._heat_wanted = threading.Event()
        self._ema: np.ndarray | None = None
        self._threads: list[threading.Thread] = []
        self.last_overlay: Overlay | None = None
        self.error: BaseException | None = None

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> LivePipeline:
        self._running.set()
        for name, target in (("capture", self._capture_loop), ("inference", self._inference_loop),
                             ("heat", self._heat_loop)):
            thread = threading.Thread(target=target, name=f"live-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._running.clear()
        self._slot.close()
        self._heat_slot.close()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        try:
            self.source.close()
        finally:
            self._set_status(STOPPED)

    @property
    def running(self) -> bool:
        return self._running.is_set()

    @property
    def segmenter(self) -> Segmenter:
        return self._segmenter

    def set_segmenter(self, segmenter: Segmenter) -> None:
        """Switch the method between frames (the smoothing restarts)."""
        self._segmenter = segmenter
        self._ema = None

    def set_smoothing(self, weight: float | None) -> None:
        if weight is not None and not 0.0 < weight <= 1.0:
            raise ValueError(f"Smoothing weight must be in (0, 1], got {weight}.")
        self.settings.smoothing = weight
        self._ema = None

    def pause_inference(self, paused: bool) -> None:
        """Frozen view: stop running the model (capture and recording go on)."""
        if paused:
            self._inference_paused.set()
        else:
            self._inference_paused.clear()

    def request_heat(self) -> None:
        """Compute the heat layer for the next processed frame."""
        self._heat_wanted.set()

    def add_frame_consumer(self, consumer: Callable[[Frame], None]) -> None:
        """`consumer(frame)` gets every frame the source delivers, on the capture thread (keep it quick)."""
        with self._consumer_lock:
            self._frame_consumers.append(consumer)

    def add_overlay_consumer(self, consumer: Callable[[Overlay], None]) -> None:
        with self._consumer_lock:
            self._overlay_consumers.append(consumer)

    def remove_consumer(self, consumer) -> None:
        with self._consumer_lock:
            for group in (self._frame_consumers, self._overlay_consumers):
                if consumer in group:
                    group.remove(consumer)

    def mark_shown(self, overlay: Overlay, when: float | None = None) -> None:
        """The GUI drew `overlay`: closes its capture-to-overlay time."""
        overlay.stamps["shown"] = time.perf_counter() if when is None else when
        self.stats.shown_frame(overlay)

    # -- threads ---------------------------------------------------------------------------------

    def _set_status(self, status: str, detail: str = "") -> None:
        if (status, detail) == (self.status, self.status_detail):
            return
        self.status, self.status_detail = status, detail
        if self.on_status is not None:
            self.on_status(status, detail)

    def _capture_loop(self) -> None:
        opened = False
        last_number: int | None = None
        lost_once = False
        while self._running.is_set():
            if not opened:
                try:
                    self.source.open()
                except SourceError as exc:
                    self._set_status(SIGNAL_LOST, str(exc))
                    time.sleep(self.settings.reconnect_s)
                    continue
                opened = True
                if lost_once:
                    self.stats.count("reconnects")
                self._set_status(STREAMING, self.source.label)
            try:
                frame = self.source.read()
            except SignalLost as exc:
                self.stats.count("signal_losses")
                self._set_status(SIGNAL_LOST, str(exc))
                self.source.close()
                opened, lost_once = False, True
                time.sleep(self.settings.reconnect_s)
                continue
            except CorruptFrame as exc:
                self.stats.count("corrupt")
                log.debug("skipped: %s", exc)
                continue
            except Exception as exc:  # noqa: BLE001  (a source bug must not kill the thread silently)
                self.error = exc
                self._set_status(SIGNAL_LOST, f"{type(exc).__name__}: {exc}")
                self.source.close()
                opened = False
                time.sleep(self.settings.reconnect_s)
                continue
            if frame is None:  # the end of a file: inference finishes the last frame, then says 'ended'
                self._source_ended.set()
                self._slot.close()
                break
            self.stats.frame_in(frame.captured)
            if last_number is not None and frame.number > last_number + 1:
                self.stats.count("source_gaps", frame.number - last_number - 1)
            last_number = frame.number
            with self._consumer_lock:
                consumers = list(self._frame_consumers)
            for consumer in consumers:
                consumer(frame)
            if not self._inference_paused.is_set() and self._slot.put(frame):
                self.stats.count("dropped")

    def _inference_loop(self) -> None:
        while self._running.is_set():
            frame = self._slot.take(timeout=0.2)
            if frame is None:
                if self._source_ended.is_set():
                    self._set_status(ENDED, self.source.label)
                    break
                continue
            try:
                overlay = self.process(frame)
            except Exception as exc:  # noqa: BLE001  (shown as the status; the stream goes on)
                self.error = exc
                log.exception("live inference failed")
                self._set_status(STREAMING, f"model error: {type(exc).__name__}: {exc}")
                continue
            self.last_overlay = overlay
            if self.on_overlay is not None:
                self.on_overlay(overlay)
            overlay.stamps["delivered"] = time.perf_counter()
            self.stats.processed_frame(overlay)
            with self._consumer_lock:
                consumers = list(self._overlay_consumers)
            for consumer in consumers:
                consumer(overlay)
            every = self.settings.heat_every
            if self._heat_wanted.is_set() or (every and self.stats.processed % every == 0):
                self._heat_wanted.clear()
                self._heat_slot.put(overlay)

    def process(self, frame: Frame) -> Overlay:
        """Probability map, optional smoothing and outline of one frame (the inference thread's work)."""
        taken = time.perf_counter()
        segmenter = self._segmenter
        work, geometry, timings = segmenter.work_probabilities(frame.image, frame.bit_depth)
        inferred = time.perf_counter()
        weight = self.settings.smoothing
        if weight is not None:
            if self._ema is None or self._ema.shape != work.shape:
                self._ema = work.copy()
            else:
                self._ema *= (1.0 - weight)
                self._ema += weight * work
            work = self._ema.copy()
        contours = mask_to_contours(work, spacing=None, threshold=segmenter.threshold,
                                    frame_shape=(geometry.height, geometry.width))
        contoured = time.perf_counter()
        timings = {**timings, "contour": (contoured - inferred) * 1e3}
        return Overlay(frame=frame, method=segmenter.method, contours=[c.points for c in contours],
                       probability=float(work.max()) if work.size else 0.0, threshold=segmenter.threshold,
                       area_px=float(net_area(contours)), work=work, smoothing=weight,
                       stamps={"captured": frame.captured, "taken": taken, "inferred": inferred,
                               "contoured": contoured}, timings_ms=timings)

    def _heat_loop(self) -> None:
        _lower_priority()
        while self._running.is_set():
            overlay = self._heat_slot.take(timeout=0.2)
            if overlay is None:
                continue
            try:
                heat = Heat(overlay.frame.number, self.heat(overlay.frame, overlay))
            except Exception:  # noqa: BLE001
                log.exception("heat layer failed")
                continue
            if self.on_heat is not None:
                self.on_heat(heat)
