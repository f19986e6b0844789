"""The Qt binding itself: a version whose Signal.emit() loses a reference to True (PySide6 6.12.0) aborts the
app after a few hundred signals (every worker result, every streamed frame is one), so it must not be used."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, Signal

pytestmark = pytest.mark.gui


class _Emitter(QObject):
    ping = Signal(object)


def test_emitting_signals_keeps_the_reference_counts_of_true_and_false(qtbot):
    emitter = _Emitter()
    seen = []
    emitter.ping.connect(seen.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(20):
        emitter.ping.emit(i)
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert seen == list(range(20))
    assert after[0] >= before[0] - 2 and after[1] >= before[1] - 2, (
        f"PySide6 loses a reference per Signal.emit (True {before[0]} -> {after[0]}); install the version pinned in "
        "packaging/constraints.txt")
