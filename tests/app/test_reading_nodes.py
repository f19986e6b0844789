"""Reading tri-modal lymph-node cases, offscreen: unaided shows the three aligned images and nothing of the
model or the truth; aided shows the stored P(metastatic), call and Grad-CAM maps, never the truth."""

from __future__ import annotations

import numpy as np
import pytest
from test_reading_panel import PIN, percent, settle, sign_in, visible_texts

from app.views.lymph_node_view import LymphNodeView
from engine.cases.bundle import write_bundle
from engine.data import Prediction, TaskResult
from engine.phantoms.lymph_node import write_node_demo_cases
from engine.studies import AIDED, UNAIDED, Study, add_reader, create_study

pytestmark = pytest.mark.gui
PROBABILITIES = {"demo-node-01": 0.912, "demo-node-02": 0.137, "demo-node-03": 0.264}


@pytest.fixture
def node_study(phantom_store, tmp_path):
    store, _ = phantom_store
    write_node_demo_cases(tmp_path / "nodes", count=3)
    store.import_bundles(tmp_path / "nodes")
    for case_id, p in PROBABILITIES.items():  # the result in the store and, with its maps, in the bundle
        case = store.load_case(case_id)
        shape = case.images["WLI"].array.shape[:2]
        ramp = np.linspace(0, 1, shape[1], dtype=np.float32)[None, :].repeat(shape[0], axis=0)
        prediction = Prediction(
            family="mfi_ffp", variant="WLI+FI+PCI", weights_sha256={"mfi_ffp_wli_fi_pci": "ef" * 32},
            tasks={"metastatic": TaskResult("metastatic" if p >= 0.5 else "benign", p, 0.5)},
            heatmaps={f"metastatic/{m}": ramp for m in ("WLI", "FI", "PCI", "fusion")})
        case.predictions = [prediction]
        store.add_case(case, write_bundle(case, tmp_path / "read" / case_id))
        store.add_prediction(case_id, prediction)
    create_study(store, Study(id="s1", name="Node study", task_label="metastatic", case_ids=tuple(PROBABILITIES),
                              modalities=("WLI", "FI", "PCI"), arms=(UNAIDED, AIDED), seed=1))
    add_reader(store, "s1", "r1", "Dr One", PIN)
    return store


def test_node_cases_are_read_blinded_then_aided(qtbot, window, node_study):
    reading = sign_in(qtbot, window)
    for _ in PROBABILITIES:
        view = window.current_view()
        assert isinstance(view, LymphNodeView)
        assert all(view.panels[m].image.image is not None for m in ("WLI", "FI", "PCI"))  # all three shown
        assert not view._heatmaps and not view.heatmap_checkbox.isVisibleTo(window)
        texts = " ".join(visible_texts(window))
        for p in PROBABILITIES.values():
            assert percent(p) not in texts and f"{p:.3f}" not in texts
        assert "%" not in view.result_label.text() and not reading.panel.aid_label.isVisibleTo(window)
        reading.choose_call(False)
        reading.rate(2)
        reading.next(require_answer=True)
        settle()
    window.stop_reading()

    reading = sign_in(qtbot, window)  # the aided session follows the unaided one (no washout set)
    assert reading.session.aided
    for _ in PROBABILITIES:
        view = window.current_view()
        case_id = reading.case.case_id
        assert view._heatmaps and view.heatmap_checkbox.isVisibleTo(window)
        assert percent(PROBABILITIES[case_id]) in view.result_label.text()
        assert percent(PROBABILITIES[case_id]) in reading.panel.aid_label.text()
        reading.choose_call(True)
        reading.rate(4)
        reading.next(require_answer=True)
        settle()
    assert {a.case_id for a in reading.session.my_answers()} == set(PROBABILITIES)
