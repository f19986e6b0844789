"""DGFNet nets: shapes of both configurations, the DGF branches, the nodule branch's batch dependence and its
single-nodule mode, ImageNet loading, integrated-gradients completeness, and the paper's metric bookkeeping."""

import numpy as np
import pytest
import torch

from engine.explain.attribution import gradcam_layer, integrated_gradients
from engine.metrics.evaluation import evaluate_binary
from engine.nets.dgfnet import (
    DGF,
    DGFNet,
    ExportWrapper,
    count_parameters,
    load_imagenet_encoders,
    net_config,
)
from engine.predict.thyroid import LogitOnly


def small_net(fusion="dgf", modalities=("US", "CT")) -> DGFNet:
    torch.manual_seed(0)
    return DGFNet(net_config("central", "compact", modalities, fusion)).eval()


def test_compact_net_outputs_the_logit_and_four_maps_at_the_crop_sizes():
    net = small_net()
    logit, maps = net.forward_all(torch.randn(3, 3, 64, 64), torch.randn(3, 3, 32, 32))
    assert logit.shape == (3,)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "US/mask": (3, 1, 64, 64), "US/boundary": (3, 1, 64, 64), "CT/mask": (3, 1, 32, 32), "CT/edges": (3, 1, 32, 32)}
    assert len(ExportWrapper(net)(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 32, 32))) == 5


def test_paper_encoders_are_resnet34_central_and_resnet18_lateral():
    central = DGFNet(net_config("central", "paper"))
    lateral = DGFNet(net_config("lateral", "paper"))
    assert count_parameters(lateral.branches["US"].encoder) == 11_176_512  # torchvision ResNet18 without fc
    assert count_parameters(central.branches["US"].encoder) == 21_284_672  # ResNet34 without fc
    assert count_parameters(central.fusion) == 2_493_696  # reading B of the spec, with biases


def test_imagenet_file_loads_into_every_encoder(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    net = DGFNet(net_config("lateral", "paper"))
    assert len(load_imagenet_encoders(net, str(path))) == 2
    with pytest.raises(ValueError, match="does not fit the US encoder"):
        load_imagenet_encoders(small_net(), str(path))


def test_the_dgf_attentions_have_the_spec_shapes():
    dgf = DGF(64)
    out = dgf(torch.randn(5, 64), torch.randn(5, 64))
    assert out.shape == (5, 64)
    assert dgf.last_attention["modal"].shape == (5, 2, 2) and dgf.last_attention["nodal"].shape == (5, 5)


def test_nodule_branch_couples_a_batch_and_single_mode_equals_a_batch_of_one():
    net = small_net()
    us, ct = torch.randn(6, 3, 64, 64), torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        batch = net(us, ct)
        other = net(us[:3], ct[:3])  # the same first three nodules with other company
        alone = torch.cat([net(us[i:i + 1], ct[i:i + 1]) for i in range(6)])
        net.set_nodule_context("single")
        single = net(us, ct)
    assert not torch.allclose(batch[:3], other, atol=1e-6)  # the paper's behaviour: company matters
    assert torch.allclose(single, alone, atol=1e-5)  # the app's: each nodule alone, batched or not


def test_basic_fusions_and_unimodal_nets_build():
    for fusion in ("concat", "sum", "product"):
        assert small_net(fusion)(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 32, 32)).shape == (2,)
    us_only = small_net("none", ("US",))
    assert us_only(torch.randn(2, 3, 64, 64), None).shape == (2,)
    with pytest.raises(ValueError, match="one modality takes fusion 'none'"):
        DGFNet(net_config("central", "compact", ("US", "CT"), "dgf") | {"fusion": "none"})


def test_integrated_gradients_are_complete_and_grad_cam_is_a_map():
    net = small_net()
    net.set_nodule_context("single")
    forward = LogitOnly(net)
    x = (torch.randn(1, 3, 64, 64), torch.randn(1, 3, 32, 32))
    base = (torch.zeros_like(x[0]), torch.zeros_like(x[1]))
    ig = integrated_gradients(forward, x, base, n_steps=64)
    assert ig.maps[0].shape == (64, 64) and ig.maps[1].shape == (32, 32)
    assert ig.completeness_error < 0.05, ig
    assert abs(sum(ig.shares()) - 1) < 1e-6
    cam = gradcam_layer(forward, x, net, "branches.US.encoder.layer4", (64, 64))
    assert cam.shape == (64, 64) and 0 <= cam.min() and cam.max() <= 1


@pytest.mark.parametrize("tp,fn,tn,fp,expected", [
    (20, 2, 29, 9, {"accuracy": 0.817, "sensitivity": 0.909, "specificity": 0.763, "ppv": 0.690, "f1": 0.784}),
    (41, 7, 40, 8, {"accuracy": 0.844, "sensitivity": 0.854, "specificity": 0.833, "ppv": 0.837, "f1": 0.845}),
])
def test_metric_code_reproduces_the_papers_table_4_from_its_derived_confusion_matrices(tp, fn, tn, fp, expected):
    y = np.array([1] * (tp + fn) + [0] * (tn + fp))
    scores = np.array([0.9] * tp + [0.1] * fn + [0.1] * tn + [0.9] * fp)
    metrics = evaluate_binary(y, scores, 0.5, n_resamples=20).to_dict()["metrics"]
    for name, value in expected.items():
        assert round(metrics[name]["value"], 3) == value, name


def test_the_papers_basic_average_rows_are_the_means_of_concat_sum_product():
    from engine.train.dgfnet_run import PAPER

    for site in PAPER.values():
        rows = np.array([site["concat"], site["sum"], site["product"]])
        assert np.allclose(rows.mean(0), site["basic average"], atol=6e-4)
