"""Grad-CAM through pytorch-grad-cam, with target layers named by the model card (not hard-coded)."""

from __future__ import annotations

# isort: off
from engine import compat  # noqa: F401  (must precede pytorch_grad_cam, which imports torchvision)
from pytorch_grad_cam import GradCAM
# isort: on

import numpy as np
import torch
from torch import nn


def resolve_layer(net: nn.Module, name: str) -> nn.Module:
    modules = dict(net.named_modules())
    if name not in modules:
        raise KeyError(f"Grad-CAM target layer '{name}' is not in {type(net).__name__}; "
                       f"examples of valid names: {list(modules)[1:6]}")
    return modules[name]


def _positive_logit(output: torch.Tensor) -> torch.Tensor:
    """Grad-CAM target for one-logit nets: explain the evidence for the positive class."""
    return output if output.ndim == 0 else output[..., -1]


def gradcam_maps(net: nn.Module, inputs: torch.Tensor, layer_names: list[str]) -> np.ndarray:
    """Grad-CAM for the positive class: (B, S, S) float32 maps in [0, 1] at the input resolution."""
    layers = [resolve_layer(net, n) for n in layer_names]
    with torch.enable_grad(), GradCAM(model=net, target_layers=layers) as cam:
        maps = cam(input_tensor=inputs, targets=[_positive_logit] * inputs.shape[0])
    return np.asarray(maps, dtype=np.float32)
