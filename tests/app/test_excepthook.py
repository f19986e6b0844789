"""Uncaught exceptions reach the user: a slot that raises and a thread that dies are logged and shown in a
message box; an error raised while a box is open is logged only; without a QApplication nothing crashes."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from app.excepthook import TITLE, install_excepthook

pytestmark = [pytest.mark.gui, pytest.mark.qt_no_exception_capture]


@pytest.fixture
def hook():
    before = sys.excepthook, threading.excepthook
    uninstall = install_excepthook()
    yield
    uninstall()
    assert (sys.excepthook, threading.excepthook) == before


def raise_in_slot(message: str) -> None:
    raise RuntimeError(message)


def test_an_exception_in_a_slot_is_logged_and_shown(qtbot, hook, message_boxes, caplog):
    caplog.set_level(logging.ERROR, logger="app.excepthook")
    QTimer.singleShot(0, lambda: raise_in_slot("the overlay has no image"))
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=5000)
    assert message_boxes["critical"] == [(TITLE, "the overlay has no image")]
    assert "raise_in_slot" in caplog.text and "on the GUI thread" in caplog.text


def test_an_exception_in_a_thread_reaches_the_gui_thread(qtbot, hook, message_boxes, caplog):
    caplog.set_level(logging.ERROR, logger="app.excepthook")
    thread = threading.Thread(target=raise_in_slot, args=("the camera thread died",), name="camera")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=5000)
    assert message_boxes["critical"] == [(TITLE, "the camera thread died")]
    assert "in camera" in caplog.text


def test_an_error_while_a_box_is_open_is_logged_not_shown_again(qtbot, hook, message_boxes, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="app.excepthook")
    shown = []

    def box_that_meets_another_error(parent, title, text, *args, **kwargs):
        shown.append(text)
        try:  # a slot run by the box's event loop fails too
            raise_in_slot("second failure")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(box_that_meets_another_error))
    QTimer.singleShot(0, lambda: raise_in_slot("first failure"))
    qtbot.waitUntil(lambda: "second failure" in caplog.text, timeout=5000)
    qtbot.wait(20)
    assert shown == ["first failure"]


def test_without_a_qapplication_the_hook_only_logs():
    script = (
        "import threading\n"
        "from app.excepthook import install_excepthook\n"
        "install_excepthook()\n"
        "t = threading.Thread(target=lambda: 1 / 0); t.start(); t.join()\n"
        "print('still running')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "still running" in done.stdout
    assert "ZeroDivisionError" in done.stderr
