"""Starting the GUI: QApplication with the OR-friendly dark theme, the store, demo cases, the main window."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app import theme
from app.excepthook import install_excepthook
from app.main_window import MainWindow
from app.workers import error_text, submit, wait_for_workers
from engine.cases.bundle import is_bundle
from engine.paths import demo_cases_dir, resources_dir, user_data_dir
from engine.store import Store, StoreError

log = logging.getLogger(__name__)

BASE_POINT_SIZE = 13
WINDOW_SIZE = (1600, 1000)
# The case a first start opens: a representative frame, not the worst. UNet++ Dice on the six demo frames
# (measured): 0.27, 0.75, 0.54, 0.88, 0.98, 0.68 for demo-fluoro-01..06; 06 is nearest their median (0.72).
FIRST_DEMO_CASE = "demo-fluoro-06"


def configure_application(app: QApplication) -> None:
    """Fusion style, the theme's dark palette, large type and `resources/style.qss` (missing file: defaults, logged)."""
    app.setApplicationName("OncoLens")
    app.setOrganizationName("OncoLens")
    app.setStyle("Fusion")
    app.setPalette(theme.palette())
    font = QFont(app.font())
    font.setPointSize(BASE_POINT_SIZE)
    app.setFont(font)
    pg.setConfigOptions(antialias=True)
    style = resources_dir() / "style.qss"
    try:
        app.setStyleSheet(theme.load_stylesheet(style))
    except (OSError, KeyError) as exc:
        log.warning("Stylesheet %s not loaded (%s); using the plain dark palette.", style, exc)
    icon = resources_dir() / "icons" / "oncolens.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))


def import_demo_cases(store: Store, folder: Path | None = None) -> str | None:
    """On first start (empty store) add copies of the shipped demo bundles (results are kept in a case's bundle,
    and the installation is never written); return the demo case to open first (FIRST_DEMO_CASE when
    shipped, else the first by id), if any."""
    folder = folder or demo_cases_dir()
    if store.list_cases(limit=1) or not folder.is_dir():
        return None
    copies = user_data_dir() / "demo_cases"
    for bundle in (p for p in folder.iterdir() if is_bundle(p)):
        if not (copies / bundle.name).exists():
            shutil.copytree(bundle, copies / bundle.name)
    ids = sorted(store.import_bundles(copies)) if copies.is_dir() else []
    return FIRST_DEMO_CASE if FIRST_DEMO_CASE in ids else ids[0] if ids else None


def initial_window_size(app: QApplication) -> tuple[int, int]:
    """WINDOW_SIZE, or the screen's free area where that is smaller (a 1366 x 768 OR-cart screen)."""
    screen = app.primaryScreen()
    if screen is None:
        return WINDOW_SIZE
    free = screen.availableGeometry()
    return min(WINDOW_SIZE[0], free.width()), min(WINDOW_SIZE[1], free.height())


def recover_recordings_at_start(window: MainWindow) -> None:
    """Recordings an earlier session left unsaved (the app was killed while recording) become video cases now,
    on a worker, with the frames they hold up to their last flushed segment; the case list then shows them."""
    from app.live.jobs import recover_interrupted_recordings

    def done(ids: list[str]) -> None:
        if ids:
            window.case_browser.refresh()
            window.statusBar().showMessage(f"Recovered {len(ids)} interrupted recording(s): {', '.join(ids)}", 15000)

    submit(recover_interrupted_recordings, window.store, description="Recovering interrupted recordings",
           context=window, on_result=done,
           on_error=lambda exc, tb: window.show_error(exc, tb, title="Interrupted recordings not recovered"))


def _seconds_since_process_start() -> float:
    """Wall time since this process started (Linux /proc; -1 elsewhere). Used only for start-up timing."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(open("/proc/uptime").read().split()[0])
        return uptime - start
    except (OSError, ValueError, IndexError):
        return -1.0


def run_gui(argv: Sequence[str] | None = None, *, demo: bool = True, open_paths: Sequence[str | Path] = ()) -> int:
    """Start OncoLens and run until the main window closes; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[:1] if argv is None else argv) or ["oncolens"]
    app = QApplication.instance() or QApplication(argv)
    configure_application(app)
    uninstall_excepthook = install_excepthook()  # a slot that raises shows a message, not a console line
    try:
        store = Store()
    except (StoreError, OSError) as exc:
        QMessageBox.critical(None, "OncoLens cannot open its database", error_text(exc))
        uninstall_excepthook()
        return 2
    window = MainWindow(store)
    window.resize(*initial_window_size(app))
    window.show()
    recover_recordings_at_start(window)

    def start(first: str | None) -> None:
        if open_paths:
            window.open_paths(list(open_paths))
        elif first is not None:
            window.case_browser.refresh(select_id=first)
            window.open_case(first)

    def demo_failed(exc: BaseException, tb: str) -> None:
        window.show_error(exc, tb, title="Demo cases not added")
        start(None)

    if demo:  # on a worker: the first start copies the bundles into the store
        submit(import_demo_cases, store, description="Adding the demo cases", context=window, on_result=start,
               on_error=demo_failed)
    else:
        start(None)
    if os.environ.get("ONCOLENS_QUIT_WHEN_SHOWN"):
        # Start-up timing (README, packaging): leave as soon as the event loop has painted the window.
        QTimer.singleShot(0, lambda: (print(f"window shown {_seconds_since_process_start():.2f} s after launch",
                                            flush=True), app.quit()))
    code = app.exec()
    wait_for_workers(timeout=10.0)
    store.close()
    uninstall_excepthook()
    return code
