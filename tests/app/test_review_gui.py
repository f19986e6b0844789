"""Offline review in the main window: a stored case re-opens as computed without running the models, F5 adds a
run to the history, next / previous case keys, the review filter, the compare mode, case details, the choice for
a bundle whose case is stored, and the administrator's view of readers' outlines."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtGui import QKeySequence

from app.widgets.review_dialogs import CompareDialog, ReaderOutlinesDialog
from engine.cases.model import FL
from engine.kinds.opening import KEEP_BOTH
from engine.service import PredictionService
from engine.studies import AIDED, UNAIDED, Study, create_study, list_studies

pytestmark = pytest.mark.gui
WAIT_MS = 30_000


def opened(qtbot, window, case_id: str, *, runs: int | None = None) -> None:
    window.open_case(case_id)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == case_id, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(window.predictions) and bool(window.results_panel.cells), timeout=WAIT_MS)
    if runs is not None:
        qtbot.waitUntil(lambda: window.results_panel.history_combo.count() == runs and not window._busy_jobs,
                        timeout=WAIT_MS)


def fl_heat(window) -> np.ndarray:
    return window.current_view()._heatmaps[("tumor", FL)]


def test_a_stored_case_reopens_as_computed_without_running_the_models(qtbot, make_window, phantom_store,
                                                                        fake_predictors):
    store, ids = phantom_store
    first = make_window()
    opened(qtbot, first, ids[0], runs=1)  # no stored result yet: the models run once
    computed = fl_heat(first).copy()
    first.close()
    calls = fake_predictors[FL].calls

    second = make_window()  # auto_predict on, as users run it
    opened(qtbot, second, ids[0], runs=1)
    qtbot.wait(300)
    assert fake_predictors[FL].calls == calls  # no silent re-run
    panel = second.results_panel
    assert panel.state_label.text().startswith("Stored result from")
    assert panel.probability_text("tumor", "fl_cnn[FL]") == "80.0 %"
    assert np.abs(fl_heat(second) - computed).max() <= 1 / 510 + 1e-6  # the stored heat map, 8-bit
    assert "FL-CNN" in panel.history_combo.itemText(0) and "aaaaaaaa" in panel.history_combo.itemText(0)

    fake_predictors[FL].tumor_probability = 0.3
    second.predict_action.trigger()  # F5: a new run, kept beside the first
    qtbot.waitUntil(lambda: panel.history_combo.count() == 2 and not second._busy_jobs, timeout=WAIT_MS)
    assert fake_predictors[FL].calls == calls + 1
    assert panel.probability_text("tumor", "fl_cnn[FL]") == "30.0 %"
    assert panel.history_combo.currentIndex() == 0
    panel.history_combo.activated.emit(1)  # the user picks the older run
    qtbot.waitUntil(lambda: panel.probability_text("tumor", "fl_cnn[FL]") == "80.0 %", timeout=WAIT_MS)
    assert panel.state_label.text().startswith("Stored result from")


def test_alt_down_and_alt_up_open_the_next_and_previous_case(qtbot, make_window, phantom_store):
    store, ids = phantom_store
    window = make_window()
    qtbot.waitUntil(lambda: len(window.case_browser.case_ids()) == 3, timeout=WAIT_MS)
    listed = window.case_browser.case_ids()
    nexts = [a for a in window.findChildren(type(window.predict_action)) if QKeySequence("Alt+Down") in a.shortcuts()]
    assert nexts == [window.next_case_action]
    assert QKeySequence("Alt+Up") in window.previous_case_action.shortcuts()
    window.next_case_action.trigger()  # nothing open: the first case of the list
    idle = lambda: not window._busy_jobs and not window._predicting  # noqa: E731
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == listed[0], timeout=WAIT_MS)

    def neighbour(step: int) -> str:  # the case beside the open one in the list as it is now (a refresh may re-sort)
        qtbot.waitUntil(lambda: idle() and not window.case_browser.is_loading(), timeout=WAIT_MS)
        now = window.case_browser.case_ids()
        return now[now.index(window.current_case.id) + step]

    expected = neighbour(+1)
    window.next_case_action.trigger()
    qtbot.waitUntil(lambda: window.current_case.id == expected, timeout=WAIT_MS)
    expected = neighbour(-1)
    window.previous_case_action.trigger()
    qtbot.waitUntil(lambda: window.current_case.id == expected, timeout=WAIT_MS)
    qtbot.waitUntil(idle, timeout=WAIT_MS)
    first = window.case_browser.case_ids()[0]
    if window.current_case.id == first:
        window.previous_case_action.trigger()
        assert "First case" in window.statusBar().currentMessage()
        assert window.current_case.id == first


def test_the_review_filter_keeps_cases_by_call(qtbot, make_window, phantom_store):
    store, ids = phantom_store
    window = make_window()
    opened(qtbot, window, ids[1], runs=1)
    browser = window.case_browser
    qtbot.waitUntil(lambda: len(browser.case_ids()) == 3 and not browser.is_loading(), timeout=WAIT_MS)
    browser.review_filter.call_combo.setCurrentIndex(browser.review_filter.call_combo.findData("positive"))
    qtbot.waitUntil(lambda: browser.case_ids() == [ids[1]] and not browser.is_loading(), timeout=WAIT_MS)
    browser.review_filter.call_combo.setCurrentIndex(browser.review_filter.call_combo.findData("none"))
    qtbot.waitUntil(lambda: sorted(browser.case_ids()) == sorted(set(ids) - {ids[1]}), timeout=WAIT_MS)
    browser.review_filter.clear()
    browser.refresh()
    qtbot.waitUntil(lambda: len(browser.case_ids()) == 3 and not browser.is_loading(), timeout=WAIT_MS)


def test_compare_shows_two_runs_side_by_side(qtbot, make_window, phantom_store, fake_predictors):
    store, ids = phantom_store
    window = make_window()
    opened(qtbot, window, ids[2], runs=1)
    fake_predictors[FL].tumor_probability = 0.35
    window.predict()
    qtbot.waitUntil(lambda: window.results_panel.history_combo.count() == 2 and not window._busy_jobs,
                    timeout=WAIT_MS)
    window.compare_action.trigger()
    dialog = window.review_dialog
    assert isinstance(dialog, CompareDialog)
    qtbot.waitUntil(lambda: dialog.left.shown == 0 and dialog.right.shown == 1, timeout=WAIT_MS)
    assert dialog.left.results.probability_text("tumor", "fl_cnn[FL]") == "35.0 %"
    assert dialog.right.results.probability_text("tumor", "fl_cnn[FL]") == "80.0 %"
    assert dialog.left.view.fl_panel.has_heat and dialog.right.view.fl_panel.has_heat
    dialog.right.combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: dialog.right.shown == 0, timeout=WAIT_MS)
    dialog.accept()


def test_case_details_are_saved_and_audited(qtbot, make_window, phantom_store):
    store, ids = phantom_store
    window = make_window()
    opened(qtbot, window, ids[0])
    window.case_details_action.trigger()
    dialog = window.review_dialog
    dialog.patient_edit.setText("PSEUDO-17")
    dialog.name_edit.setText("frontal specimen A")
    dialog.accept()
    qtbot.waitUntil(lambda: store.get_case_record(ids[0]).name == "frontal specimen A", timeout=WAIT_MS)
    assert store.load_case(ids[0]).patient_id == "PSEUDO-17"
    qtbot.waitUntil(lambda: "frontal specimen A" in window.windowTitle(), timeout=WAIT_MS)
    assert store.audit_log(ids[0], actions=("case.update",))[-1]["detail"]["changed"].keys() >= {"name_ref"}
    qtbot.waitUntil(lambda: any("frontal specimen A" in window.case_browser.table.item(r, 0).text()
                                for r in range(window.case_browser.table.rowCount())), timeout=WAIT_MS)


def test_a_bundle_of_a_stored_case_asks_and_keeps_both(qtbot, make_window, phantom_store, tmp_path, monkeypatch):
    store, ids = phantom_store
    window = make_window()
    copy = tmp_path / "moved" / ids[1]
    shutil.copytree(store.get_case_record(ids[1]).bundle_path, copy)
    asked = []
    monkeypatch.setattr("app.review_mode.ask_bundle_conflict", lambda parent, c: asked.append(c) or KEEP_BOTH)
    window.open_paths([copy])
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == f"{ids[1]}-copy2",
                    timeout=WAIT_MS)
    assert [c.case_id for c in asked] == [ids[1]]
    assert str(copy) not in str(store.get_case_record(ids[1]).bundle_path)  # the stored case was not re-pointed
    qtbot.waitUntil(lambda: not window._busy_jobs, timeout=WAIT_MS)


def test_reader_outlines_dialog_shows_each_reader_with_dice(qtbot, tmp_path):
    from engine.store import Store
    from tests.engine.study_reading import read_every_arm
    from tests.toy_kind import TASK, write_toy_case

    for i, level in enumerate((40, 200)):
        write_toy_case(tmp_path / "toys", f"toy-{i}", level, seed=i)
    store = Store()
    store.import_bundles(tmp_path / "toys")
    for case_id in ("toy-0", "toy-1"):
        PredictionService(store).predict_case(store.load_case(case_id))
    create_study(store, Study(id="outl", name="Outlines", task_label=TASK, case_ids=("toy-0", "toy-1"),
                              modalities=("TOY",), arms=(UNAIDED, AIDED), contours=True))
    read_every_arm(store, "outl", ("r1",), "135790",
                   lambda s, b, aided: s.answer(True, 5, contour=[[(24, 24), (24, 60), (60, 60), (60, 24)]]))
    dialog = ReaderOutlinesDialog(store, list_studies(store))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.outlines is not None and dialog.outlines.case_id == "toy-0", timeout=WAIT_MS)
    titles = [p.title for p in dialog.panels]
    assert titles[0] == "Truth" and titles[1].startswith("Model toy_brightness[v1] · Dice")
    assert [t.split(" · Dice")[0] for t in titles[2:]] == ["r1 · unaided", "r1 · aided"]
    assert all("rater" in p.layers and p.layers["rater"].items for p in dialog.panels[1:])
    dialog.case_list.setCurrentRow(1)
    qtbot.waitUntil(lambda: dialog.outlines.case_id == "toy-1", timeout=WAIT_MS)
    dialog.close()
    store.close()


def test_reader_outlines_is_in_the_study_menu(window):
    assert window.outlines_action in window.admin_actions
    assert window.outlines_action.text() == "Reader outlines…"


def test_demo_cases_are_copied_before_they_are_stored(tmp_path):
    from app.main import import_demo_cases
    from engine.paths import demo_cases_dir, user_data_dir
    from engine.store import Store

    with Store() as store:
        first = import_demo_cases(store)
        assert first is not None
        for summary in store.list_cases():
            assert user_data_dir().resolve() in summary.bundle_path.resolve().parents
            assert demo_cases_dir().resolve() not in summary.bundle_path.resolve().parents


def test_the_same_image_files_opened_again_open_the_stored_case(qtbot, make_window, phantom_store, tmp_path):
    import cv2

    store, ids = phantom_store
    window = make_window()
    image = store.load_case(ids[0]).images[FL].array
    cv2.imwrite(str(tmp_path / "again_fl.png"), image)
    window.open_paths([tmp_path / "again_fl.png"])
    qtbot.waitUntil(lambda: window.current_case is not None and not window._busy_jobs and bool(window.predictions),
                    timeout=WAIT_MS)
    first = window.current_case.id
    assert first not in ids  # an FL image alone is a new case (the phantom cases hold FL and WL)
    window.open_paths([tmp_path / "again_fl.png"])
    qtbot.waitUntil(lambda: "already stored as case" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert window.current_case.id == first and len(store.list_cases()) == len(ids) + 1
    qtbot.waitUntil(lambda: not window._busy_jobs, timeout=WAIT_MS)
