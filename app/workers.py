"""The one way OncoLens runs long work off the GUI thread.

`submit(fn, ...)` runs `fn` on a shared QThreadPool and hands back a WorkerHandle whose `finished(result)`
and `errored(exception, traceback)` signals fire on the GUI thread. An error always reaches the user:
through the `on_error` callback when one is given, else through `report_error` (a message box).
Tests call `wait_for_workers()` and check `pending_workers() == 0` at teardown.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import SIGNAL, QCoreApplication, QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from shiboken6 import isValid

log = logging.getLogger(__name__)

MAX_THREADS = 2
ErrorCallback = Callable[[BaseException, str], None]

_pool: QThreadPool | None = None
_pending: set[WorkerHandle] = set()


def worker_pool() -> QThreadPool:
    """The pool every OncoLens worker runs on (created on first use)."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(MAX_THREADS)
    return _pool


def report_error(exc: BaseException, tb: str = "", parent: QWidget | None = None, title: str = "OncoLens") -> None:
    """Show an error to the user as a critical message box (and log the traceback)."""
    log.error("%s: %s\n%s", title, exc, tb)
    parent = parent if parent is not None and isValid(parent) else QApplication.activeWindow()
    QMessageBox.critical(parent, title, error_text(exc))


def error_text(exc: BaseException) -> str:
    """The message a user sees for an exception: its own text, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]  # KeyError's str() adds quotes around the message
    return text or type(exc).__name__


class WorkerHandle(QObject):
    """One submitted job. On the GUI thread, exactly once: the result callbacks and `finished`, or the
    error callbacks and `errored`. A callback that raises is reported like a worker error."""

    finished = Signal(object)
    errored = Signal(object, str)
    # Emitted from the pool thread; queued to this object, which lives on the GUI thread.
    _result_ready = Signal(object)
    _error_ready = Signal(object, str)

    def __init__(self, description: str, context: QObject | None) -> None:
        super().__init__()
        self.description = description
        self._context = context
        self.done = False
        self.result_callbacks: list[Callable[[Any], None]] = []
        self.error_callbacks: list[ErrorCallback] = []
        self._result_ready.connect(self._deliver_result, Qt.ConnectionType.QueuedConnection)
        self._error_ready.connect(self._deliver_error, Qt.ConnectionType.QueuedConnection)

    def _context_alive(self) -> bool:
        return self._context is None or isValid(self._context)

    @Slot(object)
    def _deliver_result(self, result: Any) -> None:
        self._finish()
        if not self._context_alive():
            return
        try:
            for callback in self.result_callbacks:
                callback(result)
        except Exception as exc:  # a failing result handler is an error the user must see too
            self._report(exc, traceback.format_exc())
            return
        self.finished.emit(result)

    @Slot(object, str)
    def _deliver_error(self, exc: BaseException, tb: str) -> None:
        self._finish()
        if not self._context_alive():
            log.error("%s failed after its window closed: %s\n%s", self.description, exc, tb)
            return
        self._report(exc, tb)

    def _report(self, exc: BaseException, tb: str) -> None:
        self.errored.emit(exc, tb)
        if not self.error_callbacks and self.receivers(SIGNAL("errored(PyObject,QString)")) == 0:
            report_error(exc, tb, title=f"OncoLens — {self.description} failed")
            return
        for callback in self.error_callbacks:
            try:
                callback(exc, tb)
            except Exception as handler_exc:
                report_error(handler_exc, traceback.format_exc(), title="OncoLens — error while reporting an error")

    def _finish(self) -> None:
        self.done = True
        _pending.discard(self)


class _Job(QRunnable):
    def __init__(self, handle: WorkerHandle, fn: Callable, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.handle, self.fn, self.args, self.kwargs = handle, fn, args, kwargs

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.handle._error_ready.emit(exc, traceback.format_exc())
            return
        self.handle._result_ready.emit(result)


def submit(
    fn: Callable,
    *args: Any,
    description: str = "Background task",
    on_result: Callable[[Any], None] | None = None,
    on_error: ErrorCallback | None = None,
    context: QObject | None = None,
    **kwargs: Any,
) -> WorkerHandle:
    """Run `fn(*args, **kwargs)` on the worker pool; call back on the GUI thread.

    `context`: a widget whose deletion cancels delivery (a window closed while its job ran).
    Without `on_error` (and nothing else connected to `errored`), errors go to `report_error`.
    """
    handle = WorkerHandle(description, context)
    if on_result is not None:
        handle.result_callbacks.append(on_result)
    if on_error is not None:
        handle.error_callbacks.append(on_error)
    _pending.add(handle)
    worker_pool().start(_Job(handle, fn, args, kwargs))
    return handle


def pending_workers() -> int:
    """Jobs submitted whose result or error has not been delivered yet."""
    return len(_pending)


def wait_for_workers(timeout: float = 30.0) -> bool:
    """Process events until every submitted job has run and delivered; False if `timeout` (s) passed first.

    For tests and shutdown only: the running application never blocks on a worker.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pending and worker_pool().activeThreadCount() == 0:
            return True
        worker_pool().waitForDone(20)
        QCoreApplication.processEvents()
    return not _pending and worker_pool().activeThreadCount() == 0


_GC_TIMER = None


def keep_garbage_collection_on_gui_thread(interval_s: float = 1.0) -> None:
    """Python's cyclic garbage collector runs in whichever thread happens to allocate when a threshold
    trips; if that is a worker and the garbage holds Qt objects, Qt crashes (seen as a segfault inside a
    store write on a worker). Automatic collection is switched off and done by a GUI-thread timer instead
    (pyqtgraph's GarbageCollector). Safe to call repeatedly: one timer per process."""
    global _GC_TIMER
    import gc

    if _GC_TIMER is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _GC_TIMER = GarbageCollector(interval=interval_s)
    gc.disable()
