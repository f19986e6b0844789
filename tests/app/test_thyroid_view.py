"""Thyroid US + CT view, offscreen, with the shipped DGFNet models: the demo boxes where stored, keyboard and
mouse edits saved with the case (and found again on re-opening), Predict with the edited boxes, bad boxes refused
with the reason, the heat-layer and site selectors, the contribution bars, and one read in a reader study."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.views import ThyroidView
from app.workers import wait_for_workers
from engine.cases.bundle import read_bundle
from engine.kinds.thyroid_usct import KIND, stored_roi, write_thyroid_demo_cases
from engine.preprocess.us_ct import CT, US, Box
from engine.service import PredictionService
from engine.studies import UNAIDED, Study, add_reader, create_study

pytestmark = pytest.mark.gui
WAIT_MS = 60_000
PIN = "246801"
SITES = ("central_lnm", "lateral_lnm")


@pytest.fixture(scope="module")
def thyroid_demo(tmp_path_factory):
    """The demo thyroid bundles `oncolens make-demo-data` writes (made once: the phantom takes seconds)."""
    return write_thyroid_demo_cases(tmp_path_factory.mktemp("thyroid_demo") / "demo")


@pytest.fixture
def thyroid_window(make_window, phantom_store, thyroid_demo):
    """The main window on a store holding the demo thyroid cases, predicting with the shipped models."""
    store, _ids = phantom_store
    store.import_bundles(thyroid_demo[0].parent)
    window = make_window(PredictionService(store), auto_predict=False)
    return window


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window._busy_jobs and not window._predicting and not window.saving_edits,
                    timeout=WAIT_MS)
    assert wait_for_workers(WAIT_MS / 1000)
    QApplication.processEvents()


def open_case(qtbot, window, case_id: str) -> ThyroidView:
    window.open_case(case_id)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == case_id, timeout=WAIT_MS)
    settle(qtbot, window)
    view = window.current_view()
    assert isinstance(view, ThyroidView)
    return view


def predict(qtbot, window, view: ThyroidView):
    before = view._prediction
    view.predict_button.click()
    qtbot.waitUntil(lambda: view._prediction is not None and view._prediction is not before, timeout=WAIT_MS)
    settle(qtbot, window)
    return window.predictions[0]


def keys(widget, *presses) -> None:
    for key, modifier in presses:
        QTest.keyClick(widget, key, modifier)


def test_a_demo_case_shows_us_and_ct_with_their_stored_boxes(qtbot, thyroid_window, thyroid_demo):
    source = read_bundle(thyroid_demo[0])
    view = open_case(qtbot, thyroid_window, source.id)
    for modality in (US, CT):
        panel, expected = view.panels[modality], stored_roi(source, modality)
        assert panel.has_image and panel.plane_shape == source.images[modality].spatial_shape
        assert view.box(modality) == expected
        roi = view.editors[modality].roi
        assert (roi.pos().x(), roi.pos().y(), roi.size().x(), roi.size().y()) == (
            expected.x0, expected.y0, expected.width, expected.height)
        assert (f"{modality} box {expected.width:g} × {expected.height:g} px at ({expected.x0:g}, {expected.y0:g})"
                in view.box_label.text())
    assert view.panels[US].link is not view.panels[CT].link  # each image zooms on its own
    assert view.problems == {}


def test_keys_move_and_resize_the_boxes_and_the_change_is_saved(qtbot, thyroid_window, thyroid_demo):
    window = thyroid_window
    source = read_bundle(thyroid_demo[1])
    view = open_case(qtbot, window, source.id)
    us0, ct0 = stored_roi(source, US), stored_roi(source, CT)
    graphics = view.panels[US].graphics
    graphics.setFocus()
    right, left, down = Qt.Key.Key_Right, Qt.Key.Key_Left, Qt.Key.Key_Down
    none, shift, ctrl = Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier
    keys(graphics, (right, none), (right, none), (right, ctrl), (down, shift), (down, shift))
    assert view.box(US) == Box(us0.x0 + 12, us0.y0, us0.x1 + 12, us0.y1 + 2)
    keys(graphics, (Qt.Key.Key_Tab, none))
    assert view.active == CT
    keys(view.panels[CT].graphics, (left, none), (Qt.Key.Key_Left, shift))
    assert view.box(CT) == Box(ct0.x0 - 1, ct0.y0, ct0.x1 - 2, ct0.y1)
    assert view.box(US) == Box(us0.x0 + 12, us0.y0, us0.x1 + 12, us0.y1 + 2)  # Tab left the US box alone
    qtbot.waitUntil(lambda: not view._save_timer.isActive(), timeout=WAIT_MS)
    settle(qtbot, window)

    store = window.store
    saved = store.load_case(source.id)
    assert stored_roi(saved, US) == view.box(US) and stored_roi(saved, CT) == view.box(CT)
    assert stored_roi(read_bundle(thyroid_demo[1]), US) == us0  # the shipped demo bundle is never rewritten
    assert any(e["action"] == "case.roi" for e in store.audit_log(source.id))

    open_case(qtbot, window, read_bundle(thyroid_demo[0]).id)  # another case, then back: the new boxes
    view = open_case(qtbot, window, source.id)
    assert view.box(US) == Box(us0.x0 + 12, us0.y0, us0.x1 + 12, us0.y1 + 2)
    assert view.box(CT) == Box(ct0.x0 - 1, ct0.y0, ct0.x1 - 2, ct0.y1)


def test_ctrl_drag_draws_a_new_box(qtbot, thyroid_window, thyroid_demo):
    view = open_case(qtbot, thyroid_window, read_bundle(thyroid_demo[2]).id)
    panel = view.panels[US]
    panel.fit()
    QApplication.processEvents()
    viewport = panel.graphics.viewport()

    def screen(x: float, y: float) -> QPoint:
        scene = panel.viewbox.mapViewToScene(QPointF(x, y))
        return panel.graphics.mapFromScene(scene)

    def send(kind, point: QPoint, buttons) -> None:  # QTest's moves carry no modifiers: Ctrl is held throughout
        local = QPointF(point)
        event = QMouseEvent(kind, local, QPointF(viewport.mapToGlobal(point)), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.ControlModifier)
        QApplication.sendEvent(viewport, event)

    left = Qt.MouseButton.LeftButton
    start, end = screen(40, 30), screen(120, 90)
    send(QEvent.Type.MouseButtonPress, start, left)
    for t in np.linspace(0, 1, 8)[1:]:
        send(QEvent.Type.MouseMove, start + (end - start) * float(t), left)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)
    box = view.box(US)
    assert abs(box.x0 - 40) <= 2 and abs(box.y0 - 30) <= 2 and abs(box.x1 - 120) <= 2 and abs(box.y1 - 90) <= 2
    assert view._save_timer.isActive()  # on its way to the store
    settle(qtbot, thyroid_window)


def test_predict_uses_the_edited_box_and_updates_the_probabilities(qtbot, thyroid_window, thyroid_demo):
    window = thyroid_window
    source = read_bundle(thyroid_demo[2])  # a nodule whose probabilities are not pinned at 0 or 1
    view = open_case(qtbot, window, source.id)
    first = predict(qtbot, window, view)
    before = {s: first.probabilities[s] for s in SITES}
    assert view.probability_labels["central_lnm"].text().count(f"{100 * before['central_lnm']:.1f} %") == 1
    # a box on plain thyroid tissue left of the nodule: another crop, other probabilities
    view.editors[US].draw_between(QPointF(30, 150), QPointF(100, 215), finished=True)
    assert "boxes changed" in view.note.text()
    after_prediction = predict(qtbot, window, view)
    after = {s: after_prediction.probabilities[s] for s in SITES}
    assert max(abs(after[s] - before[s]) for s in SITES) > 0.01, (before, after)
    for site in SITES:
        assert f"{100 * after[site]:.1f} %" in view.probability_labels[site].text()
        assert view.probability_bars[site].probability == pytest.approx(after[site])
        assert view.probability_bars[site].threshold == after_prediction.thresholds[site]
    assert window.current_case.images[US].meta.extra["roi"] == {"x0": 30.0, "y0": 150.0, "x1": 100.0, "y1": 215.0}


def test_a_bad_box_is_refused_with_the_reason(qtbot, thyroid_window, thyroid_demo, message_boxes):
    window = thyroid_window
    source = read_bundle(thyroid_demo[3])
    view = open_case(qtbot, window, source.id)
    graphics = view.panels[CT].graphics
    view.set_active(CT)
    ctrl = Qt.KeyboardModifier.ControlModifier
    keys(graphics, *[(Qt.Key.Key_Right, ctrl)] * 30)  # 300 px right of a 160 px slice
    assert "outside the 160 x 160 image" in view.box_label.text()
    view.predict_button.click()
    assert message_boxes["warning"] and "outside" in message_boxes["warning"][-1][1]
    assert not window._predicting and not window.predictions
    keys(graphics, *[(Qt.Key.Key_Left, ctrl)] * 30)
    keys(graphics, *[(Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)] * 60)  # shrunk to one pixel
    assert "is empty" in view.box_label.text()
    view.predict_button.click()
    assert "empty" in message_boxes["warning"][-1][1]
    settle(qtbot, window)
    assert stored_roi(window.store.load_case(source.id), CT) == stored_roi(source, CT)  # bad boxes are not saved


def test_heat_layer_and_site_selectors_and_the_contribution_bars(qtbot, thyroid_window, thyroid_demo):
    window = thyroid_window
    view = open_case(qtbot, window, read_bundle(thyroid_demo[0]).id)
    prediction = predict(qtbot, window, view)
    for site in SITES:
        for layer, suffix in (("ig", ""), ("signed", ".signed"), ("gradcam", ".gradcam")):
            view.set_layer(layer, site)
            for modality in (US, CT):
                panel = view.panels[modality]
                assert panel._heat_source is prediction.heatmaps[f"{site}/{modality}{suffix}"]
                assert panel.heat.isVisible()
                flat = layer != "signed" and float(panel._heat_source.max()) < 0.02
                assert (f"{modality} (flat" in view.note.text()) == flat  # an all-zero map is said, not hidden
        shares = view.share_bars[site].shares
        assert shares == pytest.approx((prediction.measures[f"{site}.share_US"],
                                        prediction.measures[f"{site}.share_CT"]))
        assert view.share_bars[site].text() == (f"US {100 * shares[0]:.0f} %  ·  CT {100 * shares[1]:.0f} %")
    view.set_layer("signed")
    assert view.legend_high.text() == "towards LNM"
    alpha = view.panels[US].heat_colormap.getLookupTable(0, 1, 3, alpha=True)[:, 3]
    assert alpha[1] <= 5 and alpha[0] == alpha[2] == 255  # neutral (0.5) is (almost) transparent
    view.heatmap_checkbox.setChecked(False)
    assert not view.panels[US].heat.isVisible() and "hidden" in view.note.text()
    assert view.panels[US].layers["nodule"].items  # the predicted nodule contour is drawn


def test_one_read_of_a_thyroid_study_shows_us_and_ct_side_by_side(qtbot, thyroid_window, thyroid_demo):
    window = thyroid_window
    store = window.store
    ids = sorted(c.id for c in store.list_cases(kind=KIND))
    for case_id in ids:
        window.service.predict_case(store.load_case(case_id), explain=False)
    create_study(store, Study(id="thy-central", name="Central LNM", task_label="central_lnm", case_ids=tuple(ids),
                              modalities=(US, CT), arms=(UNAIDED,), seed=2))
    add_reader(store, "thy-central", "r1", "Dr One", PIN)
    window.start_reading("thy-central", "r1", PIN)
    qtbot.waitUntil(lambda: window.reading is not None and window.reading.case is not None, timeout=WAIT_MS)
    settle(qtbot, window)
    view = window.current_view()
    assert isinstance(view, ThyroidView)
    assert view.panels[US].has_image and view.panels[CT].has_image
    assert view.panels[US].x() < view.panels[CT].x() and view.panels[US].y() == view.panels[CT].y()
    assert not view.predict_button.isVisible() and not view.layer_combo.isVisible()  # unaided, no editing
    assert not any(e.editable for e in view.editors.values())
    reading = window.reading
    case_id = reading.case.case_id
    for key in (Qt.Key.Key_Y, Qt.Key.Key_4):
        QTest.keyClick(window, key)
        settle(qtbot, window)
    answers = reading.session.my_answers()
    assert [(a.case_id, a.positive, a.confidence) for a in answers] == [(case_id, True, 4.0)]
    window.stop_reading()
    assert all(e.editable for e in view.editors.values())


def test_a_dropped_us_ct_pair_without_boxes_asks_for_them_then_predicts(qtbot, thyroid_window, thyroid_demo,
                                                                         tmp_path):
    from engine.io.images import write_image
    from tests.engine.dicom_fixtures import write_ct

    window = thyroid_window
    demo = read_bundle(thyroid_demo[2])
    us = demo.images[US].array.copy()
    us[0, 0] ^= 1  # one corner pixel, far from the nodule: a new case, not the stored demo found by its content hash
    write_image(tmp_path / "nodule_us.png", us)
    write_ct(tmp_path / "nodule_ct.dcm", demo.images[CT].array)
    window.open_paths([tmp_path / "nodule_us.png", tmp_path / "nodule_ct.dcm"])
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.kind == KIND, timeout=WAIT_MS)
    settle(qtbot, window)
    view = window.current_view()
    assert view.box(US) is None and view.box(CT) is None
    assert "nodule_us.png: no nodule box. Ctrl+drag on the US image" in view.box_label.text()
    for modality in (US, CT):
        box = stored_roi(demo, modality)  # drawn where the demo's boxes are
        view.editors[modality].draw_between(QPointF(box.x0, box.y0), QPointF(box.x1, box.y1), finished=True)
    assert view.problems == {}
    prediction = predict(qtbot, window, view)
    expected = window.service.predict_case(demo, explain=False)[0]
    for site in SITES:
        assert prediction.probabilities[site] == pytest.approx(expected.probabilities[site], abs=1e-4)
    saved = window.store.load_case(window.current_case.id)
    assert stored_roi(saved, US) == stored_roi(demo, US) and stored_roi(saved, CT) == stored_roi(demo, CT)
