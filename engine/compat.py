"""torchvision on a CPU-only torch: make `import torchvision` work when its compiled ops cannot load.

The registry's torchvision wheel is a CUDA build. Next to a CPU torch its `_C` extension fails to
load and `import torchvision` then dies with "operator torchvision::nms does not exist", because
torchvision registers fake kernels for `nms`/`qnms` unconditionally. Importing this module first
defines those two operators with a pure-torch NMS. Where the real extension loads, it does nothing.
Import it before torchvision, timm, segmentation_models_pytorch or pytorch_grad_cam.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_state = {"fallback": False}


def _real_extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # no torchvision at all: nothing to patch
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    for lib in candidates:
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def nms_reference(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain torch; returns kept indices sorted by score."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=dets.device)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    keep = []
    suppressed = torch.zeros(dets.shape[0], dtype=torch.bool, device=dets.device)
    for idx in order.tolist():
        if suppressed[idx]:
            continue
        keep.append(idx)
        xx1 = torch.maximum(x1[idx], x1)
        yy1 = torch.maximum(y1[idx], y1)
        xx2 = torch.minimum(x2[idx], x2)
        yy2 = torch.minimum(y2[idx], y2)
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[idx] + areas - inter).clamp(min=torch.finfo(dets.dtype).tiny)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=dets.device)


def install() -> bool:
    """Define torchvision::nms/qnms if the compiled ops are unavailable. Returns True if the fallback is active."""
    if _state["fallback"]:
        return True
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        return False
    if _real_extension_loads():
        return False
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - kept alive in _state
    for op in ("nms", "qnms"):
        lib.define(op + _SCHEMA)
        lib.impl(op, nms_reference, "CompositeExplicitAutograd")
    _state["lib"] = lib
    _state["fallback"] = True
    return True


def fallback_active() -> bool:
    return _state["fallback"]


install()
