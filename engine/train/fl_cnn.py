"""FL-CNN training and evaluation (Shen et al., EJNMMI 2021), for phantom data or a hospital's manifest.

Per the paper: EfficientNet-B0 per task and modality, weighted BCE (eq. 1-2), Adam lr 1e-3 wd 1e-4,
cosine annealing every iteration after a linear warm-up, augmentation (brightness/contrast, vertical
flip, crop with padding 16), one 70/30 patient-level split for the three tasks; tumor threshold at sensitivity
> 90%, grade and Ki-67 thresholds at the ROC point closest to (0, 1).

Not stated in the paper, and so our choices (each written into the card): the warm-up length (1 epoch), the
batch size (32), the epochs, and the 224-pixel input of the paper preset (EfficientNet-B0's native resolution;
the paper's 0.39 B FLOPs is B0's count at 224 px, but it gives no input size).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.cases.model import FL
from engine.data import image_of
from engine.metrics.classification import threshold_closest_to_corner, threshold_for_sensitivity
from engine.metrics.evaluation import evaluate_binary
from engine.nets.fl_cnn import COMPACT_CONFIG, GRADCAM_LAYER, PAPER_CONFIG, load_imagenet_backbone
from engine.predict.glioma import GliomaCascadePredictor, card_name
from engine.preprocess.common import normalise_channels
from engine.preprocess.specimen import specimen_unit
from engine.registry import (
    CardInput,
    ModelCard,
    Threshold,
    build_net,
    round_trip_fp16,
    save_weights,
    write_card,
)
from engine.train.augment import augment_specimen
from engine.train.fl_cnn_cascade import CascadeSplit, cascade_split
from engine.train.loop import Batch, fit, say_every
from engine.train.losses import class_balance_weights, weighted_bce_with_logits
from engine.train.schedule import warmup_cosine
from engine.train.specimen_data import TASK_LABELS, SpecimenRecord, task_records

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
SOURCE = ("Shen B. et al., Real-time intraoperative glioma diagnosis using fluorescence imaging and deep "
          "convolutional neural networks. Eur J Nucl Med Mol Imaging 2021 (FL-CNN).")
THRESHOLD_RULES = {"tumor": "sensitivity > 0.90 (best specificity among such thresholds)",
                   "grade": "ROC point closest to (FPR 0, TPR 1)",
                   "ki67": "ROC point closest to (FPR 0, TPR 1)"}


def preprocessing_constants(modality: str, input_size: int) -> dict:
    common = {"input_size": input_size, "pad": "zero-pad to square, then resize", "mean": IMAGENET_MEAN,
              "std": IMAGENET_STD}
    if modality == FL:
        return {"kind": "fluorescence",
                "fl_normalisation": "log1p(log_gain * counts / full_scale) / log1p(log_gain)", "log_gain": 100.0,
                "denoise_noise_threshold": 0.02, "denoise_kernel": 3,
                "autocontrast_low_percent": 1.0, "autocontrast_high_percent": 99.5, **common}
    return {"kind": "natural_rgb", **common}


def augmentation_recipe(modality: str, preset: str = "paper") -> dict:
    """The paper's recipe; the compact demo preset softens brightness/contrast jitter (factor range 1.0 in
    the paper, i.e. factors in [0, 2]), which stalled from-scratch training of the small net on phantoms."""
    jitter = 1.0 if preset == "paper" else 0.25
    if modality == FL:
        return {"brightness": jitter, "contrast": jitter, "vflip": True, "crop_padding": 16}
    return {"hflip": True, "vflip": True, "rot90": True, "crop_padding": 16}


@dataclass
class FLCNNTrainSettings:
    modality: str = FL
    task: str = "tumor"
    preset: str = "compact"  # compact (demo, CPU) or paper (EfficientNet-B0 at 224)
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    test_fraction: float = 0.3
    val_fraction: float = 0.2  # of the training patients, held out to choose the operating threshold
    seed: int = 0
    pretrained_path: str | None = None
    n_bootstrap: int = 1000
    input_size: int = 0  # 0: preset default
    net_config: dict = field(default_factory=dict)

    def resolved(self) -> FLCNNTrainSettings:
        base = COMPACT_CONFIG if self.preset == "compact" else PAPER_CONFIG
        size = self.input_size or (128 if self.preset == "compact" else 224)
        return FLCNNTrainSettings(**{**asdict(self), "input_size": size, "net_config": {**base, **self.net_config}})


@dataclass
class TrainOutcome:
    net: torch.nn.Module
    threshold: float
    evaluation: object  # BinaryEvaluation
    test_scores: np.ndarray
    test_labels: np.ndarray
    split: dict
    history: list[dict]
    seconds: float


def unit_inputs(records: list[SpecimenRecord], modality: str, constants: dict) -> np.ndarray:
    """(N, S, S, 3) float32 in [0, 1]: each image normalised, zero-padded to square and resized."""
    size = int(constants["input_size"])
    out = np.empty((len(records), size, size, 3), dtype=np.float32)
    for i, r in enumerate(records):
        out[i] = specimen_unit(r.images[modality], constants, r.bit_depths.get(modality))[0]
    return out


def to_batch(units: np.ndarray, constants: dict) -> torch.Tensor:
    return torch.from_numpy(np.stack([normalise_channels(u, constants["mean"], constants["std"]) for u in units]))


def record_scores(predictor: GliomaCascadePredictor, task: str, records: list[SpecimenRecord]) -> np.ndarray:
    """P(positive) of `task` for each record, through the predictor the app runs (its preprocessing and net),
    so that what a card reports is what the app computes."""
    modality = predictor.modality
    return np.array([predictor.probability(task, image_of(modality, r.images[modality], r.bit_depths.get(modality)))
                     for r in records], np.float32)


def choose_threshold(task: str, y: np.ndarray, scores: np.ndarray) -> float:
    if task == "tumor":
        return float(threshold_for_sensitivity(y, scores, min_sensitivity=0.9))
    return float(threshold_closest_to_corner(y, scores))


def train_fl_cnn(records: list[SpecimenRecord], settings: FLCNNTrainSettings,
                 progress: Callable[[str], None] | None = None, split: CascadeSplit | None = None) -> TrainOutcome:
    """Train one FL-CNN net (one task, one modality) and evaluate it on the held-out patients of `split`, the
    cascade's one patient split (default: `cascade_split` of all `records` with the settings' seed)."""
    s = settings.resolved()
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    split = split or cascade_split(records, s.test_fraction, s.val_fraction, s.seed)
    recs = task_records(records, s.task, s.modality)
    y = np.array([r.labels[s.task] for r in recs], dtype=np.int64)
    patients = [r.patient_id for r in recs]
    fit_idx, val_idx, test_idx = split.sides(patients)
    constants = preprocessing_constants(s.modality, s.input_size)
    recipe = augmentation_recipe(s.modality, s.preset)
    say(f"{s.modality}/{s.task}: {len(fit_idx)} train, {len(val_idx)} validation, {len(test_idx)} test specimens")
    units = unit_inputs(recs, s.modality, constants)

    net = build_net("fl_cnn", s.net_config)
    if s.pretrained_path:
        load_imagenet_backbone(net, s.pretrained_path)
    alpha_p, alpha_n = class_balance_weights(int(y[fit_idx].sum()), int((1 - y[fit_idx]).sum()))
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    iters_per_epoch = int(np.ceil(len(fit_idx) / s.batch_size))
    scheduler = warmup_cosine(optimizer, s.epochs * iters_per_epoch, int(s.warmup_epochs * iters_per_epoch))
    def batches(_epoch: int):
        order = rng.permutation(fit_idx)
        for start in range(0, len(order), s.batch_size):
            batch = order[start:start + s.batch_size]
            if len(batch) < 2:
                continue  # BatchNorm needs more than one sample
            x = to_batch(np.stack([augment_specimen(units[i], rng, recipe) for i in batch]), constants)
            yield Batch(x, torch.from_numpy(y[batch]).float(), len(batch))

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return weighted_bce_with_logits(model(batch.inputs), batch.target, alpha_p, alpha_n)

    reports = fit(net, optimizer, loss, batches, epochs=s.epochs, scheduler=scheduler,
                  callbacks=[say_every(say, f"{s.modality}/{s.task}")])
    history = [r.to_dict() for r in reports]

    round_trip_fp16(net)  # evaluate exactly the weights that ship, through the predictor the app runs
    predictor = GliomaCascadePredictor(s.modality, device="cpu", tasks=(s.task,),
                                       nets={s.task: (net, provisional_card(s))})
    val_scores = record_scores(predictor, s.task, [recs[i] for i in val_idx])
    threshold = choose_threshold(s.task, y[val_idx], val_scores)
    test_scores = record_scores(predictor, s.task, [recs[i] for i in test_idx])
    evaluation = evaluate_binary(y[test_idx], test_scores, threshold, n_resamples=s.n_bootstrap, seed=s.seed)
    sides = {
        **split.describe(),
        "n_train": int(len(fit_idx)), "n_validation": int(len(val_idx)), "n_test": int(len(test_idx)),
        "train_positive": int(y[fit_idx].sum()), "test_positive": int(y[test_idx].sum()),
    }
    return TrainOutcome(net, threshold, evaluation, test_scores, y[test_idx], sides, history,
                        time.perf_counter() - started)


def provisional_card(settings: FLCNNTrainSettings, root: Path | None = None) -> ModelCard:
    """The card's fixed part (net, input, preprocessing, labels, Grad-CAM layer) before evaluation fills in the
    threshold, training record and metrics: all the predictor needs to score validation and test specimens."""
    s = settings.resolved()
    labels = TASK_LABELS[s.task]
    return ModelCard(
        name=card_name(s.modality, s.task),
        family="fl_cnn",
        task=f"{s.task}: {labels[0]} vs {labels[1]}",
        config=s.net_config,
        input=CardInput((s.modality,), 3, (s.input_size, s.input_size),
                        "FL: grey 8/16-bit intensities; WL: RGB (grey is replicated)"),
        preprocessing=preprocessing_constants(s.modality, s.input_size),
        labels=labels,
        thresholds={s.task: Threshold(0.5, "provisional, before the validation patients choose it")},
        gradcam_layers={s.modality: GRADCAM_LAYER},
        training={}, evaluation={},
        weights={"file": f"{card_name(s.modality, s.task)}.safetensors"},
        description=(f"FL-CNN {'CNN1' if s.task == 'tumor' else 'CNN2' if s.task == 'grade' else 'CNN3'} for "
                     f"{'NIR-II fluorescence (FL-CNN)' if s.modality == FL else 'white light (WL-CNN)'} specimen "
                     f"images: {labels[1]} vs {labels[0]}."),
        source=SOURCE,
        root=root,
    )


def build_card(settings: FLCNNTrainSettings, outcome: TrainOutcome, data_description: dict,
               command: str, root: Path | None = None, cascade: dict | None = None) -> ModelCard:
    """The card of a trained net; `cascade` is the end-to-end evaluation of its cascade (`CascadeEvaluation.
    card_entry`), shown in the card of each of the three nets."""
    s = settings.resolved()
    pretrained = (f"ImageNet EfficientNet-B0 features loaded from local file {Path(s.pretrained_path).name}"
                  if s.pretrained_path else "none: trained from scratch (no ImageNet weights available offline)")
    card = provisional_card(settings, root)
    card.thresholds = {s.task: Threshold(round(outcome.threshold, 6), THRESHOLD_RULES[s.task])}
    card.training = {
        "data": data_description,
        "preset": s.preset,
        "pretrained": pretrained,
        "epochs": s.epochs, "batch_size": s.batch_size, "optimizer": "Adam", "lr": s.lr,
        "weight_decay": s.weight_decay,
        "schedule": (f"linear warm-up {s.warmup_epochs} epoch(s), cosine annealing per iteration (the paper's "
                     "schedule; the warm-up length is not stated there and is our choice)"),
        "not_in_paper": "batch size, epochs, warm-up length and input size are our choices (the paper gives none)",
        "loss": "weighted BCE, alpha_P=(|P|+|N|)/(2|P|), alpha_N=(|P|+|N|)/(2|N|)",
        "augmentation": augmentation_recipe(s.modality, s.preset),
        "split": ("one patient-level 70/30 split for the cascade's three nets and both cascades (FL, WL), "
                  "stratified by every task's labels; threshold chosen on validation patients held out of "
                  "training"),
        **outcome.split,
        "seed": s.seed,
        "train_seconds": round(outcome.seconds, 1),
        "regenerate": command,
    }
    card.evaluation = {
        "description": (f"Held-out test patients ({outcome.split['n_test']} specimens), operating threshold "
                        f"{outcome.threshold:.3f} chosen by: {THRESHOLD_RULES[s.task]}; scored through the "
                        f"predictor the app runs. {outcome.evaluation.ci_description()}"),
        **outcome.evaluation.to_dict(),
        "threshold_rule": THRESHOLD_RULES[s.task],  # after the spread: the evaluation's own entry is None
        **({"cascade": cascade} if cascade else {}),
    }
    return card


def save_trained(settings: FLCNNTrainSettings, outcome: TrainOutcome, data_description: dict,
                 command: str, root: Path | None = None, cascade: dict | None = None) -> ModelCard:
    """Write fp16 safetensors weights, config.json and the README card under <root>/<name>/ (root: the
    shipped models folder unless given)."""
    card = build_card(settings, outcome, data_description, command, root, cascade)
    save_weights(outcome.net, card, dtype="float16")
    write_card(card)
    return card
