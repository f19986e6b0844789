"""File ▸ Export case… and Export report…: the export runs on a worker, writes into the chosen folder and says where;
an earlier export is not replaced without asking; reading mode turns the actions off."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import pytest
from PySide6.QtWidgets import QFileDialog

import app.exporting as exporting
from tests.app.test_reading_panel import study_cases  # noqa: F401  (fixture)

pytestmark = pytest.mark.gui
WAIT_MS = 30_000


def test_export_menu_runs_in_a_worker_and_names_the_folder(qtbot, window, phantom_store, tmp_path, monkeypatch,
                                                           message_boxes):
    _store, ids = phantom_store
    window.open_case(ids[0])
    qtbot.waitUntil(lambda: bool(window.predictions), timeout=WAIT_MS)
    out = tmp_path / "exports"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(out)))
    threads = []
    real = exporting.export_case

    def recording(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(exporting, "export_case", recording)
    case_action, report_action = window.export_actions
    assert case_action.text() == "Export case…" and report_action.text() == "Export report…"

    case_action.trigger()
    qtbot.waitUntil(lambda: window.export_message is not None, timeout=WAIT_MS)
    assert threads == [False]  # not on the GUI thread
    folder = out / ids[0]
    assert str(folder) in window.export_message.text()
    overlay = folder / f"{ids[0]}_overlay_FL.png"
    assert overlay.is_file()
    assert cv2.imread(str(overlay)).shape[:2] == window.current_case.images["FL"].array.shape[:2]
    assert (folder / f"{ids[0]}_probabilities.csv").is_file()
    assert not message_boxes["critical"]

    window.export_message = None
    report_action.trigger()
    qtbot.waitUntil(lambda: window.export_message is not None, timeout=WAIT_MS)
    assert (folder / f"{ids[0]}_report.pdf").is_file() and (folder / f"{ids[0]}_report.html").is_file()

    # the folder holds an earlier export: the window asks, and the recorded answer (not Yes) cancels
    window.export_message = None
    stamp = overlay.stat().st_mtime_ns
    case_action.trigger()
    qtbot.waitUntil(lambda: bool(message_boxes["question"]), timeout=WAIT_MS)
    assert "earlier export" in message_boxes["question"][-1][1]
    qtbot.waitUntil(lambda: "nothing was replaced" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert window.export_message is None and overlay.stat().st_mtime_ns == stamp

    # answered Yes: the export runs again with replacing allowed
    monkeypatch.setattr(exporting.QMessageBox, "question",
                        staticmethod(lambda *a, **k: exporting.QMessageBox.StandardButton.Yes))
    case_action.trigger()
    qtbot.waitUntil(lambda: window.export_message is not None, timeout=WAIT_MS)
    assert overlay.stat().st_mtime_ns != stamp and threads.count(False) == len(threads) == 5


def test_export_without_an_open_case_says_so(qtbot, window, monkeypatch):
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: asked.append(1) or ""))
    window.export_actions[0].trigger()
    assert not asked and "Open a case first" in window.statusBar().currentMessage()


def test_export_failure_reaches_the_user(qtbot, window, phantom_store, tmp_path, message_boxes):
    _store, ids = phantom_store
    window.open_case(ids[0])
    qtbot.waitUntil(lambda: bool(window.predictions), timeout=WAIT_MS)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    window.export_to(Path(blocker), ("probabilities",))  # a file where the folder should be
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    assert "Export of" in message_boxes["critical"][-1][0]


def test_reading_mode_turns_the_export_actions_off(qtbot, window, study_cases):  # noqa: F811
    from tests.app.test_reading_panel import make_study, sign_in

    store, probabilities = study_cases
    make_study(store, probabilities)
    assert all(a.isEnabled() for a in window.export_actions)
    sign_in(qtbot, window)
    assert not any(a.isEnabled() for a in window.export_actions)  # a reader must not export blinded results
    window.stop_reading()
    assert all(a.isEnabled() for a in window.export_actions)
