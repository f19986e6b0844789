"""The toy kind in the GUI: one module (tests/toy_kind.py) plus a trivial view registered here, and the case
browser, the case view, the results panel, the New study dialog and reading mode handle it with no edit to app/
or engine/ (the engine side is tests/engine/test_toy_kind.py)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from test_reading_panel import key, settle, sign_in

from app.views import CaseView, register_view, unregister_view
from app.widgets.contour_drawing import ContourDrawing
from app.widgets.image_panel import ImagePanel
from engine.service import PredictionService
from engine.studies import add_reader
from tests.toy_kind import KIND, MODALITY, TASK, write_toy_case

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
LEVELS = {"toy-0": 40, "toy-1": 200, "toy-2": 220}


class ToyView(CaseView):
    """All a new kind's view needs: one image panel, its heat map, and an outline for reader studies."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = ImagePanel("Toy image")
        self.note = QLabel("")
        self.drawing = ContourDrawing(self.panel.plot, self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.panel, 1)

    def show_case(self, case) -> None:
        self.panel.set_image(case.images.get(MODALITY))
        self.panel.fit()

    def show_prediction(self, predictions) -> None:
        maps = [p.heatmaps[f"{TASK}/{MODALITY}"] for p in predictions if f"{TASK}/{MODALITY}" in p.heatmaps]
        self.panel.set_heat(maps[0] if maps else None, visible=True)

    def set_drawing(self, enabled: bool, polygons=None) -> None:
        self.drawing.set_enabled(enabled, self.panel.plane_shape)
        self.drawing.set_polygons(polygons if enabled else None)

    def clear(self) -> None:
        self.panel.clear()

    def fit(self) -> None:
        self.panel.fit()


@pytest.fixture
def toy_window(make_window, phantom_store, tmp_path):
    register_view(KIND, ToyView)
    store, _ids = phantom_store
    for i, (case_id, level) in enumerate(LEVELS.items()):
        write_toy_case(tmp_path / "toys", case_id, level, seed=i)
    store.import_bundles(tmp_path / "toys")
    service = PredictionService(store)  # the kind's own predictor, as the app makes it
    for case_id in LEVELS:  # a study freezes stored model outputs
        service.predict_case(store.load_case(case_id))
    yield make_window(service=service)
    unregister_view(KIND)


def test_the_toy_kind_is_browsed_shown_predicted_and_read_in_a_study(qtbot, toy_window, phantom_store):
    window = toy_window
    store, _ids = phantom_store
    browser = window.case_browser
    toy = browser.kind_combo.findData(KIND)
    assert toy >= 0 and browser.kind_combo.itemText(toy) == "Toy images"
    browser.kind_combo.setCurrentIndex(toy)
    qtbot.waitUntil(lambda: not browser.is_loading() and sorted(browser.case_ids()) == sorted(LEVELS), timeout=WAIT_MS)

    browser.select("toy-1")  # opening shows the registered view; predicting fills the results panel
    qtbot.waitUntil(lambda: window.current_case is not None and bool(window.predictions), timeout=WAIT_MS)
    settle()  # the stored result shows first, then the new prediction with its map
    view = window.current_view()
    assert isinstance(view, ToyView) and view.panel.image.image.shape == (96, 96) and view.panel.heat.isVisible()
    panel = window.results_panel
    qtbot.waitUntil(lambda: bool(panel.truth_cells), timeout=WAIT_MS)
    texts = [w.text() for w in panel.findChildren(QLabel)]
    assert any("<b>Brightness</b>" in t for t in texts)  # the task's title, from the kind
    assert any(t.startswith("Brightness<br>") and "v1" in t for t in texts)  # the model's title, from the kind
    assert panel.call_text(TASK, "toy_brightness[v1]") == "bright" and panel.truth_cells[TASK].text() == "bright"
    assert panel.headline.text() == "Brightness v1 call: bright"

    window.new_study_dialog()  # a reader study of toy cases, outlines allowed
    dialog = window.study_dialog
    qtbot.waitUntil(lambda: dialog.loaded, timeout=WAIT_MS)
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(KIND))
    assert dialog.kind_combo.currentText() == "Toy images"
    assert [dialog.label_combo.itemText(i) for i in range(dialog.label_combo.count())] == [TASK]
    assert dialog.contours_box.isEnabled() and list(dialog.modality_boxes) == [MODALITY]
    for row in range(dialog.case_list.count()):
        dialog.case_list.item(row).setCheckState(Qt.CheckState.Checked)
    dialog.id_edit.setText("toy-study")
    dialog.contours_box.setChecked(True)
    dialog.accept()
    qtbot.waitUntil(lambda: dialog.created is not None, timeout=WAIT_MS)
    assert dialog.created.case_kind == KIND and dialog.created.contours and len(dialog.created.case_ids) == 3
    add_reader(store, "toy-study", "r1", "Dr One", "432101")

    reading = sign_in(qtbot, window, "toy-study")  # read the first case: call, rating, outline, Enter
    view = window.current_view()
    assert isinstance(view, ToyView) and view.drawing.enabled and not view.panel.heat.isVisible()
    assert reading.names == ("bright", "dark") and "bright" in reading.panel.question_label.text()
    first = reading.case.case_id
    key(window, "Y")
    key(window, "4")
    for x, y in ((4, 4), (20, 4), (20, 20)):
        view.drawing.add_point(x, y)
    view.drawing.close_polygon()
    settle()
    key(window, "Enter")
    assert reading.case.case_id != first
    (answer,) = reading.session.my_answers()
    assert answer.case_id == first and answer.positive and answer.contour is not None
    window.stop_reading()
