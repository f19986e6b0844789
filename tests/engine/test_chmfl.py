"""CHMFL: the nets' shapes (paper size on the meta device), the loss, the protocol's pieces, the paper's numbers
through our metric code, and the predictor's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.metrics.classification import auc, binary_metrics
from engine.nets.chmfl import COMPACT_CONFIG, PAPER_CONFIG, CHMFLNet, count_parameters
from engine.train.chmfl import chmfl_loss, stratified_folds
from tests.engine.chmfl_fixtures import install_tiny_card, phantom_images, without_centre


def test_paper_configuration_has_the_table_si_shapes():
    with torch.device("meta"):
        net = CHMFLNet(PAPER_CONFIG)
        x = torch.zeros(1, 2, 144, 112, 112)  # (B, PET+CT, Z, Y, X): 112 x 112 in-plane, 144 cranio-caudal
        levels = net.fused_levels(x)
        logits = net(x)
    assert [tuple(f.shape[1:]) for f in levels] == [(32, 144, 112, 112), (64, 72, 56, 56), (128, 36, 28, 28),
                                                    (256, 18, 14, 14), (512, 9, 7, 7)]
    assert tuple(logits.shape) == (1, 2) and tuple(net.last_segmentation.shape) == (1, 2, 144, 112, 112)
    encoder = sum(p.numel() for p in CHMFLNet(PAPER_CONFIG).encoders["PET"].parameters())
    assert encoder == 351_648  # one literal Table SI encoder, conv + BN (the notes' count)


def test_parameter_counts_of_both_configurations():
    paper, compact = count_parameters(CHMFLNet(PAPER_CONFIG)), count_parameters(CHMFLNet(COMPACT_CONFIG))
    assert 49.0e6 < paper < 50.0e6 and compact < 1.0e6


@pytest.mark.parametrize("config, shape", [
    ({}, (2, 2, 32, 32, 32)), ({"modalities": ["PET"]}, (2, 1, 32, 32, 32)), ({"dims": 2}, (2, 2, 32, 32)),
    ({"decoder": "bottleneck", "head": "last"}, (2, 2, 32, 32, 32)), ({"norm": "group:4"}, (2, 2, 32, 32, 32)),
])
def test_compact_variants_run(config, shape):
    net = CHMFLNet({**COMPACT_CONFIG, **config}).eval()
    with torch.no_grad():
        logits = net(torch.randn(*shape))
    assert tuple(logits.shape) == (2, 2) and tuple(net.last_segmentation.shape) == (2, 2, *shape[2:])


def test_bad_inputs_and_configs_say_what_works():
    net = CHMFLNet(COMPACT_CONFIG)
    with pytest.raises(ValueError, match="2 channel"):
        net(torch.randn(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.randn(1, 2, 30, 32, 32))
    with pytest.raises(ValueError, match="decoder one of"):
        CHMFLNet({**COMPACT_CONFIG, "decoder": "unet"})


def test_loss_weights_class_and_voxel_terms():
    logits, y = torch.tensor([[2.0, -1.0]]), torch.tensor([1])
    seg, m = torch.randn(1, 2, 4, 4, 4), torch.randint(0, 2, (1, 4, 4, 4))
    ce = torch.nn.functional.cross_entropy(logits, y)
    voxel = torch.nn.functional.cross_entropy(seg, m)  # the mean over voxels, not the paper's printed sum
    assert torch.isclose(chmfl_loss(logits, y, seg, m, 0.0), ce)
    assert torch.isclose(chmfl_loss(logits, y, seg, m, 1.0), voxel)
    assert torch.isclose(chmfl_loss(logits, y, seg, m, 0.5), 0.5 * ce + 0.5 * voxel)


def test_folds_are_stratified_four_plus_four_at_the_paper_size():
    labels = np.array([0, 1] * 24)
    folds = stratified_folds(labels, 6, seed=3)
    for k in range(6):
        assert labels[folds == k].sum() == 4 and (folds == k).sum() == 8


def test_our_metric_code_reproduces_the_papers_counts():
    """Spec fidelity checks 1 and 5: TP/FN/TN/FP -> the printed Acc, Sen, Spe, Pre, F1; 503/576 -> AUC 0.873."""
    def calls(tp, fn, tn, fp):
        y = np.array([1] * (tp + fn) + [0] * (tn + fp))
        return y, np.array([1] * tp + [0] * fn + [0] * tn + [1] * fp)

    for counts, printed in [((21, 3, 20, 4), (0.854, 0.875, 0.833, 0.840, 0.857)),
                            ((18, 6, 21, 3), (0.813, 0.750, 0.875, 0.857, 0.800)),
                            ((23, 1, 16, 8), (0.813, 0.958, 0.667, 0.742, 0.836))]:
        m = binary_metrics(*calls(*counts))
        got = tuple(round(m[k] + 1e-9, 3) for k in ("accuracy", "sensitivity", "specificity", "ppv", "f1"))
        assert got == printed
    # 24 negatives scored 0..23; positives above all of them (20), above 23 of them (1) or below all (3):
    # 20 * 24 + 23 = 503 of the 576 pairs concordant
    neg = np.arange(24, dtype=float)
    pos = np.r_[np.full(20, 100.0), [22.5], np.full(3, -1.0)]
    y = np.r_[np.ones(24), np.zeros(24)]
    assert round(auc(y, np.r_[pos, neg]) * 576) == 503 and round(503 / 576, 3) == 0.873


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return install_tiny_card(tmp_path_factory.mktemp("models"))


def test_predictor_returns_probability_masks_gradcam_and_measures(tiny_models):
    from engine.predict.petct import TASK, CHMFLPredictor

    patient, images = phantom_images(1)
    pred = CHMFLPredictor(device="cpu", root=tiny_models).predict(images, explain=True)
    assert pred.model == "chmfl[PET+CT]" and 0 <= pred.probabilities[TASK] <= 1
    assert pred.masks["tumor"].shape == patient.pet.array.shape and pred.masks["tumor_box"].shape == (32, 32, 32)
    heat = pred.heatmaps[f"{TASK}/fusion"]
    assert heat.shape == patient.pet.array.shape and 0 <= heat.min() and heat.max() <= 1
    assert {"suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "box_centre_z_mm"} <= set(pred.measures)
    np.testing.assert_allclose([pred.measures[f"box_centre_{a}_mm"] for a in "zyx"], patient.tumour.centre, atol=1e-3)
    assert "roi_center_mm" in pred.notes[0]


def test_predictor_centres_on_the_suvpeak_without_a_given_centre(tiny_models):
    from engine.predict.petct import CHMFLPredictor

    patient, images = phantom_images(2)
    images = {k: without_centre(v) for k, v in images.items()}
    pred = CHMFLPredictor(device="cpu", root=tiny_models).predict(images, explain=False)
    assert "SUVpeak" in pred.notes[0]
    centre = np.array([pred.measures[f"box_centre_{a}_mm"] for a in "zyx"])
    assert np.linalg.norm(centre - patient.tumour.centre) < 60  # somewhere in the limb, inside the box reach


def test_predictor_refuses_pet_not_in_suv_and_planes(tiny_models):
    from engine.data import image_of
    from engine.predict.petct import CHMFLPredictor

    _, images = phantom_images(3)
    predictor = CHMFLPredictor(device="cpu", root=tiny_models)
    images["PET"].meta.units = "BQML"
    with pytest.raises(ValueError, match="not SUV"):
        predictor.predict(images)
    with pytest.raises(ValueError, match="volumes"):
        predictor.predict({"PET": image_of("PET", np.zeros((8, 8), np.float32)), "CT": images["CT"]})
    with pytest.raises(KeyError, match="CT is missing"):
        predictor.predict({"PET": images["PET"]})


@pytest.mark.slow
def test_onnx_fast_path_agrees_with_eager(tiny_models):
    from engine.predict.petct import CHMFLPredictor

    _, images = phantom_images(4)
    eager = CHMFLPredictor(device="cpu", root=tiny_models)
    fast = CHMFLPredictor(device="cpu", root=tiny_models, backend="onnx")
    a, b = eager.predict(images, explain=False), fast.predict(images, explain=False)
    assert abs(a.probabilities["distant_metastasis"] - b.probabilities["distant_metastasis"]) < 1e-4
    assert (a.masks["tumor_box"] != b.masks["tumor_box"]).mean() < 1e-3


@pytest.mark.slow
def test_cross_validation_scores_every_patient_once_through_the_predictor():
    from engine.preprocess.petct import preprocessing_constants
    from engine.train.chmfl import CHMFLTrainSettings, cross_validate, phantom_records, prepare_arrays

    data = prepare_arrays(phantom_records(6, seed=2), preprocessing_constants("compact"))
    result = cross_validate(data, CHMFLTrainSettings(epochs=1, folds=2, batch_size=3))
    assert result.scores.shape == (6,) and np.all((result.scores >= 0) & (result.scores <= 1))
    assert np.bincount(result.folds).sum() == 6 and np.isfinite(result.dice).all()


@pytest.mark.slow
def test_bench_prints_eager_and_onnx_per_case_times(tiny_models, capsys):
    from engine.train.chmfl_bench import CHMFLBench, bench_chmfl

    assert bench_chmfl(CHMFLBench(repeats=1, models_root=tiny_models), lambda _m: None) == 0
    out = capsys.readouterr().out
    assert "per case, eager" in out and "per case, ONNX" in out and "speed-up" in out


def test_ablation_rows_are_named_by_group_or_name():
    from engine.train.chmfl_run import GROUPS, ORDERINGS, resolve_rows

    assert resolve_rows("w") == ["no constrained decoder (w=0)", "w=0.25", "CHMFL", "w=0.75", "w=1"]
    assert resolve_rows("PET only,CT only") == ["PET only", "CT only"]
    assert all(a in GROUPS["all"] and b in GROUPS["all"] for a, b in ORDERINGS)
    with pytest.raises(ValueError, match="Unknown CHMFL ablation rows"):
        resolve_rows("MRI only")
