"""Fluorescence segmentation view, offscreen: a demo-like NIR frame with the predicted (yellow) and true (green)
contours, metrics against the truth, the method choice (a net or DRLSE) and export of mask and contours."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy import ndimage

from app.views import FluoroView
from app.views.fluoro_view import PREDICTION_COLOR, TRUTH_COLOR
from engine.cases.bundle import write_bundle
from engine.data import Prediction
from engine.metrics.segmentation import dice
from engine.phantoms.fluoro_frames import frame_to_case, make_frame
from engine.predict.base import Predictor
from engine.predict.fluoro import FluoroSegPredictor
from engine.seg.contours import read_contours_json
from engine.service import PredictionService

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
SIZE = 160


class FakeSegNet(Predictor):
    """Stands in for a trained net: the true mask grown by 3 pixels, with a smooth probability map."""

    family = "fluoro_seg"

    def __init__(self, method: str, truth: dict) -> None:
        self.method = method
        self.variant = method
        self.truth = truth
        self.modalities = ("NIR",)
        self.calls = 0

    def weight_hashes(self) -> dict[str, str]:
        return {f"fluoro_seg_{self.method}": "cd" * 32}

    def predict(self, images, *, explain=True) -> Prediction:
        self.calls += 1
        frame = self.require(images)["NIR"].array
        mask = ndimage.binary_dilation(self.truth[frame.shape], iterations=3)
        prob = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
        pred = self.new_prediction("test device")
        pred.masks["tumor"] = prob >= 0.5
        pred.timings_ms = {"total": 3.0}
        pred.set_result("tumor", "tumor" if mask.any() else "no tumor", float(prob.max()), 0.5)
        pred.heatmaps["tumor/NIR"] = prob
        return pred


@pytest.fixture
def fluoro_window(make_window, phantom_store, tmp_path, FakeCascade, monkeypatch):

    monkeypatch.setattr("engine.predict.fluoro.installed_methods", lambda root=None: ["unet", "unetplusplus", "drlse"])
    store, _ids = phantom_store
    frame = make_frame(np.random.default_rng(3), "B", SIZE, frame_id="frame-b")
    case = frame_to_case(frame)
    store.add_case(case, write_bundle(case, tmp_path / "frames" / case.id))
    truth = {frame.mask.shape: frame.mask}
    made = {}

    def factory(kind, modalities, method=None):
        if kind.name == "fluoro_frame":
            if method == "drlse":
                return made.setdefault(method, FluoroSegPredictor("drlse"))
            return made.setdefault(method, FakeSegNet(method, truth))
        return FakeCascade(modalities[0])

    service = PredictionService(store, make_predictor=factory)
    service.set_method("fluoro_frame", "unetplusplus")
    window = make_window(service=service)
    window.made = made
    window.truth = frame.mask
    return window


def open_frame(qtbot, window) -> FluoroView:
    window.case_browser.refresh()
    window.open_case("frame-b")
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == "frame-b", timeout=WAIT_MS)
    view = window.current_view()
    assert isinstance(view, FluoroView)
    qtbot.waitUntil(lambda: view.pred_mask is not None, timeout=WAIT_MS)
    return view


def _pen_colour(layer) -> str:
    return layer.pen.color().name()


def test_frame_shows_yellow_prediction_and_green_truth_contours(qtbot, fluoro_window):
    view = open_frame(qtbot, fluoro_window)
    assert view.image.image.shape == (SIZE, SIZE)
    assert _pen_colour(view.pred_layer) == PREDICTION_COLOR and _pen_colour(view.truth_layer) == TRUTH_COLOR
    assert view.truth_layer.items and view.pred_layer.items
    assert len(view.truth_layer.items) == len(view.truth_contours)
    # The drawn curves follow the masks: every truth-contour vertex sits on the truth boundary (within a pixel).
    xs, ys = view.truth_layer.items[0].getData()
    rows, cols = np.clip(np.round(ys - 0.5).astype(int), 0, SIZE - 1), np.clip(np.round(xs - 0.5).astype(int), 0, SIZE - 1)
    edge = fluoro_window.truth ^ ndimage.binary_erosion(fluoro_window.truth)
    near = ndimage.binary_dilation(edge, iterations=1)
    assert near[rows, cols].mean() > 0.95
    # Metrics against the truth, as the paper reports them.
    expected = dice(view.pred_mask, fluoro_window.truth)
    assert view.metrics["dice"] == pytest.approx(expected)
    assert 0.5 < expected < 1.0
    text = view.metrics_label.text()
    for word in ("Dice", "HD", "FPSR", "FNSR", "mm²", "region"):
        assert word in text
    assert view.metrics["dice"] + view.metrics["fpsr"] + view.metrics["fnsr"] == pytest.approx(1.0)
    # Toggles hide and show each layer.
    view.pred_checkbox.setChecked(False)
    assert not any(i.isVisible() for i in view.pred_layer.items)
    view.truth_checkbox.setChecked(False)
    assert not any(i.isVisible() for i in view.truth_layer.items)
    view.pred_checkbox.setChecked(True)
    assert all(i.isVisible() for i in view.pred_layer.items)
    view.set_heatmap_visible(True)
    assert view.heat.isVisible() and view.heat.image.shape == (SIZE, SIZE)


def test_window_with_a_segmented_frame_fits_a_1920_pixel_screen(qtbot, fluoro_window):
    """Both docks beside the fluorescence view on a common operating-room display, no clipped result column; the
    results panel names the net as the paper does."""
    view = open_frame(qtbot, fluoro_window)
    fluoro_window.resize(1920, 1080)
    assert fluoro_window.minimumSizeHint().width() <= 1920
    assert view.minimumSizeHint().width() <= 1920 - 440 - 460
    panel = fluoro_window.results_panel
    qtbot.waitUntil(lambda: "UNet++" in panel.headline.text(), timeout=WAIT_MS)
    assert "fluoro_seg[" not in panel.headline.text()


def test_contours_and_metrics_are_computed_off_the_gui_thread(qtbot, fluoro_window, monkeypatch):
    import threading

    import app.views.fluoro_view as fluoro_view

    threads = []

    def recorded(fn):
        def wrapper(*args, **kwargs):
            threads.append(threading.current_thread() is threading.main_thread())
            return fn(*args, **kwargs)
        return wrapper

    for name in ("mask_to_contours", "segmentation_metrics"):
        monkeypatch.setattr(fluoro_view, name, recorded(getattr(fluoro_view, name)))
    view = open_frame(qtbot, fluoro_window)
    assert view.truth_contours and view.pred_contours and "dice" in view.metrics
    assert threads and not any(threads)  # truth contours, prediction contours, Dice/HD: all on workers


def test_switching_to_drlse_segments_again_with_the_level_set(qtbot, fluoro_window):
    view = open_frame(qtbot, fluoro_window)
    assert [view.method_combo.itemData(i) for i in range(view.method_combo.count())][-1] == "drlse"
    first = view.pred_mask.copy()
    view.set_method("drlse")
    qtbot.waitUntil(lambda: "drlse" in fluoro_window.made and view._model == "fluoro_seg[drlse]", timeout=WAIT_MS)
    assert not np.array_equal(first, view.pred_mask)
    assert "DRLSE" in view.note.text()
    assert "Dice" in view.metrics_label.text()
    with pytest.raises(ValueError, match="not available"):
        view.set_method("no-such-net")


def test_export_mask_png_and_contours_json_csv(qtbot, fluoro_window, tmp_path):
    view = open_frame(qtbot, fluoro_window)
    mask_path = view.export_mask(tmp_path / "mask.png")
    saved = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    assert saved.shape == (SIZE, SIZE) and set(np.unique(saved)) <= {0, 255}
    assert np.array_equal(saved > 0, view.pred_mask)
    json_path = view.export_contours(tmp_path / "contours.json")
    contours, shape = read_contours_json(json_path)
    assert shape == (SIZE, SIZE) and len(contours) == len(view.pred_contours)
    payload = json.loads(json_path.read_text())
    assert payload["model"] == "fluoro_seg[unetplusplus]" and payload["case"] == "frame-b"
    assert payload["metrics"]["dice"] == pytest.approx(view.metrics["dice"])
    csv_path = view.export_contours(tmp_path / "contours.csv")
    assert csv_path.read_text().splitlines()[0].startswith(("contour", "id"))


def test_frame_without_truth_shows_no_metrics(qtbot, fluoro_window):
    view = open_frame(qtbot, fluoro_window)
    case = fluoro_window.current_case
    case.truth = None
    view.show_case(case)
    assert view.pred_mask is None and not view.truth_layer.items and not view.truth_checkbox.isVisibleTo(view)
    assert "no ground truth" in view.note.text()
    view.show_prediction(fluoro_window.predictions)
    assert view.pred_layer.items and view.metrics == {}
    assert "Dice" not in view.metrics_label.text() and "region" in view.metrics_label.text()
