"""The shipped FL-CNN cascade on phantom specimens: output shapes, ranges, gating, errors."""

import numpy as np
import pytest

from engine.data import image_of
from engine.phantoms.glioma import make_glioma_dataset
from engine.predict.glioma import GliomaCascadePredictor
from engine.registry import load_card


@pytest.fixture(scope="module")
def specimens():
    return make_glioma_dataset(n_patients=3, specimens_per_patient=4, seed=123)


@pytest.fixture(scope="module")
def fl_predictor():
    return GliomaCascadePredictor("FL", device="cpu")


def test_prediction_shapes_and_ranges(fl_predictor, specimens):
    spec = specimens[0]
    pred = fl_predictor.predict({"FL": image_of("FL", spec.fl, 16)}, explain=True)
    assert (pred.family, pred.variant, pred.model) == ("fl_cnn", "FL", "fl_cnn[FL]")
    assert set(pred.probabilities) <= {"tumor", "grade", "ki67"} and "tumor" in pred.probabilities
    assert all(0.0 <= p <= 1.0 for p in pred.probabilities.values())
    assert set(pred.calls) == {"tumor", "grade", "ki67"}
    for key, heat in pred.heatmaps.items():
        assert key.endswith("/FL")
        assert heat.shape == spec.fl.shape and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert pred.timings_ms["total"] > 0 and "preprocess" in pred.timings_ms
    assert pred.weights_sha256 == {f"fl_cnn_fl_{t}": load_card(f"fl_cnn_fl_{t}").weights["sha256"]
                                   for t in ("tumor", "grade", "ki67")}
    assert pred.device.startswith("CPU")


def test_cascade_gates_grade_and_ki67_on_the_tumor_call(fl_predictor, specimens):
    for spec in specimens:
        pred = fl_predictor.predict({"FL": image_of("FL", spec.fl)}, explain=False)
        if pred.calls["tumor"] == "tumor":
            assert {"grade", "ki67"} <= set(pred.probabilities)
        else:
            assert set(pred.probabilities) == {"tumor"}
            assert pred.calls["grade"].startswith("not assessed")


def test_run_all_scores_every_task(specimens):
    pred = GliomaCascadePredictor("WL", device="cpu", run_all=True).predict({"WL": image_of("WL", specimens[1].wl)})
    assert set(pred.probabilities) == {"tumor", "grade", "ki67"}
    assert all(h.shape == specimens[1].wl.shape[:2] for h in pred.heatmaps.values())


def test_eight_bit_fl_input_is_accepted(fl_predictor, specimens):
    fl8 = (specimens[2].fl // 257).astype(np.uint8)
    pred = fl_predictor.predict({"FL": image_of("FL", fl8)}, explain=False)
    assert 0 <= pred.probabilities["tumor"] <= 1


def test_missing_modality_is_a_clear_error(fl_predictor, specimens):
    with pytest.raises(KeyError, match="needs FL images; missing FL"):
        fl_predictor.predict({"WL": image_of("WL", specimens[0].wl)})
    with pytest.raises(ValueError, match="modality FL or WL"):
        GliomaCascadePredictor("PET")
