"""The GUI thread does no database, disk or hashing work: a whole scripted session (browse, open and predict
cases, create a study, enrol a reader, sign in, read every case, the model cards, close) is run with the store
behind a proxy that records the thread of every call, and with the card readers, the list of installed nets,
the settings writer and scrypt recording theirs too. Not one call may come from the GUI thread."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

import app.main_window as main_window
import app.widgets.model_cards as model_cards
import engine.predict.fluoro as fluoro
import engine.registry as registry
from app.workers import wait_for_workers
from engine.service import PredictionService

pytestmark = pytest.mark.gui
WAIT_MS = 30_000


class Calls:
    """(name, on the GUI thread?) of every recorded call while `recording`."""

    def __init__(self) -> None:
        self.recording = False
        self.seen: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable) -> Callable:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            if self.recording:
                with self._lock:
                    self.seen.append((name, threading.current_thread() is threading.main_thread()))
            return fn(*args, **kwargs)
        return recorded

    def on_gui_thread(self) -> list[str]:
        return [name for name, gui in self.seen if gui]


class RecordingStore:
    """The store, with every method call recorded (attributes that are not methods pass through)."""

    def __init__(self, store, calls: Calls) -> None:
        self._store, self._calls = store, calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        return self._calls.wrap(f"store.{name}", value) if callable(value) else value


def fill_and_accept(qtbot, window, open_dialog: Callable[[], None], **texts: str):
    """Open a study dialog from the window (it lists the studies on a worker first), type, press OK."""
    open_dialog()
    qtbot.waitUntil(lambda: window.study_dialog is not None, timeout=WAIT_MS)
    dialog = window.study_dialog
    for field, text in texts.items():
        getattr(dialog, field).setText(text)
    dialog.accept()
    return dialog


def press(window, *keys: Qt.Key) -> None:
    for key in keys:
        QTest.keyClick(window, key)
        assert wait_for_workers(WAIT_MS / 1000)


def test_a_whole_session_does_no_store_disk_or_hashing_work_on_the_gui_thread(qtbot, phantom_store, FakeCascade,
                                                                              monkeypatch):
    from app.main_window import MainWindow

    store, ids = phantom_store
    calls = Calls()
    proxy = RecordingStore(store, calls)
    monkeypatch.setattr(hashlib, "scrypt", calls.wrap("scrypt", hashlib.scrypt))
    for module, name in ((registry, "load_card"), (registry, "list_models"), (model_cards, "list_models"),
                         (fluoro, "installed_methods"), (main_window, "save_settings")):
        monkeypatch.setattr(module, name, calls.wrap(name, getattr(module, name)))
    service = PredictionService(proxy, make_predictor=lambda kind, modalities, method=None: FakeCascade(modalities[0]))

    calls.recording = True
    window = MainWindow(proxy, service=service)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    browser = window.case_browser
    qtbot.waitUntil(lambda: sorted(browser.case_ids()) == ids, timeout=WAIT_MS)

    browser.filter_edit.setText(ids[1][-2:])  # browse: filter, kind, then every case opened and predicted
    qtbot.waitUntil(lambda: browser.case_ids() == [ids[1]], timeout=WAIT_MS)
    browser.filter_edit.clear()
    browser.kind_combo.setCurrentIndex(browser.kind_combo.findData("glioma_specimen"))
    qtbot.waitUntil(lambda: not browser.is_loading() and len(browser.case_ids()) == 3, timeout=WAIT_MS)
    for case_id in ids:
        browser.select(case_id)
        qtbot.waitUntil(lambda c=case_id: window.current_case is not None and window.current_case.id == c
                        and bool(window.predictions), timeout=WAIT_MS)
    assert wait_for_workers(WAIT_MS / 1000)

    window.new_study_dialog()  # the administrator: a study of the three cases, a reader with a PIN
    dialog = window.study_dialog
    qtbot.waitUntil(lambda: dialog.loaded, timeout=WAIT_MS)
    for row in range(dialog.case_list.count()):  # the case open in the browser comes checked; all three
        dialog.case_list.item(row).setCheckState(Qt.CheckState.Checked)
    dialog.id_edit.setText("thread-study")
    dialog.label_combo.setCurrentText("tumor")
    dialog.accept()
    qtbot.waitUntil(lambda: dialog.created is not None, timeout=WAIT_MS)
    dialog = fill_and_accept(qtbot, window, window.add_reader_dialog, reader_edit="r1", pin_edit="246802",
                             repeat_edit="246802")
    qtbot.waitUntil(lambda: dialog.added is not None, timeout=WAIT_MS)

    # the reader signs in and reads every case with the keyboard
    fill_and_accept(qtbot, window, window.start_reading_dialog, reader_edit="r1", pin_edit="246802")
    qtbot.waitUntil(lambda: window.reading is not None, timeout=WAIT_MS)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=WAIT_MS)
    assert wait_for_workers(WAIT_MS / 1000)
    reading = window.reading
    for _ in ids:
        press(window, Qt.Key.Key_Y, Qt.Key.Key_4, Qt.Key.Key_Return)
    press(window, Qt.Key.Key_Left, Qt.Key.Key_5)  # change an answer
    window.stop_reading()

    window.show_model_cards()
    qtbot.waitUntil(lambda: window.cards_dialog is not None and window.cards_dialog.loaded, timeout=WAIT_MS)
    window.cards_dialog.reject()
    window.close()  # saves the settings
    assert wait_for_workers(WAIT_MS / 1000)
    calls.recording = False

    assert calls.on_gui_thread() == []
    names = {name for name, _gui in calls.seen}
    for expected in ("store.list_cases", "store.load_case", "store.predictions_for", "store.add_prediction",
                     "store.transaction", "scrypt", "load_card", "list_models", "save_settings"):
        assert expected in names, f"{expected} was never called: the session did not run as scripted"
    answers = reading.session.my_answers()
    assert len(answers) == 3 and sum(a.supersedes is not None for a in answers) == 1
