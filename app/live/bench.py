"""The GUI half of `oncolens bench live`: the real live view, offscreen, on a given source and segmenter, with a
heartbeat timer on the GUI thread whose late ticks measure how long the thread was kept from its event loop."""

from __future__ import annotations

import gc
import os
import time

import numpy as np

HEARTBEAT_MS = 5


def run_live_view_bench(source, segmenter, seconds: float, smoothing: float | None = None) -> dict:
    """Stream `source` through `segmenter` in the live view for `seconds` (offscreen unless a display is set).

    Returns {"stats": the pipeline's stats snapshot, "gui_stall_max_ms", "gui_stall_p99_ms": how much later than
    due the 5 ms heartbeat ran (its longest and 99th percentile delay), "frames_drawn": overlays the view drew,
    "heartbeats": ticks measured}."""
    if seconds <= 0:
        raise ValueError(f"The bench needs a positive duration, got {seconds} s.")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from app.live.window import LiveWindow
    from app.main import configure_application
    from app.workers import keep_garbage_collection_on_gui_thread, wait_for_workers

    app = QApplication.instance() or QApplication(["oncolens-bench"])
    configure_application(app)
    keep_garbage_collection_on_gui_thread()  # as in the app: collection runs on the GUI thread
    window = LiveWindow(store=None)
    window.resize(1600, 1000)
    window.show()
    if smoothing is not None:
        window.overlay.smoothing_weight.setValue(smoothing)
        window.overlay.smoothing_box.setChecked(True)
    late: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1e3 - HEARTBEAT_MS))
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(beat)
    try:
        gc.collect()  # the window's construction garbage: collected before streaming, as in the app's idle start
        window.start(source, segmenter)
        loop = QEventLoop()
        QTimer.singleShot(round(seconds * 1000), loop.quit)
        last[0] = time.perf_counter()
        heartbeat.start()
        loop.exec()
        heartbeat.stop()
        frames_drawn = window.frames_drawn  # read before the stats: every overlay drawn was processed first
        stats = window.session.pipeline.stats.snapshot()
    finally:
        heartbeat.stop()
        window.close()
        wait_for_workers(timeout=30.0)
        window.deleteLater()
        app.processEvents()
    values = np.asarray(late or [0.0])
    return {"stats": stats, "gui_stall_max_ms": float(values.max()),
            "gui_stall_p99_ms": float(np.percentile(values, 99)), "frames_drawn": int(frames_drawn),
            "heartbeats": len(late), "gui": "live view (offscreen)"}
