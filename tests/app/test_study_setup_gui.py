"""Reader-study set-up in the GUI (issue 18): the New study dialog offers one model, the kind's primary model
first and chosen; when a reader finishes the unaided arm, they are told the aided arm follows and it starts."""

from __future__ import annotations

import pytest
from test_reading_panel import key, make_study, settle, sign_in, study_cases  # noqa: F401 (fixture)
from test_study_dialogs import new_study_dialog, press_ok

from engine.data import Prediction, TaskResult
from engine.studies import AIDED, UNAIDED, list_studies

pytestmark = pytest.mark.gui


@pytest.fixture
def fl_and_wl_results(phantom_store):
    """Each phantom specimen with an FL-CNN result per modality, WL stored last (the newest)."""
    store, ids = phantom_store
    for i, case_id in enumerate(ids):
        for variant in ("FL", "WL"):
            store.add_prediction(case_id, Prediction(family="fl_cnn", variant=variant,
                                                     tasks={"tumor": TaskResult("x", 0.2 + 0.3 * i, 0.5)}))
    return store, ids


def test_the_dialog_offers_the_primary_model_first_and_saves_the_one_chosen(qtbot, fl_and_wl_results):
    store, ids = fl_and_wl_results
    dialog = new_study_dialog(qtbot, store)
    qtbot.waitUntil(lambda: dialog.models_loaded, timeout=10_000)
    models = [dialog.model_combo.itemData(i) for i in range(dialog.model_combo.count())]
    assert models == ["fl_cnn[FL]", "fl_cnn[WL]"] and dialog.model_combo.currentData() == "fl_cnn[FL]"
    assert "FL-CNN" in dialog.model_combo.currentText() and "primary" in dialog.model_combo.currentText()
    assert f"results for 3 of {len(ids)} cases" in dialog.model_combo.currentText()
    dialog.id_edit.setText("wl")
    dialog.label_combo.setCurrentText("tumor")
    dialog.model_combo.setCurrentIndex(1)
    dialog.open()
    press_ok(dialog)
    assert dialog.created is not None and list_studies(store)[0].model == "fl_cnn[WL]"


def test_a_one_class_study_is_refused_in_the_dialog(qtbot, fl_and_wl_results):
    store, ids = fl_and_wl_results
    truths = {c: store.load_case(c).truth.labels["tumor"] for c in ids}
    dialog = new_study_dialog(qtbot, store)
    for row in range(dialog.case_list.count()):  # keep only the cases of one class
        item = dialog.case_list.item(row)
        if truths[item.data(256)] != truths[ids[0]]:
            item.setCheckState(dialog.case_list.item(row).checkState().Unchecked)
    dialog.id_edit.setText("one-class")
    dialog.label_combo.setCurrentText("tumor")
    dialog.open()
    press_ok(dialog)
    assert dialog.isVisible() and dialog.created is None
    assert "needs positive and negative cases" in dialog.problems_label.text()
    assert list_studies(store) == []


@pytest.mark.slow  # reads a whole arm through the keyboard
def test_finishing_the_unaided_arm_starts_the_aided_one(qtbot, window, study_cases, message_boxes):  # noqa: F811
    store, probabilities = study_cases
    make_study(store, list(probabilities), arms=(UNAIDED, AIDED))
    reading = sign_in(qtbot, window)
    assert not reading.session.aided
    for _ in probabilities:
        key(window, "N")
        key(window, "1")
        key(window, "Enter")
    qtbot.waitUntil(lambda: window.reading is not None and window.reading is not reading, timeout=30_000)
    settle()
    (title, text), = message_boxes["information"]
    assert title == "Next session" and "aided session" in text and "model's output" in text
    assert window.reading.session.aided and window.reading.session.arm == AIDED
    assert window.reading.case.aid is not None  # the aided arm shows the model's output
    window.stop_reading()
