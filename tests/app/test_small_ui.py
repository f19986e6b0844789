"""Small UI fixes (issue 18, item 14): disabled controls look disabled; counts read "1 case"."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMenu, QPushButton

from app.main import configure_application
from engine.data.words import count_of

pytestmark = pytest.mark.gui


@pytest.fixture
def styled_app(qapp):
    before = (qapp.styleSheet(), qapp.font(), qapp.palette())
    configure_application(qapp)
    yield qapp
    qapp.setStyleSheet(before[0])
    qapp.setFont(before[1])
    qapp.setPalette(before[2])


def _brightest(image, rect=None) -> float:
    """The brightest grey value (0-255) inside `rect` of a grabbed QImage/QPixmap: where the text is."""
    image = image.toImage() if hasattr(image, "toImage") else image
    if rect is not None:
        image = image.copy(rect)
    image = image.convertToFormat(image.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    rows = array.reshape(image.height(), image.bytesPerLine())[:, :image.width() * 3].reshape(image.height(), -1, 3)
    return float(rows.mean(axis=2).max())


def test_a_disabled_button_looks_disabled(qtbot, styled_app):
    enabled, disabled = QPushButton("Export contours…"), QPushButton("Export contours…")
    disabled.setEnabled(False)
    for button in (enabled, disabled):
        qtbot.addWidget(button)
        button.show()
    qtbot.waitExposed(disabled)
    assert _brightest(disabled.grab()) < _brightest(enabled.grab()) - 60


def test_stop_reading_looks_disabled_in_the_study_menu(qtbot, styled_app):
    menu = QMenu()
    qtbot.addWidget(menu)
    start = menu.addAction("Start reading…")
    stop = menu.addAction("Stop reading")
    stop.setEnabled(False)
    menu.show()
    qtbot.waitExposed(menu)
    image = menu.grab()
    assert _brightest(image, menu.actionGeometry(stop)) < _brightest(image, menu.actionGeometry(start)) - 60


def test_counts_are_singular_for_one():
    assert count_of(1, "case") == "1 case" and count_of(0, "case") == "0 cases" and count_of(2, "case") == "2 cases"
    assert count_of(1, "stored result") == "1 stored result"


def test_the_demo_opens_on_a_representative_frame(tmp_path):
    """Not demo-fluoro-01, where UNet++ has Dice 0.27: the frame nearest the median Dice of the demo frames."""
    from app.main import FIRST_DEMO_CASE, import_demo_cases
    from engine.store import Store

    store = Store()
    try:
        assert import_demo_cases(store) == FIRST_DEMO_CASE == "demo-fluoro-06"
        assert import_demo_cases(store) is None  # only on the first start
    finally:
        store.close()
