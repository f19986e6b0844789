"""The fast inference path: chosen automatically, checked against eager, dropped (with the reason) when it
disagrees or cannot be built, forced eager by the setting or --backend; the shipped models run through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from engine import fastpath
from engine.data import image_of
from engine.fastpath import FastPath, backend_choice, outputs_agree, weights_key
from engine.phantoms.fluoro_frames import make_frame

CPU = torch.device("cpu")


class _Card:
    def __init__(self, name: str = "toy", sha: str = "") -> None:
        self.name = name
        self.weights = {"sha256": sha} if sha else {}


def _toy_classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2)).eval()


def test_backend_choice_follows_flag_then_environment_then_setting(monkeypatch):
    monkeypatch.setenv("ONCOLENS_BACKEND", "onnx")
    assert backend_choice() == "onnx"
    assert backend_choice("torch") == "eager"  # the old name still works
    monkeypatch.delenv("ONCOLENS_BACKEND")
    from engine.settings import load_settings, save_settings

    settings = load_settings()
    assert settings.backend == "auto"
    settings.backend = "eager"
    save_settings(settings)
    assert backend_choice() == "eager"
    with pytest.raises(ValueError, match="Unknown inference backend 'tensorrt'.*auto, eager, onnx, cuda-graph"):
        backend_choice("tensorrt")


def test_auto_on_cpu_runs_onnx_and_checks_it_against_eager_once(monkeypatch):
    net = _toy_classifier()
    fast = FastPath(net, _Card("toy_cls"), torch.zeros(1, 1, 16, 16), device=CPU, backend="auto")
    assert fast.backend == "onnx" and fast.fallback == ""
    calls = []
    original = fast.eager.run_all
    monkeypatch.setattr(fast.eager, "run_all", lambda *xs: calls.append(1) or original(*xs))
    x = np.random.default_rng(0).normal(size=(1, 1, 16, 16)).astype(np.float32)
    out = fast(x)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert "max |dp|" in fast.agreement
    fast(x)
    assert len(calls) == 1  # the eager reference runs on the first call only


def test_a_fast_path_that_disagrees_is_dropped_with_the_reason(monkeypatch):
    net = _toy_classifier()
    fast = FastPath(net, _Card("toy_cls"), torch.zeros(1, 1, 16, 16), device=CPU, backend="auto")
    monkeypatch.setattr(fast.runner, "run_all", lambda *xs: [np.array([[5.0, -5.0]], np.float32)])
    x = np.random.default_rng(1).normal(size=(1, 1, 16, 16)).astype(np.float32)
    out = fast(x)
    with torch.inference_mode():
        np.testing.assert_allclose(out, net(torch.from_numpy(x)).numpy(), atol=1e-6)  # eager's answer is used
    assert fast.backend == "eager"
    assert "disagreed with eager fp32 (max |dp|" in fast.label


def test_a_forced_backend_that_disagrees_or_cannot_be_built_is_an_error(monkeypatch):
    net = _toy_classifier()
    fast = FastPath(net, _Card("toy_cls"), torch.zeros(1, 1, 16, 16), device=CPU, backend="onnx")
    monkeypatch.setattr(fast.runner, "run_all", lambda *xs: [np.array([[5.0, -5.0]], np.float32)])
    with pytest.raises(RuntimeError, match="toy_cls: ONNX Runtime disagreed.*--backend auto or eager"):
        fast(np.zeros((1, 1, 16, 16), np.float32))
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
        FastPath(net, _Card(), torch.zeros(1, 1, 16, 16), device=CPU, backend="cuda-graph")


def test_an_export_failure_under_auto_runs_eager_and_says_why(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(fastpath, "export_onnx", broken)
    fast = FastPath(_toy_classifier(3), _Card("toy_broken", "ab" * 32), torch.zeros(1, 1, 16, 16), device=CPU)
    assert fast.requested == "eager"  # the test session's default
    fast = FastPath(_toy_classifier(3), _Card("toy_broken", "ab" * 32), torch.zeros(1, 1, 16, 16), device=CPU,
                    backend="auto")
    assert fast.backend == "eager"
    assert "onnx could not be built (RuntimeError: unsupported operator)" in fast.label
    assert fast(np.zeros((1, 1, 16, 16), np.float32)).shape == (1, 2)


def test_graphs_are_named_by_the_weights_so_new_weights_never_reuse_an_old_graph(graph_cache):
    a, b = _toy_classifier(0), _toy_classifier(1)
    assert weights_key(a, _Card()) != weights_key(b, _Card())  # no card hash: the tensors name it
    assert weights_key(a, _Card(sha="cd" * 32)) == "cd" * 8
    x = np.random.default_rng(2).normal(size=(1, 1, 16, 16)).astype(np.float32)
    outs = [FastPath(n, _Card("toy_same_name"), torch.zeros(1, 1, 16, 16), device=CPU, backend="onnx")(x)
            for n in (a, b)]
    assert not np.allclose(outs[0], outs[1])
    assert len(list((graph_cache / "onnx").glob("toy_same_name-*.onnx"))) == 2


def test_dense_outputs_agree_by_mask_dice():
    e = np.full((1, 1, 10, 10), -3.0, np.float32)
    e[..., 2:8, 2:8] = 3.0  # 36 foreground pixels
    f = e.copy()
    assert outputs_agree([f], [e]) == (True, "mask Dice 1.0000")
    f[..., 2, 2] = -3.0  # one pixel lost: Dice 70/71
    ok, detail = outputs_agree([f], [e])
    assert not ok and detail == "mask Dice 0.9859"
    empty = np.full((1, 1, 4, 4), -1.0, np.float32)
    assert outputs_agree([empty], [empty])[0]


def _nir_case():
    frame = make_frame(np.random.default_rng(4), "A", 256)
    return {"NIR": image_of("NIR", frame.image, bit_depth=frame.bit_depth)}


def test_shipped_segmentation_net_runs_onnx_by_default_and_its_mask_matches_eager(monkeypatch):
    from engine.metrics.segmentation import dice
    from engine.predict.fluoro import FluoroSegPredictor

    monkeypatch.setenv("ONCOLENS_BACKEND", "auto")
    case = _nir_case()
    fast = FluoroSegPredictor("unet", device="cpu")
    eager = FluoroSegPredictor("unet", device="cpu", backend="eager")
    assert (fast.backend, eager.backend) == ("onnx", "eager")
    a, b = fast.predict(case, explain=False), eager.predict(case, explain=False)
    assert "ONNX Runtime" in a.device and "eager PyTorch" in b.device
    assert b.masks["tumor"].any()
    assert dice(a.masks["tumor"], b.masks["tumor"]) >= 0.99
    assert abs(a.tasks["tumor"].probability - b.tasks["tumor"].probability) < 1e-3


def test_shipped_classifiers_run_onnx_by_default_with_eager_grad_cam(monkeypatch):
    from engine.phantoms.lymph_node import make_node_dataset
    from engine.predict.glioma import GliomaCascadePredictor
    from engine.predict.lymph_node import MFIFFPPredictor

    monkeypatch.setenv("ONCOLENS_BACKEND", "auto")
    node = make_node_dataset(n_patients=1, nodes_per_patient=1, seed=3)[0]
    images = {m: image_of(m, a) for m, a in node.images.items()}
    fast, eager = MFIFFPPredictor(device="cpu"), MFIFFPPredictor(device="cpu", backend="eager")
    a, b = fast.predict(images, explain=True), eager.predict(images, explain=False)
    assert fast.backend == "onnx" and "ONNX Runtime" in a.device
    assert abs(a.tasks["metastatic"].probability - b.tasks["metastatic"].probability) < 1e-4
    assert a.heatmaps  # Grad-CAM still comes (eager) when asked for

    from engine.phantoms.glioma import make_glioma_dataset

    specimen = make_glioma_dataset(n_patients=1, specimens_per_patient=2, seed=5)[0]
    fl = {"FL": image_of("FL", specimen.fl)}
    fast, eager = GliomaCascadePredictor("FL", device="cpu"), GliomaCascadePredictor("FL", device="cpu",
                                                                                     backend="eager")
    a, b = fast.predict(fl, explain=False), eager.predict(fl, explain=False)
    assert fast.backend == "onnx"
    for task, result in b.tasks.items():
        assert a.tasks[task].call == result.call
        if result.probability is not None:
            assert abs(a.tasks[task].probability - result.probability) < 1e-4


def test_predict_cli_backend_flag_forces_eager(tmp_path, monkeypatch, capsys):
    import cv2

    from engine.cli import main

    monkeypatch.setenv("ONCOLENS_BACKEND", "auto")
    frame = make_frame(np.random.default_rng(4), "A", 256)
    path = tmp_path / "frame_nir.png"
    cv2.imwrite(str(path), frame.image)
    assert main(["predict", str(path), "--modality", "NIR", "--backend", "eager"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "eager PyTorch" in out[0]["device"]


@pytest.mark.gpu
def test_cuda_graph_fp16_masks_agree_with_eager_fp32():
    from engine.metrics.segmentation import dice
    from engine.predict.fluoro import FluoroSegPredictor

    rng = np.random.default_rng(8)
    for arch in ("unet", "unetplusplus"):
        fast = FluoroSegPredictor(arch, device="cuda", backend="auto")
        eager = FluoroSegPredictor(arch, device="cuda", backend="eager")
        assert fast.backend == "cuda-graph", fast.fast.label
        for key in ("A", "B", "C"):
            frame = make_frame(rng, key, 1024)
            case = {"NIR": image_of("NIR", frame.image, bit_depth=frame.bit_depth)}
            a, b = fast.predict(case, explain=False), eager.predict(case, explain=False)
            assert fast.backend == "cuda-graph", fast.fast.label  # the first-call check passed
            assert dice(a.masks["tumor"], b.masks["tumor"]) >= 0.99
