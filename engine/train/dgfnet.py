"""DGFNet training through the shared `fit` loop: unimodal multi-task models, then the fused models.

Per the paper: BCE on the LNM logit, BCE + IoU on each segmentation map, Adam with weight decay 1e-5, cosine
schedule, batch 30, a segmentation-only stage before the joint stage (100 + 200 epochs in the paper), each
epoch one random US and one random CT image per nodule, fused models built on the same fold's unimodal
multi-task models. The compact CPU protocol shortens the stages and, with `joint_encoders="frozen"`, trains the
fusion and classifier on the unimodal encoders' features of training nodules held out from the encoders (the paper
re-trains end to end: `"trained"`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from engine.nets.dgfnet import MODALITIES, DGFNet, load_imagenet_encoders, net_config
from engine.registry import build_net
from engine.train.dgfnet_data import CropArrays, augment_pair, to_batch
from engine.train.loop import Batch, fit, say_every
from engine.train.schedule import warmup_cosine

Say = Callable[[str], None]


@dataclass(frozen=True)
class DGFTrainSettings:
    """One model's training: site (central: ResNet34, lateral: ResNet18), preset, stages and optimiser."""

    site: str = "central_lnm"
    preset: str = "compact"
    seg_epochs: int = 4  # paper 100
    joint_epochs: int = 14  # paper 200
    fusion_epochs: int = 150  # compact, frozen encoders: fusion + classifier on cached features
    joint_encoders: str = "frozen"  # "trained": re-train the branches end to end in the fused model (paper)
    head_fraction: float = 0.3  # frozen: share of the fold's training nodules kept for fitting the fusion
    batch_size: int = 30
    lr: float = 2e-3  # paper 1e-4 (from ImageNet weights); from scratch on the CPU the compact nets need more
    weight_decay: float = 1e-5
    seed: int = 0
    pretrained: str = ""  # local torchvision ResNet18/34 ImageNet file for the encoders ("" = from scratch)

    @property
    def encoder_site(self) -> str:
        return "central" if self.site.startswith("central") else "lateral"

    def config(self, modalities=MODALITIES, fusion: str = "dgf") -> dict:
        return net_config(self.encoder_site, self.preset, modalities, fusion)

    def describe(self) -> dict:
        return {"preset": self.preset, "site": self.site, "seg_epochs": self.seg_epochs,
                "joint_epochs": self.joint_epochs, "fusion_epochs": self.fusion_epochs,
                "joint_encoders": self.joint_encoders,
                "head_fraction": self.head_fraction if self.joint_encoders == "frozen" else None,
                "batch_size": self.batch_size, "optimizer": "Adam",
                "lr": self.lr, "weight_decay": self.weight_decay, "schedule": "cosine per iteration, no warm-up",
                "loss": "BCE(LNM) + sum over decoders of BCE + soft IoU (eps 1, per image); unit weights",
                "stages": "segmentation only, then segmentation + classification",
                "augmentation": "p=0.5 each: rotation +-15 deg, h-flip, crop-rescale 90-100 % area, "
                                "brightness/contrast +-0.2 (elastic omitted)",
                "pairing": "train: one random US and one random CT image per nodule per epoch; "
                           "evaluation: the images with the largest nodule area",
                "pretrained": (f"encoders from {self.pretrained}" if self.pretrained
                               else "none: trained from scratch (no ImageNet weights available offline)"),
                "seed": self.seed}


def iou_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Jaccard loss per image, averaged: 1 - (sum pg + eps) / (sum p + sum g - sum pg + eps)."""
    p = torch.sigmoid(logits).flatten(1)
    g = target.flatten(1)
    inter = (p * g).sum(1)
    return (1 - (inter + eps) / (p.sum(1) + g.sum(1) - inter + eps)).mean()


def seg_loss(maps: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    total = 0.0
    for key, logits in maps.items():
        g = targets[key]
        total = total + F.binary_cross_entropy_with_logits(logits, g) + iou_loss(logits, g)
    return total


def _seg_targets(data: CropArrays, us_rows, ct_rows, us_t: np.ndarray | None = None, ct_t: np.ndarray | None = None):
    us_t = data.us_targets[us_rows] if us_t is None else us_t
    ct_t = data.ct_targets[ct_rows] if ct_t is None else ct_t
    f = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return {"US/mask": f(us_t[:, :1]), "US/boundary": f(us_t[:, 1:2]), "CT/mask": f(ct_t[:, :1]),
            "CT/edges": f(ct_t[:, 1:2])}


def shuffled_chunks(rng: np.random.Generator, index: np.ndarray, size: int):
    """The nodules of `index` in a new random order, in chunks of `size` (a lone last nodule is dropped: BatchNorm
    and the nodule attention need company)."""
    order = rng.permutation(index)
    for start in range(0, len(order), size):
        chosen = order[start:start + size]
        if len(chosen) >= 2:
            yield chosen


def _epoch_batches(data: CropArrays, index: np.ndarray, site: str, s: DGFTrainSettings, rng: np.random.Generator,
                   augment: bool = True):
    """Batches of one epoch: one random US and one random CT image per nodule, augmented."""
    y = data.labels[site]

    def batches(_epoch: int):
        for chosen in shuffled_chunks(rng, index, s.batch_size):
            us_rows = np.array([rng.choice(data.us_of[i]) for i in chosen])
            ct_rows = np.array([rng.choice(data.ct_of[i]) for i in chosen])
            us, us_t = data.us[us_rows], data.us_targets[us_rows]
            ct, ct_t = data.ct[ct_rows], data.ct_targets[ct_rows]
            if augment:
                us, us_t = map(np.stack, zip(*(augment_pair(a, b, rng) for a, b in zip(us, us_t)), strict=True))
                ct, ct_t = map(np.stack, zip(*(augment_pair(a, b, rng) for a, b in zip(ct, ct_t)), strict=True))
            inputs = (torch.from_numpy(to_batch(us, data.constants)), torch.from_numpy(to_batch(ct, data.constants)))
            target = (torch.from_numpy(y[chosen].astype(np.float32)), _seg_targets(data, None, None, us_t, ct_t))
            yield Batch(inputs, target, len(chosen))

    return batches


def train_multitask(data: CropArrays, index: np.ndarray, s: DGFTrainSettings, modalities=MODALITIES,
                    fusion: str = "dgf", init: DGFNet | None = None, say: Say | None = None) -> DGFNet:
    """A (unimodal or fused) multi-task model, end to end: segmentation-only epochs, then joint epochs."""
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    net: DGFNet = build_net("dgfnet", s.config(modalities, fusion))
    if init is not None:
        net.load_state_dict(init.state_dict(), strict=False)
    elif s.pretrained:
        load_imagenet_encoders(net, s.pretrained)
    batches = _epoch_batches(data, index, s.site, s, rng)
    label = f"{s.site} {'+'.join(modalities)}{'' if fusion == 'none' else ' ' + fusion}"
    for stage, epochs, with_cls in (("seg", s.seg_epochs, False), ("joint", s.joint_epochs, True)):
        if epochs <= 0:
            continue
        optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        iters = epochs * int(np.ceil(len(index) / s.batch_size))
        scheduler = warmup_cosine(optimizer, max(1, iters), 0)

        def loss(model, batch: Batch, with_cls=with_cls) -> torch.Tensor:
            logit, maps = model.forward_all(*batch.inputs)
            total = seg_loss(maps, batch.target[1])
            if with_cls:
                total = total + F.binary_cross_entropy_with_logits(logit, batch.target[0])
            return total

        fit(net, optimizer, loss, batches, epochs=epochs, scheduler=scheduler,
            callbacks=[say_every(say, f"{label} [{stage}]", max(1, epochs // 2))])
    return net


@torch.no_grad()
def pooled_features(net: DGFNet, data: CropArrays, modality: str, rows: np.ndarray, chunk: int = 64) -> torch.Tensor:
    """The branch's pooled feature vectors of the given image rows (eval mode, no augmentation)."""
    net.eval()
    images = data.us if modality == "US" else data.ct
    out = []
    for start in range(0, len(rows), chunk):
        x = torch.from_numpy(to_batch(images[rows[start:start + chunk]], data.constants))
        out.append(net.branches[modality](x, segment=False)[0])
    return torch.cat(out) if out else torch.zeros(0)


def fuse_frozen(data: CropArrays, index: np.ndarray, s: DGFTrainSettings, us_net: DGFNet, ct_net: DGFNet,
                fusion: str, say: Say | None = None) -> DGFNet:
    """A fused model whose branches are the unimodal models' (frozen); the fusion and classifier are trained on
    their cached features, one random US and CT image per nodule per epoch, with the paper's batch of 30."""
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed + 1)
    net: DGFNet = build_net("dgfnet", s.config(MODALITIES, fusion))
    net.branches["US"].load_state_dict(us_net.branches["US"].state_dict())
    net.branches["CT"].load_state_dict(ct_net.branches["CT"].state_dict())
    us_rows = np.array(sorted({r for i in index for r in data.us_of[i]}))
    ct_rows = np.array(sorted({r for i in index for r in data.ct_of[i]}))
    f_us = dict(zip(us_rows.tolist(), pooled_features(net, data, "US", us_rows), strict=True))
    f_ct = dict(zip(ct_rows.tolist(), pooled_features(net, data, "CT", ct_rows), strict=True))
    y = data.labels[s.site]
    for p in net.branches.parameters():
        p.requires_grad_(False)

    def batches(_epoch: int):
        for chosen in shuffled_chunks(rng, index, s.batch_size):
            fu = torch.stack([f_us[int(rng.choice(data.us_of[i]))] for i in chosen])
            fc = torch.stack([f_ct[int(rng.choice(data.ct_of[i]))] for i in chosen])
            yield Batch((fu, fc), torch.from_numpy(y[chosen].astype(np.float32)), len(chosen))

    def loss(model, batch: Batch) -> torch.Tensor:
        fu, fc = batch.inputs
        logit = model.classifier(model.fuse({"US": fu, "CT": fc}))[:, 0]
        return F.binary_cross_entropy_with_logits(logit, batch.target)

    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    scheduler = warmup_cosine(optimizer, max(1, s.fusion_epochs * int(np.ceil(len(index) / s.batch_size))), 0)
    fit(net, optimizer, loss, batches, epochs=s.fusion_epochs, scheduler=scheduler,
        callbacks=[say_every(say, f"{s.site} fusion {fusion}", max(1, s.fusion_epochs // 2))])
    for p in net.parameters():
        p.requires_grad_(True)
    net.eval()
    return net


def fused_model(data: CropArrays, index: np.ndarray, s: DGFTrainSettings, us_net: DGFNet, ct_net: DGFNet,
                fusion: str, say: Say | None = None) -> DGFNet:
    """The fused model of the protocol: frozen branches + trained fusion, or end to end from the unimodal ones."""
    if s.joint_encoders == "frozen":
        return fuse_frozen(data, index, s, us_net, ct_net, fusion, say)
    init = build_net("dgfnet", s.config(MODALITIES, fusion))
    init.branches["US"].load_state_dict(us_net.branches["US"].state_dict())
    init.branches["CT"].load_state_dict(ct_net.branches["CT"].state_dict())
    return train_multitask(data, index, s, MODALITIES, fusion, init=init, say=say)


@torch.no_grad()
def net_scores(net: DGFNet, data: CropArrays, index: np.ndarray, context: str = "single", batch: int = 30
               ) -> np.ndarray:
    """P(LNM) of the nodules in `index` (largest-area pairing), in fixed-order batches of `batch`.

    context 'batch': the DGF nodal branch attends across each batch (the paper's test-time behaviour);
    'single': each nodule alone (the app)."""
    net.eval()
    net.set_nodule_context(context)
    us_rows, ct_rows = data.us_eval[index], data.ct_eval[index]
    out = []
    for start in range(0, len(index), batch):
        us = torch.from_numpy(to_batch(data.us[us_rows[start:start + batch]], data.constants))
        ct = torch.from_numpy(to_batch(data.ct[ct_rows[start:start + batch]], data.constants))
        out.append(torch.sigmoid(net(us, ct)).numpy())
    net.set_nodule_context("single")
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass
class FoldModels:
    """One fold's trained models: the unimodal multi-task ones and each fused one."""

    us: DGFNet
    ct: DGFNet
    fused: dict[str, DGFNet]
    seconds: float


def head_split(data: CropArrays, train: np.ndarray, site: str, fraction: float, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(encoder nodules, head nodules): a patient-grouped, stratified split of a fold's training nodules."""
    from engine.train.splits import patient_split

    y = data.labels[site][train]
    enc, head = patient_split([data.patients[i] for i in train], fraction, seed, labels=y.tolist())
    return train[enc], train[head]


def train_fold(data: CropArrays, train: np.ndarray, s: DGFTrainSettings, fusions: tuple[str, ...],
               say: Say | None = None) -> FoldModels:
    """The fold's unimodal multi-task models and fused models. With frozen branches the fusion is fitted on
    training nodules the encoders did not see (`head_fraction` of them): features of nodules an encoder was
    trained on are over-confident, and a head fitted on them learns to trust the stronger modality only."""
    started = time.perf_counter()
    encoders, heads = train, train
    if s.joint_encoders == "frozen" and s.head_fraction > 0:
        encoders, heads = head_split(data, train, s.site, s.head_fraction, s.seed)
    us_net = train_multitask(data, encoders, s, ("US",), "none", say=say)
    ct_net = train_multitask(data, encoders, s, ("CT",), "none", say=say)
    fused = {f: fused_model(data, heads, replace(s, seed=s.seed + 7), us_net, ct_net, f, say) for f in fusions}
    return FoldModels(us_net, ct_net, fused, time.perf_counter() - started)


def detached_copy(net: DGFNet) -> DGFNet:
    return copy.deepcopy(net).eval()
