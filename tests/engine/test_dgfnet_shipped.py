"""The shipped DGFNet cards: both sites, their ablation tables, IG baseline and the batch-vs-single gap, and a
prediction on a bundled demo case."""

from engine.cases.bundle import read_bundle
from engine.paths import demo_cases_dir
from engine.predict.thyroid import SITES, DGFNetPredictor, card_name
from engine.registry import load_card


def test_both_sites_are_shipped_with_their_tables():
    for site in SITES:
        card = load_card(card_name(site))
        ev = card.evaluation
        names = [r["name"] for r in ev["ablation"]["rows"]]
        assert names[:2] == ["US", "CT"] and "DGF (batch of 30)" in names and "basic average" in names
        assert 0.0 <= ev["batch_vs_single"]["mean_abs_probability_difference"] <= 1.0
        assert 0.0 <= card.extra["ig_baseline"]["us_value"] <= 1.0
        assert card.gradcam_layers == {"US": "branches.US.encoder.layer4", "CT": "branches.CT.encoder.layer4"}
        assert card.training["data"]["kind"] == "phantom" and "from scratch" in card.training["pretrained"]
        assert (card.folder / "ablation" / "dgfnet_ablation.md").is_file()


def test_shipped_dgfnet_predicts_a_demo_nodule():
    case = read_bundle(demo_cases_dir() / "demo-thyroid-01")
    pred = DGFNetPredictor(device="cpu").predict(case.images, explain=False)
    assert set(pred.probabilities) == set(SITES) and pred.masks["US/nodule"].any()
