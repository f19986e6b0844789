"""call_disagreements: which tasks the models shown for one case call differently."""

from engine.data import Prediction
from engine.data.agreement import call_disagreements


def _prediction(variant: str, tumor: float, grade: float | None = None) -> Prediction:
    prediction = Prediction(family="fl_cnn", variant=variant)
    prediction.set_result("tumor", "tumor" if tumor >= 0.3 else "non-tumor", tumor, 0.3)
    if grade is None:
        prediction.set_result("grade", "not assessed (non-tumor call)", threshold=0.5)
    else:
        prediction.set_result("grade", "GBM" if grade >= 0.5 else "lower grade", grade, 0.5)
    return prediction


def test_opposite_calls_are_a_disagreement_and_gated_tasks_are_not():
    found = call_disagreements([_prediction("FL", 0.05), _prediction("WL", 0.71, 0.4)])
    assert [d.task for d in found] == ["tumor"]
    assert found[0].positive_models == ("fl_cnn[WL]",) and found[0].negative_models == ("fl_cnn[FL]",)


def test_agreeing_or_single_models_have_none():
    assert call_disagreements([_prediction("FL", 0.6, 0.7), _prediction("WL", 0.9, 0.8)]) == []
    assert call_disagreements([_prediction("FL", 0.6, 0.7)]) == []
    assert [d.task for d in call_disagreements([_prediction("FL", 0.6, 0.7), _prediction("WL", 0.9, 0.2)])] == ["grade"]
