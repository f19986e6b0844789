import numpy as np
import pytest
import torch

from engine.nets.fl_cnn import FLCNN
from engine.train.augment import augment_specimen, random_crop_with_padding
from engine.train.losses import class_balance_weights, weighted_bce_with_logits
from engine.train.schedule import warmup_cosine
from engine.train.splits import patient_split


def test_head_is_one_logit_xavier_with_dropout():
    net = FLCNN(width_mult=0.25, depth_mult=0.25)
    assert isinstance(net.classifier[0], torch.nn.Dropout) and net.classifier[0].p == 0.5
    assert net.classifier[1].out_features == 1
    assert net(torch.randn(3, 3, 40, 56)).shape == (3,)


def test_balance_weights_follow_paper_equation():
    ap, an = class_balance_weights(n_pos=30, n_neg=10)
    assert ap == pytest.approx(40 / 60) and an == pytest.approx(40 / 20)
    assert ap * 30 == pytest.approx(an * 10)  # each class contributes equally
    with pytest.raises(ValueError, match="Both classes"):
        class_balance_weights(0, 5)


def test_weighted_bce_matches_hand_computation():
    logits = torch.tensor([2.0, -1.0, 0.5])
    y = torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(logits)
    expected = -(2.0 * torch.log(p[0]) + 0.5 * torch.log(1 - p[1]) + 0.5 * torch.log(1 - p[2])) / 3
    assert weighted_bce_with_logits(logits, y, 2.0, 0.5).item() == pytest.approx(expected.item(), rel=1e-6)


def test_warmup_then_cosine():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_iters=100, warmup_iters=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[5] < lrs[9] <= 1.0  # linear warm-up
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone cosine decay
    assert lrs[-1] < 0.01


def test_patient_split_keeps_patients_whole_and_balances():
    rng = np.random.default_rng(0)
    patients = [f"P{i:02d}" for i in rng.integers(0, 20, 400)]
    labels = rng.integers(0, 2, 400).tolist()
    train, test = patient_split(patients, 0.3, seed=1, labels=labels)
    assert not (train & test).any() and (train | test).all()
    assert not set(np.array(patients)[train]) & set(np.array(patients)[test])
    assert 0.2 < test.mean() < 0.4
    with pytest.raises(ValueError, match="at least 2 patients"):
        patient_split(["A"] * 5, 0.3)


def test_crop_with_padding_shifts_content():
    img = np.zeros((32, 32, 3), np.float32)
    img[10:20, 10:20] = 1
    rng = np.random.default_rng(0)
    outs = [random_crop_with_padding(img, rng, 4) for _ in range(20)]
    assert all(o.shape == img.shape for o in outs)
    assert len({o.argmax() for o in outs}) > 1
    aug = augment_specimen(img, rng, {"brightness": 1.0, "contrast": 1.0, "vflip": True, "crop_padding": 16})
    assert aug.shape == img.shape and aug.min() >= 0 and aug.max() <= 1
