"""DGFNet training parts (losses, under-sampling, grouped folds, augmentation) and, marked slow, a tiny run of
`oncolens train dgfnet` that installs both cards and is read back by the predictor and `evaluate`."""

import numpy as np
import pytest
import torch

from engine.train.dgfnet import iou_loss
from engine.train.dgfnet_data import augment_pair, grouped_folds, undersample


def test_soft_iou_loss_is_zero_for_a_perfect_map_and_near_one_for_a_disjoint_one():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    assert float(iou_loss(target * 40 - 20, target)) < 1e-3
    assert float(iou_loss(-(target * 40 - 20), target)) > 0.9


def test_undersampling_balances_and_folds_keep_patients_together():
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.3).astype(int)
    patients = [f"P{i // 2}" for i in range(200)]
    index = undersample(labels, seed=1)
    assert labels[index].sum() * 2 == len(index)
    folds = grouped_folds(index, labels, patients, 8, seed=0)
    assert len(folds) == 8 and sorted(np.concatenate([t for _, t in folds]).tolist()) == index.tolist()
    for train, test in folds:
        assert not {patients[i] for i in train} & {patients[i] for i in test}


def test_augmentation_moves_image_and_targets_together():
    rng = np.random.default_rng(3)
    image = np.zeros((32, 32), np.uint8)
    image[4:12, 4:12] = 200
    targets = np.stack([(image > 0).astype(np.uint8)] * 2)
    for _ in range(10):
        out, t = augment_pair(image, targets, rng)
        assert out.shape == (32, 32) and t.shape == (2, 32, 32) and set(np.unique(t)) <= {0, 1}
        assert ((out > 100) == (t[0] > 0)).mean() > 0.9


@pytest.mark.slow
def test_a_tiny_training_run_installs_both_cards(tmp_path, capsys):
    from engine.cli import main
    from engine.predict.thyroid import DGFNetPredictor
    from engine.registry import load_card

    args = ["train", "dgfnet", "--phantom-patients", "70", "--folds", "2", "--seg-epochs", "1", "--joint-epochs", "1",
            "--fusion-epochs", "2", "--models-dir", str(tmp_path)]
    assert main(args) == 0
    for site in ("central", "lateral"):
        card = load_card(f"dgfnet_{site}", tmp_path)
        assert card.evaluation["metrics"]["auc"]["value"] is not None
        assert {r["name"] for r in card.evaluation["ablation"]["rows"]} >= {"US", "CT", "concat", "DGF (batch of 30)"}
        assert "auc_single" in card.evaluation["batch_vs_single"] and card.extra["ig_baseline"]["n_steps"] == 200
        assert (card.folder / "ablation" / "dgfnet_ablation.md").is_file()
    assert DGFNetPredictor(root=tmp_path, device="cpu").sites == ("central_lnm", "lateral_lnm")
    assert main(["evaluate", "dgfnet", "--models-dir", str(tmp_path), "--bootstrap", "50"]) == 0
    assert "central_lnm" in capsys.readouterr().out
