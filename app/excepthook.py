"""Uncaught exceptions reach the user: a slot that raises, or a thread that dies outside `submit`, is logged
with its traceback and shown in a message box on the GUI thread, instead of a line on a console nobody reads.

`install_excepthook()` replaces `sys.excepthook` and `threading.excepthook` and returns a function that puts
the previous hooks back (the app calls it at exit, tests at teardown). One box at a time: an exception raised
while a box is open (its nested event loop runs slots too) is logged only, so errors never stack or recurse.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from app.workers import show_error_box

log = logging.getLogger(__name__)
TITLE = "OncoLens — unexpected error"


class _Relay(QObject):
    """Carries an exception from any thread to the GUI thread, where the box is shown."""

    raised = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.showing = False
        self.raised.connect(self.show, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def show(self, exc: BaseException) -> None:
        if self.showing:  # a box is already open: this one was logged, that is enough
            return
        self.showing = True
        try:
            show_error_box(exc, title=TITLE)
        except Exception:  # the box itself failed: never raise from the hook
            log.exception("Could not show the error message")
        finally:
            self.showing = False


def _on_gui_thread() -> bool:
    app = QCoreApplication.instance()
    return app is not None and QThread.currentThread() is app.thread()


def install_excepthook() -> Callable[[], None]:
    """Log and show uncaught exceptions (GUI thread and other threads); returns the function that uninstalls."""
    previous_sys, previous_thread = sys.excepthook, threading.excepthook
    app = QCoreApplication.instance()
    relay = _Relay()
    if app is not None:
        relay.moveToThread(app.thread())

    def handle(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str) -> None:
        if issubclass(exc_type, KeyboardInterrupt | SystemExit):
            previous_sys(exc_type, exc, tb)
            return
        log.error("Uncaught exception %s:\n%s", where, "".join(traceback.format_exception(exc_type, exc, tb)))
        if QCoreApplication.instance() is None:
            return  # no Qt to show it with: the log (stderr by default) has it
        if _on_gui_thread():
            relay.show(exc)
        else:
            relay.raised.emit(exc)

    def sys_hook(exc_type, exc, tb) -> None:
        handle(exc_type, exc, tb, "on the GUI thread")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        handle(args.exc_type, args.exc_value, args.exc_traceback, f"in {name}")

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def uninstall() -> None:
        if sys.excepthook is sys_hook:
            sys.excepthook = previous_sys
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_thread
        relay.deleteLater()

    return uninstall
