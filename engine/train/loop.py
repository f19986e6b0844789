"""The one training loop every family uses: epochs of batches, loss, optimiser and schedule steps, optional
DDP, and callbacks after each epoch (progress, early checks).

A family supplies its batches (a function of the epoch, so it can reshuffle and augment) and its loss (a
function of the model and one batch); `fit` does the rest the same way for all of them. The loss is read
back from the device once per epoch, not per step, so CUDA runs are not synchronised at every batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Batch:
    """Inputs and targets of one optimiser step; `size` is the number of samples (for the epoch's mean loss)."""

    inputs: Any
    target: Any
    size: int


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    epochs: int
    loss: float  # mean over the epoch's samples (this process's share under DDP)
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return {"epoch": self.epoch, "loss": round(self.loss, 6), "lr": self.lr, "seconds": round(self.seconds, 2)}


EpochCallback = Callable[[EpochReport], None]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun (WORLD_SIZE > 1)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _to(value: Any, device: torch.device | None) -> Any:
    if device is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value


def fit(net: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batches: Callable[[int], Iterable[Batch]],
        *, epochs: int, scheduler: Any = None, device: torch.device | str | None = None,
        callbacks: Sequence[EpochCallback] = (), ddp: bool = False, find_unused_parameters: bool = False
        ) -> list[EpochReport]:
    """Train `net` for `epochs` epochs; return one report per epoch.

    `batches(epoch)` yields this process's Batches for epoch 0, 1, ...; `loss_fn(model, batch)` returns the
    scalar loss (`model` is `net`, or its DDP wrapper when `ddp` and the process group has several ranks).
    `scheduler.step()` runs after every optimiser step (the families' schedules are per iteration)."""
    device = torch.device(device) if device is not None else None
    _rank, world = distributed() if ddp else (0, 1)
    model: nn.Module = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(net, find_unused_parameters=find_unused_parameters)
    reports = []
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        total, seen = None, 0
        for batch in batches(epoch):
            batch = Batch(_to(batch.inputs, device), _to(batch.target, device), batch.size)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            weighted = loss.detach() * batch.size
            total = weighted if total is None else total + weighted
            seen += batch.size
        mean = float(total) / seen if seen else float("nan")  # one device read per epoch
        lr = float(optimizer.param_groups[0]["lr"])
        report = EpochReport(epoch + 1, epochs, mean, lr, time.perf_counter() - started)
        reports.append(report)
        for callback in callbacks:
            callback(report)
    net.eval()
    return reports


def say_every(say: Callable[[str], None] | None, label: str, every: int = 1) -> EpochCallback:
    """An epoch callback that reports `label epoch i/n loss x` every `every` epochs (and the last one)."""

    def report(r: EpochReport) -> None:
        if say is not None and (r.epoch % max(1, every) == 0 or r.epoch == r.epochs):
            say(f"{label} epoch {r.epoch}/{r.epochs} loss {r.loss:.4f}")

    return report


def check_ranks_agree(net: nn.Module, say: Callable[[str], None] | None = None) -> None:
    """DDP keeps every rank's weights equal; a parameter checksum compared across ranks proves it."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return
    digest = torch.stack([p.detach().double().sum() for p in net.parameters()]).sum().reshape(1)
    high, low = digest.clone(), digest.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if float(high - low) != 0.0:
        raise RuntimeError(f"DDP ranks diverged: parameter checksums range {float(low)} .. {float(high)}.")
    if say:
        say(f"DDP: weights identical on all {dist.get_world_size()} processes (checksum {float(digest):.6f})")
