"""Render the main window offscreen on a demo case after prediction and save a PNG (README screenshot).

Usage: QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/capture_screenshot.py [out.png] [case-id]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ONCOLENS_HOME", tempfile.mkdtemp(prefix="oncolens-shot-"))


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from app.main import configure_application, import_demo_cases
    from app.main_window import MainWindow
    from app.workers import pending_workers, wait_for_workers
    from engine.store import Store

    out = sys.argv[1] if len(sys.argv) > 1 else "resources/screenshot.png"
    app = QApplication.instance() or QApplication(["oncolens"])
    configure_application(app)
    store = Store()
    first = import_demo_cases(store)
    case_id = sys.argv[2] if len(sys.argv) > 2 else first
    window = MainWindow(store)
    window.resize(1920, 1080)  # a common operating-room display
    window.show()
    window.case_browser.refresh(select_id=case_id)
    window.open_case(case_id)
    deadline = time.monotonic() + 300
    while (not window.predictions or pending_workers()) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    wait_for_workers(timeout=30)
    for _ in range(20):
        app.processEvents()
    window.grab().save(out)
    print(f"saved {out} ({len(window.predictions)} predictions)")
    window.close()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
