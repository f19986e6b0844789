"""The worker helpers: results and errors arrive on the GUI thread, and no error goes unseen; serial queues keep
order; streams deliver values and progress and honour pause, resume and abort."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtWidgets import QWidget

from app.streaming import progress, stream
from app.workers import SerialQueue, pending_workers, submit, wait_for_workers

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


# -- serial queue -------------------------------------------------------------------------------------


def test_serial_queue_runs_jobs_one_at_a_time_in_submission_order(qtbot):
    queue = SerialQueue("test")
    running, spans, delivered = [], [], []
    lock = threading.Lock()

    def job(i: int, seconds: float) -> int:
        with lock:
            running.append(i)
            overlapping = len(running) > 1
        start = time.perf_counter()
        time.sleep(seconds)
        with lock:
            running.remove(i)
            spans.append((i, start, time.perf_counter(), overlapping))
        return i

    for i, seconds in enumerate((0.05, 0.0, 0.03, 0.0, 0.01)):  # a later short job never overtakes
        queue.submit(job, i, seconds, on_result=delivered.append)
    submit(time.sleep, 0.02)  # other pool work runs beside the queue
    assert not queue.idle()
    assert wait_for_workers(10) and queue.idle()
    assert [s[0] for s in spans] == delivered == [0, 1, 2, 3, 4]
    assert not any(s[3] for s in spans)
    assert all(earlier[2] <= later[1] for earlier, later in zip(spans, spans[1:]))


def test_serial_queue_errors_reach_the_user_and_later_jobs_still_run(qtbot, message_boxes):
    queue = SerialQueue("test")
    done = []
    queue.submit(fail, "the store is locked", description="Saving the answer")
    queue.submit(lambda: "next", on_result=done.append)
    assert wait_for_workers(10)
    assert message_boxes["critical"] == [("OncoLens — Saving the answer failed", "the store is locked")]
    assert done == ["next"] and pending_workers() == 0


# -- streams ------------------------------------------------------------------------------------------


def counting(n: int, gate: threading.Event | None = None):
    for i in range(n):
        if gate is not None:
            gate.wait(5)
        yield i
        yield progress(i + 1, n)
    return "done"


def test_stream_delivers_values_progress_and_the_return_value_on_the_gui_thread(qtbot):
    values, fractions, finished, threads = [], [], [], set()
    handle = stream(counting, 4, on_yield=values.append,
                    on_progress=lambda p: (fractions.append(p.fraction), threads.add(threading.get_ident())),
                    on_finish=finished.append)
    assert handle.is_running and pending_workers() >= 1
    assert wait_for_workers(10)
    assert values == [0, 1, 2, 3] and fractions == [0.25, 0.5, 0.75, 1.0] and finished == ["done"]
    assert threads == {threading.get_ident()} and not handle.is_running and pending_workers() == 0
    assert progress(0.4).fraction == 0.4 and progress(3, 0).fraction is None


def test_stream_pauses_at_a_yield_resumes_and_aborts(qtbot):
    produced, values, aborted, cleaned = [], [], [], []

    def endless():
        i = 0
        try:
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            cleaned.append(True)

    handle = stream(endless, on_yield=values.append, on_abort=lambda: aborted.append(True))
    qtbot.waitUntil(lambda: len(values) >= 3, timeout=5000)
    handle.pause()
    qtbot.wait(50)  # the generator finishes the step it is in and waits at its next yield
    paused_at = len(produced)
    qtbot.wait(100)
    assert handle.is_paused and len(produced) == paused_at
    handle.resume()
    qtbot.waitUntil(lambda: len(produced) > paused_at + 3, timeout=5000)
    handle.abort()
    assert wait_for_workers(10)
    assert aborted == [True] and cleaned == [True] and not handle.is_running
    assert values == list(range(len(values)))  # in order, none lost before the abort


def test_stream_abort_while_paused_and_send_reaches_the_generator(qtbot):
    received = []

    def listener():
        while True:
            received.append((yield len(received)))

    handle = stream(listener, on_yield=lambda value: handle.pause() if value == 2 else None)
    qtbot.waitUntil(lambda: handle.is_paused, timeout=5000)
    handle.send("faster")
    handle.resume()
    qtbot.waitUntil(lambda: "faster" in received, timeout=5000)
    handle.pause()
    handle.abort()  # a paused stream aborts too
    assert wait_for_workers(10) and not handle.is_running
    assert received[:2] == [None, None] and received.count("faster") == 1


def test_stream_errors_are_reported_like_submit(qtbot, message_boxes):
    def broken():
        yield 1
        raise OSError("camera unplugged")

    values = []
    stream(broken, on_yield=values.append, description="Live video")
    assert wait_for_workers(10)
    assert values == [1] and message_boxes["critical"] == [("OncoLens — Live video failed", "camera unplugged")]

    errors = []
    stream(broken, on_error=lambda exc, tb: errors.append((type(exc), "broken" in tb)))
    stream(lambda: 42, on_error=lambda exc, tb: errors.append((type(exc), "generator" in str(exc))))
    assert wait_for_workers(10)
    assert sorted(errors, key=str) == [(OSError, True), (TypeError, True)] and len(message_boxes["critical"]) == 1


def test_a_failing_consumer_stops_the_stream_and_is_reported(qtbot, message_boxes):
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield len(produced)

    finished = []
    handle = stream(endless, on_yield=lambda value: fail("the overlay could not be drawn") if value == 3 else None,
                    on_finish=finished.append)
    assert wait_for_workers(10) and not handle.is_running
    assert [text for _title, text in message_boxes["critical"]] == ["the overlay could not be drawn"]
    assert finished == []


def test_latest_only_drops_values_the_gui_had_no_time_for(qtbot):
    values = []
    stream(counting, 200, on_yield=lambda value: (values.append(value), time.sleep(0.005)), latest_only=True)
    assert wait_for_workers(10)
    assert values[-1] == 199 and values == sorted(values) and len(values) < 200
