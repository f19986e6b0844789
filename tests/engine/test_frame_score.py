"""The calibrated frame-level tumor score of the fluorescence nets (issue 18, item 10)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.predict.frame_score import FRAME_THRESHOLD, FrameScore, frame_features
from engine.registry import load_card


def test_features_do_not_depend_on_the_map_size():
    small = np.zeros((50, 50), np.float32)
    small[10:20, 10:20] = 0.9
    large = np.kron(small, np.ones((4, 4), np.float32))
    assert frame_features(small, 0.5) == pytest.approx(frame_features(large, 0.5), rel=1e-5)
    maximum, top, area = frame_features(small, 0.5)
    assert maximum == pytest.approx(0.9) and area == pytest.approx(0.04) and top == pytest.approx(0.9)


def test_one_confident_pixel_is_not_a_certain_tumor():
    """The max-pixel score said 100 % for one confident pixel; the calibrated score of the shipped card does not
    (it still weighs the highest pixel most, so one certain pixel alone is not dismissed either)."""
    score = FrameScore.from_card(load_card("fluoro_seg_unetplusplus").extra)
    assert score is not None
    speck = np.zeros((256, 256), np.float32)
    speck[100, 100] = 1.0
    assert score.probability(speck, 0.5) < 0.9
    assert score.probability(np.zeros((256, 256), np.float32), 0.5) < 0.05


def test_the_card_keeps_the_fit_with_its_data_and_held_out_figures():
    entry = load_card("fluoro_seg_unetplusplus").extra["frame_score"]
    assert "phantom frames" in entry["data"] and "tumor-free" in entry["data"]
    held_out = entry["held_out"]
    assert held_out["brier"] < held_out["brier_max_pixel"]  # calibrated: far better probabilities
    assert held_out["auc"] >= held_out["auc_max_pixel"] - 0.02  # and no worse at ranking frames


def test_the_predictor_reports_the_calibrated_score_and_the_area():
    from engine.data import ImageMeta, ModalityImage
    from engine.phantoms.fluoro_frames import make_frame
    from engine.predict.fluoro import FluoroSegPredictor

    frame = make_frame(np.random.default_rng(3), "C", 128)
    predictor = FluoroSegPredictor("unetplusplus", backend="eager")
    image = ModalityImage("NIR", frame.image, ImageMeta(bit_depth=frame.bit_depth, spacing=frame.spacing_mm))
    prediction = predictor.predict({"NIR": image}, explain=False)
    work, _geometry, _timings = predictor.work_probabilities(frame.image, frame.bit_depth)
    expected = predictor.frame_score.probability(work, predictor.threshold)
    assert prediction.probabilities["tumor"] == pytest.approx(expected, abs=1e-6)
    assert prediction.thresholds["tumor"] == FRAME_THRESHOLD
    assert prediction.calls["tumor"] == ("tumor" if expected >= FRAME_THRESHOLD else "no tumor")
    assert "area_px" in prediction.measures and "area_mm2" in prediction.measures

