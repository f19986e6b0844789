"""GUI half of `oncolens --self-test`: build the main window offscreen, open a demo case, predict, report.

The packaged bundle's smoke test runs this, so it checks what a frozen build tends to lose: the
stylesheet, Qt plugins, the demo cases and a prediction delivered through the worker.
"""

from __future__ import annotations

import sys
import time


def window_self_test(timeout_s: float = 120.0) -> int:
    """0 when the window shows, a demo case opens and its prediction arrives without error; else 1."""
    from PySide6.QtWidgets import QApplication

    from app.main import configure_application, import_demo_cases
    from app.main_window import BANNER_TEXT, MainWindow
    from app.workers import wait_for_workers
    from engine.paths import demo_cases_dir
    from engine.store import Store

    started = time.perf_counter()
    app = QApplication.instance() or QApplication(["oncolens-self-test"])
    configure_application(app)
    if not app.styleSheet():
        return _fail("the stylesheet (resources/style.qss) was not loaded")
    errors: list[str] = []
    with Store() as store:
        first = import_demo_cases(store)
        if first is None:
            first = next((s.id for s in store.list_cases()), None)
        if first is None:
            return _fail(f"no demo cases in {demo_cases_dir()}")
        window = MainWindow(store)
        window.show_error = lambda exc, tb="", title="": errors.append(f"{title}: {exc}")  # no modal box offscreen
        window.resize(1600, 1000)
        window.show()
        if window.banner.text() != BANNER_TEXT or not window.banner.isVisible():
            return _fail("the research-use banner is not shown")
        shown = time.perf_counter()
        print(f"ok  main window shown in {shown - started:.1f} s")
        window.open_case(first)
        deadline = time.monotonic() + timeout_s
        while not window.predictions and not errors and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        wait_for_workers(timeout=10.0)
        window.close()
        window.deleteLater()
    if errors:
        return _fail("; ".join(errors))
    if not window.predictions:
        return _fail(f"no prediction for {first} within {timeout_s:.0f} s")
    calls = ", ".join(f"{p.model}: {p.calls.get('tumor', '?')}" for p in window.predictions)
    print(f"ok  GUI predicted {first} ({calls}) in {time.perf_counter() - shown:.1f} s")
    return 0


def _fail(reason: str) -> int:
    print(f"self-test FAILED (GUI): {reason}", file=sys.stderr)
    return 1
