"""Grad-CAM: the layers come from the card, the map explains the called class by default (with a switch), and the
prediction says which class each map shows; the fade-out at a node crop's border is the card's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from engine.data import image_of
from engine.explain.gradcam import class_target, gradcam_maps
from engine.predict.base import EXPLAINED_CLASS, heatmap_class
from engine.registry import Threshold


class TwoBlobNet(nn.Module):
    """One logit = mean(channel 0) - mean(channel 1) after an identity 1x1 conv: evidence for the positive class
    lies where channel 0 is bright, for the negative class where channel 1 is."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.feat.weight.copy_(torch.eye(2)[:, :, None, None])
        self.head = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feat(x).mean(dim=(2, 3)))


def two_blobs() -> torch.Tensor:
    x = torch.zeros(1, 2, 16, 16)
    x[0, 0, 4:8, 2:6] = 1.0  # left blob: positive evidence
    x[0, 1, 8:12, 10:14] = 1.0  # right blob: negative evidence
    return x


def test_class_target_of_one_and_two_logit_heads():
    one = torch.tensor([1.5])
    assert class_target(1)(one).item() == 1.5 and class_target(0)(one).item() == -1.5
    assert class_target(0)(torch.tensor(2.0)).item() == -2.0
    two = torch.tensor([0.2, 0.7])
    assert class_target(1)(two).item() == pytest.approx(0.7) and class_target(0)(two).item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="class_index"):
        class_target(2)


def test_negative_class_map_shows_the_negative_evidence():
    net, x = TwoBlobNet(), two_blobs()
    positive = gradcam_maps(net, x, ["feat"], 1)[0]
    negative = gradcam_maps(net, x, ["feat"], 0)[0]
    left, right = (slice(4, 8), slice(2, 6)), (slice(8, 12), slice(10, 14))
    assert positive[left].mean() > 0.9 and positive[right].max() == 0.0
    assert negative[right].mean() > 0.9 and negative[left].max() == 0.0
    assert np.array_equal(gradcam_maps(net, x, ["feat"])[0], positive)  # class 1 unless asked


@pytest.fixture(scope="module")
def node_images():
    from engine.phantoms.lymph_node import make_node_dataset

    node = make_node_dataset(n_patients=1, nodes_per_patient=1, seed=9, size=120)[0]
    return {m: image_of(m, a) for m, a in node.images.items()}


def node_predictor(crop: str = "node", threshold: float = 1.0, **kwargs):
    """An untrained compact tri-modal net with its card: threshold 1.0 makes every call 'benign'."""
    from engine.nets.mfi_ffp import build_mfi_ffp
    from engine.predict.lymph_node import MFIFFPPredictor
    from engine.preprocess.lymph_node import preprocessing_constants
    from engine.train.mfi_ffp import MFIFFPTrainSettings, provisional_card

    torch.manual_seed(0)
    settings = MFIFFPTrainSettings(crop=crop)
    card = provisional_card(settings, SimpleNamespace(constants=preprocessing_constants(80, crop=crop)))
    card.thresholds = {"metastatic": Threshold(threshold, "test")}
    return MFIFFPPredictor(device="cpu", net=(build_mfi_ffp(settings.net_config()), card), **kwargs)


def test_mfi_ffp_heatmaps_come_from_the_layers_the_card_names(node_images):
    predictor = node_predictor()
    assert set(predictor.predict(node_images).heatmaps) == {f"metastatic/{k}" for k in predictor.card.gradcam_layers}
    predictor.card.gradcam_layers = {"FI": "branches.FI.layer4", "fusion": predictor.card.gradcam_layers["fusion"]}
    assert set(predictor.predict(node_images).heatmaps) == {"metastatic/FI", "metastatic/fusion"}
    predictor.card.gradcam_layers = {"WLI": "branches.WLI.no_such_layer"}
    with pytest.raises(KeyError, match="no_such_layer"):
        predictor.predict(node_images)


def test_a_benign_call_explains_benign_unless_asked(node_images):
    predictor = node_predictor()
    pred = predictor.predict(node_images)
    assert pred.calls["metastatic"] == "benign"
    assert {heatmap_class(pred, k) for k in pred.heatmaps} == {0}
    assert heatmap_class(pred.summary(), "metastatic/WLI") == 0  # it travels with the summary (store, bundles)
    assert any("evidence for the call" in n and "metastatic/fusion: benign" in n for n in pred.notes)
    predictor.explain_class = "positive"
    asked = predictor.predict(node_images)
    assert {heatmap_class(asked, k) for k in asked.heatmaps} == {1}
    assert any("the positive class, as asked" in n and "metastatic/WLI: metastatic" in n for n in asked.notes)
    assert any(not np.array_equal(pred.heatmaps[k], asked.heatmaps[k]) for k in pred.heatmaps)
    called_positive = node_predictor(threshold=0.0).predict(node_images)
    assert {heatmap_class(called_positive, k) for k in called_positive.heatmaps} == {1}
    with pytest.raises(ValueError, match="explain_class"):
        predictor.explain_class = "tumor"
    assert heatmap_class(pred, "metastatic/nothing") is None and EXPLAINED_CLASS.endswith("/")


def test_crop_border_fade_is_the_cards_and_a_whole_image_resize_has_none(node_images):
    from engine.preprocess.lymph_node import heatmap_taper

    cropped = node_predictor(threshold=0.0)
    assert heatmap_taper(cropped.card.preprocessing) == 0.12
    faded = cropped.predict(node_images).heatmaps
    cropped.card.preprocessing = {**cropped.card.preprocessing, "heatmap_taper": 0.0}
    sharp = cropped.predict(node_images).heatmaps
    _, box = cropped.preprocess(node_images)
    border = box.to_original(np.pad(np.zeros((78, 78), np.float32), 1, constant_values=1.0)) > 0.5
    assert border.any() and max(sharp[k][border].max() for k in sharp) > 0.05  # maps reach the crop's edge ...
    for key in sharp:
        assert faded[key][border].max() < 0.05  # ... unless the card's fade takes them to 0 there
        assert np.all(faded[key] <= sharp[key] + 1e-6)
    whole = node_predictor(crop="none")
    assert heatmap_taper(whole.card.preprocessing) == 0.0 and "heatmap_taper" not in whole.card.preprocessing
    _, box = whole.preprocess(node_images)
    assert (box.top, box.left, box.side) == (0, 0, 120)  # the whole (square) image is the net's input


def test_fl_cnn_non_tumor_call_explains_non_tumor():
    from engine.nets.fl_cnn import build_fl_cnn
    from engine.phantoms.glioma import make_glioma_dataset
    from engine.predict.glioma import GliomaCascadePredictor
    from engine.train.fl_cnn import FLCNNTrainSettings, provisional_card

    torch.manual_seed(0)
    settings = FLCNNTrainSettings(modality="FL", task="tumor").resolved()
    card = provisional_card(settings)
    card.thresholds = {"tumor": Threshold(1.0, "test")}
    predictor = GliomaCascadePredictor("FL", device="cpu", tasks=("tumor",),
                                       nets={"tumor": (build_fl_cnn(settings.net_config), card)})
    spec = make_glioma_dataset(n_patients=1, specimens_per_patient=1, seed=3)[0]
    pred = predictor.predict({"FL": image_of("FL", spec.fl, 16)})
    assert pred.calls["tumor"] == "non-tumor" and heatmap_class(pred, "tumor/FL") == 0
    assert any("tumor/FL: non-tumor" in n for n in pred.notes)
    predictor.explain_class = "positive"
    assert heatmap_class(predictor.predict({"FL": image_of("FL", spec.fl, 16)}), "tumor/FL") == 1


def test_service_passes_its_explain_class_to_the_predictors():
    from engine.phantoms.glioma import make_glioma_dataset, specimen_to_case
    from engine.predict.base import Predictor
    from engine.service import PredictionService

    seen = []

    class Recorder(Predictor):
        family, variant, modalities = "fl_cnn", "FL", ("FL",)

        def weight_hashes(self):
            return {"recorder": "0" * 64}

        def predict(self, images, *, explain=True):
            seen.append(self.explain_class)
            pred = self.new_prediction()
            pred.set_result("tumor", "tumor", 0.9, 0.5)
            return pred

    case = specimen_to_case(make_glioma_dataset(n_patients=1, specimens_per_patient=1, seed=4)[0])
    service = PredictionService(make_predictor=lambda kind, modalities, method=None: Recorder())
    service.predict_case(case, explain=False)
    service.explain_class = "negative"
    service.predict_case(case, explain=False)
    assert seen[0] == "predicted" and seen[-1] == "negative"
    with pytest.raises(ValueError, match="explain_class"):
        service.explain_class = "both"
