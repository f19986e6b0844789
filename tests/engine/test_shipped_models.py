"""The model cards and weights committed under models/: complete, consistent, within budget."""

import json

import pytest

from engine.paths import models_dir
from engine.registry import INTENDED_USE, file_sha256, list_models, render_card

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
        assert raw.get(key) not in (None, "", [], {}), f"{card.name}: card field {key} is empty"
    assert card.intended_use == INTENDED_USE
    assert card.weights_path.suffix == ".safetensors" and card.weights["dtype"] == "float16"
    assert file_sha256(card.weights_path) == card.weights["sha256"]
    assert card.weights_path.stat().st_size == card.weights["bytes"]
    assert (card.folder / "README.md").read_text(encoding="utf-8") == render_card(card)
    assert "regenerate" in card.training and card.training["regenerate"].startswith("oncolens train")
    assert 0.0 < card.thresholds["operating"] < 1.0
    auc = card.evaluation["metrics"]["auc"]
    assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]


def test_all_shipped_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in models_dir().rglob("*.safetensors"))
    assert total < WEIGHT_BUDGET_MB * 1e6, f"shipped weights {total / 1e6:.1f} MB exceed {WEIGHT_BUDGET_MB} MB"
