"""Render the live view and the video review offscreen with the shipped nets and save the PNGs (README and issue
screenshots): streaming with the outline and heat layer, frozen with the FL-CNN classification, signal lost, and
the review of the clip recorded meanwhile.

Usage: QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/capture_live.py [out-folder] [frame-size]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ONCOLENS_HOME", tempfile.mkdtemp(prefix="oncolens-live-shot-"))

WAIT_S = 300


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from app.live.window import LiveWindow
    from app.main import configure_application
    from app.main_window import MainWindow
    from app.workers import wait_for_workers
    from engine.store import Store

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(["oncolens"])
    configure_application(app)

    def wait(condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}")
            app.processEvents()
            time.sleep(0.01)

    def settle(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def save(widget, name: str) -> None:
        """The widget as a PNG; with Pillow, quantised to 256 colours (README images stay under 400 KB)."""
        path = out / name
        widget.grab().save(str(path))
        try:
            from PIL import Image
        except ImportError:
            pass
        else:
            with Image.open(path) as shot:
                shot.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
        print(f"saved {path} ({path.stat().st_size // 1024} KB)")

    store = Store()
    window = MainWindow(store, auto_predict=False)  # the review shows the outlines recorded live
    window.resize(1600, 1000)
    window.show()
    saved: list[str] = []
    live = LiveWindow(store)
    live.case_saved.connect(saved.append)
    live.case_saved.connect(lambda _id: window.case_browser.refresh())
    live.resize(1600, 1000)
    live.show()
    wait(lambda: live.method_combo.count() > 0, "the segmentation nets")
    live.picker.set_kind("phantom")
    live.picker.phantom_size.setCurrentIndex(max(0, live.picker.phantom_size.findData(size)))
    live.start_from_picker()
    wait(lambda: live.frames_drawn >= 20, "20 frames drawn")
    live.overlay.heat_box.setChecked(True)
    live.overlay.smoothing_box.setChecked(True)
    live.toggle_recording()
    wait(lambda: live.recording, "the recording to start")
    wait(lambda: live.panel.has_heat and "p50" in live.hud.info.text(), "the heat layer and the HUD")
    settle(3.0)
    save(live, "live_streaming.png")

    live.toggle_freeze()
    live.classify()
    wait(lambda: live.classification is not None, "the FL-CNN classification")
    settle(0.5)
    save(live, "live_frozen_classified.png")
    live.save_frame()
    wait(lambda: len(saved) == 1, "the frozen frame saved")
    live.toggle_recording()
    wait(lambda: len(saved) == 2, "the recording saved")
    live.toggle_freeze()

    wait(lambda: live.frames_drawn >= 5, "frames after the freeze")
    live.source.unplug()
    wait(lambda: live.signal_lost, "signal lost")
    settle(0.5)
    save(live, "live_signal_lost.png")
    live.source.replug()
    wait(lambda: not live.signal_lost and live.hud.notice.isHidden(), "the signal back")
    live.close()
    wait(lambda: not live.session.running, "the stream to stop")

    recording = saved[1]
    window.case_browser.refresh(select_id=recording)
    window.open_case(recording)
    wait(lambda: window.current_case is not None and window.current_case.id == recording, "the recording opened")
    view = window.current_view()
    settle(0.5)
    view.go_to(min(view.frame_count - 1, 40))
    view.step(1)
    settle(0.5)
    save(window, "video_review.png")
    print(f"recording {recording}: {view.frame_count} frames; saved frame case {saved[0]}")
    window.close()
    wait_for_workers(timeout=60)
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
