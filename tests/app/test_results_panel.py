"""Results panel: a disagreement between the models shown (FL-CNN vs WL-CNN) is flagged where it is seen."""

import pytest

import engine.kinds  # noqa: F401  (registers the glioma kind the panel names models by)
from app.widgets.results_panel import ResultsPanel
from engine.data import Prediction


def _cascade(variant: str, tumor: float) -> Prediction:
    prediction = Prediction(family="fl_cnn", variant=variant)
    prediction.set_result("tumor", "tumor" if tumor >= 0.3 else "non-tumor", tumor, 0.3)
    return prediction


@pytest.mark.gui
def test_fl_and_wl_disagreement_is_flagged_and_cleared(qtbot):
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.set_case("g1", {"tumor": "tumor"}, "glioma_specimen")
    panel.show_predictions([_cascade("FL", 0.05), _cascade("WL", 0.71)])
    text = panel.disagreement_text()
    assert "FL-CNN non-tumor" in text and "WL-CNN tumor" in text and "Tumor" in text
    assert panel.disagreement_label.isVisible()
    assert "disagree" in panel.task_labels["tumor"].text()

    panel.show_predictions([_cascade("FL", 0.6), _cascade("WL", 0.71)])
    assert panel.disagreement_text() == "" and not panel.disagreement_label.isVisible()
    assert "disagree" not in panel.task_labels["tumor"].text()
    panel.show_predictions([_cascade("FL", 0.05), _cascade("WL", 0.71)])
    panel.set_case("g2", None, "glioma_specimen")  # a new case forgets the flag
    assert panel.disagreement_text() == ""


@pytest.mark.gui
def test_the_segmentations_area_shows_beside_its_frame_score(qtbot):
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_case("f1", None, "fluoro_frame")
    prediction = Prediction(family="fluoro_seg", variant="unetplusplus", measures={"area_px": 14905, "area_mm2": 595.9})
    prediction.set_result("tumor", "tumor", 0.83, 0.5)
    panel.show_predictions([prediction])
    cell = panel.cells[("tumor", "fluoro_seg[unetplusplus]")]
    assert cell.area_label.text() == "area 14905\xa0px (595.9\xa0mm²)" and not cell.area_label.isHidden()
    without = Prediction(family="fluoro_seg", variant="unetplusplus", measures={"area_px": 120})
    without.set_result("tumor", "tumor", 0.6, 0.5)
    panel.show_predictions([without])  # no spacing: pixels only
    assert panel.cells[("tumor", "fluoro_seg[unetplusplus]")].area_label.text() == "area 120\xa0px"
