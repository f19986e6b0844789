"""Render reading mode offscreen: a reader outlining the tumor on a phantom fluorescence frame (README screenshot).

Usage: QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/capture_reading.py [out.png]
The study, its frames and the reader live in a temporary ONCOLENS_HOME; the outline is placed by the script
along the truth contour, the way a reader would click it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ONCOLENS_HOME", tempfile.mkdtemp(prefix="oncolens-reading-"))


def main() -> int:
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from app.main import configure_application
    from app.main_window import MainWindow
    from app.workers import wait_for_workers
    from engine.cases.bundle import write_bundle
    from engine.phantoms.fluoro_frames import frame_to_case, make_frame
    from engine.predict.fluoro import FluoroSegPredictor
    from engine.seg.contours import mask_to_contours
    from engine.store import Store
    from engine.studies import Study, add_reader, create_study

    out = sys.argv[1] if len(sys.argv) > 1 else "resources/screenshot_reading.png"
    app = QApplication.instance() or QApplication(["oncolens"])
    configure_application(app)
    store = Store()
    predictor = FluoroSegPredictor("unetplusplus", device="cpu")
    ids = []
    for i, tumor_free in enumerate((False, True, False)):
        frame = make_frame(np.random.default_rng([31, i]), "AB"[i % 2], 512, tumor_free=tumor_free)
        case = frame_to_case(frame, f"outline-{i + 1:02d}")
        store.add_case(case, write_bundle(case, Path(os.environ["ONCOLENS_HOME"]) / "frames" / case.id))
        store.add_prediction(case.id, predictor.predict(dict(case.images)))
        ids.append(case.id)
    create_study(store, Study(id="outline-demo", name="Residual tumor in the resection bed", task_label="tumor",
                              case_ids=tuple(ids), modalities=("NIR",), contours=True, seed=4,
                              question="Is there tumor in this frame? If so, outline it."))
    add_reader(store, "outline-demo", "dr-a", "Dr A. Reader", "1234")

    window = MainWindow(store)
    window.resize(1920, 1080)  # a common operating-room display
    window.show()
    window.start_reading("outline-demo", "dr-a", "1234")
    deadline = time.monotonic() + 60
    while window.reading is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    reading = window.reading
    wait_for_workers(timeout=30)
    while reading.case.case_id == "outline-02":  # the tumor-free frame: show one with a tumor
        reading.next(require_answer=False)
        wait_for_workers(timeout=30)  # cases come through the session's worker queue
    view = window.current_view()
    truth = store.load_case(reading.case.case_id).truth.masks["tumor"]
    for contour in mask_to_contours(truth)[:2]:
        points = contour.points[:: max(1, len(contour.points) // 14)]
        for row, col in points + np.random.default_rng(0).normal(0, 2.0, points.shape):
            view.drawing.add_point(col, row)
        view.drawing.close_polygon()
    reading.choose_call(True)
    reading.rate(4)
    wait_for_workers(timeout=30)
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    window.grab().save(out)
    print(f"saved {out}: case {reading.case.case_id}, {len(view.drawing.closed)} outline(s), "
          f"answer saved: {reading.case.answer is not None}")
    reading.panel.setFocus()
    window.stop_reading()
    window.close()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
