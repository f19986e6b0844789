"""The sarcoma PET-CT kind through everything that iterates kinds: opening a DICOM folder or a NIfTI pair, the
service, `oncolens predict` with exports (DICOM SEG read back by highdicom and by OncoLens, NIfTI, CSV), bundles
and the store, `oncolens dicom info`, and a reader study with unaided and aided arms."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.kinds import get_kind
from engine.io.nifti import read_nifti, write_nifti
from engine.phantoms.petct import make_patient, patient_to_case, write_petct_dicom
from tests.engine.chmfl_fixtures import install_tiny_card
from tests.engine.study_reading import read_every_arm


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return install_tiny_card(tmp_path_factory.mktemp("models"))


@pytest.fixture
def models_env(tiny_models, monkeypatch):
    monkeypatch.setenv("ONCOLENS_MODELS_DIR", str(tiny_models))
    return tiny_models


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dicom") / "study"
    patient = make_patient(np.random.default_rng(8), 1, "PX8")
    write_petct_dicom(patient, folder)
    return folder, patient


def test_the_kind_is_registered_with_volume_roles():
    kind = get_kind("sarcoma_petct")
    assert kind.modality_codes == ("PET", "CT") and kind.roles[0].axes == ("ZYX",)
    assert kind.primary_model() == "chmfl[PET+CT]" and kind.tasks[0].name == "distant_metastasis"


def test_a_dicom_folder_and_a_nifti_pair_open_as_cases(study_folder, tmp_path):
    from engine.kinds.opening import case_from_loose_images, load_case_source

    folder, patient = study_folder
    case = load_case_source(folder)
    assert case.kind == "sarcoma_petct" and case.images["PET"].meta.units == "SUV"
    write_nifti(case.images["PET"], tmp_path / "p1_pet.nii.gz")
    write_nifti(case.images["CT"], tmp_path / "p1_ct.nii.gz")
    pair = case_from_loose_images([tmp_path / "p1_ct.nii.gz", tmp_path / "p1_pet.nii.gz"])
    np.testing.assert_array_equal(pair.images["PET"].array, case.images["PET"].array)
    assert pair.images["CT"].meta.origin == pytest.approx(case.images["CT"].meta.origin)


def test_service_predicts_and_the_store_and_bundle_round_trip(models_env, tmp_path):
    from engine.cases.bundle import read_bundle, write_bundle
    from engine.service import PredictionService, truth_labels
    from engine.store import Store

    case = patient_to_case(make_patient(np.random.default_rng(1), 1, "PX1"), "petct-x1")
    store = Store()
    store.add_case(case, write_bundle(case, tmp_path / case.id))
    (pred,) = PredictionService(store).predict_case(case)
    assert pred.model == "chmfl[PET+CT]" and pred.masks["tumor"].shape == case.images["PET"].array.shape
    assert truth_labels(case) == {"distant_metastasis": "distant metastasis"}
    case.predictions.append(pred)
    folder = write_bundle(case, tmp_path / case.id)
    back = store.load_case(case.id)
    for code in ("PET", "CT"):
        np.testing.assert_array_equal(back.images[code].array, case.images[code].array)
        assert back.images[code].meta.to_dict() == case.images[code].meta.to_dict()
    np.testing.assert_array_equal(read_bundle(folder).predictions[0].masks["tumor"], pred.masks["tumor"])
    np.testing.assert_array_equal(back.truth.masks["tumor"], case.truth.masks["tumor"])
    assert [s.summary.model for s in store.predictions_for(case.id)] == ["chmfl[PET+CT]"]
    assert store.predictions_for(case.id)[0].summary.measures["mtv_ml"] == pytest.approx(pred.measures["mtv_ml"])
    store.close()


def test_cli_predict_on_a_dicom_folder_exports_seg_nifti_and_csv(models_env, study_folder, tmp_path):
    import highdicom as hd

    from engine.cli import main
    from engine.io.seg_export import read_dicom_seg
    from engine.kinds.opening import load_case_source

    folder, _ = study_folder
    out = tmp_path / "r.json"
    assert main(["predict", str(folder), "--out", str(out), "--export-seg", str(tmp_path / "exp")]) == 0
    (result,) = json.loads(out.read_text())
    assert result["family"] == "chmfl" and 0 <= result["tasks"]["distant_metastasis"]["probability"] <= 1
    seg_file = next((tmp_path / "exp").glob("*_seg.dcm"))
    seg = hd.seg.segread(str(seg_file))  # highdicom's own read-back
    assert seg.number_of_segments == 1 and seg.SegmentSequence[0].SegmentLabel == "Tumour"
    pet = load_case_source(folder).images["PET"]
    assert {str(r[2]) for r in seg.get_source_image_uids()} <= {
        str(pet.meta.source["series_uid"]), *[str(u) for r in seg.get_source_image_uids() for u in r]}
    mask = read_dicom_seg(seg_file, pet)
    nifti = read_nifti(next((tmp_path / "exp").glob("*_tumor.nii.gz")), "mask")
    np.testing.assert_array_equal(mask, nifti.array)
    assert nifti.meta.origin == pytest.approx(pet.meta.origin)
    with open(next((tmp_path / "exp").glob("*_measures.csv"))) as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["model"] == "chmfl[PET+CT]" and float(row["mtv_ml"]) == pytest.approx(mask.sum() * 3.27 * 16 / 1000,
                                                                                      rel=1e-3)


def test_cli_predict_on_a_nifti_pair(models_env, study_folder, tmp_path):
    from engine.cli import main
    from engine.kinds.opening import load_case_source

    case = load_case_source(study_folder[0])
    write_nifti(case.images["PET"], tmp_path / "a_suv.nii")
    write_nifti(case.images["CT"], tmp_path / "a_ct.nii")
    out = tmp_path / "r.csv"
    assert main(["predict", str(tmp_path / "a_suv.nii"), str(tmp_path / "a_ct.nii"), "--out", str(out)]) == 0
    assert "chmfl[PET+CT],distant_metastasis" in out.read_text()


def test_cli_dicom_info_lists_series_with_the_suv_factor(study_folder, capsys):
    from engine.cli import main

    assert main(["dicom", "info", str(study_folder[0]), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    pet = next(e for e in entries if e["modality"] == "PT")
    assert pet["suv"]["inputs"]["weight_kg"] == pytest.approx(round(study_folder[1].weight_kg, 1))
    assert pet["slices"] == 44 and pet["pixel_spacing_mm"] == [4.0, 4.0]
    assert main(["dicom", "info", str(study_folder[0])]) == 0
    assert "SUVbw factor" in capsys.readouterr().out


def test_a_reader_study_reads_petct_cases_unaided_and_aided(models_env, tmp_path):
    from engine.cases.bundle import write_bundle
    from engine.service import PredictionService
    from engine.store import Store
    from engine.studies import AIDED, UNAIDED, Study, analyze_study, create_study

    store = Store()
    rng = np.random.default_rng(5)
    ids = []
    for i in range(4):
        case = patient_to_case(make_patient(rng, i % 2, f"RS{i}"), f"rs-{i}")
        store.add_case(case, write_bundle(case, tmp_path / case.id))
        PredictionService(store).predict_case(case, explain=False)
        ids.append(case.id)
    study = create_study(store, Study(id="dm-study", name="DM", task_label="distant_metastasis",
                                      case_ids=tuple(ids), modalities=("PET", "CT"), arms=(UNAIDED, AIDED)))
    assert study.model == "chmfl[PET+CT]" and study.case_kind == "sarcoma_petct"
    def answer(session, blinded, aided):
        assert blinded.images["PET"].axes == "ZYX" and blinded.images["CT"].axes == "ZYX"
        assert (blinded.aid is not None) == aided
        session.answer(bool(blinded.images["PET"].array.max() > 6), 3)

    read_every_arm(store, "dm-study", ("r1", "r2"), "246810", answer)
    assert analyze_study(store, "dm-study", n_boot=20, n_perm=20).result is not None
    store.close()
