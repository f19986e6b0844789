"""The thyroid US + CT kind end to end with untrained DGFNet cards in a temporary models folder: demo cases, the
service, `oncolens predict` with boxes (arguments or a CSV), loose files, bad inputs, and a reader study per site."""

import json

import numpy as np
import pytest
import torch

from engine.cases.bundle import read_bundle
from engine.cases.kinds import get_kind
from engine.cli import main
from engine.io.images import write_image
from engine.kinds.opening import case_from_loose_images
from engine.kinds.thyroid_usct import KIND, case_from_us_ct, write_roi_csv, write_thyroid_demo_cases
from engine.nets.dgfnet import DGFNet
from engine.predict.thyroid import SITES, DGFNetPredictor
from engine.preprocess.us_ct import CT, US, RoiError, preprocessing_constants
from engine.registry import save_weights, write_card
from engine.service import PredictionService
from engine.train.dgfnet import DGFTrainSettings
from engine.train.dgfnet_cards import build_card
from tests.engine.dicom_fixtures import write_ct


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Untrained compact DGFNet cards for both sites (enough to exercise every path)."""
    root = tmp_path_factory.mktemp("models")
    constants = preprocessing_constants(64, 32)
    for i, site in enumerate(SITES):
        torch.manual_seed(i)
        s = DGFTrainSettings(site=site)
        net = DGFNet({**s.config(), "nodule_context": "single"}).eval()
        card = build_card(site, net, s, constants, root)
        card.training = {"regenerate": "oncolens train dgfnet", "data": {"kind": "phantom"}}
        card.extra["ig_baseline"] = {"us_value": 0.3, "ct_value": 0.3, "n_steps": 16}
        save_weights(net, card)
        write_card(card)
    return root


@pytest.fixture(scope="module")
def demo_cases(tmp_path_factory):
    return write_thyroid_demo_cases(tmp_path_factory.mktemp("thyroid") / "demo")


@pytest.fixture
def demo(demo_cases, models, monkeypatch):
    monkeypatch.setenv("ONCOLENS_MODELS_DIR", str(models))
    return demo_cases


def test_demo_cases_hold_us_ct_boxes_and_both_labels(demo):
    case = read_bundle(demo[0])
    assert case.kind == KIND and case.images[CT].meta.units == "HU" and case.images[CT].array.dtype == np.int16
    assert set(case.images[US].meta.extra["roi"]) == {"x0", "y0", "x1", "y1"}
    assert set(case.truth.labels) == set(SITES)


def test_the_service_predicts_both_sites_with_masks_explanations_and_shares(demo):
    case = read_bundle(demo[0])
    (pred,) = PredictionService().predict_case(case, explain=True)
    assert pred.model == "dgfnet[central+lateral]" and set(pred.probabilities) == set(SITES)
    assert set(pred.masks) == {"US/nodule", "US/boundary", "CT/nodule", "CT/edges"}
    assert pred.masks["US/nodule"].shape == case.images[US].array.shape
    for site in SITES:
        assert {f"{site}/{m}{v}" for m in (US, CT) for v in ("", ".signed", ".gradcam")} <= set(pred.heatmaps)
        assert abs(pred.measures[f"{site}.share_US"] + pred.measures[f"{site}.share_CT"] - 1) < 1e-6
        assert pred.heatmaps[f"{site}/{CT}"].shape == case.images[CT].array.shape
    assert get_kind(KIND).primary_model() == pred.model


def test_a_case_without_a_box_says_how_to_give_one(demo):
    case = read_bundle(demo[0])
    del case.images[US].meta.extra["roi"]
    with pytest.raises(RoiError, match=r"US image .*no nodule box.*--roi"):
        DGFNetPredictor().predict(case.images, explain=False)


def _files(tmp_path, demo):
    case = read_bundle(demo[0])
    us_path, ct_path = tmp_path / "nodule_us.png", tmp_path / "nodule_ct.dcm"
    write_image(us_path, case.images[US].array)
    write_ct(ct_path, case.images[CT].array)
    boxes = {m: case.images[m].meta.extra["roi"] for m in (US, CT)}
    return us_path, ct_path, {m: ",".join(str(int(b[k])) for k in ("x0", "y0", "x1", "y1")) for m, b in boxes.items()}


@pytest.mark.slow
def test_oncolens_predict_takes_a_us_ct_pair_with_boxes_or_a_csv(tmp_path, demo, capsys):
    us_path, ct_path, boxes = _files(tmp_path, demo)
    out = tmp_path / "r.json"
    assert main(["predict", str(us_path), str(ct_path), "--roi", f"US={boxes[US]}", "--roi", f"CT={boxes[CT]}",
                 "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["family"] == "dgfnet" and set(result["tasks"]) == set(SITES)
    table = write_roi_csv(tmp_path / "rois.csv", [{"nodule_id": "n1", "us_path": us_path.name, "ct_path": ct_path.name,
                                                   "us_box": boxes[US].replace(",", " "),
                                                   "ct_box": boxes[CT].replace(",", " ")}])
    assert main(["predict", "--rois", str(table), "--out", str(out)]) == 0
    assert json.loads(out.read_text())[0]["case_id"] == "n1"


def test_loose_pair_opens_as_a_thyroid_case_and_bad_inputs_are_named(tmp_path, demo, capsys):
    us_path, ct_path, boxes = _files(tmp_path, demo)
    case = case_from_loose_images([us_path, ct_path])
    assert case.kind == KIND and case.images[CT].meta.units == "HU"
    assert main(["predict", str(us_path), str(ct_path), "--roi", "US=900,900,950,950"]) == 2
    assert "lies outside the 320 x 240 image" in capsys.readouterr().err
    write_image(tmp_path / "us16.png", np.full((240, 320), 4000, np.uint16))
    with pytest.raises(ValueError, match=r"us16\.png.*8-bit"):
        case_from_us_ct(tmp_path / "us16.png", ct_path)
    with pytest.raises(ValueError, match=r"nodule_ct\.dcm: the DICOM modality is CT, not US"):
        case_from_us_ct(ct_path, ct_path)
    assert main(["predict", str(us_path), str(ct_path), "--roi", f"US={boxes[US]}", "--roi", "CT=5,5,5,40"]) == 2
    assert "is empty" in capsys.readouterr().err


@pytest.mark.slow
def test_a_reader_study_per_site_on_thyroid_cases(demo, tmp_path):
    from engine.store import Store
    from engine.studies import AIDED, UNAIDED, ReadingSession, Study, add_reader, analyze_study, create_study

    store = Store()
    store.import_bundles(demo[0].parent)
    service = PredictionService(store)
    ids = sorted(c.id for c in store.list_cases(kind=KIND))
    for case_id in ids:
        service.predict_case(store.load_case(case_id), explain=False)
    for site in SITES:  # one study per task label; both use the same stored predictions
        study = create_study(store, Study(id=f"thy-{site}", name=site, task_label=site, case_ids=tuple(ids),
                                          modalities=(US, CT), arms=(UNAIDED, AIDED)))
        assert study.model == "dgfnet[central+lateral]" and study.case_kind == KIND
        add_reader(store, study.id, "r1", "r1", "135790")
        for _arm in (UNAIDED, AIDED):
            session = ReadingSession.open(store, study.id, "r1", "135790")
            for _ in range(session.total):
                blinded = session.current_case()
                assert set(blinded.images) == {US, CT}
                session.answer(True, 4)
                session.next()
            session.finish()
        assert analyze_study(store, study.id, n_boot=20, n_perm=20).result is not None
    store.close()
