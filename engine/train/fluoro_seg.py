"""Training of the fluorescence segmentation nets (Hou, Zou, Wang, Surg Innov 2024).

Per the paper: training regions of 512 x 512 around labelled areas of 1024 x 1024 frames,
augmentation by 90/180/270-degree rotations and horizontal/vertical flips, Adam, batch 4, 200
epochs. Not in the paper, and so our choices (written into every card): the loss (soft Dice over the
batch plus binary cross-entropy, equal weights), the learning rate (1e-3) and its per-iteration cosine
annealing.

Transfer learning: the paper pretrained the encoders on ImageNet, froze them and trained the
decoders on the fluorescence data. Here `init_state` is the pretrained net (an ImageNet encoder file when
the user passes one, which runs the paper's protocol unchanged; else a training on the other phantom
dataset, A, since no ImageNet weights can be downloaded here) and `freeze_encoder` keeps its encoder fixed,
BatchNorm statistics included, while the decoder learns; with `encoder_bn="adapt"` the statistics are
re-estimated on the fine-tuning data, as PyTorch does when only the encoder's parameters are frozen (the
paper used PyTorch 1.9 and says it froze the encoder's parameters).

The compact demo preset keeps the paper's proportions at a quarter of the scale (frames scaled to
256 pixels, 128-pixel training regions) so that the four nets train on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.metrics.segmentation import segmentation_metrics
from engine.nets.fluoro_seg import ARCH_NAMES, config_for
from engine.preprocess.fluoro import mask_to_work, prepare_frame, preprocessing_constants
from engine.registry import CardInput, ModelCard, Threshold, build_net
from engine.train.loop import Batch, fit, say_every
from engine.train.schedule import warmup_cosine

SOURCE = ("Hou Y., Zou L., Wang J. Tumor Segmentation in Intraoperative Fluorescence Images Based on Transfer "
          "Learning and Convolutional Neural Networks. Surgical Innovation 2024.")
MANIFEST_COLUMNS = ("frame_id", "image_path", "mask_path", "dataset")
PRESET_SIZES = {"paper": (1024, 512), "compact": (256, 128)}  # (work size, training crop)
PHANTOM_COUNTS = {"A": 61, "B": 106, "C": 24}  # the paper's ABFM, DTHP and DTHL frame counts


@dataclass
class SegSample:
    """One frame with its truth mask, as loaded (original resolution and bit depth)."""

    frame_id: str
    dataset: str
    image: np.ndarray
    mask: np.ndarray
    bit_depth: int | None = None
    spacing_mm: tuple[float, float] | None = None
    group: str = ""  # e.g. tumor type, for the per-group table


def load_fluoro_manifest(path: str | Path) -> list[SegSample]:
    """A hospital's CSV: frame_id, image_path, mask_path, dataset (e.g. A/B/C or device names), and
    optionally group (tumor type) and spacing_mm (pixel size). Paths are relative to the manifest;
    masks are images where non-zero means tumor and must match their frame's size."""
    from engine.io.images import read_image
    from engine.io.tables import read_csv_table

    path = Path(path)
    rows = read_csv_table(path, MANIFEST_COLUMNS,
                          expected=f"{', '.join(MANIFEST_COLUMNS)} (optional: group, spacing_mm)")
    samples = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        image, meta = read_image(path.parent / row["image_path"].strip())
        mask_image, _ = read_image(path.parent / row["mask_path"].strip())
        mask = (mask_image if mask_image.ndim == 2 else mask_image.max(axis=2)) > 0
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{where}: mask {row['mask_path']} is {mask.shape[1]}x{mask.shape[0]} but frame "
                             f"{row['image_path']} is {image.shape[1]}x{image.shape[0]}; they must match.")
        spacing = (row.get("spacing_mm") or "").strip()
        try:
            spacing_mm = (float(spacing), float(spacing)) if spacing else meta.spacing
        except ValueError:
            raise ValueError(f"{where}: spacing_mm must be a number, got {spacing!r}.") from None
        samples.append(SegSample(row["frame_id"].strip(), row["dataset"].strip(), image, mask,
                                 meta.bit_depth, spacing_mm, (row.get("group") or "").strip()))
    if not samples:
        raise ValueError(f"{path}: the manifest lists no frames.")
    return samples


def phantom_group(info: dict) -> str:
    """Phantom stand-in for the paper's per-tumor-type table: the kind of uptake the frame shows."""
    if info.get("rim_lesions", 0):
        return "rim-type uptake"
    return "multiple tumors" if info.get("n_lesions", 1) > 1 else "single solid tumor"


def phantom_seg_samples(counts: dict[str, int] | None = None, seed: int = 2024, size: int = 1024) -> list[SegSample]:
    from engine.phantoms.fluoro_frames import make_fluoro_dataset

    samples = []
    for key, n in (counts or PHANTOM_COUNTS).items():
        for f in make_fluoro_dataset(key, n, seed=seed, size=size):
            samples.append(SegSample(f.frame_id, key, f.image, f.mask, f.bit_depth, f.spacing_mm, phantom_group(f.info)))
    return samples


@dataclass
class SegArrays:
    """Frames prepared once at work scale: standardised grey (float32) and truth (bool)."""

    samples: list[SegSample]
    x: list[np.ndarray]
    y: list[np.ndarray]
    constants: dict
    preset: str = "compact"

    def where(self, dataset: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.samples) if s.dataset == dataset], np.int64)

    @property
    def datasets(self) -> list[str]:
        return sorted({s.dataset for s in self.samples})


def prepare_seg_arrays(samples: Sequence[SegSample], preset: str = "compact") -> SegArrays:
    work, crop = PRESET_SIZES[preset]
    constants = preprocessing_constants(work, crop)
    xs, ys = [], []
    for s in samples:
        x, geometry = prepare_frame(s.image, constants, s.bit_depth)
        xs.append(x)
        ys.append(mask_to_work(s.mask, geometry))
    return SegArrays(list(samples), xs, ys, constants, preset)


@dataclass
class SegTrainSettings:
    arch: str = "unetplusplus"
    preset: str = "compact"
    epochs: int = 200
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    roi_fraction: float = 0.8  # share of crops centred near labelled tumor; the rest anywhere, so that the
    # net also sees tumor-free parts of the frame it will read whole at inference
    freeze_encoder: bool = False
    encoder_bn: str = "frozen"  # a frozen encoder's BatchNorm statistics: frozen, or adapt (re-estimated on the data)
    seed: int = 0

    @property
    def crop_size(self) -> int:
        return PRESET_SIZES[self.preset][1]

    def net_config(self) -> dict:
        return config_for(self.arch, self.preset)

    def augmentation(self) -> dict:
        return {"rotations_degrees": [0, 90, 180, 270], "hflip": True, "vflip": True,
                "crop": f"{self.crop_size} px region around labelled tumor ({self.roi_fraction:.0%} of crops)"}


def roi_crop(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator, roi: bool) -> tuple[np.ndarray, np.ndarray]:
    """A size x size region: around a random tumor pixel (jittered by a quarter of the side) when `roi`
    and the frame has tumor, else anywhere. Frames smaller than `size` are padded with edge values."""
    h, w = x.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        x = np.pad(x, ((0, ph), (0, pw)), mode="edge")
        y = np.pad(y, ((0, ph), (0, pw)))
        h, w = x.shape
    if roi and y.any():
        ys, xs = np.nonzero(y)
        k = rng.integers(len(ys))
        jitter = rng.integers(-size // 4, size // 4 + 1, 2)
        cy, cx = ys[k] + jitter[0], xs[k] + jitter[1]
        top, left = int(np.clip(cy - size // 2, 0, h - size)), int(np.clip(cx - size // 2, 0, w - size))
    else:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return x[top:top + size, left:left + size], y[top:top + size, left:left + size]


def dihedral(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The paper's augmentation: a rotation by 0/90/180/270 degrees and optional horizontal and vertical
    flips, the same for frame and mask."""
    k = int(rng.integers(4))
    x, y = np.rot90(x, k), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < 0.5:
        x, y = x[::-1], y[::-1]
    return x, y


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice over the batch plus binary cross-entropy (mean), equal weights."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = (2 * inter + smooth) / (prob.sum() + target.sum() + smooth)
    return (1 - dice) + F.binary_cross_entropy_with_logits(logits, target)


def _frames_per_epoch(n: int, batch_size: int) -> int:
    return n - 1 if n > 1 and n % batch_size == 1 else n


def batches(data: SegArrays, index: np.ndarray, settings: SegTrainSettings, rng: np.random.Generator):
    """Shuffled batches of augmented crops. A last batch of a single frame is left out (that frame comes in
    another place of the next epoch's order): BatchNorm after a global pooling, as in DeepLabv3+'s ASPP,
    cannot train on one sample."""
    order = rng.permutation(index)[:_frames_per_epoch(len(index), settings.batch_size)]
    for start in range(0, len(order), settings.batch_size):
        xs, ys = [], []
        for i in order[start:start + settings.batch_size]:
            x, y = roi_crop(data.x[i], data.y[i], settings.crop_size, rng, rng.random() < settings.roi_fraction)
            x, y = dihedral(x, y, rng)
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y, dtype=np.float32))
        yield torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])


@dataclass
class SegOutcome:
    net: torch.nn.Module
    settings: SegTrainSettings
    history: list[dict]
    seconds: float
    n_train: int
    init: str = "random"  # or where the encoder came from


def train_seg(data: SegArrays, index: np.ndarray, settings: SegTrainSettings, init_state: dict | None = None,
              init: str = "random", progress: Callable[[str], None] | None = None,
              device: str | torch.device = "cpu") -> SegOutcome:
    """Train one net on the frames `index` of `data`; `init_state` (a state dict of the same net) starts it
    from a pretrained net, whose encoder stays fixed when settings.freeze_encoder. The net stays on `device`
    (crops are cut on the CPU and sent there batch by batch)."""
    if len(index) == 0:
        raise ValueError("No training frames.")
    if settings.freeze_encoder and init_state is None:
        raise ValueError("Freezing the encoder needs pretrained weights (init_state).")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = torch.device(device)
    net = build_net("fluoro_seg", settings.net_config())
    if init_state is not None:
        net.load_state_dict(init_state)
    net.to(device)
    net.freeze_encoder(settings.freeze_encoder, settings.encoder_bn)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * int(np.ceil(_frames_per_epoch(len(index), settings.batch_size) / settings.batch_size))
    schedule = warmup_cosine(optimizer, steps, 0)
    start = time.perf_counter()

    def epoch_batches(_epoch: int):
        for x, y in batches(data, index, settings, rng):
            yield Batch(x, y, int(x.shape[0]))

    reports = fit(net, optimizer, lambda model, b: dice_bce_loss(model(b.inputs), b.target), epoch_batches,
                  epochs=settings.epochs, scheduler=schedule, device=device,
                  callbacks=[say_every(progress, ARCH_NAMES[settings.arch], max(1, settings.epochs // 5))])
    history = [{"epoch": r.epoch, "loss": round(r.loss, 5)} for r in reports]
    net.eval()
    return SegOutcome(net, settings, history, time.perf_counter() - start, len(index), init)


@torch.no_grad()
def work_probabilities(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Sigmoid probabilities at work scale for one prepared frame (H, W), on whatever device the net is."""
    net.eval()
    device = next(net.parameters()).device
    return torch.sigmoid(net(torch.from_numpy(x)[None, None].to(device))).cpu().numpy()[0, 0]


def frame_mask(net: torch.nn.Module, sample: SegSample, constants: dict) -> np.ndarray:
    """The net's tumor mask for a frame, at the frame's own resolution."""
    x, geometry = prepare_frame(sample.image, constants, sample.bit_depth)
    return geometry.to_frame(work_probabilities(net, x)) >= float(constants.get("threshold", 0.5))


def metric_row(pred: np.ndarray, sample: SegSample, **labels) -> dict:
    """Per-image metrics at the frame's resolution (pixels, and mm when the spacing is known)."""
    row = {**labels, "dataset": sample.dataset, "frame_id": sample.frame_id, "group": sample.group}
    row.update(segmentation_metrics(pred, sample.mask))
    if sample.spacing_mm:
        mm = segmentation_metrics(pred, sample.mask, spacing=sample.spacing_mm)
        row["hausdorff_mm"], row["hd95_mm"] = mm["hausdorff"], mm["hd95"]
    row["pred_pixels"], row["truth_pixels"] = int(pred.sum()), int(sample.mask.sum())
    return row


def seg_card(arch: str, settings: SegTrainSettings, constants: dict, root: Path | None = None) -> ModelCard:
    """A segmentation card's fixed part (net, input, preprocessing, labels, pixel threshold): all the predictor
    needs; training fills in the training record and the metrics before it is written."""
    from engine.predict.fluoro import MODALITY, STRUCTURE, card_name

    work = constants["work_size"]
    return ModelCard(
        name=card_name(arch), family="fluoro_seg", task="tumor segmentation of an intraoperative NIR frame",
        config=replace(settings, arch=arch).net_config(),
        input=CardInput((MODALITY,), 1, (work, work),
                        "one grey NIR fluorescence frame of any size (8/12/16-bit; RGB video grabs are averaged)"),
        preprocessing=constants, labels=["background", STRUCTURE],
        thresholds={STRUCTURE: Threshold(float(constants.get("threshold", 0.5)),
                                         "fixed 0.5 on the pixel probability (the net was trained with sigmoid "
                                         "outputs; not tuned)")},
        gradcam_layers={}, training={}, evaluation={},
        weights={"file": f"{card_name(arch)}.safetensors"},
        description=(f"{ARCH_NAMES[arch]} ({settings.preset} configuration) for tumor segmentation in NIR "
                     "fluorescence frames, one grey input channel, one tumor logit."),
        source=SOURCE, root=root)


def evaluate_net(model: torch.nn.Module, data: SegArrays, index: Sequence[int], **labels) -> list[dict]:
    """Per-image rows for the frames `index`: each frame goes through the predictor the app runs (its
    preprocessing, net and threshold), metrics at full resolution. `labels` (method, net, fold) are copied into
    every row."""
    from engine.data import image_of
    from engine.predict.fluoro import MODALITY, STRUCTURE, FluoroSegPredictor

    card = seg_card(model.arch, SegTrainSettings(arch=model.arch, preset=data.preset), data.constants)
    predictor = FluoroSegPredictor(model.arch, device=next(model.parameters()).device, net=(model, card))
    rows = []
    for i in index:
        s = data.samples[i]
        frame = image_of(MODALITY, s.image, s.bit_depth, spacing=s.spacing_mm)
        prob, _timings = predictor.probabilities(frame.array, frame.meta.bit_depth)
        rows.append(metric_row(prob >= card.threshold(STRUCTURE), s, **labels))
    return rows


SCHEDULE = "cosine annealing per iteration (our choice: the paper gives no learning rate or schedule)"
LOSS = "soft Dice (batch) + binary cross-entropy, equal weights (our choice: the paper does not state its loss)"


def describe_settings(settings: SegTrainSettings) -> dict:
    return {**asdict(settings), "crop_size": settings.crop_size, "optimizer": "Adam (the paper's)",
            "schedule": SCHEDULE, "loss": LOSS, "augmentation": settings.augmentation()}


@dataclass
class Pretrained:
    """Where a transfer model's encoder came from."""

    state: dict
    description: str
    extra: dict = field(default_factory=dict)
