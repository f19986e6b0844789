"""GUI test fixtures: a store of phantom specimens, a stand-in predictor, and a main window checked for leftover workers."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.workers import pending_workers, wait_for_workers, worker_pool  # noqa: E402
from engine.data import Prediction  # noqa: E402
from engine.phantoms.glioma import write_glioma_demo_cases  # noqa: E402
from engine.predict.base import Predictor  # noqa: E402
from engine.service import PredictionService  # noqa: E402
from engine.store import Store  # noqa: E402

TASKS = ("tumor", "grade", "ki67")
FAKE_LABELS = {"tumor": ("non-tumor", "tumor"), "grade": ("lower grade", "GBM"), "ki67": ("Ki-67 < 10%", "Ki-67 >= 10%")}


class FakeCascade(Predictor):
    """Stands in for GliomaCascadePredictor: deterministic probabilities and image-sized heatmaps, no torch."""

    family = "fl_cnn"

    def __init__(self, modality: str, tumor_probability: float = 0.8, delay_s: float = 0.0,
                 error: Exception | None = None) -> None:
        self.modality = modality
        self.variant = modality
        self.modalities = (modality,)
        self.tumor_probability = tumor_probability
        self.delay_s = delay_s
        self.error = error
        self.calls = 0

    def weight_hashes(self) -> dict[str, str]:
        return {f"fake_{self.modality.lower()}_{t}": f"{i:x}" * 64 for i, t in enumerate(TASKS, start=10)}

    def predict(self, images, *, explain=True) -> Prediction:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        image = self.require(images)[self.modality].array
        h, w = image.shape[:2]
        ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :].repeat(h, axis=0)
        pred = self.new_prediction("test device")
        probabilities = {"tumor": self.tumor_probability, "grade": 0.3, "ki67": 0.65}
        for task in TASKS:
            if task != "tumor" and probabilities["tumor"] < 0.5:
                pred.set_result(task, "not assessed (non-tumor call)", threshold=0.5)
                continue
            p = probabilities[task]
            pred.set_result(task, FAKE_LABELS[task][int(p >= 0.5)], p, 0.5)
            if explain:
                pred.heatmaps[f"{task}/{self.modality}"] = ramp
        pred.timings_ms = {"total": 1.0}
        return pred


@pytest.fixture(autouse=True)
def collect_garbage_on_the_gui_thread():
    """Free each test's Qt garbage here, on the GUI thread, and give the next (engine) tests normal GC:
    a window turns automatic collection off so that a worker never frees Qt objects (app.workers)."""
    gc.collect()
    yield
    wait_for_workers(timeout=30)
    gc.collect()
    gc.enable()


@pytest.fixture(autouse=True)
def message_boxes(monkeypatch):
    """Record message boxes by kind as (title, text) instead of opening modal dialogs (they would hang offscreen)."""
    shown: dict[str, list[tuple[str, str]]] = {k: [] for k in ("critical", "warning", "information", "question", "about")}

    def recorder(kind):
        def show(parent, title, text, *args, **kwargs):
            shown[kind].append((title, text))
            return QMessageBox.StandardButton.Ok
        return staticmethod(show)

    for kind in shown:
        monkeypatch.setattr(QMessageBox, kind, recorder(kind))
    return shown


@pytest.fixture(name="FakeCascade")
def fake_cascade_class():
    """The FakeCascade class, for tests that build their own PredictionService."""
    return FakeCascade


@pytest.fixture
def phantom_store(tmp_path: Path):
    """A fresh store (in the per-test ONCOLENS_HOME) holding three phantom glioma specimens."""
    store = Store()
    write_glioma_demo_cases(tmp_path / "demo", n=3, seed=7)
    ids = sorted(store.import_bundles(tmp_path / "demo"))
    yield store, ids
    store.close()


@pytest.fixture
def fake_predictors():
    """The FakeCascade instances a service built, by modality (tests tune or inspect them)."""
    return {}


@pytest.fixture
def make_window(qtbot, phantom_store, fake_predictors):
    """Build MainWindow on the phantom store; at teardown no worker may still be running or undelivered."""
    from app.main_window import MainWindow

    store, _ids = phantom_store
    windows = []

    def build(service: PredictionService | None = None, **kwargs):
        if service is None:
            def factory(kind, modalities, method=None):
                (modality,) = modalities
                fake_predictors.setdefault(modality, FakeCascade(modality))
                return fake_predictors[modality]
            service = PredictionService(store, make_predictor=factory)
        window = MainWindow(store, service=service, **kwargs)
        qtbot.addWidget(window)
        window.resize(1600, 1000)
        window.show()
        windows.append(window)
        return window

    yield build
    assert wait_for_workers(timeout=60), "a worker was still running at teardown"
    assert pending_workers() == 0
    assert worker_pool().activeThreadCount() == 0


@pytest.fixture
def window(make_window):
    return make_window()
