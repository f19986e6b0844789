"""Case exports (engine/export): every kind writes every artefact from a demo case, and each is read back and
compared with the prediction it came from; the report is one page; files stay inside --out and are never silently
replaced; the CLI's `oncolens export`."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

import engine.kinds  # noqa: F401
from engine.cases.bundle import read_bundle
from engine.cases.model import Case
from engine.data import ImageMeta, ModalityImage, Prediction
from engine.export import ExportError, ExportOptions, export_case, parse_what
from engine.export.case_export import PROBABILITY_COLUMNS
from engine.export.report import RESEARCH_USE
from engine.exports import restore_cell
from engine.io.overlay import render_overlay
from engine.paths import demo_cases_dir, resources_dir
from engine.predict.fluoro_video import frame_key
from engine.seg.contours import mask_to_contours, read_contours_json

DEMOS = {"glioma_specimen": "demo-glioma-02", "lymph_node": "demo-node-02", "fluoro_frame": "demo-fluoro-02",
         "sarcoma_petct": "demo-petct-01", "thyroid_usct": "demo-thyroid-02"}


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """{kind: (case, predictions)} for one demo case of each kind, the shipped models run once (eager, CPU)."""
    from engine.service import PredictionService

    home = tmp_path_factory.mktemp("export_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ONCOLENS_HOME", str(home))
        mp.setenv("ONCOLENS_CACHE", str(home / "cache"))
        mp.setenv("ONCOLENS_BACKEND", "eager")
        mp.delenv("ONCOLENS_MODELS_DIR", raising=False)
        service = PredictionService()
        out = {}
        for kind, name in DEMOS.items():
            case = read_bundle(demo_cases_dir() / name)
            out[kind] = (case, service.predict_case(case, explain=True))
        out["fluoro_video"] = video_case()
    return out


def video_case() -> tuple[Case, list[Prediction]]:
    """A small clip with per-frame contours (frames 0, 2, 4 analysed; the tumor grows)."""
    rng = np.random.default_rng(3)
    frames = rng.integers(100, 400, size=(6, 48, 64)).astype(np.uint16)
    case = Case(id="clip-01", kind="fluoro_video", patient_id="P-VIDEO")
    case.images["NIR"] = ModalityImage("NIR", frames, ImageMeta(16, "counts", (0.5, 0.5)), "TYX")
    pred = Prediction(family="fluoro_seg", variant="unet", weights_sha256={"fluoro_seg_unet": "ab" * 32})
    for index, radius in ((0, 0), (2, 5), (4, 9)):
        mask = np.zeros((48, 64), bool)
        if radius:
            cv2.circle(mask.view(np.uint8), (30, 24), radius, 1, -1)
        pred.contours[frame_key(index)] = [c.points for c in mask_to_contours(mask)]
    pred.set_result("tumor", "tumor", 0.9, 0.5)
    return case, [pred]


def _png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: restore_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


# -- what each kind's exports must hold (one table; the test below reads it) ----------------------------


def _image_plane(case: Case, plane: str) -> tuple[int, ...]:
    """An overlay named after a 2-D image ('FL', 'US-central_lnm', ...): that image's size."""
    return case.images[plane.split("-")[0]].array.shape[:2]


def _axial_plane(case: Case, plane: str) -> tuple[int, ...]:
    """'PET-axial-z17': one axial slice of that volume."""
    modality, _z = plane.split("-axial-z")
    return case.images[modality].array.shape[1:]


def _video_frame(case: Case, _plane: str) -> tuple[int, ...]:
    return case.images["NIR"].array.shape[1:]


def _first_image(case: Case, _name: str) -> ModalityImage:
    return next(iter(case.images.values()))


def _named_image(case: Case, name: str) -> ModalityImage:
    """'demo-thyroid-02_dgfnet[...]_US-nodule': the image the mask was drawn on is named last."""
    return case.images[name.split("_")[-1].split("-")[0]]


def _plane_masks(reference: Callable[[Case, str], ModalityImage]):
    def check(case, predictions, path, data, zooms):
        name = path.name[len(case.id) + 1:-len("_mask.nii.gz")]
        sy, sx = reference(case, name).meta.spacing
        assert np.allclose(zooms[:2], (sx, sy)) and data.shape[2] == 1
        png = _png(path.with_name(path.name.replace(".nii.gz", ".png")))
        assert np.array_equal(png > 0, data[:, :, 0].T > 0)
        sources = {f"{p.model}|{key}": m for p in predictions for key, m in p.masks.items()}
        source = next(m for k, m in sources.items() if k.split("|")[1].replace("/", "-") in name)
        assert np.array_equal(png > 0, np.asarray(source) != 0)
    return check


def _volume_mask(case, predictions, _path, data, zooms):
    assert np.allclose(zooms, case.images["PET"].meta.spacing[::-1])
    assert np.array_equal(np.transpose(data, (2, 1, 0)) != 0, np.asarray(predictions[0].masks["tumor"]) != 0)


def _frame_contours_equal_the_prediction(predictions, doc, path):
    contours, shape = read_contours_json(path)
    assert contours and shape == tuple(doc["shape"])
    expected = predictions[0].contours["tumor"]
    assert len(contours) == len(expected)
    assert all(np.allclose(c.points, e, atol=1e-3) for c, e in zip(contours, expected, strict=True))


def _clip_contours_equal_the_prediction(predictions, doc, _path):
    expected = predictions[0].contours[frame_key(4)][0]
    got = next(p for p in doc["planes"] if p["plane"] == 4)["contours"][0]["points"]
    assert np.allclose(got, expected, atol=1e-3)


def _clip_frames_table(case, folder, _names):
    frames = _rows(folder / f"{case.id}_frames.csv")
    assert [int(r["frame"]) for r in frames] == [0, 2, 4]
    assert float(frames[0]["area_px"]) == 0 and float(frames[2]["area_px"]) > float(frames[1]["area_px"]) > 0


def _petct_measures(case, _folder, names):
    assert f"{case.id}_measures.csv" in names  # the kind's own export (its DICOM SEG needs a DICOM source)


@dataclass(frozen=True)
class Expected:
    plane_shape: Callable[[Case, str], tuple[int, ...]]  # overlay plane name -> full-resolution size
    mask_check: Callable | None = None  # None: the kind's models do not segment, so no NIfTI mask
    contours: bool = False
    contour_check: Callable | None = None  # beyond the generic round trip
    extra_check: Callable | None = None  # the kind's own files


EXPECTED = {
    "glioma_specimen": Expected(_image_plane),
    "lymph_node": Expected(_image_plane),
    "fluoro_frame": Expected(_image_plane, _plane_masks(_first_image), True, _frame_contours_equal_the_prediction),
    "fluoro_video": Expected(_video_frame, None, True, _clip_contours_equal_the_prediction, _clip_frames_table),
    "sarcoma_petct": Expected(_axial_plane, _volume_mask, True, extra_check=_petct_measures),
    "thyroid_usct": Expected(_image_plane, _plane_masks(_named_image), True),
}


@pytest.mark.parametrize("kind", [*DEMOS, "fluoro_video"])
def test_every_kind_exports_every_artefact(kind, predicted, tmp_path):
    case, predictions = predicted[kind]
    expected_of_kind = EXPECTED[kind]
    what = ("overlay", "masks", "contours", "probabilities", "seg")
    files = export_case(case, tmp_path, ExportOptions(what=what), predictions=predictions)
    folder = tmp_path / case.id
    assert files and all(f.is_file() and f.parent == folder for f in files)
    names = {f.name for f in files}

    # overlays: full resolution of the plane drawn, in the app's colours
    overlays = sorted(f for f in files if "_overlay_" in f.name)
    assert overlays
    for path in overlays:
        plane = path.stem.split("_overlay_")[1]
        assert _png(path).shape[:2] == tuple(expected_of_kind.plane_shape(case, plane)), path.name

    # masks: PNG (planes) equal to the prediction's mask, NIfTI with the image's spacing
    niftis = [f for f in files if f.name.endswith("_mask.nii.gz")]
    assert bool(niftis) == (expected_of_kind.mask_check is not None)
    for path in niftis:
        img = nib.load(str(path))
        expected_of_kind.mask_check(case, predictions, path, np.asarray(img.dataobj), img.header.get_zooms())

    # contours: JSON round-trips; CSV has px and mm columns where the spacing is known
    jsons = [f for f in files if f.name.endswith("_contours.json")]
    assert bool(jsons) == expected_of_kind.contours
    for path in jsons:
        doc = json.loads(path.read_text())
        assert doc["case_id"] == case.id and doc["format"] == "oncolens-contours"
        if "planes" in doc:  # a clip or a volume: per frame / slice
            assert all(plane["contours"] for plane in doc["planes"] if plane["plane"])
        else:
            contours, shape = read_contours_json(path)
            assert contours and shape == tuple(doc["shape"])
        if expected_of_kind.contour_check:
            expected_of_kind.contour_check(predictions, doc, path)
        rows = _rows(path.with_suffix(".csv"))
        assert rows and {"row", "col", "row_mm", "col_mm"} <= set(rows[0])
        spacing = doc["spacing_mm"]
        r = rows[0]
        assert float(r["row_mm"]) == pytest.approx(float(r["row"]) * spacing[0], abs=1e-4)

    # probabilities: every model and task, values equal to the prediction's, truth when known
    rows = _rows(folder / f"{case.id}_probabilities.csv")
    assert tuple(rows[0]) == PROBABILITY_COLUMNS
    expected = {(p.model, t): r for p in predictions for t, r in p.tasks.items()}
    assert {(r["model"], r["task"]) for r in rows} == set(expected)
    for row in rows:
        result = expected[(row["model"], row["task"])]
        assert row["patient_id"] == (case.patient_id or "") and row["case_id"] == case.id
        assert row["call"] == result.call
        if result.probability is not None:
            assert float(row["probability"]) == result.probability  # full precision
            assert float(row["threshold"]) == result.threshold
        model = next(p for p in predictions if p.model == row["model"])
        assert all(sha in row["weights_sha256"] for sha in model.weights_sha256.values())
        if case.truth is not None and case.truth.labels.get(row["task"]) is not None:
            assert row["truth"] and int(row["truth_label"]) == case.truth.labels[row["task"]]
    doc = json.loads((folder / f"{case.id}_probabilities.json").read_text())
    assert doc["case_id"] == case.id and doc["patient_id"] == case.patient_id
    assert [p["model"] for p in doc["predictions"]] == [p.model for p in predictions]
    if expected_of_kind.extra_check:
        expected_of_kind.extra_check(case, folder, names)


def test_overlay_uses_the_app_colours_and_the_heat_fade():
    plane = np.zeros((750, 750), np.uint8)  # lines 3 px wide at this size
    plane[0, 0] = 255
    square = np.array([[100, 100], [100, 600], [600, 600], [600, 100]], float)
    out = render_overlay(plane, contours={"prediction": [square], "truth": [square + 200]})
    assert tuple(out[100, 350]) == (255, 212, 0)  # yellow, as app.theme's "prediction"
    assert tuple(out[300, 450]) == (46, 230, 92)  # green truth
    assert tuple(out[200, 200]) == (0, 0, 0)
    heat = np.zeros((40, 40), np.float32)
    heat[:, 20:] = 1.0
    blended = render_overlay(np.full((40, 40), 100, np.uint8), heat=heat, levels=(0, 255), opacity=1.0)
    assert np.array_equal(blended[:, :20], np.full((40, 20, 3), 100))  # value 0: fully transparent
    assert not np.array_equal(blended[:, 20:], np.full((40, 20, 3), 100))


def test_report_is_one_page_with_the_statement_and_the_hashes(predicted, tmp_path):
    case, predictions = predicted["glioma_specimen"]
    files = export_case(case, tmp_path, ExportOptions(what=("report",)), predictions=predictions)
    pdf = next(f for f in files if f.suffix == ".pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(
        b"/Type /Page>") == 1
    page = _png(next(f for f in files if f.suffix == ".png"))
    assert abs(page.shape[0] / page.shape[1] - 297 / 210) < 0.01  # A4 portrait
    text = next(f for f in files if f.suffix == ".html").read_text()
    assert RESEARCH_USE in text and "src='data:image/png;base64," in text and "http" not in text.split("<body>")[1]
    for p in predictions:
        for sha in p.weights_sha256.values():
            assert sha in text
    assert case.patient_id in text and case.id in text


def test_export_stays_inside_out_and_never_replaces_silently(predicted, tmp_path):
    case, predictions = predicted["lymph_node"]
    out = tmp_path / "out"
    evil = Case(id="../../escape", kind=case.kind, images=case.images, truth=case.truth, patient_id="=cmd|' /C calc'!A0")
    files = export_case(evil, out, ExportOptions(what=("probabilities",)), predictions=predictions)
    assert all(out.resolve() in f.resolve().parents for f in files)
    assert not (tmp_path / "escape").exists()
    with open(files[0], newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert row["patient_id"].startswith("'=")  # neutralised for spreadsheets
    with pytest.raises(ExportError, match="exists already.*--force"):
        export_case(evil, out, ExportOptions(what=("probabilities",)), predictions=predictions)
    assert export_case(evil, out, ExportOptions(what=("probabilities",), force=True), predictions=predictions)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, out / case.id)
    with pytest.raises(ExportError, match="outside the export folder"):
        export_case(case, out, ExportOptions(what=("probabilities",)), predictions=predictions)
    assert not any(outside.iterdir())


def test_what_is_checked():
    assert parse_what("overlay, masks") == ("overlay", "masks")
    assert parse_what("all") == parse_what(None)
    with pytest.raises(ExportError, match="unknown heatmaps.*overlay,masks"):
        parse_what("overlay,heatmaps")


@pytest.mark.slow
def test_petct_from_dicom_exports_a_dicom_seg_that_reads_back(tmp_path):
    from engine.io.seg_export import read_dicom_seg
    from engine.kinds.sarcoma_petct import case_from_dicom

    case = case_from_dicom(resources_dir() / "demo_dicom" / "petct-demo-01")
    files = export_case(case, tmp_path, ExportOptions(what=("seg", "masks")))
    seg = next(f for f in files if f.name.endswith("_seg.dcm"))
    bundle_mask = np.asarray(nib.load(str(next(f for f in files if f.name.endswith("_mask.nii.gz")))).dataobj)
    mask = read_dicom_seg(seg, case.image("PET"))
    assert np.array_equal(mask != 0, np.transpose(bundle_mask, (2, 1, 0)) != 0)
    assert sum(f.name.endswith(".nii.gz") for f in files) == 1  # the kind's NIfTI is not written twice


def test_cli_export_writes_and_refuses_bad_options(tmp_path, capsys):
    from engine.cli import main

    bundle = demo_cases_dir() / DEMOS["lymph_node"]
    assert main(["export", str(bundle), "--out", str(tmp_path / "o"), "--what", "probabilities"]) == 0
    assert (tmp_path / "o" / DEMOS["lymph_node"] / f"{DEMOS['lymph_node']}_probabilities.csv").is_file()
    assert "exported 1 case(s)" in capsys.readouterr().err
    assert main(["export", str(bundle), "--out", str(tmp_path / "o"), "--what", "probabilities"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(bundle), "--out", str(tmp_path / "o"), "--what", "pictures"]) == 2
    assert "unknown pictures" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["export", str(bundle), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_thyroid_ct_from_dicom_gets_a_dicom_seg_and_nifti_otherwise(predicted, tmp_path):
    import highdicom as hd
    from pydicom.uid import generate_uid

    from tests.engine.dicom_fixtures import write_dicom

    case, predictions = predicted["thyroid_usct"]
    files = export_case(case, tmp_path / "plain", ExportOptions(what=("seg",)), predictions=predictions)
    assert files and all(f.name.endswith(".nii.gz") for f in files)  # a bundle's CT is no DICOM: NIfTI

    ct = case.images["CT"]
    source = write_dicom(tmp_path / "ct.dcm", (ct.array.astype(np.int32) + 1024).astype(np.int16), "CT",
                         RescaleSlope=1, RescaleIntercept=-1024, PixelSpacing=list(ct.meta.spacing),
                         ImagePositionPatient=[0.0, 0.0, 0.0], ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                         SliceThickness=1.0, StudyInstanceUID=generate_uid(), FrameOfReferenceUID=generate_uid(),
                         PatientID="DEMO-TH", SeriesNumber=1, InstanceNumber=1)
    ct.meta.source["dicom_path"] = str(source)
    try:
        files = export_case(case, tmp_path / "dicom", ExportOptions(what=("seg", "masks")), predictions=predictions)
    finally:
        del ct.meta.source["dicom_path"]
    seg_file = next(f for f in files if f.name.endswith("_seg.dcm"))
    seg = hd.seg.segread(str(seg_file))
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[seg.get_source_image_uids()[0][2]],
                                               segment_numbers=[1], ignore_spatial_locations=True)
    assert pixels.any() and np.array_equal(pixels[0, :, :, 0] != 0, np.asarray(predictions[0].masks["CT/nodule"]) != 0)
