"""The one way OncoLens runs work off the GUI thread.

- `submit(fn, ...)` runs `fn` on the shared pool; its result or error comes back on the GUI thread.
- `SerialQueue.submit(...)`: the same, but the jobs of one queue run one after another in submission order,
  never two at once (a reading session's answers, case loads and prefetches).
- `stream(gen_fn, ...)` (`app.streaming`) runs a generator (live video, long jobs) with pause, resume and abort.

An error always reaches the user: through the `on_error` callback when one is given, else through
`report_error` (a message box). Tests call `wait_for_workers()` and check `pending_workers() == 0` at teardown.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import SIGNAL, QCoreApplication, QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from shiboken6 import isValid

log = logging.getLogger(__name__)

MAX_THREADS = 2
ErrorCallback = Callable[[BaseException, str], None]

_pool: QThreadPool | None = None
_pending: set[QObject] = set()  # handles whose result or error has not been delivered yet


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
    show_error_box(exc, parent, title)


def show_error_box(exc: BaseException, parent: QWidget | None = None, title: str = "OncoLens") -> None:
    """The message box alone (the caller has logged); nothing when there is no QApplication to show it."""
    if not isinstance(QCoreApplication.instance(), QApplication):
        return
    parent = parent if parent is not None and isValid(parent) else QApplication.activeWindow()
    QMessageBox.critical(parent, title, error_text(exc))


def error_text(exc: BaseException) -> str:
    """The message a user sees for an exception: its own text, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]  # KeyError's str() adds quotes around the message
    return text or type(exc).__name__


class Deliverable(QObject):
    """What `submit` and `stream` hand back share this: a description, a context whose deletion cancels
    delivery, error callbacks (else a message box), and membership of the pending set until delivered."""

    errored = Signal(object, str)

    def __init__(self, description: str, context: QObject | None, on_error: ErrorCallback | None) -> None:
        super().__init__()
        self.description = description
        self._context = context
        self.done = False
        self.error_callbacks: list[ErrorCallback] = [on_error] if on_error is not None else []
        self._done_hooks: list[Callable[[], None]] = []
        _pending.add(self)

    def _context_alive(self) -> bool:
        return self._context is None or isValid(self._context)

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

    def _deliver_error(self, exc: BaseException, tb: str) -> None:
        self._finish()
        if not self._context_alive():
            log.error("%s failed after its window closed: %s\n%s", self.description, exc, tb)
            return
        self._report(exc, tb)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        _pending.discard(self)
        for hook in self._done_hooks:
            hook()


class WorkerHandle(Deliverable):
    """One submitted job. On the GUI thread, exactly once: the result callbacks and `finished`, or the
    error callbacks and `errored`. A callback that raises is reported like a worker error."""

    finished = Signal(object)
    # Emitted from the pool thread; queued to this object, which lives on the GUI thread.
    _result_ready = Signal(object)
    _error_ready = Signal(object, str)

    def __init__(self, description: str, context: QObject | None, on_result: Callable[[Any], None] | None = None,
                 on_error: ErrorCallback | None = None) -> None:
        super().__init__(description, context, on_error)
        self.result_callbacks: list[Callable[[Any], None]] = [on_result] if on_result is not None else []
        self._result_ready.connect(self._deliver_result, Qt.ConnectionType.QueuedConnection)
        self._error_ready.connect(self._deliver_error, Qt.ConnectionType.QueuedConnection)

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
    handle = WorkerHandle(description, context, on_result, on_error)
    worker_pool().start(_Job(handle, fn, args, kwargs))
    return handle


class SerialQueue:
    """Jobs that must not overlap: they run on the shared pool one after another, in submission order, and
    their results arrive on the GUI thread in that order. `submit` takes the same arguments as `submit`."""

    def __init__(self, name: str = "serial queue") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._jobs: deque[_Job] = deque()
        self._draining = False
        self._undelivered: set[WorkerHandle] = set()

    def submit(self, fn: Callable, *args: Any, description: str = "Background task",
               on_result: Callable[[Any], None] | None = None, on_error: ErrorCallback | None = None,
               context: QObject | None = None, **kwargs: Any) -> WorkerHandle:
        handle = WorkerHandle(description, context, on_result, on_error)
        self._undelivered.add(handle)
        handle._done_hooks.append(lambda: self._undelivered.discard(handle))
        with self._lock:
            self._jobs.append(_Job(handle, fn, args, kwargs))
            start = not self._draining
            self._draining = True
        if start:
            worker_pool().start(_Drain(self))
        return handle

    def idle(self) -> bool:
        """True when every job submitted here has run and been delivered."""
        return not self._undelivered

    def _next(self) -> _Job | None:
        with self._lock:
            if not self._jobs:
                self._draining = False
                return None
            return self._jobs.popleft()


class _Drain(QRunnable):
    """Runs a queue's jobs until it is empty; at most one per queue exists at a time."""

    def __init__(self, queue: SerialQueue) -> None:
        super().__init__()
        self.queue = queue

    def run(self) -> None:
        while (job := self.queue._next()) is not None:
            job.run()


def pending_workers() -> int:
    """Jobs and streams started whose result, error or end has not been delivered yet."""
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
