"""The PET-CT viewer, offscreen: a demo PET-CT case in three linked planes, display modes and CT windows, the
CHMFL contours in every plane that holds tumour, the measures as predicted, the Grad-CAM layer, the rotating MIP,
the missing-weight dialog when opening DICOM, and one read of a reader study on the fused viewer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from test_reading_panel import PIN, settle, sign_in

from app.views import view_class
from app.views.petct_view import MODE_CT, MODE_FUSED, MODE_PET, PetCtView
from app.workers import wait_for_workers
from engine.cases.bundle import read_bundle, write_bundle
from engine.cases.model import GroundTruth
from engine.data import Prediction, TaskResult
from engine.explain.petct_display import CT_PRESETS, window_to_levels
from engine.metrics.pet import pet_measures
from engine.studies import AIDED, UNAIDED, Study, add_reader, create_study

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo_cases" / "demo-petct-01"
DEMO_DICOM = ROOT / "resources" / "demo_dicom" / "petct-demo-01"
TASK = "distant_metastasis"


def demo_prediction(case) -> Prediction:
    """A CHMFL-shaped prediction: the phantom's tumour as the mask, a heat blob over it, measures of that mask."""
    pet = case.images["PET"]
    mask = case.truth.masks["tumor"].astype(np.uint8)
    centre = np.argwhere(mask).mean(axis=0)
    grid = np.indices(mask.shape).transpose(1, 2, 3, 0)
    heat = np.exp(-((grid - centre) ** 2).sum(-1) / 40.0).astype(np.float32)
    prediction = Prediction(family="chmfl", variant="PET+CT", weights_sha256={"chmfl_pet_ct": "cd" * 32},
                            tasks={TASK: TaskResult("distant metastasis", 0.734, 0.5)},
                            masks={"tumor": mask}, heatmaps={f"{TASK}/fusion": heat})
    prediction.measures.update(pet_measures(pet.array, mask, pet.meta.spacing))
    return prediction


@pytest.fixture
def view(qtbot):
    widget = PetCtView()
    qtbot.addWidget(widget)
    widget.resize(1200, 900)
    widget.show()
    yield widget
    widget.clear()
    assert wait_for_workers(60)


def shown(view: PetCtView, case, prediction: Prediction | None = None) -> PetCtView:
    view.show_case(case)
    if prediction is not None:
        view.show_prediction([prediction])
    assert wait_for_workers(60)
    assert view.volumes is not None
    if prediction is not None:
        assert view.overlays is not None
    return view


def click(panel, row: float, col: float) -> None:
    """A left click on plane pixel (row, col), through the plot's real mouse path."""
    scene = panel.viewbox.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    pos = panel.graphics.mapFromScene(scene)
    QTest.mouseClick(panel.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(pos.x(), pos.y()))


def test_the_kind_has_this_view():
    assert view_class("sarcoma_petct") is PetCtView


def test_three_planes_are_linked_by_the_crosshair_and_scroll(view):
    case = read_bundle(DEMO)
    shown(view, case)
    axial, coronal, sagittal = (view.planes[p] for p in ("axial", "coronal", "sagittal"))
    assert axial.plane_shape == case.images["CT"].array.shape[1:]
    assert coronal.plane_shape == (case.images["CT"].array.shape[0], case.images["CT"].array.shape[2])
    click(axial, 20, 57)  # row = y, column = x
    assert view.point[1:] == [20, 57]
    assert coronal.slice_index == 20 and sagittal.slice_index == 57
    assert axial.vline.value() == pytest.approx(57.5) and axial.hline.value() == pytest.approx(20.5)
    assert coronal.vline.value() == pytest.approx(57.5)
    z = view.point[0]
    click(sagittal, 10, 33)  # sagittal: row = z, column = y
    assert view.point == [10, 33, 57] and axial.slice_index == 10 and coronal.slice_index == 33
    axial.setFocus()
    QTest.keyClick(axial, Qt.Key.Key_PageDown)
    assert view.point[0] == 11 and coronal.hline.value() == pytest.approx(11.5) and z != 11
    axial.viewbox.wheelEvent(_Wheel(-120))
    assert axial.slice_index == 10 and view.point[0] == 10


class _Wheel:
    """Enough of a wheel event for the slice viewbox."""

    def __init__(self, delta: int) -> None:
        self._delta = delta
        self.accepted = False

    def delta(self) -> int:
        return self._delta

    def modifiers(self):
        return Qt.KeyboardModifier.NoModifier

    def accept(self) -> None:
        self.accepted = True


def test_modes_and_ct_windows_switch(view):
    shown(view, read_bundle(DEMO))
    axial = view.planes["axial"]
    assert view.mode == MODE_FUSED and axial.image.isVisible() and axial.pet.isVisible()
    assert axial.pet.opacity() == pytest.approx(view.fusion_slider.value() / 100)
    view.fusion_slider.setValue(30)
    assert axial.pet.opacity() == pytest.approx(0.30)
    view.set_mode(MODE_PET)
    assert not axial.image.isVisible() and axial.pet.isVisible() and axial.pet.opacity() == 1.0
    assert tuple(axial.pet.levels) == (0.0, 6.0)
    lut = axial.pet.lut if not callable(axial.pet.lut) else axial.pet.lut(None)
    assert tuple(lut[0][:3]) == (255, 255, 255) and tuple(lut[-1][:3]) == (0, 0, 0)  # inverted grey: SUV 0 white
    assert not view.width_spin.isEnabled()
    view.set_mode(MODE_CT)
    assert axial.image.isVisible() and not axial.pet.isVisible() and view.width_spin.isEnabled()
    assert tuple(axial.image.levels) == window_to_levels(*CT_PRESETS["Soft tissue"])
    view.set_ct_preset("Lung")
    assert tuple(axial.image.levels) == window_to_levels(*CT_PRESETS["Lung"]) == (-1350.0, 150.0)
    view.set_ct_preset("Bone")
    assert tuple(view.planes["sagittal"].image.levels) == (-600.0, 1400.0)
    view.set_ct_window(350, 50)
    assert view.preset_combo.currentData() == "Custom" and tuple(axial.image.levels) == (-125.0, 225.0)
    view.cycle_mode()
    assert view.mode == MODE_FUSED


def test_contours_in_every_plane_where_the_tumour_is_and_measures_as_predicted(view):
    case = read_bundle(DEMO)
    prediction = demo_prediction(case)
    shown(view, case, prediction)
    mask = case.truth.masks["tumor"].astype(bool)
    volumes = view.volumes
    for plane, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
        panel = view.planes[plane]
        holding = set(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))))
        assert holding
        for index in range(panel.slice_count):
            panel.set_slice(index)
            pet_index = int(volumes.pet_grid.to_index(volumes.overlay.to_physical(
                np.eye(3)[axis] * panel.overlay_index))[axis].round())
            assert (len(panel.tumour_layer.items) > 0) == (pet_index in holding), (plane, index)
    view.go_to_tumour()
    assert all(view.planes[p].tumour_layer.items for p in view.planes)
    view.contour_checkbox.setChecked(False)
    assert not any(item.isVisible() for item in view.planes["axial"].tumour_layer.items)
    text = view.measures_label.text()
    m = prediction.measures
    for expected in (f"SUVmax {m['suv_max']:.2f}", f"SUVpeak (1 cm³) {m['suv_peak']:.2f}",
                     f"SUVmean {m['suv_mean']:.2f}", f"MTV {m['mtv_ml']:.1f} ml", f"TLG {m['tlg']:.1f}",
                     "P(DM) 0.73 ≥ 0.50 → distant metastasis"):
        assert expected in text


def test_measures_are_computed_from_the_mask_when_the_prediction_has_none(view):
    case = read_bundle(DEMO)
    prediction = demo_prediction(case)
    expected = dict(prediction.measures)
    prediction.measures.clear()  # as a reader's model aid arrives: mask and maps, no measures
    shown(view, case, prediction)
    assert view.overlays.measures["suv_max"] == pytest.approx(expected["suv_max"])
    assert f"SUVmax {expected['suv_max']:.2f}" in view.measures_label.text()


def test_gradcam_layer_toggles(view):
    case = read_bundle(DEMO)
    shown(view, case, demo_prediction(case))
    axial = view.planes["axial"]
    assert view.heatmap_checkbox.isEnabled() and not axial.heat_layer.isVisible()
    view.set_heatmap_visible(True)
    assert axial.heat_layer.isVisible() and axial.heat_layer.image is not None
    assert float(axial.heat_layer.image.max()) > 0.5  # the crosshair sits on the tumour, where the heat is
    view.set_opacity(0.3)
    assert axial.heat_layer.opacity() == pytest.approx(0.3)
    view.set_heatmap_visible(False)
    assert not axial.heat_layer.isVisible()


def test_mip_rotates(qtbot, view):
    shown(view, read_bundle(DEMO))
    assert view.mip.ready == len(view.mip.frames) == 36
    front = view.mip.panel.image.image.copy()
    view.mip.slider.setValue(9)
    assert view.mip.angle == pytest.approx(90.0)
    side = view.mip.panel.image.image
    assert side.shape == front.shape and not np.allclose(side, front)
    assert view.mip.label.text().startswith("90°")
    view.mip.play.setChecked(True)
    qtbot.waitUntil(lambda: view.mip.slider.value() not in (9,), timeout=5000)
    view.mip.play.setChecked(False)
    assert not view.mip.timer.isActive()


def _without_weight(tmp_path: Path) -> Path:
    folder = tmp_path / "dicom"
    shutil.copytree(DEMO_DICOM, folder)
    for path in (folder / "PT").iterdir():
        ds = pydicom.dcmread(path)
        del ds.PatientWeight
        ds.save_as(path)
    return folder


def test_missing_weight_asks_the_user_and_shows_the_factor_with_its_inputs(qtbot, make_window, tmp_path,
                                                                           message_boxes):
    window = make_window(auto_predict=False)
    folder = _without_weight(tmp_path)
    window.open_paths([folder])
    qtbot.waitUntil(lambda: window.suv_dialog is not None, timeout=60_000)
    dialog = window.suv_dialog
    assert "PatientWeight" in dialog.message.text()
    assert set(dialog.spins) == {"weight_kg"}  # the dose is in the header
    dialog.set_value("weight_kg", 72.5)
    dialog.accept()
    qtbot.waitUntil(lambda: window.current_case is not None and window.current_case.kind == "sarcoma_petct",
                    timeout=60_000)
    assert wait_for_workers(120)
    suv = window.current_case.images["PET"].meta.extra["suv"]
    assert suv["inputs"]["weight_kg"] == 72.5 and suv["inputs"]["entered_by_user"] == ["weight_kg"]
    view = window.current_view()
    assert isinstance(view, PetCtView)
    assert "weight 72.5 kg (entered)" in view.suv_label.text() and f"{suv['factor']:.6g}" in view.suv_label.text()
    assert not message_boxes["critical"]


def test_a_petct_case_is_read_on_the_fused_viewer_unaided_then_aided(qtbot, window, phantom_store, tmp_path):
    store, _ = phantom_store
    ids = []
    for copy in (False, True):  # a study needs both classes: the demo case and a copy with the other truth
        case = read_bundle(DEMO)
        if copy:
            case.id = f"{case.id}-other"
            case.truth = GroundTruth({TASK: 1 - int(case.truth.labels[TASK])}, case.truth.masks, case.truth.source)
        prediction = demo_prediction(case)
        case.predictions = [prediction]
        store.add_case(case, write_bundle(case, tmp_path / "read" / case.id))
        store.add_prediction(case.id, prediction)
        ids.append(case.id)
    create_study(store, Study(id="pet", name="PET-CT study", task_label=TASK, case_ids=tuple(ids),
                              modalities=("PET", "CT"), arms=(UNAIDED, AIDED), seed=1))
    add_reader(store, "pet", "r1", "Dr One", PIN)
    reading = sign_in(qtbot, window, "pet")
    unaided = reading.session  # the aided arm may start on its own when this one is done
    seen = []
    for call, confidence in ((True, 4), (False, 2)):
        qtbot.waitUntil(lambda: window.reading is not None and window.reading.case is not None
                        and window.reading.case.case_id not in seen, timeout=30_000)  # the next case is shown
        seen.append(window.reading.case.case_id)
        view = window.current_view()
        assert isinstance(view, PetCtView)
        qtbot.waitUntil(lambda view=view: view.volumes is not None, timeout=30_000)
        assert view.mode == MODE_FUSED and view.planes["axial"].pet.isVisible()
        assert not view.measures_label.isVisibleTo(window) and not view.heatmap_checkbox.isVisibleTo(window)
        reading.choose_call(call)
        reading.rate(confidence)
        settle()
        reading.next()
        settle()
    answers = unaided.my_answers()
    assert sorted((a.positive, a.confidence) for a in answers) == [(False, 2), (True, 4)]
    window.stop_reading()

    reading = sign_in(qtbot, window, "pet")  # the aided arm: the stored CHMFL output on the same viewer
    assert reading.session.aided
    view = window.current_view()
    qtbot.waitUntil(lambda: view.overlays is not None, timeout=30_000)
    view.go_to_tumour()
    assert all(panel.tumour_layer.items for panel in view.planes.values())
    assert view.measures_label.isVisibleTo(window) and view.heatmap_checkbox.isVisibleTo(window)
    assert f"SUVmax {prediction.measures['suv_max']:.2f}" in view.measures_label.text()
    assert "P(DM) 0.73" in view.measures_label.text()
    reading.choose_call(False)
    reading.rate(2)
    settle()
    assert {a.positive for a in reading.session.my_answers()} == {False}
    window.stop_reading()


def test_bench_command_prints_the_slice_change_table(qtbot, capsys, tmp_path):
    from app.launcher import main

    out = tmp_path / "bench.csv"
    assert main(["bench", "petct-view", "--steps", "4", "--slices", "16", "--size", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()[:1] in
            (["axial"], ["coronal"], ["sagittal"])}
    assert set(rows) == {"axial", "coronal", "sagittal"}
    for fields in rows.values():
        assert fields[1] == "4" and all(float(v) >= 0 for v in fields[2:5])
        assert float(fields[2]) <= float(fields[3]) <= float(fields[4])  # p50 <= p95 <= max
    assert out.read_text().splitlines()[0].startswith("plane,changes,p50_ms")
    assert wait_for_workers(60)


def test_resampling_contours_and_mip_run_off_the_gui_thread(view, monkeypatch):
    import threading

    import engine.explain.petct_display as display

    threads: list[tuple[str, bool]] = []

    def recorded(name, fn):
        def call(*args, **kwargs):
            threads.append((name, threading.current_thread() is threading.main_thread()))
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(display, "resample", recorded("resample", display.resample))
    monkeypatch.setattr(display, "mask_to_contours", recorded("contours", display.mask_to_contours))
    monkeypatch.setattr(display.ndimage, "rotate", recorded("mip rotate", display.ndimage.rotate))
    case = read_bundle(DEMO)
    shown(view, case, demo_prediction(case))
    assert {name for name, _ in threads} == {"resample", "contours", "mip rotate"}
    assert not [name for name, gui in threads if gui]


def test_a_mask_of_another_grid_is_reported_not_drawn(view, message_boxes):
    case = read_bundle(DEMO)
    prediction = demo_prediction(case)
    prediction.masks["tumor"] = prediction.masks["tumor"][:, :-1]
    shown(view, case)
    view.show_prediction([prediction])
    assert wait_for_workers(60)
    assert view.overlays is None and not view.planes["axial"].tumour_layer.items
    (title, text), = message_boxes["critical"]
    assert "another image" in text and "run the prediction again" in view.note.text()


@pytest.mark.parametrize("only", ["PET", "CT"])
def test_a_case_with_one_volume_shows_it_in_every_mode(view, only):
    case = read_bundle(DEMO)
    case.images = {only: case.images[only]}
    shown(view, case)
    axial = view.planes["axial"]
    for mode in (MODE_PET, MODE_CT, MODE_FUSED):
        view.set_mode(mode)
        layer = axial.pet if only == "PET" else axial.image
        assert layer.isVisible() and layer.image is not None, mode
    assert view.mip.ready == (36 if only == "PET" else 0)
