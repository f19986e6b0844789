"""Reader studies that ask for a tumor outline, offscreen: clicking points on the fluorescence frame, closing
with a double-click or Space, undo and clear, the outline saved with the answer and shown again on return."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from app.views.fluoro_view import FluoroView
from app.workers import wait_for_workers
from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction, TaskResult
from engine.studies import Study, add_reader, create_study

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
PIN = "432101"
SIZE = 96
CORNERS = [(20.0, 30.0), (60.0, 30.0), (60.0, 60.0), (20.0, 60.0)]  # (x, y) in frame pixels


def frame_case(i: int, positive: bool) -> Case:
    case = Case(id=f"fr-{i}", kind="fluoro_frame")
    truth = np.zeros((SIZE, SIZE), bool)
    if positive:
        truth[30:60, 20:60] = True
    frame = np.random.default_rng(i).integers(200, 400, (SIZE, SIZE)) + 2500 * truth
    case.add_image("NIR", frame.astype(np.uint16), ImageMeta(bit_depth=12, spacing=(0.2, 0.2)))
    case.truth = GroundTruth(labels={"tumor": int(positive)}, masks={"tumor": truth}, source="test")
    return case


@pytest.fixture
def contour_study(phantom_store, tmp_path):
    store, _ = phantom_store
    ids = []
    for i, positive in enumerate((True, False, True)):
        case = frame_case(i, positive)
        prediction = Prediction(family="fluoro_seg", variant="unet", weights_sha256={"fluoro_seg_unet": "cd" * 32},
                                tasks={"tumor": TaskResult("tumor" if positive else "no tumor",
                                                           0.8 if positive else 0.2, 0.5)},
                                masks={"tumor": case.truth.masks["tumor"]})
        case.predictions = [prediction]
        store.add_case(case, write_bundle(case, tmp_path / "frames" / case.id))
        store.add_prediction(case.id, prediction)
        ids.append(case.id)
    create_study(store, Study(id="seg", name="Outline study", task_label="tumor", case_ids=tuple(ids),
                              modalities=("NIR",), contours=True, seed=2))
    add_reader(store, "seg", "r1", "Dr One", PIN)
    return store


def sign_in(qtbot, window):
    window.start_reading("seg", "r1", PIN)
    qtbot.waitUntil(lambda: window.reading is not None, timeout=WAIT_MS)
    window.activateWindow()
    qtbot.waitUntil(lambda: window.reading.panel.isVisible(), timeout=WAIT_MS)
    assert wait_for_workers(WAIT_MS / 1000)
    return window.reading


def click_on_frame(view: FluoroView, x: float, y: float, double: bool = False) -> None:
    """A left click at frame pixel (x, y), through the real mouse path of the plot."""
    scene = view.viewbox.mapViewToScene(QPointF(x + 0.5, y + 0.5))
    pos = view.graphics.mapFromScene(scene)
    viewport = view.graphics.viewport()
    point = QPoint(pos.x(), pos.y())
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    if double:  # as a real double-click arrives: press, release, double-click press, release
        QTest.mouseClick(viewport, left, none, point)
        QTest.mouseDClick(viewport, left, none, point)
        QTest.mouseRelease(viewport, left, none, point)
    else:
        QTest.mouseClick(viewport, left, none, point)


def press(window, key) -> None:
    QTest.keyClick(window, key)
    assert wait_for_workers(WAIT_MS / 1000)  # answers and moves go through the session's queue


def test_a_reader_outlines_the_tumor_with_mouse_and_keys_and_it_is_saved(qtbot, window, contour_study):
    reading = sign_in(qtbot, window)
    view = window.current_view()
    assert isinstance(view, FluoroView) and view.drawing.enabled
    assert "Outline the tumor" in view.note.text() and reading.panel.contour_label.isVisible()
    assert not view.pred_layer.items and not view.truth_layer.items  # blinded: no model, no truth outline
    assert not view.truth_checkbox.isVisibleTo(window) and not view.method_combo.isVisibleTo(window)

    outlined = {}
    for _ in range(3):
        case_id = reading.case.case_id
        if case_id == "fr-1":  # negative frame: no outline
            press(window, Qt.Key.Key_N)
            press(window, Qt.Key.Key_1)
            press(window, Qt.Key.Key_Return)
            continue
        for x, y in CORNERS[:3]:
            click_on_frame(view, x, y)
        click_on_frame(view, *CORNERS[3], double=True)  # the first click places the point, the second closes
        assert len(view.drawing.closed) == 1 and len(view.drawing.closed[0]) == 4, (view.drawing.open, view.drawing.closed)
        assert "1 region drawn" in reading.panel.contour_label.text()
        press(window, Qt.Key.Key_Y)
        press(window, Qt.Key.Key_5)
        assert reading.case.answer is not None and reading.case.answer.contour is not None
        outlined[case_id] = reading.case.answer.contour
        press(window, Qt.Key.Key_Return)

    answers = {a.case_id: a for a in reading.session.my_answers()}
    assert answers["fr-1"].contour is None
    for case_id, contour in outlined.items():
        assert answers[case_id].contour == contour
        (polygon,) = contour
        assert np.allclose(polygon, CORNERS, atol=1.0)  # within a pixel of where the mouse went

    # Back to an outlined case: the outline is shown again; Backspace reopens it, Space closes it again.
    while reading.case.case_id not in outlined:
        press(window, Qt.Key.Key_Left)
    assert len(view.drawing.closed) == 1
    press(window, Qt.Key.Key_Backspace)  # reopen minus its last point: the saved answer now has no outline
    assert view.drawing.closed == [] and len(view.drawing.open) == 3
    assert reading.case.answer.contour is None and reading.case.answer.supersedes is not None
    press(window, Qt.Key.Key_Space)  # a triangle closes
    assert len(reading.case.answer.contour[0]) == 3
    press(window, Qt.Key.Key_Delete)
    assert reading.case.answer.contour is None
    assert "none drawn" in reading.panel.contour_label.text()


def test_enter_asks_for_an_outline_after_a_positive_call(qtbot, window, contour_study):
    reading = sign_in(qtbot, window)
    press(window, Qt.Key.Key_Y)
    press(window, Qt.Key.Key_4)
    first = reading.case.case_id
    press(window, Qt.Key.Key_Return)
    assert reading.case.case_id == first and "outline the tumor" in reading.panel.message_label.text()
    press(window, Qt.Key.Key_Right)  # the reader may go on without one
    assert reading.case.case_id != first


def test_drawing_ignores_clicks_off_the_frame_and_needs_three_points(qtbot):
    view = FluoroView()
    qtbot.addWidget(view)
    view.show_case(frame_case(0, True))
    assert not view.drawing.enabled and not view.drawing.add_point(10, 10)  # off outside reader studies
    view.set_drawing(True)
    assert not view.drawing.add_point(-5, 10) and not view.drawing.add_point(10, SIZE + 3)
    assert view.drawing.add_point(10, 10) and view.drawing.add_point(20, 10)
    assert not view.drawing.close_polygon()  # two points are not an outline
    view.drawing.add_point(20, 20)
    seen = []
    view.drawing.changed.connect(seen.append)
    assert view.drawing.close_polygon() and seen == [[[(10.0, 10.0), (20.0, 10.0), (20.0, 20.0)]]]
    view.show_case(frame_case(1, False))  # a new case: nothing drawn, drawing off until the study turns it on
    assert view.drawing.closed == [] and not view.drawing.enabled
