"""Reading mode, offscreen: blinding (unaided: no model output, no truth; aided: the model output, no truth),
keyboard-only reading saved through the engine, resume at the first unanswered case, wrong PIN, a missing bundle."""

from __future__ import annotations

import shutil

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QAbstractItemView, QApplication, QLabel, QLineEdit, QWidget

from app.views import GliomaView
from app.widgets.study_dialogs import StartReadingDialog
from app.workers import wait_for_workers
from engine.cases.bundle import write_bundle
from engine.data import Prediction, TaskResult
from engine.studies import AIDED, UNAIDED, Study, add_reader, create_study
from engine.studies.model import AUTH_FAILED

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
PROBABILITIES = (0.734, 0.218, 0.871)  # distinctive, so they can be looked for anywhere on screen
PIN = "432101"


def stored_prediction(probability: float, shape: tuple[int, int]) -> Prediction:
    ramp = np.linspace(0.0, 1.0, shape[1], dtype=np.float32)[None, :].repeat(shape[0], axis=0)
    return Prediction(family="fl_cnn", variant="FL", weights_sha256={"fl_cnn_fl_tumor": "ab" * 32},
                      tasks={"tumor": TaskResult("tumor" if probability >= 0.5 else "non-tumor", probability, 0.5)},
                      heatmaps={"tumor/FL": ramp}, device="test device")


@pytest.fixture
def study_cases(phantom_store, tmp_path):
    """Copies of the phantom specimens (with truth) as rs-0.., each with a stored prediction in store and bundle."""
    store, ids = phantom_store
    out = {}
    for i, (source, probability) in enumerate(zip(ids, PROBABILITIES, strict=True)):
        case = store.load_case(source)
        case.id = f"rs-{i}"
        prediction = stored_prediction(probability, case.images["FL"].array.shape[:2])
        case.predictions = [prediction]
        store.add_case(case, write_bundle(case, tmp_path / "study" / case.id))
        store.add_prediction(case.id, prediction)
        out[case.id] = probability
    return store, out


def make_study(store, case_ids, study_id="s1", arms=(UNAIDED,), scale="5-point") -> Study:
    study = create_study(store, Study(id=study_id, name=f"Glioma study {study_id}", task_label="tumor",
                                      case_ids=tuple(case_ids), modalities=("FL", "WL"), arms=arms,
                                      confidence_scale=scale, seed=3))
    add_reader(store, study.id, "r1", "Dr One", PIN)
    return study


def settle() -> None:
    """Let the session's queue save and move (answers and cases go through workers, in order)."""
    assert wait_for_workers(WAIT_MS / 1000)


def sign_in(qtbot, window, study_id="s1", reader="r1", pin=PIN):
    window.start_reading(study_id, reader, pin)
    qtbot.waitUntil(lambda: window.reading is not None, timeout=WAIT_MS)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.reading.panel.isVisible(), timeout=WAIT_MS)  # docks appear animated
    settle()
    return window.reading


def key(window, name: str) -> None:
    codes = {"Enter": Qt.Key.Key_Return, "Right": Qt.Key.Key_Right, "Left": Qt.Key.Key_Left, "Home": Qt.Key.Key_Home,
             "Up": Qt.Key.Key_Up, "Down": Qt.Key.Key_Down}
    QTest.keyClick(window, codes[name] if name in codes else getattr(Qt.Key, f"Key_{name.upper()}"))
    settle()


def visible_texts(window) -> list[str]:
    """Everything a reader can read: labels, buttons, fields, tables, plot titles and notes, title, status bar."""
    texts = [window.windowTitle(), window.statusBar().currentMessage()]
    for widget in window.findChildren(QWidget):
        if not widget.isVisibleTo(window):
            continue
        if isinstance(widget, QLabel):
            texts.append(widget.text())
        elif isinstance(widget, QAbstractButton):
            texts.append(widget.text())
        elif isinstance(widget, QLineEdit):
            texts += [widget.text(), widget.placeholderText()]
        elif isinstance(widget, QAbstractItemView) and widget.model() is not None:
            model = widget.model()
            texts += [str(model.data(model.index(r, c))) for r in range(model.rowCount())
                      for c in range(model.columnCount())]
            texts += [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in range(model.columnCount())]
        elif isinstance(widget, pg.GraphicsView):
            for item in widget.scene().items():
                if isinstance(item, pg.LabelItem) and item.isVisible():
                    texts.append(item.text)
                elif isinstance(item, pg.TextItem) and item.isVisible():
                    texts.append(item.textItem.toPlainText())
    return texts


def visible_heatmaps(window) -> list:
    view = window.current_view()
    if not isinstance(view, GliomaView):
        return []
    return [panel.heat for panel in view.panels.values()
            if panel.heat.isVisible() and panel.heat.image is not None]


def percent(p: float) -> str:
    return f"{100 * p:.1f} %"


# -- blinding -------------------------------------------------------------------------------------


def test_unaided_session_shows_no_model_output_and_no_truth(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities)
    window.case_browser.refresh()
    window.case_browser.select("rs-0")  # a case was open before signing in: nothing of it may stay
    qtbot.waitUntil(lambda: window.current_case is not None, timeout=WAIT_MS)
    reading = sign_in(qtbot, window)
    assert window.current_case is None and not window.browser_dock.isVisible() and not window.results_dock.isVisible()
    assert not window.browser_dock.toggleViewAction().isEnabled() and not window.predict_action.isEnabled()
    forbidden = [percent(p) for p in probabilities.values()] + [
        "threshold", "fl_cnn", "FL-CNN", "Truth", "reference", "rs-0", "rs-1", "rs-2", "demo-glioma", "DEMO0",
        "stored result", "Prediction", "call <b>"]
    for _ in probabilities:
        qtbot.wait(20)  # let any prediction that was running deliver (it must not be shown)
        shown = "\n".join(visible_texts(window))
        assert isinstance(window.current_view(), GliomaView)
        assert window.current_view().fl_panel.image.image is not None  # the images are there
        assert [word for word in forbidden if word in shown] == [], shown
        assert visible_heatmaps(window) == []
        assert reading.case.aid is None and not reading.panel.aid_label.isVisible()
        assert window.results_panel.truth_cells == {}
        view = window.current_view()
        assert view.model_controls and not any(w.isVisible() for w in view.model_controls)  # no Grad-CAM toggles
        reading.next()
        settle()
    window.predict()  # F5 and friends are refused while reading
    assert not window.predictions and window.current_case is None


def test_aided_session_shows_the_model_output_but_no_truth(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities, study_id="s-aided", arms=(AIDED,))
    reading = sign_in(qtbot, window, "s-aided")
    for _ in probabilities:
        probability = probabilities[reading.case.case_id]
        shown = "\n".join(visible_texts(window))
        assert percent(probability) in shown and "threshold 50 %" in shown
        assert [p for p in probabilities.values() if p != probability and percent(p) in shown] == []
        assert [word for word in ("Truth", "reference", "rs-", "demo-glioma") if word in shown] == []
        assert len(visible_heatmaps(window)) == 1  # the stored Grad-CAM on FL
        assert window.current_view().heatmap_checkbox.isVisible()
        reading.next()
        settle()


# -- keyboard ---------------------------------------------------------------------------------------


def test_keyboard_only_reading_saves_every_answer(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)
    window.current_view().heatmap_combo.setFocus()  # keys work whatever has focus
    expected = {}
    for i in range(len(probabilities)):
        case_id = reading.case.case_id
        positive = probabilities[case_id] >= 0.5
        assert reading.panel.progress_label.text().startswith(f"{i + 1} of 3")
        key(window, "Y" if positive else "N")
        assert reading.panel.saved_label.text() == "not answered yet"
        key(window, "5" if positive else "1" if i else "2")
        assert reading.panel.saved_label.text().startswith("saved ✓ ")
        comment = ""
        if i == 1:
            key(window, "C")
            QTest.keyClicks(reading.panel.comment_edit, "yn12 faint rim")  # typed, not taken as shortcuts
            key(window, "Enter")  # keeps the comment, the next Enter moves on
            comment = "yn12 faint rim"
        expected[case_id] = (positive, 5.0 if positive else 1.0 if i else 2.0, comment)
        key(window, "Enter")
    assert "All 3 cases are answered" in reading.panel.message_label.text()
    answers = reading.session.my_answers()  # read back from the store
    assert {a.case_id: (a.positive, a.confidence, a.comment) for a in answers} == expected

    key(window, "Left")  # change the previous case's answer: a new read that supersedes the old one
    changed = reading.case.case_id
    key(window, "Down" if expected[changed][0] else "Up")
    assert reading.case.answer.supersedes is not None
    answers = {a.case_id: a for a in reading.session.my_answers()}
    assert answers[changed].confidence == expected[changed][1] + (-1 if expected[changed][0] else 1)
    assert [e["action"] for e in store.audit_log("s1")].count("read.change") >= 2  # the comment and this change


def test_enter_refuses_an_unanswered_case_and_a_contradicting_rating(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)
    key(window, "Enter")
    assert reading.session.position == 1 and "Not answered yet" in reading.panel.message_label.text()
    key(window, "Y")
    key(window, "1")  # a positive call with "definitely not": the engine's rule, shown, nothing saved
    assert "positive call needs a rating at or above 3" in reading.panel.message_label.text()
    assert reading.case.answer is None
    key(window, "Right")  # skipping is allowed, and said
    assert reading.session.position == 2 and "left unanswered" in reading.panel.message_label.text()


def test_hundred_point_scale_uses_a_slider_and_digit_keys(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities, study_id="s100", scale="0-100")
    reading = sign_in(qtbot, window, "s100")
    assert reading.panel.slider is not None and not reading.panel.confidence_buttons
    key(window, "N")
    key(window, "2")
    assert reading.case.answer.confidence == 25.0 and reading.panel.slider.value() == 25
    key(window, "Up")
    assert reading.case.answer.confidence == 30.0


# -- resume, PIN, missing bundle ---------------------------------------------------------------------


def test_signing_in_again_resumes_at_the_first_unanswered_case(qtbot, window, study_cases):
    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)
    order = list(reading.session._order)
    key(window, "Y")
    key(window, "4")
    key(window, "Right")
    key(window, "Right")  # the second case left for later
    key(window, "N")
    key(window, "2")
    window.stop_reading()
    assert window.reading is None and window.windowTitle() == "OncoLens" and window.browser_dock.isVisible()
    reading = sign_in(qtbot, window)
    assert reading.session.position == 2 and reading.case.case_id == order[1] and reading.case.answer is None
    assert reading.panel.progress_label.text().startswith("2 of 3   (2 answered)")
    key(window, "Home")
    assert reading.session.position == 2


def test_wrong_pin_shows_the_engine_message_and_opens_nothing(qtbot, window, study_cases, message_boxes):
    store, probabilities = study_cases
    make_study(store, probabilities)
    window.start_reading_dialog()
    qtbot.waitUntil(lambda: window.study_dialog is not None, timeout=WAIT_MS)  # the studies are listed first
    dialog = window.study_dialog
    assert isinstance(dialog, StartReadingDialog)
    dialog.reader_edit.setText("r1")
    dialog.pin_edit.setText("000000")
    dialog.accept()
    qtbot.waitUntil(lambda: bool(message_boxes["warning"]), timeout=WAIT_MS)
    assert message_boxes["warning"] == [("Start reading", AUTH_FAILED)]
    assert window.reading is None and window.reading_dock is None and window.windowTitle() == "OncoLens"
    assert window.predict_action.isEnabled() and window.browser_dock.isVisible()


def test_a_missing_bundle_shows_the_engine_message_and_the_reader_goes_on(qtbot, window, study_cases, tmp_path):
    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)  # case 2 is read ahead now; the last one is not
    gone = list(reading.session._order)[2]
    shutil.rmtree(tmp_path / "study" / gone)
    key(window, "Right")
    assert reading.session.position == 2 and not reading.case.unavailable
    key(window, "Right")
    assert reading.case.unavailable
    assert window.current_view() is window.placeholder
    assert "cannot be shown" in window.placeholder.label.text()
    assert reading.panel.unavailable_label.isVisible()
    key(window, "Y")
    assert reading.case.answer is None and "cannot be answered" in reading.panel.message_label.text()
    key(window, "Enter")  # an unavailable case does not block Enter: the end says what is left
    assert "2 case(s) are still unanswered" in reading.panel.message_label.text()
    key(window, "Left")
    assert reading.session.position == 2 and isinstance(window.current_view(), GliomaView)


def test_the_next_case_is_read_ahead_while_the_reader_reads(qtbot, window, study_cases, monkeypatch):
    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)  # case 1 on screen, case 2 read ahead meanwhile
    order = list(reading.session._order)
    loaded = []
    real_load = store.load_case
    monkeypatch.setattr(store, "load_case", lambda case_id: (loaded.append(case_id), real_load(case_id))[1])
    key(window, "Right")
    assert reading.case.case_id == order[1] and window.current_view().fl_panel.image.image is not None
    assert loaded == [order[2]]  # case 2 came from memory; only case 3 was read (ahead)


def test_an_answer_the_store_refuses_is_said_not_saved_and_sent_again_on_the_next_change(
        qtbot, window, study_cases, monkeypatch, message_boxes):
    from engine.store import StoreError

    store, probabilities = study_cases
    make_study(store, probabilities)
    reading = sign_in(qtbot, window)
    real_answer = reading.session.answer

    def locked(*args, **kwargs):
        raise StoreError("database is locked by another station")

    monkeypatch.setattr(reading.session, "answer", locked)
    key(window, "Y")
    key(window, "4")
    assert message_boxes["critical"] == [("Answer not saved", "database is locked by another station")]
    assert "Not saved" in reading.panel.message_label.text()
    assert reading.panel.saved_label.text() == "not answered yet" and reading.case.answer is None
    monkeypatch.setattr(reading.session, "answer", real_answer)
    key(window, "5")
    assert reading.case.answer is not None and reading.case.answer.confidence == 5.0
    assert reading.panel.saved_label.text().startswith("saved ✓ ")
