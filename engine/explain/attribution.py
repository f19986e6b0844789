"""Explanations of two-input (US, CT) nets: integrated gradients (captum) per input and Grad-CAM of a named layer.

Integrated gradients (Sundararajan et al. 2017) integrate the gradient of the LNM logit along the straight path
from a baseline to the input. Completeness: the attributions of both inputs sum to logit(x) - logit(baseline);
`IGResult.completeness_error` says how far the Riemann/Gauss-Legendre estimate is from that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.explain.gradcam import resolve_layer


@dataclass(frozen=True)
class IGResult:
    """Per-pixel attributions of each input (summed over channels), and the check of completeness."""

    maps: tuple[np.ndarray, ...]  # (H, W) per input
    sums: tuple[float, ...]  # sum of attributions per input
    logit: float
    baseline_logit: float

    @property
    def delta(self) -> float:
        return self.logit - self.baseline_logit

    @property
    def completeness_error(self) -> float:
        """|sum of attributions - (logit(x) - logit(baseline))| relative to |logit(x) - logit(baseline)|."""
        return abs(sum(self.sums) - self.delta) / max(abs(self.delta), 1e-6)

    def shares(self) -> tuple[float, ...]:
        """Each input's share of the total attribution: |sum_m| / sum over inputs of |sum_m|."""
        total = sum(abs(s) for s in self.sums)
        return tuple(abs(s) / total if total > 0 else 1.0 / len(self.sums) for s in self.sums)


def integrated_gradients(forward: nn.Module, inputs: tuple[torch.Tensor, ...], baselines: tuple[torch.Tensor, ...],
                         n_steps: int = 50) -> IGResult:
    """IG of `forward(*inputs) -> (1,) logit` for a single case (batch 1), Gauss-Legendre steps."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(forward)
    with torch.enable_grad():
        attributions = ig.attribute(inputs, baselines=baselines, n_steps=n_steps, method="gausslegendre",
                                    internal_batch_size=n_steps)
    with torch.no_grad():
        logit = float(forward(*inputs).reshape(-1)[0])
        base = float(forward(*baselines).reshape(-1)[0])
    maps = tuple(a[0].sum(0).detach().cpu().numpy().astype(np.float32) for a in attributions)
    return IGResult(maps, tuple(float(m.sum()) for m in maps), logit, base)


def gradcam_layer(forward: nn.Module, inputs: tuple[torch.Tensor, ...], net: nn.Module, layer_name: str,
                  size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM of the positive logit at one layer: ReLU(sum_c mean(grad_c) * activation_c), resized, in [0, 1]."""
    layer = resolve_layer(net, layer_name)
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _inp, out):
        out.retain_grad()
        store["a"] = out

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logit = forward(*inputs).reshape(-1)[0]
            net.zero_grad(set_to_none=True)
            logit.backward()
    finally:
        handle.remove()
    act, grad = store["a"].detach(), store["a"].grad
    if grad is None:
        return np.zeros(size, np.float32)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).astype(np.float32)
