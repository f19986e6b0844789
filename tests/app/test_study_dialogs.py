"""The administrator's dialogs, offscreen: New study and Add reader call the engine on OK, stay open with the
engine's message when it refuses (nothing saved), and save exactly the settings chosen when it accepts."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from app.widgets.study_dialogs import AddReaderDialog, NewStudyDialog
from app.workers import wait_for_workers
from engine.data import Prediction, TaskResult
from engine.studies import AIDED, UNAIDED, ReadingSession, Study, create_study, list_readers, list_studies

pytestmark = pytest.mark.gui


@pytest.fixture
def store_with_results(phantom_store):
    """The phantom specimens, each with a stored model result (a study freezes them)."""
    store, ids = phantom_store
    for i, case_id in enumerate(ids):
        store.add_prediction(case_id, Prediction(
            family="fl_cnn", variant="FL", weights_sha256={"fl_cnn_fl_tumor": "ab" * 32},
            tasks={"tumor": TaskResult("tumor" if i else "non-tumor", 0.2 + 0.3 * i, 0.5)}))
    return store, ids


def press_ok(dialog) -> None:
    """OK, and wait for the engine call it makes on a worker."""
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert wait_for_workers(30)


def new_study_dialog(qtbot, store, preselect=None) -> NewStudyDialog:
    dialog = NewStudyDialog(store, preselect=preselect)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.loaded, timeout=10_000)  # the stored cases are listed on a worker
    return dialog


def test_new_study_refuses_with_the_engine_message_and_saves_nothing(qtbot, store_with_results):
    store, ids = store_with_results
    dialog = new_study_dialog(qtbot, store)
    dialog.open()
    press_ok(dialog)  # no study id
    assert dialog.isVisible() and dialog.created is None
    assert "study id must be 1 to 128 characters" in dialog.problems_label.text()
    assert list_studies(store) == []


def test_new_study_saves_the_chosen_settings(qtbot, store_with_results):
    store, ids = store_with_results
    dialog = new_study_dialog(qtbot, store)
    dialog.open()
    assert dialog.kind_combo.currentData() == "glioma_specimen"
    assert not dialog.contours_box.isEnabled()  # specimens show two images: no outlines
    dialog.id_edit.setText("g1")
    dialog.name_edit.setText("Glioma FL read")
    dialog.label_combo.setCurrentText("tumor")
    dialog.case_list.item(2).setCheckState(Qt.CheckState.Unchecked)
    left_out = dialog.case_list.item(2).data(Qt.ItemDataRole.UserRole)
    dialog.aided_box.setChecked(True)
    dialog.scale_combo.setCurrentIndex(dialog.scale_combo.findData("0-100"))
    dialog.repeat_spin.setValue(1)
    dialog.washout_spin.setValue(14)
    dialog.seed_spin.setValue(99)
    press_ok(dialog)
    assert not dialog.isVisible() and dialog.created is not None
    (saved,) = list_studies(store)
    assert saved.id == "g1" and saved.name == "Glioma FL read" and set(saved.case_ids) == set(ids) - {left_out}
    assert saved.arms == (UNAIDED, AIDED) and saved.confidence_scale == "0-100" and saved.seed == 99
    assert saved.repeat_reads == 1 and saved.washout_days == 14 and not saved.contours
    assert saved.modalities == (dialog.modality_boxes and next(iter(dialog.modality_boxes)),)
    assert saved.model == "fl_cnn[FL]" and saved.case_kind == "glioma_specimen"


def test_the_contours_option_is_offered_for_fluorescence_frames(qtbot, store_with_results, tmp_path):
    from engine.cases.bundle import write_bundle
    from engine.phantoms.fluoro_frames import frame_to_case, make_frame

    store, _ = store_with_results
    for i in range(2):
        case = frame_to_case(make_frame(np.random.default_rng(i), "C", 96, tumor_free=bool(i)), f"fr-{i}")
        store.add_case(case, write_bundle(case, tmp_path / "fr" / case.id))
        store.add_prediction(case.id, Prediction(family="fluoro_seg", variant="unet",
                                                 tasks={"tumor": TaskResult("tumor", 0.9 - 0.8 * i, 0.5)}))
    dialog = new_study_dialog(qtbot, store, preselect="fr-0")
    assert dialog.kind_combo.currentData() == "fluoro_frame" and dialog.contours_box.isEnabled()
    assert dialog.label_combo.currentText() == "tumor"
    for row in range(dialog.case_list.count()):  # both frames: a study needs both classes (issue 18)
        dialog.case_list.item(row).setCheckState(Qt.CheckState.Checked)
    dialog.id_edit.setText("outline")
    dialog.contours_box.setChecked(True)
    dialog.open()
    press_ok(dialog)
    assert dialog.created is not None and dialog.created.contours, dialog.problems_label.text()
    dialog2 = new_study_dialog(qtbot, store)
    dialog2.kind_combo.setCurrentIndex(dialog2.kind_combo.findData("glioma_specimen"))
    assert not dialog2.contours_box.isEnabled() and not dialog2.contours_box.isChecked()


def reader_dialog(qtbot, store, study, reader: str, pin: str, repeat: str, name: str = "") -> AddReaderDialog:
    """An open Add reader dialog, filled in and OK pressed."""
    dialog = AddReaderDialog(store, [study])
    qtbot.addWidget(dialog)
    dialog.open()
    dialog.reader_edit.setText(reader)
    dialog.name_edit.setText(name)
    dialog.pin_edit.setText(pin)
    dialog.repeat_edit.setText(repeat)
    press_ok(dialog)
    return dialog


def test_add_reader_checks_the_pin_twice_refuses_duplicates_and_stores_a_working_pin(qtbot, store_with_results):
    store, ids = store_with_results
    study = create_study(store, Study(id="s1", name="s1", task_label="tumor", case_ids=tuple(ids),
                                      modalities=("FL",)))
    dialog = reader_dialog(qtbot, store, study, "dr-a", "246802", "246803", name="Dr A")
    assert "PINs differ" in dialog.problems_label.text() and list_readers(store, "s1") == []
    dialog.repeat_edit.setText("246802")
    press_ok(dialog)
    assert not dialog.isVisible() and [r.reader_id for r in list_readers(store, "s1")] == ["dr-a"]
    assert ReadingSession.open(store, "s1", "dr-a", "246802").display_name == "Dr A"

    again = reader_dialog(qtbot, store, study, "dr-a", "135702", "135702")
    assert again.isVisible() and "dr-a" in again.problems_label.text()
    assert len(list_readers(store, "s1")) == 1


def test_the_study_menu_opens_the_dialogs_without_blocking(qtbot, window, store_with_results):
    window.new_study_dialog()
    dialog = window.study_dialog
    assert isinstance(dialog, NewStudyDialog) and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.loaded, timeout=10_000)
    dialog.id_edit.setText("menu-study")
    dialog.label_combo.setCurrentText("tumor")
    press_ok(dialog)
    assert "Created study menu-study" in window.statusBar().currentMessage()
    window.add_reader_dialog()
    qtbot.waitUntil(lambda: isinstance(window.study_dialog, AddReaderDialog), timeout=10_000)
    dialog = window.study_dialog
    assert isinstance(dialog, AddReaderDialog)
    dialog.reader_edit.setText("r9")
    dialog.pin_edit.setText("999999")
    dialog.repeat_edit.setText("999999")
    press_ok(dialog)
    assert "Enrolled reader r9 in study menu-study" in window.statusBar().currentMessage()
