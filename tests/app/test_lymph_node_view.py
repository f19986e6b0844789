"""Lymph-node view, offscreen: WLI/FI/PCI with linked zoom, per-branch and fusion Grad-CAM, P(metastatic) against
the threshold, missing modes, and opening node images (assignment dialog, guesses, errors that reach the user)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence

from app.views import LymphNodeView
from app.views.lymph_node_view import FUSION
from engine.cases.bundle import write_bundle
from engine.data import Prediction
from engine.kinds.lymph_node import FI, NODE_MODALITIES, PCI, WLI
from engine.phantoms.lymph_node import make_node, node_to_case
from engine.predict.base import Predictor
from engine.service import PredictionService

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
NODE_SIZE = 96


class FakeNodePredictor(Predictor):
    """Stands in for MFIFFPPredictor: a fixed P(metastatic), a blob heatmap per branch and at the fusion layer."""

    family = "mfi_ffp"

    def __init__(self, modalities, probability: float = 0.73, threshold: float = 0.5) -> None:
        self.modalities = tuple(m for m in NODE_MODALITIES if m in modalities)
        self.variant = "+".join(self.modalities)
        self.probability = probability
        self.threshold = threshold
        self.calls = 0

    def weight_hashes(self) -> dict[str, str]:
        return {"mfi_ffp_" + "_".join(m.lower() for m in self.modalities): "ab" * 32}

    def predict(self, images, *, explain=True) -> Prediction:
        self.calls += 1
        assert set(images) == set(self.modalities)
        h, w = images[self.modalities[0]].array.shape[:2]
        pred = self.new_prediction("test device")
        pred.set_result("metastatic", "metastatic" if self.probability >= self.threshold else "benign",
                        self.probability, self.threshold)
        if explain:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            keys = list(self.modalities) + (["fusion"] if len(self.modalities) > 1 else [])
            for i, key in enumerate(keys):
                cy, cx = h * (0.3 + 0.15 * i), w * (0.7 - 0.15 * i)
                pred.heatmaps[f"metastatic/{key}"] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 * h * w))
        pred.timings_ms = {"total": 2.0}
        return pred


@pytest.fixture
def node_store(phantom_store, tmp_path):
    """The phantom store plus a tri-modal node (metastatic) and a WLI+FI node (benign)."""
    store, _ids = phantom_store
    rng = np.random.default_rng(21)
    tri = node_to_case(make_node(rng, 1, size=NODE_SIZE, node_id="node-tri", patient_id="PN1"))
    bi = node_to_case(make_node(rng, 0, size=NODE_SIZE, node_id="node-bi", patient_id="PN2"))
    del bi.images[PCI]
    for case in (tri, bi):
        store.add_case(case, write_bundle(case, tmp_path / "nodes" / case.id))
    return store


@pytest.fixture
def node_predictors():
    return {}


@pytest.fixture
def node_window(make_window, node_store, node_predictors, FakeCascade):
    def factory(kind, modalities, method=None):
        if kind.name == "lymph_node":
            return node_predictors.setdefault(modalities, FakeNodePredictor(modalities))
        return FakeCascade(modalities[0])
    return make_window(service=PredictionService(node_store, make_predictor=factory))


def open_and_wait(qtbot, window, case_id: str, predicted: bool = True) -> LymphNodeView:
    window.case_browser.refresh()
    window.open_case(case_id)
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.id == case_id, timeout=WAIT_MS)
    if predicted:
        qtbot.waitUntil(lambda: bool(window.results_panel.cells) and bool(window.predictions), timeout=WAIT_MS)
    view = window.current_view()
    assert isinstance(view, LymphNodeView)
    return view


def action_for(window, shortcut: str):
    matches = [a for a in window.findChildren(type(window.predict_action)) if QKeySequence(shortcut) in a.shortcuts()]
    assert len(matches) == 1, f"expected one action on {shortcut}, found {len(matches)}"
    return matches[0]


def test_trimodal_case_shows_three_images_and_the_result(qtbot, node_window):
    view = open_and_wait(qtbot, node_window, "node-tri")
    case = node_window.current_case
    for modality in NODE_MODALITIES:
        panel = view.panels[modality]
        assert panel.image.isVisible()
        assert panel.image.image.shape == case.images[modality].array.shape
        assert "not available" not in panel.title
    assert view.panels[FUSION].image.image.shape == case.images[WLI].array.shape  # fusion map drawn on WLI
    assert "WLI" in view.panels[FUSION].title
    assert view.missing_modalities() == []
    model = "mfi_ffp[WLI+FI+PCI]"
    panel = node_window.results_panel
    assert panel.probability_text("metastatic", model) == "73.0 %"
    assert panel.call_text("metastatic", model) == "metastatic"
    assert panel.cells[("metastatic", model)].threshold_label.text() == "threshold 50\xa0%"
    assert panel.truth_cells["metastatic"].text() == "metastatic"
    assert "metastatic" in panel.headline.text()
    result = view.result_label.text()
    assert "P(metastatic) 73.0 %" in result and "threshold 50 %" in result and ">metastatic<" in result
    assert model in node_window.model_label.text()


def test_heatmaps_toggle_and_opacity_on_all_four_panels(qtbot, node_window):
    view = open_and_wait(qtbot, node_window, "node-tri")
    heats = [view.panels[key].heat for key in (*NODE_MODALITIES, FUSION)]
    assert view.heatmap_visible() and all(h.isVisible() for h in heats)
    assert all(h.image.shape == (NODE_SIZE, NODE_SIZE) for h in heats)
    assert not np.array_equal(view.panels[WLI].heat.image, view.panels[FI].heat.image)  # each branch its own map
    action_for(node_window, "H").trigger()
    assert not view.heatmap_visible() and not any(h.isVisible() for h in heats)
    assert "hidden" in view.note.text()
    view.set_heatmap_visible(True)
    assert all(h.isVisible() for h in heats)
    view.opacity_slider.setValue(80)
    assert all(h.opacity() == pytest.approx(0.8) for h in heats)
    action_for(node_window, "[").trigger()
    assert all(h.opacity() == pytest.approx(0.7) for h in heats)
    assert node_window.settings.heatmap_opacity == pytest.approx(0.7)


def test_zoom_and_pan_are_shared_by_all_panels(qtbot, node_window):
    view = open_and_wait(qtbot, node_window, "node-tri", predicted=False)
    view.panels[PCI].viewbox.setRange(QRectF(10, 20, 30, 30), padding=0)
    qtbot.wait(10)
    (x0, x1), (y0, y1) = view.panels[PCI].viewbox.viewRange()
    assert x1 - x0 < 50  # zoomed in
    for key in (WLI, FI, FUSION):
        (a0, a1), (b0, b1) = view.panels[key].viewbox.viewRange()
        assert (a0, a1) == pytest.approx((x0, x1), abs=0.5)
        assert (b0, b1) == pytest.approx((y0, y1), abs=0.5)
    action_for(node_window, "F").trigger()
    for panel in view.panels.values():
        (a0, a1), (b0, b1) = panel.viewbox.viewRange()
        assert a0 <= 0 and a1 >= NODE_SIZE and b0 <= 0 and b1 >= NODE_SIZE


def test_fi_window_level_and_reset(qtbot, node_window):
    view = open_and_wait(qtbot, node_window, "node-tri", predicted=False)
    fi = view.panels[FI].image
    auto = tuple(fi.levels)
    view.fi_histogram.setLevels(10, 60)
    assert tuple(fi.levels) == (10, 60)
    action_for(node_window, "W").trigger()
    assert tuple(fi.levels) == pytest.approx(auto)


def test_bimodal_case_names_the_missing_mode_and_still_predicts(qtbot, node_window, node_predictors):
    view = open_and_wait(qtbot, node_window, "node-bi")
    assert view.missing_modalities() == [PCI]
    pci = view.panels[PCI]
    assert "not available" in pci.title
    assert not pci.image.isVisible() and not pci.heat.isVisible()
    assert "No PCI image" in pci.missing.textItem.toPlainText()
    assert "PCI not available" in view.result_label.text() and "WLI+FI" in view.result_label.text()
    assert list(node_predictors) == [("WLI", "FI")]
    model = "mfi_ffp[WLI+FI]"
    assert node_window.results_panel.probability_text("metastatic", model) == "73.0 %"
    assert node_window.results_panel.truth_cells["metastatic"].text() == "benign"
    assert view.panels[WLI].heat.isVisible() and view.panels[FUSION].heat.isVisible()


def test_unimodal_node_has_no_fusion_map(qtbot, node_window, node_store, tmp_path):
    case = node_store.load_case("node-bi")
    case.id = "node-fi-only"
    del case.images[WLI]
    node_store.add_case(case, write_bundle(case, tmp_path / "fi-only"))
    view = open_and_wait(qtbot, node_window, "node-fi-only")
    assert view.missing_modalities() == [WLI, PCI]
    assert view.panels[FI].heat.isVisible()
    assert not view.panels[FUSION].heat.isVisible()
    assert "uni-modal" in view.panels[FUSION].missing.textItem.toPlainText()
    assert "on FI" in view.panels[FUSION].title


def test_low_probability_reads_benign_below_threshold(qtbot, make_window, node_store, FakeCascade):
    def factory(kind, modalities, method=None):
        return FakeNodePredictor(modalities, probability=0.12, threshold=0.35) if kind.name == "lymph_node" \
            else FakeCascade(modalities[0])
    window = make_window(service=PredictionService(node_store, make_predictor=factory))
    view = open_and_wait(qtbot, window, "node-tri")
    cell = window.results_panel.cells[("metastatic", "mfi_ffp[WLI+FI+PCI]")]
    assert cell.probability_label.text() == "12.0 %" and cell.threshold_label.text() == "threshold 35\xa0%"
    assert cell.call_label.text() == "benign" and cell.call_label.property("state") == "negative"
    assert ">benign<" in view.result_label.text()


# -- opening node images -------------------------------------------------------------------------


def write_node_pngs(folder: Path, names: tuple[str, str, str] = ("n_wli.png", "n_fi.png", "n_pci.png"),
                    seed: int = 4) -> list[Path]:
    record = make_node(np.random.default_rng(seed), 1, size=NODE_SIZE)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for modality, name in zip(NODE_MODALITIES, names, strict=True):
        image = record.images[modality]
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
        paths.append(folder / name)
    return paths


def drop(window, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    window.dropEvent(QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def test_dropping_three_clearly_named_images_opens_a_node(qtbot, node_window, tmp_path):
    paths = write_node_pngs(tmp_path / "drop")
    drop(node_window, paths)
    qtbot.waitUntil(lambda: node_window.current_case is not None, timeout=WAIT_MS)
    case = node_window.current_case
    assert case.kind == "lymph_node" and set(case.images) == set(NODE_MODALITIES)
    assert case.images[FI].meta.file_name == "n_fi.png"
    assert node_window.node_dialog is None  # names were clear: no dialog
    assert isinstance(node_window.current_view(), LymphNodeView)
    qtbot.waitUntil(lambda: bool(node_window.predictions), timeout=WAIT_MS)
    assert node_window.predictions[0].model == "mfi_ffp[WLI+FI+PCI]"


def test_open_node_images_dialog_guesses_and_opens(qtbot, node_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    paths = write_node_pngs(tmp_path / "pick", names=("photo.png", "icg_scan.png", "img3.png"))
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(lambda *a, **k: ([str(p) for p in paths], "")))
    action_for(node_window, "Ctrl+L").trigger()
    qtbot.waitUntil(lambda: node_window.node_dialog is not None, timeout=WAIT_MS)
    dialog = node_window.node_dialog
    photo, icg, img3 = paths
    # photo.png and img3.png are RGB with no telling name; icg_scan.png is FI by name: WLI vs PCI is for the user.
    assert dialog.assignment() == {photo: None, icg: FI, img3: None}
    assert dialog.buttons.button(dialog.buttons.StandardButton.Open).isEnabled()  # FI alone makes a case already
    dialog.set_modality(photo, FI)
    assert "both assigned to FI" in dialog.problems_label.text()
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Open).isEnabled()
    dialog.set_modality(photo, WLI)
    dialog.set_modality(img3, PCI)
    assert dialog.problems() == [] and dialog.problems_label.text() == ""
    dialog.accept()
    qtbot.waitUntil(lambda: node_window.current_case is not None, timeout=WAIT_MS)
    case = node_window.current_case
    assert {m: img.meta.file_name for m, img in case.images.items()} == {
        WLI: "photo.png", FI: "icg_scan.png", PCI: "img3.png"}
    assert node_window.settings.last_open_dir == str(tmp_path / "pick")
    qtbot.waitUntil(lambda: bool(node_window.predictions), timeout=WAIT_MS)


def test_dropping_unclear_images_asks_and_a_missing_mode_is_allowed(qtbot, node_window, tmp_path):
    paths = write_node_pngs(tmp_path / "unclear", names=("a.png", "b.png", "c.png"))
    drop(node_window, paths)
    qtbot.waitUntil(lambda: node_window.node_dialog is not None, timeout=WAIT_MS)
    dialog = node_window.node_dialog
    a, b, c = paths
    assert dialog.assignment()[b] == FI  # the grey one
    dialog.set_modality(a, WLI)
    dialog.set_modality(c, None)  # PCI left out: the bi-modal model runs
    assert "No PCI image" in dialog.problems_label.text()
    dialog.accept()
    qtbot.waitUntil(lambda: node_window.current_case is not None, timeout=WAIT_MS)
    assert set(node_window.current_case.images) == {WLI, FI}
    assert node_window.current_view().missing_modalities() == [PCI]
    qtbot.waitUntil(lambda: bool(node_window.predictions), timeout=WAIT_MS)
    assert node_window.predictions[0].model == "mfi_ffp[WLI+FI]"


def test_dialog_refuses_a_grey_image_as_wli(qtbot, node_window, tmp_path):
    paths = write_node_pngs(tmp_path / "grey", names=("a.png", "b.png", "c.png"))
    node_window.assign_node_files(paths)
    qtbot.waitUntil(lambda: node_window.node_dialog is not None, timeout=WAIT_MS)
    dialog = node_window.node_dialog
    dialog.set_modality(paths[1], WLI)
    assert "b.png is assigned to WLI but it is a grey image" in dialog.problems_label.text()
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Open).isEnabled()
    dialog.reject()


def test_mismatched_sizes_reach_the_user(qtbot, node_window, tmp_path, message_boxes):
    wli, fi, pci = write_node_pngs(tmp_path / "sizes")
    small = cv2.imread(str(fi), cv2.IMREAD_UNCHANGED)[:64, :80]
    cv2.imwrite(str(fi), small)
    drop(node_window, [wli, fi, pci])
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    _title, text = message_boxes["critical"][0]
    assert "n_fi.png is 80×64" in text and "n_wli.png is 96×96" in text and "same size" in text
    assert node_window.current_case is None


def test_more_than_three_node_images_are_refused(qtbot, node_window, tmp_path, message_boxes):
    paths = write_node_pngs(tmp_path / "four")
    extra = tmp_path / "four" / "n_wli_2.png"
    extra.write_bytes(paths[0].read_bytes())
    node_window.assign_node_files([*paths, extra])
    qtbot.waitUntil(lambda: bool(message_boxes["critical"]), timeout=WAIT_MS)
    assert "at most 3 images" in message_boxes["critical"][0][1]


def test_node_bundle_opens_from_a_dropped_folder(qtbot, node_window, tmp_path):
    record = make_node(np.random.default_rng(9), 0, size=NODE_SIZE, node_id="node-bundle", patient_id="PB")
    folder = write_bundle(node_to_case(record), tmp_path / "bundle" / "node-bundle")
    drop(node_window, [folder])
    qtbot.waitUntil(lambda: node_window.current_case is not None and node_window.current_case.id == "node-bundle",
                    timeout=WAIT_MS)
    assert isinstance(node_window.current_view(), LymphNodeView)
    qtbot.waitUntil(lambda: bool(node_window.predictions), timeout=WAIT_MS)
    assert node_window.results_panel.truth_cells["metastatic"].text() == "benign"


def test_stored_result_reopens_with_its_heatmaps_without_predicting_again(qtbot, make_window, node_window):
    open_and_wait(qtbot, node_window, "node-tri")
    node_window.close()
    second = make_window(service=node_window.service, auto_predict=False)
    view = open_and_wait(qtbot, second, "node-tri", predicted=False)
    qtbot.waitUntil(lambda: bool(second.results_panel.cells), timeout=WAIT_MS)
    assert second.results_panel.state_label.text().startswith("Stored result from")
    assert "P(metastatic) 73.0 %" in view.result_label.text()
    qtbot.waitUntil(lambda: view.panels[WLI].heat.isVisible(), timeout=WAIT_MS)  # kept in the bundle
    assert "F5" not in view.note.text()
