import json
import subprocess
import sys

import pytest
import torch

import engine.nets.fl_cnn  # noqa: F401  (registers the fl_cnn family; the registry itself imports no net)
from engine.registry import (
    CARD_VERSION,
    CardInput,
    ModelCard,
    ModelError,
    Threshold,
    build_net,
    create_model,
    families,
    list_models,
    load_card,
    migrate_card,
    register_model,
    save_weights,
    write_card,
)

TINY = {"width_mult": 0.25, "depth_mult": 0.25, "dropout": 0.5, "stochastic_depth_prob": 0.0}


@pytest.fixture
def models_root(tmp_path):
    return tmp_path / "models"


def _card(root, name="tiny_fl", **changes) -> ModelCard:
    fields = dict(name=name, family="fl_cnn", task="tumor: non-tumor vs tumor", config=TINY,
                  input=CardInput(("FL",), 3, (48, 48)), preprocessing={"kind": "fluorescence"},
                  labels=["non-tumor", "tumor"], thresholds={"tumor": Threshold(0.5, "test")},
                  gradcam_layers={"FL": "features.8"}, training={"data": "test"}, evaluation={}, weights={},
                  root=root)
    return ModelCard(**{**fields, **changes})


def _write_tiny(root, name="tiny_fl"):
    card = _card(root, name)
    torch.manual_seed(0)
    net = build_net("fl_cnn", TINY)
    save_weights(net, card)
    write_card(card)
    return card, net


def test_round_trip_create_model_matches_saved_fp16_weights(models_root):
    card, net = _write_tiny(models_root)
    loaded, loaded_card = create_model("tiny_fl", root=models_root)
    assert loaded_card.weights["sha256"] == card.weights["sha256"]
    assert loaded_card.root == models_root and loaded_card.folder == models_root / "tiny_fl"
    assert loaded_card.thresholds == {"tumor": Threshold(0.5, "test")} and loaded_card.threshold("tumor") == 0.5
    x = torch.randn(2, 3, 48, 48)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=5e-2)  # fp16 storage
    assert not loaded.training
    readme = (models_root / "tiny_fl" / "README.md").read_text()
    assert readme.startswith("# Model card: tiny_fl") and "Research use only" in readme
    assert [c.name for c in list_models(models_root)] == ["tiny_fl"]
    assert json.loads((models_root / "tiny_fl" / "config.json").read_text())["card_version"] == CARD_VERSION


def test_the_root_given_is_honoured_and_nothing_is_written_to_the_environment(models_root, monkeypatch):
    import os

    _write_tiny(models_root)
    monkeypatch.delenv("ONCOLENS_MODELS_DIR", raising=False)
    with pytest.raises(ModelError, match="Unknown model 'tiny_fl'"):
        load_card("tiny_fl")  # the shipped folder has no such card
    assert load_card("tiny_fl", models_root).name == "tiny_fl"
    assert "ONCOLENS_MODELS_DIR" not in os.environ


def test_unknown_model_lists_known(models_root):
    _write_tiny(models_root)
    with pytest.raises(ModelError, match="Unknown model 'nope'.*tiny_fl"):
        create_model("nope", root=models_root)


def test_missing_weights_is_an_error_not_random_init(models_root):
    card, _ = _write_tiny(models_root)
    card.weights_path.unlink()
    with pytest.raises(ModelError, match="missing"):
        create_model("tiny_fl", root=models_root)


def test_tampered_weights_rejected(models_root):
    card, _ = _write_tiny(models_root)
    data = bytearray(card.weights_path.read_bytes())
    data[-5] ^= 0xFF
    card.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its model card"):
        create_model("tiny_fl", root=models_root)


def _edit_card(card, **changes):
    path = card.folder / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_pickle_weights_refused(models_root):
    card, _ = _write_tiny(models_root)
    _edit_card(card, weights={**card.weights, "file": "tiny_fl.pt"})
    with pytest.raises(ModelError, match="safetensors"):
        create_model("tiny_fl", root=models_root)


def test_weights_of_another_architecture_rejected(models_root):
    card, _ = _write_tiny(models_root)
    _edit_card(card, config={**TINY, "width_mult": 0.5})
    with pytest.raises(ModelError):
        create_model("tiny_fl", root=models_root)


def test_malformed_card(models_root):
    (models_root / "bad").mkdir(parents=True)
    (models_root / "bad" / "config.json").write_text('{"name": "bad"}')
    with pytest.raises(ModelError, match="missing field"):
        load_card("bad", models_root)
    (models_root / "bad" / "config.json").write_text('[1, 2]')
    with pytest.raises(ModelError, match="malformed"):
        load_card("bad", models_root)


@pytest.mark.parametrize("field, value, message", [
    ("thresholds", {"tumor": {"value": float("nan"), "rule": "x"}}, "not a probability"),
    ("thresholds", {"tumor": {"value": 1.5, "rule": "x"}}, "not a probability"),
    ("thresholds", {}, "at least one task"),
    ("labels", ["tumor"], "labels"),
    ("input", {"modalities": ["FL"], "channels": 3, "size": [100000, 100000]}, "input.size"),
    ("input", {"modalities": [], "channels": 3, "size": [48, 48]}, "input.modalities"),
    ("weights", {"file": "../../etc/passwd.safetensors", "sha256": "00"}, "inside the card's own folder"),
    ("name", "other", "names itself"),
])
def test_bad_cards_are_refused_naming_the_card_and_field(models_root, field, value, message):
    card, _ = _write_tiny(models_root)
    _edit_card(card, **{field: value})
    with pytest.raises(ModelError, match=message) as info:
        load_card("tiny_fl", models_root)
    assert "tiny_fl" in str(info.value)


def test_format_1_cards_are_migrated_on_load(models_root):
    card, _ = _write_tiny(models_root)
    v1 = {**json.loads((card.folder / "config.json").read_text()), "card_version": 1,
          "input": {"modality": "FL", "channels": 3, "size": [48, 48]}, "thresholds": {"operating": 0.3},
          "gradcam_layers": ["features.8"], "evaluation": {"threshold_rule": "sensitivity > 0.90"}}
    (card.folder / "config.json").write_text(json.dumps(v1))
    loaded = load_card("tiny_fl", models_root)
    assert loaded.card_version == CARD_VERSION
    assert loaded.input.modalities == ("FL",)
    assert loaded.thresholds == {"tumor": Threshold(0.3, "sensitivity > 0.90")}
    assert loaded.gradcam_layers == {"FL": "features.8"}
    node = migrate_card({"task": "metastatic: benign vs metastatic", "input": {"modalities": ["WLI", "FI"]},
                         "thresholds": {"operating": 0.2},
                         "gradcam_layers": ["branches.WLI.out", "branches.FI.out", "fusion"]})
    assert node["gradcam_layers"] == {"WLI": "branches.WLI.out", "FI": "branches.FI.out", "fusion": "fusion"}
    assert node["thresholds"] == {"metastatic": {"value": 0.2, "rule": "fixed"}}
    with pytest.raises(ModelError, match="newer"):
        migrate_card({"name": "x", "card_version": CARD_VERSION + 1})


def test_family_registry():
    assert "fl_cnn" in families()
    with pytest.raises(ModelError, match="not registered"):
        build_net("no_such_family", {})
    with pytest.raises(ModelError, match="unknown keys"):
        build_net("fl_cnn", {"widht_mult": 1.0})

    @register_model("fl_cnn_test_double")
    def builder(config):
        return torch.nn.Identity()

    with pytest.raises(ModelError, match="registered twice"):
        register_model("fl_cnn_test_double")(lambda c: None)


def test_the_registry_imports_no_net():
    code = "import sys, engine.registry; print(sorted(m for m in sys.modules if m.startswith('engine.nets')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_card_readme_shows_other_operating_points_and_the_cascade(models_root):
    from engine.registry import render_card

    metric = {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}
    card = _card(models_root, evaluation={
        "metrics": {"accuracy": metric}, "threshold": 0.2,
        "also_at": {"argmax (P >= 0.5)": {"threshold": 0.5, "metrics": {"accuracy": {**metric, "value": 0.85}}}},
        "cascade": {"title": "cascade on shared test patients", "markdown": "| task |\n|---|\n| grade |",
                    "results": {"n": 3}, "files": []}})
    text = render_card(card)
    assert "At argmax (P >= 0.5) (threshold 0.5):" in text and "| accuracy | 0.850 | 0.700 – 0.900 |" in text
    assert "## Cascade, end to end\ncascade on shared test patients" in text and "| grade |" in text
    assert '"results"' not in text and "Files:" not in text  # the raw results stay in config.json
