import json

import pytest
import torch

from engine.registry import (
    ModelCard,
    ModelError,
    build_net,
    create_model,
    families,
    list_models,
    load_card,
    register_model,
    save_weights,
    write_card,
)

TINY = {"width_mult": 0.25, "depth_mult": 0.25, "dropout": 0.5, "stochastic_depth_prob": 0.0}


@pytest.fixture
def models_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ONCOLENS_MODELS_DIR", str(tmp_path))
    return tmp_path


def _write_tiny(name="tiny_fl"):
    card = ModelCard(name=name, family="fl_cnn", task="tumor", config=TINY, input={"modality": "FL"},
                     preprocessing={}, labels=["non-tumor", "tumor"], thresholds={"operating": 0.5},
                     gradcam_layers=["features.8"], training={"data": "test"}, evaluation={}, weights={})
    torch.manual_seed(0)
    net = build_net("fl_cnn", TINY)
    save_weights(net, card)
    write_card(card)
    return card, net


def test_round_trip_create_model_matches_saved_fp16_weights(models_root):
    card, net = _write_tiny()
    loaded, loaded_card = create_model("tiny_fl")
    assert loaded_card.weights["sha256"] == card.weights["sha256"]
    x = torch.randn(2, 3, 48, 48)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=5e-2)  # fp16 storage
    assert not loaded.training
    assert (models_root / "tiny_fl" / "README.md").read_text().startswith("# Model card: tiny_fl")
    assert "Research use only" in (models_root / "tiny_fl" / "README.md").read_text()
    assert [c.name for c in list_models()] == ["tiny_fl"]


def test_unknown_model_lists_known(models_root):
    _write_tiny()
    with pytest.raises(ModelError, match="Unknown model 'nope'.*tiny_fl"):
        create_model("nope")


def test_missing_weights_is_an_error_not_random_init(models_root):
    card, _ = _write_tiny()
    card.weights_path.unlink()
    with pytest.raises(ModelError, match="missing"):
        create_model("tiny_fl")


def test_tampered_weights_rejected(models_root):
    card, _ = _write_tiny()
    data = bytearray(card.weights_path.read_bytes())
    data[-5] ^= 0xFF
    card.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its model card"):
        create_model("tiny_fl")


def test_pickle_weights_refused(models_root):
    card, _ = _write_tiny()
    raw = json.loads((card.folder / "config.json").read_text())
    raw["weights"]["file"] = "tiny_fl.pt"
    (card.folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="safetensors"):
        create_model("tiny_fl")


def test_weights_of_another_architecture_rejected(models_root):
    card, _ = _write_tiny()
    raw = json.loads((card.folder / "config.json").read_text())
    raw["config"] = {**TINY, "width_mult": 0.5}
    (card.folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError):
        create_model("tiny_fl")


def test_malformed_card(models_root):
    (models_root / "bad").mkdir()
    (models_root / "bad" / "config.json").write_text('{"name": "bad"}')
    with pytest.raises(ModelError, match="malformed"):
        load_card("bad")


def test_family_registry():
    assert "fl_cnn" in families()
    with pytest.raises(ModelError, match="Unknown model family"):
        build_net("no_such_family", {})
    with pytest.raises(ModelError, match="unknown keys"):
        build_net("fl_cnn", {"widht_mult": 1.0})

    @register_model("fl_cnn_test_double")
    def builder(config):
        return torch.nn.Identity()

    with pytest.raises(ModelError, match="registered twice"):
        register_model("fl_cnn_test_double")(lambda c: None)
