"""MFI-FFP training (Zhu et al., IEEE TMI 2024), in one process or under `torchrun` with DDP.

Per the paper: Adam lr 1e-3, weight decay 3e-3, batch 32, 100 epochs, 224 px inputs (the whole image
"adjusted to 224 x 224": the paper preset's preprocessing), random horizontal flip and rotation applied
identically to the three aligned images, WLI background removed (automatically here), L_All =
L_LDAM^reweighted + L_Focal + L_Intra with LDAM set as in its reference (margins rescaled so the largest is
0.5, logits x 30), 7:3 split. Not in the paper, and so our choices (each written into the card): the cosine
learning-rate schedule (the paper names none), the rotation range, the node-centred crop of the compact demo
preset, patient-level splits (nodes of one patient never straddle train and test) and the operating threshold,
the ROC point closest to (0, 1) on validation patients held out of training. The paper's figures are at
argmax; evaluations report the metrics at both (`also_at`).

Under `torchrun --nproc_per_node N` every rank draws the same epoch permutation and takes its own
slice of each global batch (batch_size / N per rank); DDP averages gradients (gloo on CPU, NCCL on
CUDA); rank 0 evaluates and writes the card.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.data import image_of
from engine.metrics.classification import threshold_closest_to_corner
from engine.metrics.evaluation import evaluate_binary
from engine.nets.mfi_ffp import COMPACT_CONFIG, PAPER_CONFIG, gradcam_layers, load_imagenet_branches
from engine.predict.lymph_node import TASK, MFIFFPPredictor, card_name
from engine.preprocess.lymph_node import NODE_MODALITIES, box_source, node_units, preprocessing_constants
from engine.registry import (
    CardInput,
    ModelCard,
    Threshold,
    build_net,
    round_trip_fp16,
    save_weights,
    write_card,
)
from engine.train.augment import augment_aligned
from engine.train.loop import Batch, check_ranks_agree, distributed, fit, say_every
from engine.train.losses import LDAM_MAX_MARGIN, LDAM_SCALE, MFILoss, ldam_margins, ldam_margins_literal
from engine.train.schedule import warmup_cosine
from engine.train.splits import patient_split

SOURCE = ("Zhu et al., Prediction of Lymph Node Metastasis in Colorectal Cancer using Intraoperative "
          "Fluorescence Multi-modal Imaging, IEEE TMI 2024 (MFI-FFP).")
LABELS = ["benign", "metastatic"]
THRESHOLD_RULE = "ROC point closest to (FPR 0, TPR 1) on validation patients"
ARGMAX = "argmax (P(metastatic) >= 0.5), the paper's operating point"
MANIFEST_COLUMNS = ("node_id", "patient_id", "wli_path", "fi_path", "pci_path", "metastatic")


@dataclass
class NodeSample:
    """One node: aligned images per modality (WLI/PCI RGB, FI grey), label 1 = metastatic."""

    node_id: str
    patient_id: str
    label: int
    images: dict[str, np.ndarray]
    bit_depths: dict[str, int] = field(default_factory=dict)


def load_node_manifest(path: str | Path) -> list[NodeSample]:
    """A hospital's CSV: node_id, patient_id, wli_path, fi_path, pci_path, metastatic (0/1).

    Paths are relative to the manifest's folder; an empty path means that modality was not captured
    (such nodes can train only the models that do not need it)."""
    from engine.io.images import read_image
    from engine.io.tables import read_csv_table

    path = Path(path)
    samples = []
    for line, row in enumerate(read_csv_table(path, MANIFEST_COLUMNS), start=2):
        where = f"{path}:{line}"
        label = (row["metastatic"] or "").strip()
        if label not in ("0", "1"):
            raise ValueError(f"{where}: column 'metastatic' must be 0 or 1, got {label!r}.")
        images, depths = {}, {}
        for m in NODE_MODALITIES:
            rel = (row[f"{m.lower()}_path"] or "").strip()
            if rel:
                image, meta = read_image(path.parent / rel)
                images[m], depths[m] = image, meta.bit_depth
        samples.append(NodeSample(row["node_id"], row["patient_id"], int(label), images, depths))
    if not samples:
        raise ValueError(f"{path}: the manifest lists no nodes.")
    return samples


def phantom_samples(n_patients: int, nodes_per_patient: int, seed: int, size: int = 224) -> list[NodeSample]:
    from engine.phantoms.lymph_node import make_node_dataset

    records = make_node_dataset(n_patients=n_patients, nodes_per_patient=nodes_per_patient, seed=seed, size=size)
    return [NodeSample(r.node_id, r.patient_id, int(r.label), dict(r.images), {m: 8 for m in r.images})
            for r in records]


@dataclass
class NodeArrays:
    """Nodes preprocessed once per crop source: (N, S, S, 9) uint8 (value * 255) per box source.

    A model's crop box is found on the first image of the card's box_order it reads (as the predictor
    does), so every modality set trains on exactly the crops it will see."""

    units: dict[str, np.ndarray]
    labels: np.ndarray
    patients: list[str]
    node_ids: list[str]
    constants: dict
    samples: list[NodeSample] | None = None  # the original images, for scoring through the predictor

    def inputs(self, index: np.ndarray, modalities: Sequence[str]) -> np.ndarray:
        units = self.units[box_source(modalities, self.constants.get("box_order"))]
        channels = [c for m in modalities for c in range(3 * NODE_MODALITIES.index(m), 3 * NODE_MODALITIES.index(m) + 3)]
        return units[index][..., channels].astype(np.float32) / 255.0


def prepare_arrays(samples: list[NodeSample], input_size: int, sources: Sequence[str] = NODE_MODALITIES,
                   crop_scale: float = 1.5, crop: str = "node") -> NodeArrays:
    """The nodes as every model of one crop mode sees them; a whole-image resize ('none') has one box for all."""
    constants = preprocessing_constants(input_size, crop_scale, crop)
    units = {}
    cropped = crop == "node"
    for source in sources if cropped else sources[:1]:
        array = np.zeros((len(samples), input_size, input_size, 9), np.uint8)
        for i, s in enumerate(samples):
            present = [m for m in NODE_MODALITIES if m in s.images]
            if cropped and source not in present:
                continue  # this node cannot serve models that find the node on `source`
            stack, _ = node_units(s.images, present, constants, s.bit_depths,
                                  box_modalities=[source] if cropped else present)
            for j, m in enumerate(present):
                k = NODE_MODALITIES.index(m)
                array[i, ..., 3 * k:3 * k + 3] = np.round(stack[..., 3 * j:3 * j + 3] * 255)
        units[source] = array
    if not cropped:
        units = dict.fromkeys(NODE_MODALITIES, array)
    return NodeArrays(units, np.array([s.label for s in samples], np.int64), [s.patient_id for s in samples],
                      [s.node_id for s in samples], constants, list(samples))


@dataclass
class MFIFFPTrainSettings:
    preset: str = "compact"  # compact (demo, CPU) or paper (224 px, 512 x 7 x 7, ViT-B/16-sized)
    crop: str = ""  # "node" (1.5 x node crop) or "none" (whole-image resize); "" = the preset's
    modalities: tuple[str, ...] = NODE_MODALITIES
    branches: dict = field(default_factory=lambda: {"WLI": "irb", "FI": "rb", "PCI": "vit"})
    fusion: str = "mff"
    loss_terms: tuple[str, ...] = ("ldam", "focal", "intra")
    alpha: float = 1.0
    beta: float = 1.0
    ldam: str = "reference"  # "literal": eq. (17) as written, unscaled (the ablation's comparison only)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 3e-3
    warmup_epochs: float = 0.0
    rotation_degrees: float = 15.0
    test_fraction: float = 0.3
    val_fraction: float = 0.2
    seed: int = 0
    n_bootstrap: int = 1000
    pretrained: dict = field(default_factory=dict)  # {"irb": path, "rb": path} local ImageNet files

    def net_config(self) -> dict:
        base = COMPACT_CONFIG if self.preset == "compact" else PAPER_CONFIG
        return {**{k: v for k, v in base.items()}, "modalities": list(self.modalities),
                "branches": {m: self.branches[m] for m in self.modalities}, "fusion": self.fusion}

    @property
    def input_size(self) -> int:
        return int(self.net_config()["input_size"])

    @property
    def crop_mode(self) -> str:
        """The paper preset resizes the whole image, as the paper does. The compact demo preset crops around the
        node: at its 80-pixel input, the phantom nodes (47-121 px across in 224-px images) would shrink to 17-43 px,
        while the crop shows every node about 53 px across, at the cost of its absolute size (the ablation table
        has both: the 'crop' and 'resize' rows)."""
        return self.crop or ("none" if self.preset == "paper" else "node")

    def augmentation(self) -> dict:
        return {"hflip": True, "rotation_degrees": self.rotation_degrees, "identical_across_modalities": True}


@dataclass
class Split:
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def describe(self, data: NodeArrays) -> dict:
        y, p = data.labels, data.patients
        return {"test_patients": sorted({p[i] for i in self.test}),
                "validation_patients": sorted({p[i] for i in self.val}),
                "n_train": int(len(self.fit)), "n_validation": int(len(self.val)), "n_test": int(len(self.test)),
                "train_positive": int(y[self.fit].sum()), "validation_positive": int(y[self.val].sum()),
                "test_positive": int(y[self.test].sum())}


def make_split(data: NodeArrays, test_fraction: float = 0.3, val_fraction: float = 0.2, seed: int = 0) -> Split:
    y = data.labels
    train_mask, test_mask = patient_split(data.patients, test_fraction, seed, labels=y.tolist())
    train_idx = np.flatnonzero(train_mask)
    fit_sub, val_sub = patient_split([data.patients[i] for i in train_idx], val_fraction, seed + 1,
                                     labels=y[train_idx].tolist())
    return Split(train_idx[fit_sub], train_idx[val_sub], np.flatnonzero(test_mask))


@dataclass
class TrainOutcome:
    net: torch.nn.Module
    threshold: float
    evaluation: object  # BinaryEvaluation at the threshold chosen on validation patients
    test_scores: np.ndarray
    split: Split
    history: list[dict]
    seconds: float
    settings: MFIFFPTrainSettings
    argmax: object = None  # BinaryEvaluation at argmax (P >= 0.5), where the paper reports ACC, F1


def to_tensor(batch: np.ndarray, constants: dict, device: torch.device | None = None) -> torch.Tensor:
    """(B, S, S, 3M) [0, 1] -> (B, 3M, S, S) standardised, channels-last (faster convolutions on CPU)."""
    m = batch.shape[-1] // 3
    mean = np.asarray(list(constants["mean"]) * m, np.float32)
    std = np.asarray(list(constants["std"]) * m, np.float32)
    x = torch.from_numpy(((batch - mean) / std).transpose(0, 3, 1, 2).copy())
    if device is not None:
        x = x.to(device)
    return x.contiguous(memory_format=torch.channels_last)


def train_mfi_ffp(data: NodeArrays, settings: MFIFFPTrainSettings, split: Split | None = None,
                  progress: Callable[[str], None] | None = None) -> TrainOutcome | None:
    """Train one configuration and evaluate it on the held-out test patients (rank 0 only returns)."""
    s = settings
    say = progress or (lambda _msg: None)
    rank, world = distributed()
    started = time.perf_counter()
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)  # same on every rank: same permutation, each rank takes its slice
    aug_rng = np.random.default_rng([s.seed, rank])
    if data.constants.get("crop") != s.crop_mode:
        raise ValueError(f"The node arrays were prepared with crop {data.constants.get('crop')!r}; these settings "
                         f"train with crop {s.crop_mode!r}. Prepare them with prepare_arrays(..., crop=...).")
    split = split or make_split(data, s.test_fraction, s.val_fraction, s.seed)
    y = data.labels
    if s.batch_size % world:
        raise ValueError(f"batch size {s.batch_size} is not divisible by the {world} processes.")
    net = build_net("mfi_ffp", s.net_config()).to(memory_format=torch.channels_last)
    if s.pretrained:
        load_imagenet_branches(net, s.pretrained)
    counts = [int((y[split.fit] == 0).sum()), int((y[split.fit] == 1).sum())]
    criterion = MFILoss(counts, tuple(s.loss_terms), alpha=s.alpha, beta=s.beta, ldam=s.ldam)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    iters = int(np.ceil(len(split.fit) / s.batch_size))
    scheduler = warmup_cosine(optimizer, max(1, s.epochs * iters), int(s.warmup_epochs * iters))
    aug = s.augmentation()

    def batches(_epoch: int):
        order = rng.permutation(split.fit)
        for start in range(0, len(order), s.batch_size):
            batch = order[start:start + s.batch_size]
            if len(batch) < 2 * world:
                continue  # BatchNorm needs more than one sample per process
            mine = batch[rank * len(batch) // world:(rank + 1) * len(batch) // world]
            stack = data.inputs(mine, s.modalities)
            x = to_tensor(np.stack([augment_aligned(u, aug_rng, aug) for u in stack]), data.constants)
            yield Batch(x, torch.from_numpy(y[mine]), len(mine))

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return criterion(model(batch.inputs), batch.target, net.last_features)

    speaker = say if rank == 0 else None
    reports = fit(net, optimizer, loss, batches, epochs=s.epochs, scheduler=scheduler,
                  callbacks=[say_every(speaker, card_name(s.modalities))], ddp=True,
                  find_unused_parameters="intra" in s.loss_terms and len(s.loss_terms) == 1)
    history = [r.to_dict() for r in reports]
    check_ranks_agree(net, speaker)
    if rank != 0:
        return None
    round_trip_fp16(net)  # evaluate exactly the weights that ship, through the predictor the app runs
    predictor = MFIFFPPredictor(s.modalities, device="cpu", net=(net, provisional_card(s, data)))
    val_scores = node_scores(predictor, data, split.val)
    threshold = float(threshold_closest_to_corner(y[split.val], val_scores))
    test_scores = node_scores(predictor, data, split.test)
    evaluation = evaluate_binary(y[split.test], test_scores, threshold, n_resamples=s.n_bootstrap, seed=s.seed)
    argmax = evaluate_binary(y[split.test], test_scores, 0.5, n_resamples=s.n_bootstrap, seed=s.seed)
    return TrainOutcome(net, threshold, evaluation, test_scores, split, history, time.perf_counter() - started, s,
                        argmax)


def provisional_card(s: MFIFFPTrainSettings, data: NodeArrays, root: Path | None = None) -> ModelCard:
    """The card's fixed part (net, input, preprocessing, labels, Grad-CAM layers) before evaluation fills in the
    threshold, training record and metrics: all the predictor needs to score validation and test nodes."""
    config = s.net_config()
    name = card_name(s.modalities)
    mods = " + ".join(s.modalities)
    return ModelCard(
        name=name,
        family="mfi_ffp",
        task="metastatic: benign vs metastatic lymph node",
        config=config,
        input=CardInput(tuple(s.modalities), 3 * len(s.modalities), (s.input_size, s.input_size),
                        "aligned images of one node: WLI RGB, FI grey (8/16-bit), PCI RGB; one size for all"),
        preprocessing=data.constants,
        labels=LABELS,
        thresholds={TASK: Threshold(0.5, "provisional, before the validation patients choose it")},
        gradcam_layers=dict(gradcam_layers(config)),
        training={}, evaluation={},
        weights={"file": f"{name}.safetensors"},
        description=(f"MFI-FFP {'tri' if len(s.modalities) == 3 else 'bi' if len(s.modalities) == 2 else 'uni'}-modal "
                     f"({mods}) lymph-node metastasis classifier, {s.fusion.upper()} fusion, "
                     f"branches {', '.join(f'{m}: {s.branches[m].upper()}' for m in s.modalities)}."),
        source=SOURCE,
        root=root,
    )


def node_scores(predictor: MFIFFPPredictor, data: NodeArrays, index: np.ndarray) -> np.ndarray:
    """P(metastatic) of the nodes in `index`, from their original images through the predictor the app runs
    (its preprocessing and net), so that what a card reports is what the app computes."""
    if data.samples is None:
        raise ValueError("These node arrays were prepared without their images; prepare them with keep_images.")
    out = []
    for i in index:
        sample = data.samples[int(i)]
        images = {m: image_of(m, sample.images[m], sample.bit_depths.get(m)) for m in predictor.modalities}
        out.append(predictor.score(images))
    return np.asarray(out, np.float32)


def loss_description(s: MFIFFPTrainSettings) -> str:
    """The card's loss entry: which terms, with LDAM as its reference sets it (or, for the ablation's comparison
    row, eq. 17 taken literally)."""
    ldam = (f"margins proportional to n_j^-1/4, rescaled so the largest is C = {LDAM_MAX_MARGIN}, logits x s = "
            f"{LDAM_SCALE:g}, as the LDAM reference code of Cao et al. 2019 sets them" if s.ldam == "reference" else
            f"margins C/n_j^0.25 with C = {LDAM_MAX_MARGIN} taken literally, no logit scale")
    return (f"terms {'+'.join(s.loss_terms)}; L_All = LDAM(reweighted; {ldam}) + {s.alpha} * Focal(kappa=2) + "
            f"{s.beta} * Intra(Pearson on fused feature vectors); class weights (0.15, 0.85)")


def build_card(outcome: TrainOutcome, data: NodeArrays, data_description: dict, command: str,
               ablation: dict | None = None, root: Path | None = None) -> ModelCard:
    s = outcome.settings
    pretrained = (", ".join(f"{k}: {Path(v).name}" for k, v in s.pretrained.items()) if s.pretrained
                  else "none: trained from scratch (no ImageNet weights available offline)")
    card = provisional_card(s, data, root)
    card.thresholds = {TASK: Threshold(round(outcome.threshold, 6), THRESHOLD_RULE)}
    card.training = {
        "data": data_description,
        "preset": s.preset,
        "pretrained": pretrained,
        "epochs": s.epochs, "batch_size": s.batch_size, "optimizer": "Adam", "lr": s.lr,
        "weight_decay": s.weight_decay,
        "schedule": "cosine annealing per iteration (our choice: the paper states no learning-rate schedule)",
        "loss": loss_description(s),
        "ldam_margins": [round(float(m), 4) for m in (ldam_margins if s.ldam == "reference" else ldam_margins_literal)(
            [int((data.labels[outcome.split.fit] == c).sum()) for c in (0, 1)])],
        "input": (f"crop '{s.crop_mode}': " + ("whole image resized (the paper's preprocessing)"
                                              if s.crop_mode == "none" else
                                              "node-centred square of 1.5 x the node's extent (our choice; the "
                                              "paper resizes the whole image)")),
        "augmentation": s.augmentation(),
        "split": "patient-level 70/30; threshold chosen on validation patients held out of training",
        **outcome.split.describe(data),
        "seed": s.seed,
        "train_seconds": round(outcome.seconds, 1),
        "regenerate": command,
    }
    card.evaluation = {
        "description": (f"Held-out test patients ({len(outcome.split.test)} nodes), operating threshold "
                        f"{outcome.threshold:.3f} chosen by: {THRESHOLD_RULE}; scored through the predictor the "
                        f"app runs. The table is at that threshold; the paper's ACC and F1 are at argmax (below). "
                        f"{outcome.evaluation.ci_description()}"),
        **outcome.evaluation.to_dict(),
        "threshold_rule": THRESHOLD_RULE,  # after the spread: the evaluation's own entry is None
        **({"also_at": {ARGMAX: outcome.argmax.to_dict()}} if outcome.argmax is not None else {}),
        **({"ablation": ablation} if ablation else {}),
    }
    return card


def save_trained(outcome: TrainOutcome, data: NodeArrays, data_description: dict, command: str,
                 ablation: dict | None = None, root: Path | None = None) -> ModelCard:
    card = build_card(outcome, data, data_description, command, ablation, root)
    save_weights(outcome.net, card, dtype="float16")
    write_card(card)
    return card
