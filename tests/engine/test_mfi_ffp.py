"""MFI-FFP: the fusion equations, the loss terms, branch shapes, gradients, aligned augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engine.nets.mfi_ffp import (
    COMPACT_CONFIG,
    GLFF,
    MFF,
    InvertedResidualBranch,
    ResidualBranch,
    ViTBranch,
    count_flops,
    count_parameters,
    gradcam_layers,
    resolve_config,
)
from engine.registry import ModelError, build_net
from engine.train.augment import augment_aligned
from engine.train.losses import (
    MFILoss,
    class_weights,
    focal_loss,
    intra_loss,
    ldam_loss,
    ldam_margins,
    pearson_rows,
)


def _seeded_glff(channels: int = 16, gamma: int = 8) -> GLFF:
    torch.manual_seed(0)
    glff = GLFF(channels, gamma).eval()
    for bn in (glff.global_branch[-1], glff.local_branch[-1]):  # non-trivial BN statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return glff


def _bn(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def _pwc(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias.view(1, -1, 1, 1)


def test_glff_matches_equations_12_to_14():
    glff = _seeded_glff()
    assert glff.local_branch[0].out_channels == 16 // 8  # reduction gamma = 8
    f_add = torch.randn(2, 16, 3, 3)
    g, lo = glff.global_branch, glff.local_branch
    gap = f_add.mean(dim=(2, 3), keepdim=True)
    global_part = _bn(_pwc(torch.relu(_pwc(gap, g[1])), g[3]), g[4])
    local_part = _bn(_pwc(torch.relu(_pwc(f_add, lo[0])), lo[2]), lo[3])
    expected = torch.sigmoid(global_part + local_part)
    with torch.no_grad():
        assert torch.allclose(glff(f_add), expected, atol=1e-5)


def test_mff_weights_fi_by_one_minus_w():
    mff = MFF(["WLI", "FI", "PCI"], 16, 8).eval()
    mff.glff = _seeded_glff()
    feats = {m: torch.randn(2, 16, 3, 3) for m in ("WLI", "FI", "PCI")}
    with torch.no_grad():
        w = mff.glff(feats["WLI"] + feats["FI"] + feats["PCI"])  # eq. 11 then 12-14
        expected = w * feats["WLI"] + (1 - w) * feats["FI"] + w * feats["PCI"]  # eq. 15
        assert torch.allclose(mff(feats), expected, atol=1e-6)


def test_mff_pairs_give_the_complement_to_fi_or_the_second_modality():
    assert MFF(["WLI", "FI"], 8, 8).complement == {"FI"}
    assert MFF(["FI", "PCI"], 8, 8).complement == {"FI"}
    assert MFF(["WLI", "PCI"], 8, 8).complement == {"PCI"}


def test_ldam_margins_are_rescaled_so_the_largest_is_half_as_in_the_reference():
    # Cao et al. 2019 (kaidic/LDAM-DRW, LDAMLoss): m_j = 1 / n_j^(1/4), then m * (max_m / max(m)), max_m = 0.5
    margins = ldam_margins([900, 81])
    assert margins.tolist() == pytest.approx([0.5 * (81 / 900) ** 0.25, 0.5], rel=1e-6)
    assert ldam_margins([772, 68]).max().item() == pytest.approx(0.5)  # whatever the counts
    assert ldam_margins([9000, 810]).tolist() == pytest.approx(margins.tolist(), rel=1e-6)  # only ratios count
    with pytest.raises(ValueError, match="Every class"):
        ldam_margins([10, 0])


def test_ldam_loss_scales_the_margin_shifted_logits_by_30():
    logits = torch.tensor([[0.2, 0.1], [0.05, 0.15]])
    targets = torch.tensor([0, 1])
    margins = torch.tensor([0.1, 0.3])
    weights = class_weights(0.85)
    # sample 0: true class 0, its logit drops by 0.1; sample 1: true class 1, by 0.3; then x 30 (the reference's s)
    z0, z1 = 30 * np.array([0.1, 0.1]), 30 * np.array([0.05, -0.15])
    l0 = -(z0[0] - np.logaddexp(*z0))
    l1 = -(z1[1] - np.logaddexp(*z1))
    expected = (0.15 * l0 + 0.85 * l1) / (0.15 + 0.85)
    assert ldam_loss(logits, targets, margins, weights).item() == pytest.approx(expected, rel=1e-5)
    reference_form = F.cross_entropy(30 * (logits - F.one_hot(targets, 2) * margins), targets, weight=weights)
    assert ldam_loss(logits, targets, margins, weights).item() == pytest.approx(reference_form.item(), rel=1e-6)


def test_mfi_loss_uses_the_reference_ldam_settings():
    loss = MFILoss([772, 68])
    assert loss.margins.max().item() == pytest.approx(0.5) and loss.scale == 30.0
    # taken literally (0.5 / n^(1/4), no scale) LDAM was weighted cross-entropy give or take 0.07 on a batch
    torch.manual_seed(0)
    logits, targets = torch.randn(32, 2), torch.tensor([1, 1, 1] + [0] * 29)
    weighted_ce = F.cross_entropy(logits, targets, weight=class_weights()).item()
    assert abs(ldam_loss(logits, targets, loss.margins, loss.weights) - weighted_ce) > 1.0


def test_literal_ldam_is_kept_only_for_the_ablation_and_is_near_weighted_cross_entropy():
    literal = MFILoss([772, 68], terms=("ldam",), ldam="literal")
    assert literal.scale == 1.0
    assert literal.margins.tolist() == pytest.approx([0.5 / 772 ** 0.25, 0.5 / 68 ** 0.25], rel=1e-6)
    torch.manual_seed(0)
    logits, targets = torch.randn(32, 2), torch.tensor([1, 1, 1] + [0] * 29)
    weighted_ce = F.cross_entropy(logits, targets, weight=class_weights()).item()
    reference = MFILoss([772, 68], terms=("ldam",))
    assert abs(literal(logits, targets).item() - weighted_ce) < 0.2 < abs(reference(logits, targets).item() - weighted_ce)
    with pytest.raises(ValueError, match="ldam must be"):
        MFILoss([772, 68], ldam="paper")


def test_focal_reduces_to_cross_entropy_at_kappa_zero_and_down_weights_easy_samples():
    torch.manual_seed(1)
    logits, targets = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    assert focal_loss(logits, targets, kappa=0.0).item() == pytest.approx(F.cross_entropy(logits, targets).item())
    p = torch.softmax(torch.tensor([[3.0, 0.0]]), 1)[0, 0].item()
    by_hand = -((1 - p) ** 2) * np.log(p)
    assert focal_loss(torch.tensor([[3.0, 0.0]]), torch.tensor([0]), kappa=2.0).item() == pytest.approx(by_hand)
    assert by_hand < -np.log(p) / 10  # an easy sample counts far less than in cross-entropy


def test_intra_loss_on_probabilities_has_no_signal_but_on_features_has_gradient():
    # Two 2-element probability vectors always correlate at +1 or -1: nothing to learn from.
    probs = torch.softmax(torch.randn(5, 2), 1)
    assert torch.allclose(pearson_rows(probs[:-1], probs[1:]).abs(), torch.ones(4), atol=1e-4)
    torch.manual_seed(2)
    features = torch.randn(8, 32, requires_grad=True)
    targets = torch.tensor([0, 0, 1, 0, 1, 1, 0, 1])
    loss = intra_loss(features, targets)
    loss.backward()
    assert loss.item() > 0
    assert features.grad is not None and features.grad.abs().sum() > 0
    # by hand: consecutive same-class pairs, ordered class pairs (m, k) and (k, m)
    f = features.detach().numpy()

    def rho(rows):
        return np.mean([np.corrcoef(rows[i], rows[i + 1])[0, 1] for i in range(len(rows) - 1)])

    r0, r1 = rho(f[targets.numpy() == 0]), rho(f[targets.numpy() == 1])
    assert loss.item() == pytest.approx(2 * (r0 - r1) ** 2, rel=1e-4)
    assert intra_loss(features[:3], torch.tensor([0, 0, 1])).item() == 0.0  # one class has a single sample


def test_mfi_loss_combines_terms_and_rejects_unknown_ones():
    torch.manual_seed(3)
    logits, feats = torch.randn(8, 2), torch.randn(8, 16)
    targets = torch.tensor([0, 0, 0, 1, 0, 1, 0, 1])
    full = MFILoss([90, 10])
    parts = (ldam_loss(logits, targets, full.margins, full.weights) + focal_loss(logits, targets, 2.0, full.weights)
             + intra_loss(feats, targets))
    assert full(logits, targets, feats).item() == pytest.approx(parts.item(), rel=1e-6)
    with pytest.raises(ValueError, match="Loss terms"):
        MFILoss([90, 10], terms=("dice",))
    with pytest.raises(ValueError, match="fused feature"):
        MFILoss([90, 10], terms=("intra",))(logits, targets)


@pytest.mark.parametrize("kind", ["irb", "rb", "vit"])
def test_compact_branch_maps_are_spatial(kind):
    cfg = resolve_config({"preset": "compact"})
    branch = {"irb": lambda: InvertedResidualBranch(cfg["channels"], **cfg["irb"]),
              "rb": lambda: ResidualBranch(cfg["channels"], **cfg["rb"]),
              "vit": lambda: ViTBranch(cfg["channels"], cfg["input_size"], cfg["grid"], **cfg["vit"])}[kind]()
    size, grid = cfg["input_size"], cfg["grid"]
    out = branch(torch.randn(2, 3, size, size))
    assert out.shape == (2, cfg["channels"], grid, grid)
    # a genuine map: different positions see different image content
    assert out.std(dim=(2, 3)).mean() > 0


def test_irb_residual_blocks_start_as_identity_and_still_learn():
    branch = InvertedResidualBranch(16, width_mult=0.5, output_stride=16)
    residual = [b for b in branch.features if getattr(b, "use_res_connect", False)]
    assert len(residual) == 10  # of the 17 blocks, those without stride or width change
    assert all(torch.count_nonzero(b.conv[-1].weight) == 0 for b in residual)
    x = torch.randn(4, 3, 64, 64)
    branch.train()
    branch(x).square().mean().backward()
    assert all(b.conv[-1].weight.grad.abs().sum() > 0 for b in residual)  # the zero gammas get gradient
    assert branch.features[0][0].weight.grad.abs().sum() > 0  # and the stem does too


def test_paper_configuration_shapes_and_size():
    net = build_net("mfi_ffp", {}).eval()
    x = torch.randn(1, 9, 224, 224)
    with torch.no_grad():
        maps = net.branch_maps(x)
        assert {m: tuple(f.shape) for m, f in maps.items()} == {m: (1, 512, 7, 7) for m in ("WLI", "FI", "PCI")}
        assert net(x).shape == (1, 2)
    params = count_parameters(net) / 1e6
    assert 95 < params < 105  # MobileNetV2 features + ResNet18 + ViT-B/16 + MFF + head
    assert len(net.branches["WLI"].features) == 1 + 17  # stem + 17 inverted residual blocks


def test_gradient_reaches_all_three_branches():
    torch.manual_seed(4)
    net = build_net("mfi_ffp", {"preset": "compact"})
    x = torch.randn(4, 9, 80, 80)
    loss = MFILoss([30, 10])(net(x), torch.tensor([0, 1, 0, 1]), net.last_features)
    loss.backward()
    for m, branch in net.branches.items():
        grads = [p.grad.abs().sum().item() for p in branch.parameters() if p.grad is not None]
        assert grads and sum(grads) > 0, m


@pytest.mark.parametrize("mods,fusion", [(["WLI"], "mff"), (["FI", "PCI"], "mff"), (["WLI", "FI", "PCI"], "concat"),
                                         (["WLI", "FI", "PCI"], "sum")])
def test_variants_build_and_run(mods, fusion):
    net = build_net("mfi_ffp", {"preset": "compact", "modalities": mods, "fusion": fusion}).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3 * len(mods), 80, 80)).shape == (2, 2)
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(1, 3 * len(mods) + 3, 80, 80))
    expected = {*mods, "fusion"} if len(mods) > 1 else set(mods)  # one branch: nothing to fuse, no fusion map
    assert set(gradcam_layers({"preset": "compact", "modalities": mods})) == expected


def test_config_errors_are_clear():
    with pytest.raises(ModelError, match="unknown key"):
        resolve_config({"colour": 1})
    with pytest.raises(ModelError, match="modalities"):
        resolve_config({"modalities": ["WLI", "CT"]})
    with pytest.raises(ModelError, match="branch"):
        resolve_config({"branches": {"WLI": "lstm"}})
    with pytest.raises(ModelError, match="fusion"):
        resolve_config({"fusion": "attention"})


def test_flop_counter_sees_the_attention():
    small = build_net("mfi_ffp", {**COMPACT_CONFIG, "modalities": ["PCI"]})
    deeper = build_net("mfi_ffp", {**COMPACT_CONFIG, "modalities": ["PCI"], "vit": {"depth": 8}})
    assert count_flops(deeper) > count_flops(small) * 1.5


def test_augmentation_is_identical_across_modalities():
    rng = np.random.default_rng(0)
    image = rng.random((48, 48, 3)).astype(np.float32)
    stack = np.concatenate([image, image, image], axis=2)
    for seed in range(10):
        out = augment_aligned(stack, np.random.default_rng(seed), {"hflip": True, "rotation_degrees": 30})
        assert out.shape == stack.shape
        assert np.array_equal(out[..., 0:3], out[..., 3:6]) and np.array_equal(out[..., 3:6], out[..., 6:9])
    changed = [not np.allclose(augment_aligned(stack, np.random.default_rng(s), {"hflip": True,
                                                                                 "rotation_degrees": 30}), stack)
               for s in range(10)]
    assert any(changed)
