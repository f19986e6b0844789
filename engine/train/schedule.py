"""Learning-rate schedules stepped every iteration."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_iters: int, warmup_iters: int,
                  min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ~0 to the base lr over `warmup_iters`, then cosine annealing to min_factor * lr."""
    if total_iters <= 0:
        raise ValueError("total_iters must be positive.")
    warmup_iters = max(0, min(warmup_iters, total_iters - 1))

    def factor(step: int) -> float:
        if step < warmup_iters:
            return (step + 1) / (warmup_iters + 1)
        progress = (step - warmup_iters) / max(1, total_iters - warmup_iters)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
