"""The worker helper: results and errors arrive on the GUI thread, and no error goes unseen."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QWidget

from app.workers import pending_workers, submit, wait_for_workers

pytestmark = pytest.mark.gui


def fail(message: str) -> None:
    raise ValueError(message)


def test_result_is_delivered_on_the_gui_thread(qtbot):
    seen = []
    gui_thread = threading.get_ident()
    submit(lambda: threading.get_ident(), on_result=lambda worker: seen.append((worker, threading.get_ident())))
    assert wait_for_workers(10)
    (worker_thread, delivered_on), = seen
    assert worker_thread != gui_thread and delivered_on == gui_thread
    assert pending_workers() == 0


def test_error_without_handler_opens_a_message_box(qtbot, message_boxes):
    submit(fail, "disk full while writing the bundle", description="Saving case")
    assert wait_for_workers(10)
    (title, text), = message_boxes["critical"]
    assert "Saving case failed" in title and text == "disk full while writing the bundle"


def test_error_handler_gets_exception_and_traceback(qtbot, message_boxes):
    errors = []
    submit(fail, "bad input", on_error=lambda exc, tb: errors.append((exc, tb)))
    assert wait_for_workers(10)
    (exc, tb), = errors
    assert isinstance(exc, ValueError) and "fail" in tb
    assert not message_boxes["critical"]


def test_failing_result_handler_is_reported_too(qtbot, message_boxes):
    submit(lambda: 1, on_result=lambda value: fail("the view could not draw the result"))
    assert wait_for_workers(10)
    assert message_boxes["critical"][0][1] == "the view could not draw the result"


def test_results_for_a_closed_window_are_dropped(qtbot, message_boxes):
    seen = []
    owner = QWidget()
    release = threading.Event()
    submit(lambda: release.wait(5), on_result=seen.append, context=owner)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not _alive(owner), timeout=5000)
    release.set()
    assert wait_for_workers(10)
    assert seen == [] and not message_boxes["critical"]


def _alive(widget) -> bool:
    from shiboken6 import isValid

    return isValid(widget)
