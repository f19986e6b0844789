"""Grad-CAM through pytorch-grad-cam, with target layers named by the model card (not hard-coded).

Which class a map explains is the caller's choice (`class_index`): the predictors explain the class they
called by default, so a non-tumor call shows the evidence for non-tumor, not for tumor."""

from __future__ import annotations

# isort: off
from engine import compat  # noqa: F401  (must precede pytorch_grad_cam, which imports torchvision)
from pytorch_grad_cam import GradCAM
# isort: on

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def resolve_layer(net: nn.Module, name: str) -> nn.Module:
    modules = dict(net.named_modules())
    if name not in modules:
        raise KeyError(f"Grad-CAM target layer '{name}' is not in {type(net).__name__}; "
                       f"examples of valid names: {list(modules)[1:6]}")
    return modules[name]


def class_target(class_index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The score Grad-CAM differentiates for class `class_index` (0 negative, 1 positive) of one sample's output:
    that class's logit of a two-logit head; of a one-logit head the logit for class 1 and its negative for class 0
    (the evidence that lowers P(positive))."""
    if class_index not in (0, 1):
        raise ValueError(f"class_index must be 0 (negative) or 1 (positive), got {class_index!r}.")

    def target(output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 0 or output.shape[-1] == 1:
            logit = output if output.ndim == 0 else output[..., 0]
            return logit if class_index == 1 else -logit
        return output[..., class_index]

    return target


def gradcam_maps(net: nn.Module, inputs: torch.Tensor, layer_names: list[str], class_index: int = 1) -> np.ndarray:
    """Grad-CAM for class `class_index` of every input: (B, S, S) float32 maps in [0, 1] at the input resolution."""
    layers = [resolve_layer(net, n) for n in layer_names]
    with torch.enable_grad(), GradCAM(model=net, target_layers=layers) as cam:
        maps = cam(input_tensor=inputs, targets=[class_target(class_index)] * inputs.shape[0])
    return np.asarray(maps, dtype=np.float32)
