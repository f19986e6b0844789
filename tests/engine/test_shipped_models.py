"""The model cards and weights committed under models/: complete, consistent, within budget."""

import json

import pytest

from engine.paths import models_dir
from engine.registry import CARD_VERSION, INTENDED_USE, file_sha256, list_models, render_card

WEIGHT_BUDGET_MB = 60
REQUIRED = ("family", "config", "input", "preprocessing", "labels", "thresholds", "gradcam_layers",
            "training", "evaluation", "weights", "intended_use")

CARDS = list_models()


def test_every_fl_cnn_net_is_shipped():
    names = {c.name for c in CARDS}
    assert {f"fl_cnn_{m}_{t}" for m in ("fl", "wl") for t in ("tumor", "grade", "ki67")} <= names


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.name)
def test_card_is_complete_and_matches_its_files(card):
    raw = json.loads((card.folder / "config.json").read_text())
    for key in REQUIRED:
        if key == "gradcam_layers" and card.family == "fluoro_seg":
            continue  # a segmentation net shows its probability map, not Grad-CAM
        assert raw.get(key) not in (None, "", [], {}), f"{card.name}: card field {key} is empty"
    assert card.intended_use == INTENDED_USE
    assert card.weights_path.suffix == ".safetensors" and card.weights["dtype"] == "float16"
    assert file_sha256(card.weights_path) == card.weights["sha256"]
    assert card.weights_path.stat().st_size == card.weights["bytes"]
    assert (card.folder / "README.md").read_text(encoding="utf-8") == render_card(card)
    assert "regenerate" in card.training and card.training["regenerate"].startswith("oncolens train")
    assert raw["card_version"] == CARD_VERSION  # the shipped cards are stored migrated
    assert all(0.0 < t.value < 1.0 and t.rule for t in card.thresholds.values())
    if card.family == "fluoro_seg":  # a segmentation net: a probability threshold and Dice on held-out frames
        headline = card.evaluation["metrics"]["dice"]
    else:
        headline = card.evaluation["metrics"]["auc"]
    assert headline["ci_low"] <= headline["value"] <= headline["ci_high"]


def test_fl_cnn_cards_show_their_cascade_end_to_end_and_say_whether_it_is_a_clean_test():
    by_modality: dict = {}
    for card in (c for c in CARDS if c.family == "fl_cnn"):
        by_modality.setdefault(card.input.modalities[0], []).append(card)
    for modality, cards in by_modality.items():
        assert len(cards) == 3
        shared = len({tuple(sorted(c.training["test_patients"])) for c in cards}) == 1
        for card in cards:
            cascade = card.evaluation["cascade"]
            assert cascade["results"]["modality"] == modality and "end to end" in cascade["title"]
            assert ("NOT a clean test" in cascade["title"]) == (not shared), card.name
            assert ("drawn for this net alone" in card.training["split"]) == (not shared), card.name
            assert "our choice" in card.training["schedule"]
            assert "## Cascade, end to end" in (card.folder / "README.md").read_text(encoding="utf-8")


def test_all_shipped_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in models_dir().rglob("*.safetensors"))
    assert total < WEIGHT_BUDGET_MB * 1e6, f"shipped weights {total / 1e6:.1f} MB exceed {WEIGHT_BUDGET_MB} MB"


def test_every_mfi_ffp_variant_is_shipped_with_its_ablation():
    from engine.predict.lymph_node import card_name
    from engine.train.mfi_ffp_run import ALL_VARIANTS

    names = {c.name for c in CARDS}
    assert {card_name(v) for v in ALL_VARIANTS} <= names
    tri = next(c for c in CARDS if c.name == card_name(("WLI", "FI", "PCI")))
    rows = {r["name"]: r for r in tri.evaluation["ablation"]["rows"]}
    assert {"tri-modal", "WLI+FI", "FI+PCI", "WLI+PCI", "WLI", "FI", "PCI", "concat"} <= set(rows)
    for name in ("tri-modal", "WLI", "concat"):
        assert rows[name]["params_m"] > 0 and rows[name]["paper_config_params_m"] > rows[name]["params_m"]
    assert (tri.folder / "ablation" / "mfi_ffp_ablation.csv").is_file()
    for name in ("tri-modal", "concat"):  # ACC, F1, SEN/SPE also at argmax, where the paper reports them
        assert rows[name]["argmax"]["accuracy"]["value"] is not None and rows[name]["paper_test_acc"]
    assert "ACC argmax" in tri.evaluation["ablation"]["markdown"]


def test_every_mfi_ffp_card_reports_argmax_beside_its_threshold_and_says_which_ldam_trained_it():
    from engine.train.mfi_ffp import ARGMAX

    cards = [c for c in CARDS if c.family == "mfi_ffp"]
    assert len(cards) == 7
    for card in cards:
        argmax = card.evaluation["also_at"][ARGMAX]
        assert argmax["threshold"] == 0.5  # the card's threshold is the evaluation's, rounded to 6 places
        assert card.evaluation["threshold"] == pytest.approx(card.threshold(), abs=1e-6)
        assert argmax["n"] == card.evaluation["n"] and argmax["metrics"]["auc"]["value"] == pytest.approx(
            card.evaluation["metrics"]["auc"]["value"], abs=1e-9)
        assert "At argmax" in (card.folder / "README.md").read_text(encoding="utf-8")
        assert "our choice" in card.training["schedule"]
        if "taken literally" in card.training["loss"]:  # trained before LDAM followed its reference
            assert "x 30" in card.training["ldam_note"]
        else:
            assert "s = 30" in card.training["loss"]


def test_mfi_ffp_tables_compare_ldam_input_and_loss_weights_at_a_stated_size():
    table = json.loads((models_dir() / "mfi_ffp_tables" / "small" / "mfi_ffp_ablation.json").read_text("utf-8"))
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["tri-modal"]["ldam"] == "reference" and rows["tri-modal (LDAM literal)"]["ldam"] == "literal"
    assert rows["LDAM literal"]["ldam"] == "literal" and rows["LDAM"]["ldam"] == "reference"
    assert (rows["tri-modal"]["input"], rows["resize"]["input"]) == ("node", "none")
    assert sum("Fig6" in r["tables"] for r in rows.values()) == 5
    assert "phantom patients" in table["title"] and "epochs" in table["title"]  # the reduced size is said
    at_size = json.loads((models_dir() / "mfi_ffp_tables" / "phantom50" / "mfi_ffp_ablation.json").read_text("utf-8"))
    assert {r["name"] for r in at_size["rows"]} == {"tri-modal", "tri-modal (LDAM literal)", "resize", "LDAM",
                                                    "LDAM literal"}
    assert "50 phantom patients" in at_size["title"] and "24 epochs" in at_size["title"]
    for card in (c for c in CARDS if c.family == "mfi_ffp"):
        if "taken literally" in card.training["loss"]:
            assert "NOT retrained" in card.training["ldam_note"] and "mfi_ffp_tables" in card.training["ldam_note"]


def test_shipped_mfi_ffp_predicts_on_a_demo_node():
    from engine.cases.bundle import read_bundle
    from engine.paths import demo_cases_dir
    from engine.predict.lymph_node import MFIFFPPredictor

    case = read_bundle(next(demo_cases_dir().glob("demo-node-*")))
    images = case.images
    pred = MFIFFPPredictor(device="cpu").predict(images, explain=True)
    assert 0.0 <= pred.probabilities["metastatic"] <= 1.0
    assert {k.split("/")[1] for k in pred.heatmaps} == {"WLI", "FI", "PCI", "fusion"}
    assert all(h.shape == case.images["WLI"].array.shape[:2] for h in pred.heatmaps.values())
    bi = MFIFFPPredictor(("WLI", "FI"), device="cpu").predict({m: images[m] for m in ("WLI", "FI")})
    assert bi.model == "mfi_ffp[WLI+FI]" and 0.0 <= bi.probabilities["metastatic"] <= 1.0


def mask_pixels(pred) -> int:
    return int(pred.masks["tumor"].sum())


def test_segmentation_demo_nets_are_shipped_and_segment_a_demo_frame():
    from engine.cases.bundle import read_bundle
    from engine.metrics.segmentation import dice
    from engine.paths import demo_cases_dir
    from engine.predict.fluoro import FluoroSegPredictor, card_name

    names = {c.name for c in CARDS}
    assert card_name("unetplusplus") in names  # the paper's best net; the lighter demo net joins it later
    case = read_bundle(demo_cases_dir() / "demo-fluoro-02")
    image = case.images["NIR"]
    truth = case.truth.masks["tumor"]
    for card in (c for c in CARDS if c.family == "fluoro_seg"):
        arch = card.config["arch"]
        assert card.training["data"]["kind"] == "phantom" and "frozen" in card.training["protocol"]
        pred = FluoroSegPredictor(arch, device="cpu").predict({"NIR": image})
        assert pred.measures["area_px"] == mask_pixels(pred) and pred.measures["area_mm2"] > 0
        mask = pred.masks["tumor"]
        assert mask.shape == truth.shape and pred.contours["tumor"]
        assert dice(mask, truth) > 0.5, f"{arch} segments the demo frame poorly"


def test_chmfl_is_shipped_with_its_ablation_and_predicts_the_demo_dicom_study():
    from engine.kinds.opening import load_case_source
    from engine.paths import resources_dir
    from engine.predict.petct import PRIMARY_CARD, TASK, CHMFLPredictor

    card = next(c for c in CARDS if c.name == PRIMARY_CARD)
    rows = {r["name"]: r for r in card.evaluation["ablation"]["rows"]}
    assert {"CHMFL", "PET only", "CT only", "2-D", "no constrained decoder (w=0)", "w=0.25", "w=0.75", "w=1"} <= set(rows)
    assert rows["CHMFL"]["paper"]["auc"] == 0.873 and card.extra["open_choices"]
    assert (card.folder / "ablation" / "chmfl_ablation_scores.csv").is_file()
    case = load_case_source(resources_dir() / "demo_dicom" / "petct-demo-01")  # RLE-compressed DICOM
    pred = CHMFLPredictor(device="cpu").predict(case.images, explain=False)
    assert 0 <= pred.probabilities[TASK] <= 1 and pred.measures["mtv_ml"] > 0
