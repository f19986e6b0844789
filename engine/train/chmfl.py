"""CHMFL training (Peng et al.): the paper's loss and protocol through the shared `fit` loop.

Loss (Eq. 1): (1 - w) CE_class + w CE_voxel, the voxel term averaged over the box (the paper writes a sum; a sum
would outweigh the class term about 1.8 million to 1 and make w meaningless). Protocol: 6-fold cross-validation
stratified by label, every patient tested once; AUC, accuracy, sensitivity, specificity, precision and F1 from the
pooled out-of-fold probabilities at P(DM) >= 0.5 (the paper's tables fit pooled counts), with bootstrap CIs over
patients (an OncoLens addition); fold means are kept too. Out-of-fold scores come from the predictor the app runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.data import ModalityImage
from engine.io.volumes import Grid, resample
from engine.metrics.segmentation import dice
from engine.nets.chmfl import COMPACT_CONFIG, PAPER_CONFIG
from engine.predict.petct import PRIMARY_CARD, TASK, CHMFLPredictor
from engine.preprocess.petct import CT, PET, box_centre, box_grid, preprocess_petct, preprocessing_constants
from engine.registry import CardInput, ModelCard, Threshold, build_net, round_trip_fp16
from engine.train.loop import Batch, fit, say_every

SOURCE = ("Peng Y., Bi L., Kumar A., Fulham M., Feng D., Kim J., Predicting Distant Metastases in Soft-Tissue "
          "Sarcomas from PET-CT scans using Constrained Hierarchical Multi-Modality Feature Learning (CHMFL).")
LABELS = ["no distant metastasis", "distant metastasis"]
THRESHOLD_RULE = "fixed 0.5 = argmax of the softmax (the paper states no threshold)"
MODALITIES = (PET, CT)


@dataclass
class PetCtRecord:
    """One patient: PET (SUV) and CT (HU) volumes, the tumour mask (ZYX, any grid, same frame) and the label."""

    patient_id: str
    label: int
    images: dict[str, ModalityImage]
    mask: ModalityImage | None = None


@dataclass
class PetCtArrays:
    """Every record preprocessed once onto its box: x (N, 2, Z, Y, X) PET and CT, masks (N, Z, Y, X)."""

    x: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    patients: list[str]
    constants: dict
    records: list[PetCtRecord]

    def inputs(self, index: np.ndarray, modalities: Sequence[str], dims: int) -> np.ndarray:
        channels = [MODALITIES.index(m) for m in modalities]
        x = self.x[index][:, channels]
        return x if dims == 3 else np.ascontiguousarray(x[:, :, x.shape[2] // 2])

    def targets(self, index: np.ndarray, dims: int) -> np.ndarray:
        m = self.masks[index]
        return m if dims == 3 else np.ascontiguousarray(m[:, m.shape[1] // 2])


def prepare_arrays(records: list[PetCtRecord], constants: dict) -> PetCtArrays:
    """Preprocess every record exactly as the predictor does (same function, both modalities)."""
    xs, masks = [], []
    for r in records:
        box = preprocess_petct(r.images, MODALITIES, constants)
        xs.append(box.array)
        if r.mask is None:
            masks.append(np.zeros(box.array.shape[1:], np.uint8))
        else:
            masks.append(resample(r.mask.array.astype(np.uint8), Grid.of(r.mask), box.grid, order=0))
    return PetCtArrays(np.stack(xs).astype(np.float32), np.stack(masks).astype(np.int64),
                       np.array([r.label for r in records], np.int64), [r.patient_id for r in records], constants,
                       list(records))


def phantom_records(n_patients: int, seed: int) -> list[PetCtRecord]:
    from engine.phantoms.petct import CT_GRID, make_petct_dataset

    out = []
    for p in make_petct_dataset(n_patients, seed):
        mask = ModalityImage("mask", p.truth_mask(CT_GRID), CT_GRID.meta(8, "label"), "ZYX")
        out.append(PetCtRecord(p.patient_id, p.label, {PET: p.pet, CT: p.ct}, mask))
    return out


@dataclass
class CHMFLTrainSettings:
    preset: str = "compact"
    modalities: tuple[str, ...] = MODALITIES
    dims: int = 3
    head: str = "hmfl"
    decoder: str = "cfl"
    w: float = 0.5
    epochs: int = 20
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = True
    folds: int = 6
    seed: int = 0
    n_bootstrap: int = 1000

    @classmethod
    def paper(cls, **kw) -> CHMFLTrainSettings:
        """The paper's optimisation: Adam 1e-4, batch 1, 200 epochs, no augmentation."""
        return cls(**{"preset": "paper", "epochs": 200, "batch_size": 1, "lr": 1e-4, "augment": False, **kw})

    def net_config(self) -> dict:
        base = PAPER_CONFIG if self.preset == "paper" else COMPACT_CONFIG
        decoder = self.decoder if self.w > 0 else "none"  # w = 0: the decoder gets no gradient; leave it out
        return {**base, "modalities": list(self.modalities), "dims": self.dims, "head": self.head, "decoder": decoder}

    def gradcam_layer(self) -> str:
        return "fusions.4" if self.preset == "paper" else "fusions.3"

    def describe(self) -> dict:
        return {"preset": self.preset, "epochs": self.epochs, "batch_size": self.batch_size, "optimizer": "Adam",
                "lr": self.lr, "betas": [0.9, 0.999], "weight_decay": self.weight_decay,
                "schedule": "constant learning rate", "init": "He (Kaiming normal)",
                "loss": f"(1 - w) CE_class + w CE_voxel (voxel mean), w = {self.w}",
                "augmentation": ("random flips along y and x, same for PET, CT and mask" if self.augment else "none"),
                "folds": self.folds, "seed": self.seed}


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every patient: each class shuffled and dealt round-robin (4 + 4 per fold at
    the paper's 24/24)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), np.int64)
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        out[idx] = np.arange(len(idx)) % folds
    return out


def chmfl_loss(logits: torch.Tensor, target: torch.Tensor, seg_logits: torch.Tensor | None,
               seg_target: torch.Tensor | None, w: float) -> torch.Tensor:
    """(1 - w) CE_class + w CE_voxel (mean over voxels and the batch)."""
    loss = (1 - w) * F.cross_entropy(logits, target)
    if w > 0 and seg_logits is not None:
        loss = loss + w * F.cross_entropy(seg_logits, seg_target)
    return loss


def train_net(data: PetCtArrays, index: np.ndarray, s: CHMFLTrainSettings,
              say: Callable[[str], None] | None = None, label: str = "chmfl") -> torch.nn.Module:
    """Train one net on the patients in `index` through the shared loop."""
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    net = build_net("chmfl", s.net_config())
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    spatial = tuple(range(2, 2 + s.dims))

    def batches(_epoch: int):
        order = rng.permutation(index)
        for start in range(0, len(order), s.batch_size):
            chunk = order[start:start + s.batch_size]
            if len(chunk) < 2 and s.batch_size > 1:
                continue  # BatchNorm needs two samples
            x = data.inputs(chunk, s.modalities, s.dims)
            m = data.targets(chunk, s.dims)
            if s.augment:
                for axis in spatial[-2:]:
                    if rng.random() < 0.5:
                        x, m = np.flip(x, axis), np.flip(m, axis - 1)
            yield Batch(torch.from_numpy(np.ascontiguousarray(x)),
                        (torch.from_numpy(data.labels[chunk]), torch.from_numpy(np.ascontiguousarray(m))), len(chunk))

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        y, m = batch.target
        logits = model(batch.inputs)
        return chmfl_loss(logits, y, net.last_segmentation, m, s.w)

    fit(net, optimizer, loss, batches, epochs=s.epochs, callbacks=[say_every(say, label, every=max(1, s.epochs // 4))])
    round_trip_fp16(net)  # evaluate exactly the weights that ship
    return net.eval()


def provisional_card(s: CHMFLTrainSettings, name: str = PRIMARY_CARD, root: Path | None = None) -> ModelCard:
    """The card's fixed part (net, input, preprocessing, labels, Grad-CAM layer): all the predictor needs."""
    constants = preprocessing_constants(s.preset)
    size = tuple(constants["box_voxels_zyx"]) if s.dims == 3 else tuple(constants["box_voxels_zyx"][1:])
    return ModelCard(
        name=name, family="chmfl", task="distant_metastasis: no distant metastasis vs distant metastasis",
        config=s.net_config(),
        input=CardInput(tuple(s.modalities), len(s.modalities), size,
                        "PET (SUV) and CT (HU) volumes of one FDG PET-CT study, same frame of reference"),
        preprocessing=constants, labels=list(LABELS), thresholds={TASK: Threshold(0.5, THRESHOLD_RULE)},
        gradcam_layers={"fusion": s.gradcam_layer()}, training={}, evaluation={},
        weights={"file": f"{name}.safetensors"},
        description=("CHMFL: PET and CT encoders fused at every level (HMFL), a classifier on the max-pooled fused "
                     "levels and the constrained tumour-segmentation decoder (CFL); P(distant metastasis) of a "
                     "soft-tissue sarcoma, tumour mask, Grad-CAM and PET tumour measures."),
        source=SOURCE, root=root)


@dataclass
class FoldResult:
    scores: np.ndarray  # out-of-fold P(DM), one per patient
    folds: np.ndarray
    dice: np.ndarray  # per patient (NaN for 2-D variants or without a decoder)
    seconds: float
    settings: CHMFLTrainSettings
    fold_metrics: list[dict] = field(default_factory=list)


def score_patients(predictor: CHMFLPredictor, data: PetCtArrays, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(DM), tumour Dice on the box) of the patients in `index`, from their volumes through the predictor."""
    scores, dices = [], []
    for i in index:
        record = data.records[int(i)]
        images = {m: record.images[m] for m in predictor.modalities}
        if predictor.dims == 3 and predictor.net.has_decoder:
            pred = predictor.predict(images, explain=False)
            scores.append(pred.probabilities[TASK])
            dices.append(dice(pred.masks["tumor_box"], data.masks[int(i)]) if data.masks[int(i)].any() else np.nan)
        else:
            scores.append(predictor.score(images))
            dices.append(np.nan)
    return np.asarray(scores, np.float64), np.asarray(dices, np.float64)


def cross_validate(data: PetCtArrays, s: CHMFLTrainSettings, say: Callable[[str], None] | None = None,
                   label: str = "chmfl") -> FoldResult:
    """The paper's k-fold protocol: train on k-1 folds, score the held-out fold through the predictor."""
    from engine.metrics.classification import auc, binary_metrics

    started = time.perf_counter()
    folds = stratified_folds(data.labels, s.folds, s.seed)
    scores = np.zeros(len(data.labels))
    dices = np.full(len(data.labels), np.nan)
    per_fold = []
    for k in range(s.folds):
        test = np.flatnonzero(folds == k)
        net = train_net(data, np.flatnonzero(folds != k), s, say, f"{label} fold {k + 1}/{s.folds}")
        predictor = CHMFLPredictor(device="cpu", net=(net, provisional_card(s)))
        scores[test], dices[test] = score_patients(predictor, data, test)
        y = data.labels[test]
        per_fold.append({"fold": k + 1, "auc": auc(y, scores[test]), **binary_metrics(y, scores[test] >= 0.5)})
    return FoldResult(scores, folds, dices, time.perf_counter() - started, s, per_fold)


def centre_of(record: PetCtRecord) -> tuple[float, ...]:
    return tuple(float(v) for v in box_centre(record.images)[0])


__all__ = ["CHMFLTrainSettings", "FoldResult", "PetCtArrays", "PetCtRecord", "box_grid", "centre_of", "chmfl_loss",
           "cross_validate", "phantom_records", "prepare_arrays", "provisional_card", "replace", "stratified_folds",
           "train_net"]
