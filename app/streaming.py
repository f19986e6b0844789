"""Streaming workers for live video and long jobs, in the style of napari's generator `thread_worker`.

A generator function runs on the worker pool; every value it yields is delivered on the GUI thread
(`on_yield`), a yielded `progress(...)` goes to `on_progress` instead, and its return value to `on_finish`.
The handle can `pause()` (the generator waits at its next yield), `resume()`, `abort()` (honoured at the
next yield: the generator is closed there, so its `finally` blocks run, and `on_abort` is called) and
`send(value)` (the value the generator's next `yield` expression returns). Errors follow `submit`'s rule: to
`on_error` when given, else to a message box. A stream counts in `pending_workers()` until it has ended.

    def frames(source):
        for i, frame in enumerate(source):
            yield frame
            yield progress(i + 1, len(source))

    handle = stream(frames, source, on_yield=view.show_frame, latest_only=True)
"""

from __future__ import annotations

import inspect
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, Signal, Slot

from app.workers import Deliverable, ErrorCallback, worker_pool

_NOTHING = object()


@dataclass(frozen=True)
class StreamProgress:
    """How far a stream is: `done` of `total` steps, or with no total `done` is a fraction in [0, 1]."""

    done: float
    total: float | None = None

    @property
    def fraction(self) -> float | None:
        if self.total is None:
            return min(max(float(self.done), 0.0), 1.0)
        return None if self.total <= 0 else min(max(self.done / self.total, 0.0), 1.0)


def progress(done: float, total: float | None = None) -> StreamProgress:
    """Yield this from a stream's generator to report progress: `progress(3, 10)` or `progress(0.3)`."""
    return StreamProgress(done, total)


class StreamHandle(Deliverable):
    """A running generator. Callbacks and signals fire on the GUI thread; `yielded` values arrive in order
    (or only the latest, with `latest_only`), and exactly one of `finished`, `errored`, `aborted` ends it. A
    callback that raises counts as `errored`: the error is reported, the generator aborted, nothing more sent."""

    yielded = Signal(object)
    progressed = Signal(object)  # StreamProgress
    finished = Signal(object)
    aborted = Signal()
    _value_ready = Signal(object)
    _progress_ready = Signal(object)
    _end_ready = Signal(str, object, str)  # "finished" | "errored" | "aborted", value or exception, traceback

    def __init__(self, description: str, context: QObject | None, on_error: ErrorCallback | None,
                 latest_only: bool) -> None:
        super().__init__(description, context, on_error)
        self.yield_callbacks: list[Callable[[Any], None]] = []
        self.progress_callbacks: list[Callable[[StreamProgress], None]] = []
        self.finish_callbacks: list[Callable[[Any], None]] = []
        self.abort_callbacks: list[Callable[[], None]] = []
        self.latest_only = latest_only
        self._lock = threading.Lock()
        self._latest: Any = _NOTHING  # latest_only: the newest value not yet delivered
        self._abort = threading.Event()
        self._run_gate = threading.Event()  # set: run; clear: paused at the next yield
        self._run_gate.set()
        self._sent: Any = None
        self._consumer_failed = False  # a callback raised: reported once, nothing more is delivered
        queued = Qt.ConnectionType.QueuedConnection
        self._value_ready.connect(self._deliver_value, queued)
        self._progress_ready.connect(self._deliver_progress, queued)
        self._end_ready.connect(self._deliver_end, queued)

    # -- control (GUI thread) -------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True from the start until the end (finished, failed or aborted) has been delivered."""
        return not self.done

    @property
    def is_paused(self) -> bool:
        return not self._run_gate.is_set()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def pause(self) -> None:
        """The generator stops at its next yield until `resume()` (or `abort()`)."""
        self._run_gate.clear()

    def resume(self) -> None:
        self._run_gate.set()

    def abort(self) -> None:
        """Stop at the next yield: the generator is closed there and `on_abort` / `aborted` follow."""
        self._abort.set()
        self._run_gate.set()

    def send(self, value: Any) -> None:
        """`value` becomes what the generator's next `yield` expression returns (then None again)."""
        with self._lock:
            self._sent = value

    # -- worker side ------------------------------------------------------------------------------------

    def _take_sent(self) -> Any:
        with self._lock:
            value, self._sent = self._sent, None
            return value

    def _emit(self, value: Any) -> None:
        if isinstance(value, StreamProgress):
            self._progress_ready.emit(value)
            return
        if not self.latest_only:
            self._value_ready.emit(value)
            return
        with self._lock:
            post = self._latest is _NOTHING
            self._latest = value
        if post:  # one delivery in flight at a time; it takes whatever is newest when it runs
            self._value_ready.emit(_NOTHING)

    # -- delivery (GUI thread) --------------------------------------------------------------------------

    @Slot(object)
    def _deliver_value(self, value: Any) -> None:
        if value is _NOTHING:
            with self._lock:
                value, self._latest = self._latest, _NOTHING
            if value is _NOTHING:
                return
        self._call(self.yield_callbacks, value)
        if not self.done:
            self.yielded.emit(value)

    @Slot(object)
    def _deliver_progress(self, value: StreamProgress) -> None:
        self._call(self.progress_callbacks, value)
        if not self.done:
            self.progressed.emit(value)

    def _call(self, callbacks: list, value: Any) -> None:
        """A failing or orphaned consumer stops the stream: the error is reported, the generator aborted."""
        if self.done or self._consumer_failed:
            return
        if not self._context_alive():
            self.abort()
            return
        try:
            for callback in callbacks:
                callback(value)
        except Exception as exc:
            self._consumer_failed = True
            self.abort()
            self._report(exc, traceback.format_exc())

    @Slot(str, object, str)
    def _deliver_end(self, how: str, value: Any, tb: str) -> None:
        worker_pool().setMaxThreadCount(worker_pool().maxThreadCount() - 1)
        if how == "errored":
            self._deliver_error(value, tb)
            return
        self._finish()
        if not self._context_alive() or self._consumer_failed:
            return
        callbacks = self.finish_callbacks if how == "finished" else self.abort_callbacks
        try:
            for callback in callbacks:
                callback(*([value] if how == "finished" else []))
        except Exception as exc:
            self._report(exc, traceback.format_exc())
            return
        if how == "finished":
            self.finished.emit(value)
        else:
            self.aborted.emit()


class _StreamJob(QRunnable):
    def __init__(self, handle: StreamHandle, fn: Callable, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.handle, self.fn, self.args, self.kwargs = handle, fn, args, kwargs

    def run(self) -> None:
        handle = self.handle
        try:
            generator = self.fn(*self.args, **self.kwargs)
            if not inspect.isgenerator(generator):
                raise TypeError(f"{handle.description}: stream() needs a generator function (one that yields); "
                                f"{getattr(self.fn, '__name__', self.fn)!r} returned {type(generator).__name__}. "
                                "Use submit() for a plain function.")
            to_send = None
            while True:
                if handle._abort.is_set():
                    generator.close()
                    handle._end_ready.emit("aborted", None, "")
                    return
                handle._emit(generator.send(to_send))
                handle._run_gate.wait()  # pause() holds the generator here
                to_send = handle._take_sent()
        except StopIteration as stop:
            handle._end_ready.emit("finished", stop.value, "")
        except BaseException as exc:
            handle._end_ready.emit("errored", exc, traceback.format_exc())


def stream(
    gen_fn: Callable,
    *args: Any,
    on_yield: Callable[[Any], None] | None = None,
    on_progress: Callable[[StreamProgress], None] | None = None,
    on_finish: Callable[[Any], None] | None = None,
    on_error: ErrorCallback | None = None,
    on_abort: Callable[[], None] | None = None,
    description: str = "Background stream",
    context: QObject | None = None,
    latest_only: bool = False,
    **kwargs: Any,
) -> StreamHandle:
    """Run the generator `gen_fn(*args, **kwargs)` on the worker pool (see the module docstring).

    `latest_only`: deliver only the newest value when the GUI falls behind (live video drops frames instead
    of queueing them). A stream gets a pool thread of its own, so a long one never starves `submit` jobs.
    """
    handle = StreamHandle(description, context, on_error, latest_only)
    for callbacks, callback in ((handle.yield_callbacks, on_yield), (handle.progress_callbacks, on_progress),
                                (handle.finish_callbacks, on_finish), (handle.abort_callbacks, on_abort)):
        if callback is not None:
            callbacks.append(callback)
    pool = worker_pool()
    pool.setMaxThreadCount(pool.maxThreadCount() + 1)  # given back when the end is delivered
    pool.start(_StreamJob(handle, gen_fn, args, kwargs))
    return handle


__all__ = ["StreamHandle", "StreamProgress", "progress", "stream"]
