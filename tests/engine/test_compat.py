import subprocess
import sys

import pytest
import torch

from engine import compat


def test_torchvision_imports_and_nms_op_works():
    import torchvision  # noqa: F401  (would raise 'operator torchvision::nms does not exist' without the shim)

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert kept.tolist() == [0, 2]


def test_reference_nms_matches_greedy_definition():
    boxes = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 3.9], [5, 5, 9, 9], [5, 5, 9, 8]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.3, 0.4])
    assert compat.nms_reference(boxes, scores, 0.5).tolist() == [1, 3]
    assert compat.nms_reference(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_install_is_idempotent():
    first = compat.fallback_active()
    assert compat.install() == first


@pytest.mark.parametrize("module", ["engine.explain.gradcam", "engine.nets.fl_cnn", "engine.predict.glioma"])
def test_modules_using_torchvision_import_alone(module):
    """Each module that pulls in torchvision must work as the first import of a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
