"""Main window and glioma view, offscreen: banner, status bar, opening cases and files, prediction, overlays, errors."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence

from app.main_window import BANNER_TEXT
from app.views import GliomaView, PlaceholderView
from engine.cases.bundle import write_bundle
from engine.cases.model import FL, WL
from engine.paths import user_data_dir
from engine.phantoms.glioma import PatientEffects, make_specimen, specimen_to_case
from engine.service import PredictionService

pytestmark = pytest.mark.gui
WAIT_MS = 30_000


def open_and_wait(qtbot, window, case_id: str, predicted: bool = True) -> None:
    window.open_case(case_id)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == case_id, timeout=WAIT_MS)
    if predicted:
        qtbot.waitUntil(lambda: bool(window.results_panel.cells) and bool(window.predictions), timeout=WAIT_MS)


def percent(text: str) -> float:
    return float(text.replace("%", "").strip())


def view_range(panel) -> list[float]:
    (x0, x1), (y0, y1) = panel.viewbox.viewRange()
    return [x0, x1, y0, y1]


def action_for(window, shortcut: str):
    matches = [a for a in window.findChildren(type(window.predict_action)) if QKeySequence(shortcut) in a.shortcuts()]
    assert len(matches) == 1, f"expected one action on {shortcut}, found {len(matches)}"
    return matches[0]


def test_banner_and_status_bar(qtbot, window, phantom_store):
    assert window.banner.text() == BANNER_TEXT == "Research use only — not for diagnostic use"
    assert window.banner.isVisible()
    qtbot.waitUntil(lambda: window.device_label.text() != "Device: …", timeout=WAIT_MS)
    assert window.device_label.text().startswith("Device: ")
    assert window.model_label.text()  # card fingerprints, or a clear "no models" line
    _store, ids = phantom_store
    qtbot.waitUntil(lambda: not window.case_browser.is_loading() and sorted(window.case_browser.case_ids()) == ids,
                    timeout=WAIT_MS)  # the list loads on a worker
    assert isinstance(window.current_view(), PlaceholderView)


def test_opening_a_case_shows_both_images(qtbot, window, phantom_store):
    _store, ids = phantom_store
    open_and_wait(qtbot, window, ids[0], predicted=False)
    view = window.current_view()
    assert isinstance(view, GliomaView)
    case = window.current_case
    assert view.fl_panel.image.image.shape == case.images[FL].array.shape
    assert view.wl_panel.image.image.shape == case.images[WL].array.shape
    low, high = view.fl_panel.image.levels
    assert case.images[FL].array.min() <= low < high <= case.images[FL].array.max()
    assert window.results_panel.truth_cells["tumor"].text() in ("tumor", "non-tumor", "positive", "negative")


def test_predict_fills_results_with_probabilities_and_calls(qtbot, window, phantom_store, fake_predictors):
    store, ids = phantom_store
    open_and_wait(qtbot, window, ids[0])
    panel = window.results_panel
    for model in ("fl_cnn[FL]", "fl_cnn[WL]"):
        value = percent(panel.probability_text("tumor", model))
        assert 0.0 <= value <= 100.0
        assert panel.call_text("tumor", model) == "tumor"
        assert panel.call_text("grade", model) == "lower grade"
    assert "call" in panel.headline.text() and "tumor" in panel.headline.text()
    assert "fl_cnn[FL]" in window.model_label.text()
    assert [p.summary.model for p in store.predictions_for(ids[0])] == ["fl_cnn[FL]", "fl_cnn[WL]"]
    window.predict()  # F5: an explicit re-run is kept beside the first, both in the history
    qtbot.waitUntil(lambda: fake_predictors[FL].calls == 2 and not window._predicting, timeout=WAIT_MS)
    assert len(store.predictions_for(ids[0])) == 4
    qtbot.waitUntil(lambda: window.results_panel.history_combo.count() == 2, timeout=WAIT_MS)


def test_gated_tasks_read_not_assessed(qtbot, make_window, phantom_store, FakeCascade):
    store, ids = phantom_store
    service = PredictionService(store, make_predictor=lambda kind, m, method=None: FakeCascade(m[0], tumor_probability=0.2))
    window = make_window(service=service)
    open_and_wait(qtbot, window, ids[0])
    assert window.results_panel.probability_text("grade", "fl_cnn[FL]") == "—"
    assert window.results_panel.call_text("grade", "fl_cnn[FL]") == "not assessed (non-tumor call)"
    view = window.current_view()
    view.heatmap_combo.setCurrentIndex(1)  # grade: no map because it was not assessed
    assert not view.fl_panel.heat.isVisible()
    assert "not assessed" in view.note.text()


def test_heatmap_toggle_and_opacity(qtbot, window, phantom_store):
    _store, ids = phantom_store
    open_and_wait(qtbot, window, ids[1])
    view = window.current_view()
    heat = view.fl_panel.heat
    assert view.heatmap_checkbox.isChecked() and heat.isVisible() and view.wl_panel.heat.isVisible()
    assert heat.image.shape == window.current_case.images[FL].array.shape[:2]
    view.heatmap_checkbox.setChecked(False)
    assert not heat.isVisible()
    action_for(window, "H").trigger()
    assert view.heatmap_checkbox.isChecked() and heat.isVisible()
    view.opacity_slider.setValue(80)
    assert heat.opacity() == pytest.approx(0.8)
    assert view.wl_panel.heat.opacity() == pytest.approx(0.8)
    action_for(window, "]").trigger()
    assert heat.opacity() == pytest.approx(0.9)
    action_for(window, "[").trigger()
    action_for(window, "[").trigger()
    assert heat.opacity() == pytest.approx(0.7)
    assert window.settings.heatmap_opacity == pytest.approx(0.7)


def test_h_key_reaches_the_heatmap(qtbot, window, phantom_store):
    _store, ids = phantom_store
    open_and_wait(qtbot, window, ids[0])
    view = window.current_view()
    window.activateWindow()
    view.fl_panel.graphics.setFocus()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    qtbot.keyClick(view.fl_panel.graphics, Qt.Key.Key_H)
    assert not view.heatmap_checkbox.isChecked()
    assert not view.fl_panel.heat.isVisible()


def test_window_level_and_fit(qtbot, window, phantom_store):
    _store, ids = phantom_store
    open_and_wait(qtbot, window, ids[0], predicted=False)
    view = window.current_view()
    auto = tuple(view.fl_panel.image.levels)
    view.fl_histogram.setLevels(0, 100)
    assert tuple(view.fl_panel.image.levels) == (0, 100)
    action_for(window, "W").trigger()
    assert tuple(view.fl_panel.image.levels) == pytest.approx(auto)
    view.fl_panel.viewbox.scaleBy((0.2, 0.2))
    assert view_range(view.wl_panel) == pytest.approx(view_range(view.fl_panel), abs=1e-6)
    action_for(window, "F").trigger()
    height, width = window.current_case.images[FL].array.shape
    for panel in (view.fl_panel, view.wl_panel):  # panels of one size show the same rectangle, not nearly
        (x0, x1), (y0, y1) = panel.viewbox.viewRange()
        assert x0 <= 0 and x1 >= width and y0 <= 0 and y1 >= height
    assert view.fl_panel.viewbox.size() == view.wl_panel.viewbox.size()
    assert view_range(view.wl_panel) == pytest.approx(view_range(view.fl_panel), abs=1e-6)


def test_worker_error_reaches_the_user(qtbot, make_window, phantom_store, message_boxes, FakeCascade):
    store, ids = phantom_store
    failing = PredictionService(store, make_predictor=lambda kind, m, method=None: FakeCascade(
        m[0], error=RuntimeError("simulated inference failure: CUDA out of memory")))
    window = make_window(service=failing)
    open_and_wait(qtbot, window, ids[0], predicted=False)
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    title, text = message_boxes["critical"][0]
    assert "Prediction failed" in title and ids[0] in title
    assert "simulated inference failure" in text
    assert "simulated inference failure" in window.statusBar().currentMessage()
    assert window.results_panel.state_label.text() == "Prediction failed."


def test_gui_thread_does_not_wait_for_inference(qtbot, make_window, phantom_store, FakeCascade):
    store, ids = phantom_store
    slow = PredictionService(store, make_predictor=lambda kind, m, method=None: FakeCascade(m[0], delay_s=1.0))
    window = make_window(service=slow, auto_predict=False)
    open_and_wait(qtbot, window, ids[0], predicted=False)
    started = time.perf_counter()
    window.predict()
    assert time.perf_counter() - started < 0.5
    assert window.busy_bar.isVisible() and "Predicting" in window.busy_label.text()
    qtbot.waitUntil(lambda: bool(window.predictions), timeout=WAIT_MS)
    assert not window.busy_bar.isVisible()


@pytest.mark.parametrize("name, content, expected", [
    ("broken_fl.png", b"\x89PNG\r\n\x1a\n this is not really a png", "corrupt"),
    ("empty_scan.tif", b"", "empty"),
])
def test_bad_image_file_gives_a_clear_message(qtbot, window, tmp_path, message_boxes, name, content, expected):
    bad = tmp_path / name
    bad.write_bytes(content)
    window.open_paths([bad])
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    _title, text = message_boxes["critical"][0]
    assert name in text and expected in text
    assert window.current_case is None


def write_specimen_pngs(folder: Path, seed: int = 3) -> tuple[Path, Path, tuple[int, int]]:
    rng = np.random.default_rng(seed)
    spec = make_specimen(rng, patient=PatientEffects.draw(rng, "P9"), tumor=1, grade=0, ki67=1, size=(64, 80))
    fl_path, wl_path = folder / "spec_nir.png", folder / "spec_white.png"
    cv2.imwrite(str(fl_path), spec.fl)
    cv2.imwrite(str(wl_path), cv2.cvtColor(spec.wl, cv2.COLOR_RGB2BGR))
    return fl_path, wl_path, spec.fl.shape


def test_opening_image_files_adds_a_case_to_the_browser(qtbot, window, tmp_path):
    fl_path, wl_path, shape = write_specimen_pngs(tmp_path)
    window.open_paths([wl_path, fl_path])
    qtbot.waitUntil(lambda: window.current_case is not None, timeout=WAIT_MS)
    case = window.current_case
    assert set(case.images) == {FL, WL} and case.images[FL].array.dtype == np.uint16
    assert case.id in window.case_browser.case_ids()
    assert window.case_browser.selected_id() == case.id
    assert (user_data_dir() / "cases" / case.id / "case.json").is_file()
    assert window.current_view().fl_panel.image.image.shape == shape
    qtbot.waitUntil(lambda: bool(window.predictions), timeout=WAIT_MS)


def test_dropping_a_bundle_folder_opens_it(qtbot, window, tmp_path):
    rng = np.random.default_rng(11)
    spec = make_specimen(rng, patient=PatientEffects.draw(rng, "P7"), tumor=0, grade=None, ki67=None, size=(48, 48))
    case = specimen_to_case(spec, "dropped-case-01")
    del case.images[WL]  # a specimen with FL only: the WL panel says so
    folder = write_bundle(case, tmp_path / "dropped")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == "dropped-case-01",
                    timeout=WAIT_MS)
    view = window.current_view()
    assert view.wl_panel.missing.textItem.toPlainText() == "No WL image"
    assert not view.wl_panel.image.isVisible()
    qtbot.waitUntil(lambda: bool(window.predictions), timeout=WAIT_MS)
    assert [p.model for p in window.predictions] == ["fl_cnn[FL]"]


def test_stored_predictions_show_before_a_new_run(qtbot, make_window, phantom_store):
    store, ids = phantom_store
    first = make_window()
    open_and_wait(qtbot, first, ids[2])
    first.close()
    second = make_window(auto_predict=False)
    open_and_wait(qtbot, second, ids[2], predicted=False)
    qtbot.waitUntil(lambda: bool(second.results_panel.cells), timeout=WAIT_MS)
    assert second.results_panel.state_label.text().startswith("Stored result from")
    assert percent(second.results_panel.probability_text("tumor", "fl_cnn[FL]")) == pytest.approx(80.0)


def test_case_of_a_kind_without_view_shows_placeholder(qtbot, window, phantom_store):
    store, ids = phantom_store
    case = store.load_case(ids[0])
    case.kind = "pet_ct"  # no view yet (glioma, lymph-node and fluorescence cases have one)
    window.show_case(case)
    assert isinstance(window.current_view(), PlaceholderView)
    assert "pet_ct" in window.placeholder.label.text()


def test_model_cards_dialog_lists_installed_cards(qtbot, window):
    from app.widgets.model_cards import ModelCardsDialog
    from engine.registry import list_models

    dialog = ModelCardsDialog(window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.loaded, timeout=WAIT_MS)  # read on a worker
    cards = list_models()
    assert dialog.names.count() == len(cards)
    assert dialog.text.toPlainText()
    if cards:
        assert cards[0].name in dialog.text.toPlainText()


@pytest.mark.slow
def test_demo_case_with_shipped_models_predict_and_toggle_heatmap(qtbot, make_window, phantom_store):
    """The path a surgeon takes: a bundled demo case, the shipped FL-CNN/WL-CNN weights, the heatmap toggle."""
    from engine.paths import demo_cases_dir

    store, _ids = phantom_store
    demo_ids = sorted(store.import_bundles(demo_cases_dir()))
    assert demo_ids, "no demo cases shipped in resources/demo_cases"
    first = next(i for i in demo_ids if i.startswith("demo-glioma"))
    window = make_window(service=PredictionService(store))
    window.case_browser.refresh(select_id=first)
    open_and_wait(qtbot, window, first)
    assert [p.model for p in window.predictions] == ["fl_cnn[FL]", "fl_cnn[WL]"]
    for prediction in window.predictions:
        assert 0.0 <= prediction.probabilities["tumor"] <= 1.0
        assert 0.0 <= percent(window.results_panel.probability_text("tumor", prediction.model)) <= 100.0
        assert prediction.heatmaps, "Grad-CAM maps missing"
    view = window.current_view()
    assert view.fl_panel.heat.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_H)
    assert not view.fl_panel.heat.isVisible() and not view.wl_panel.heat.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_H)
    assert view.fl_panel.heat.isVisible()


def test_case_browser_filters_by_text_and_kind(qtbot, window, phantom_store):
    _store, ids = phantom_store
    browser = window.case_browser
    browser.filter_edit.setText(ids[1][-2:])
    qtbot.waitUntil(lambda: browser.case_ids() == [ids[1]], timeout=5000)
    browser.filter_edit.clear()
    browser.kind_combo.setCurrentIndex(browser.kind_combo.findData("lymph_node"))
    qtbot.waitUntil(lambda: not browser.is_loading() and browser.case_ids() == [], timeout=5000)
    browser.kind_combo.setCurrentIndex(browser.kind_combo.findData("glioma_specimen"))
    qtbot.waitUntil(lambda: not browser.is_loading() and sorted(browser.case_ids()) == ids, timeout=5000)


def test_open_images_dialog_opens_the_chosen_files(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    fl_path, wl_path, _shape = write_specimen_pngs(tmp_path, seed=8)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(fl_path), str(wl_path)], "")))
    action_for(window, "Ctrl+O").trigger()
    qtbot.waitUntil(lambda: window.current_case is not None, timeout=WAIT_MS)
    assert window.settings.last_open_dir == str(tmp_path)
    assert window.current_case.images[FL].meta.file_name == fl_path.name
