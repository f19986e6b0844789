"""Losses used by the training loops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_balance_weights(n_pos: int, n_neg: int) -> tuple[float, float]:
    """FL-CNN eq. (2): alpha_P = (|P|+|N|) / (2|P|), alpha_N = (|P|+|N|) / (2|N|)."""
    if n_pos <= 0 or n_neg <= 0:
        raise ValueError(f"Both classes are needed to train (got {n_pos} positive, {n_neg} negative samples).")
    total = n_pos + n_neg
    return total / (2.0 * n_pos), total / (2.0 * n_neg)


def weighted_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, alpha_pos: float,
                             alpha_neg: float) -> torch.Tensor:
    """FL-CNN eq. (1), averaged over the batch instead of summed (a constant factor; keeps lr meaningful)."""
    targets = targets.to(logits.dtype)
    weights = alpha_pos * targets + alpha_neg * (1.0 - targets)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="mean")
