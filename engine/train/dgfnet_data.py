"""DGFNet data: nodules (phantom or a hospital's CSV manifest), their crops and targets prepared once, the
paper's per-site under-sampling and the patient-grouped 8-fold cross-validation.

Manifest columns (paths relative to the CSV; one row per image pair is allowed, rows of one nodule_id are
merged into its lists of US and CT images):
`nodule_id,patient_id,us_path,ct_path,us_box,ct_box,central_lnm,lateral_lnm` and optionally `us_frame`,
`ct_slice`, `us_mask_path`, `ct_mask_path`. Boxes are `x0 y0 x1 y1` in pixels (spaces or semicolons); labels
0/1 or empty when unknown. Without a mask the segmentation targets are the ellipse inscribed in the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.preprocess.us_ct import (
    Box,
    boundary_band,
    ct_crop_unit,
    tissue_edges,
    us_crop_unit,
)

SITES = ("central_lnm", "lateral_lnm")
MANIFEST_COLUMNS = ("nodule_id", "patient_id", "us_path", "ct_path", "us_box", "ct_box", "central_lnm",
                    "lateral_lnm")


@dataclass
class NoduleRecord:
    """One nodule's images (US uint8 grey, CT HU), their boxes and masks (None: ellipse in the box), labels."""

    nodule_id: str
    patient_id: str
    labels: dict[str, int | None]
    us: list[np.ndarray]
    us_boxes: list[Box]
    ct: list[np.ndarray]
    ct_boxes: list[Box]
    us_masks: list[np.ndarray | None] = field(default_factory=list)
    ct_masks: list[np.ndarray | None] = field(default_factory=list)
    us_regions: list[tuple | None] = field(default_factory=list)


def phantom_records(n_patients: int, seed: int) -> list[NoduleRecord]:
    from engine.phantoms.thyroid import US_REGION, make_thyroid_dataset

    y0, x0, y1, x1 = US_REGION
    out = []
    for n in make_thyroid_dataset(n_patients, seed):
        out.append(NoduleRecord(n.nodule_id, n.patient_id, dict(n.labels), list(n.us),
                                [Box(*b) for b in n.us_boxes], list(n.ct), [Box(*b) for b in n.ct_boxes],
                                list(n.us_masks), list(n.ct_masks), [(x0, y0, x1, y1)] * len(n.us)))
    return out


def _ellipse(shape: tuple[int, int], box: Box) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    centre = (int(round((box.x0 + box.x1) / 2)), int(round((box.y0 + box.y1) / 2)))
    axes = (max(1, int(round(box.width / 2))), max(1, int(round(box.height / 2))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask > 0


def load_manifest(path: str | Path) -> list[NoduleRecord]:
    """Nodules from a CSV manifest (see the module docstring); errors name the line and the fix."""
    from engine.io.images import read_image
    from engine.io.tables import read_csv_table
    from engine.io.us_ct import read_ct, read_us

    path = Path(path)
    nodules: dict[str, NoduleRecord] = {}
    for line, row in enumerate(read_csv_table(path, MANIFEST_COLUMNS), start=2):
        where = f"{path}:{line}"
        labels = {}
        for site in SITES:
            value = (row.get(site) or "").strip()
            if value not in ("", "0", "1"):
                raise ValueError(f"{where}: column {site!r} must be 0, 1 or empty, got {value!r}.")
            labels[site] = int(value) if value else None
        frame = (row.get("us_frame") or "").strip()
        slice_ = (row.get("ct_slice") or "").strip()
        us, us_meta = read_us(path.parent / row["us_path"], int(frame) if frame else None)
        ct, _ = read_ct(path.parent / row["ct_path"], int(slice_) if slice_ else None)
        us_box = Box.parse(row["us_box"].replace(" ", ","), f"{where} us_box").checked(us.shape, f"{where} us_box")
        ct_box = Box.parse(row["ct_box"].replace(" ", ","), f"{where} ct_box").checked(ct.shape, f"{where} ct_box")
        masks = []
        for key, shape in (("us_mask_path", us.shape), ("ct_mask_path", ct.shape)):
            rel = (row.get(key) or "").strip()
            mask = read_image(path.parent / rel)[0] > 0 if rel else None
            if mask is not None and mask.shape[:2] != shape:
                raise ValueError(f"{where}: {key} is {mask.shape[1]} x {mask.shape[0]}, its image {shape[1]} x "
                                 f"{shape[0]}; masks must match their image.")
            masks.append(mask)
        region = us_meta.extra.get("us_region")
        record = nodules.setdefault(row["nodule_id"], NoduleRecord(row["nodule_id"], row["patient_id"], labels,
                                                                   [], [], [], []))
        record.us.append(us)
        record.us_boxes.append(us_box)
        record.us_masks.append(masks[0])
        record.us_regions.append(None if region is None else (region["x0"], region["y0"], region["x1"], region["y1"]))
        record.ct.append(ct)
        record.ct_boxes.append(ct_box)
        record.ct_masks.append(masks[1])
    if not nodules:
        raise ValueError(f"{path}: the manifest lists no nodules.")
    return list(nodules.values())


@dataclass
class CropArrays:
    """Every image's crop and targets, uint8 at the card's sizes. `us_of[i]` / `ct_of[i]`: the rows of nodule
    i's images; `us_eval[i]` / `ct_eval[i]`: the row with the largest nodule area (evaluation pairing)."""

    us: np.ndarray  # (N_us, S, S) image, [0, 255]
    us_targets: np.ndarray  # (N_us, 2, S, S) mask, boundary band
    ct: np.ndarray
    ct_targets: np.ndarray  # (N_ct, 2, S, S) mask, tissue edges
    us_of: list[list[int]]
    ct_of: list[list[int]]
    labels: dict[str, np.ndarray]  # site -> (N,) int, -1 unknown
    patients: list[str]
    nodule_ids: list[str]
    constants: dict
    records: list[NoduleRecord] | None = None

    @property
    def us_eval(self) -> np.ndarray:
        return np.array([rows[int(np.argmax([self.us_targets[r, 0].sum() for r in rows]))] for rows in self.us_of])

    @property
    def ct_eval(self) -> np.ndarray:
        return np.array([rows[int(np.argmax([self.ct_targets[r, 0].sum() for r in rows]))] for rows in self.ct_of])


def prepare_crops(records: Sequence[NoduleRecord], constants: dict) -> CropArrays:
    """Crop every image once with the predictor's own preprocessing, and build the four targets."""
    us, us_t, ct, ct_t, us_of, ct_of = [], [], [], [], [], []
    for r in records:
        rows = []
        for k, (image, box) in enumerate(zip(r.us, r.us_boxes, strict=True)):
            mask = r.us_masks[k] if k < len(r.us_masks) and r.us_masks[k] is not None else _ellipse(image.shape, box)
            region = r.us_regions[k] if k < len(r.us_regions) else None
            unit, crop, _ = us_crop_unit(image, box, constants, region)
            m = crop.cut(mask.astype(np.uint8), nearest=True)
            rows.append(len(us))
            us.append(np.round(unit * 255).astype(np.uint8))
            us_t.append(np.stack([m, boundary_band(m, constants["boundary_fraction"])]).astype(np.uint8))
        us_of.append(rows)
        rows = []
        for k, (image, box) in enumerate(zip(r.ct, r.ct_boxes, strict=True)):
            mask = r.ct_masks[k] if k < len(r.ct_masks) and r.ct_masks[k] is not None else _ellipse(image.shape, box)
            _unit, windowed, crop = ct_crop_unit(image, box, constants)
            m = crop.cut(mask.astype(np.uint8), nearest=True)
            rows.append(len(ct))
            ct.append(windowed)
            ct_t.append(np.stack([m, tissue_edges(windowed, constants)]).astype(np.uint8))
        ct_of.append(rows)
    labels = {s: np.array([-1 if r.labels.get(s) is None else int(r.labels[s]) for r in records]) for s in SITES}
    return CropArrays(np.stack(us), np.stack(us_t), np.stack(ct), np.stack(ct_t), us_of, ct_of, labels,
                      [r.patient_id for r in records], [r.nodule_id for r in records], constants, list(records))


def undersample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a balanced set: every minority nodule and as many random majority ones (once per site)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if not len(pos) or not len(neg):
        raise ValueError(f"Both classes are needed ({len(pos)} positive, {len(neg)} negative nodules).")
    rng = np.random.default_rng(seed)
    small, large = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
    return np.sort(np.concatenate([small, rng.choice(large, len(small), replace=False)]))


def grouped_folds(index: np.ndarray, labels: np.ndarray, patients: Sequence[str], k: int, seed: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of a stratified k-fold grouped by patient (a patient's nodules in one fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    groups = [patients[i] for i in index]
    return [(index[a], index[b]) for a, b in splitter.split(index, labels[index], groups)]


def to_batch(images: np.ndarray, constants: dict) -> np.ndarray:
    """(B, S, S) uint8 -> (B, 3, S, S) float32 standardised (the predictor's `to_input`, batched)."""
    unit = images.astype(np.float32)[:, None] / 255.0
    mean = np.asarray(constants["mean"], np.float32)[None, :, None, None]
    std = np.asarray(constants["std"], np.float32)[None, :, None, None]
    return np.ascontiguousarray((np.repeat(unit, 3, axis=1) - mean) / std, dtype=np.float32)


def augment_pair(image: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The paper's augmentations, each with p = 0.5: rotation +-15 deg, horizontal flip, crop-and-rescale keeping
    90-100 % of the area (one affine for image and targets; nearest for targets), brightness/contrast +-0.2.
    Elastic deformation is left out (its magnitude is not published)."""
    s = image.shape[0]
    angle = rng.uniform(-15, 15) if rng.random() < 0.5 else 0.0
    zoom = 1 / np.sqrt(rng.uniform(0.9, 1.0)) if rng.random() < 0.5 else 1.0
    matrix = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), angle, zoom)
    if rng.random() < 0.5:
        matrix = np.array([[-1, 0, s - 1], [0, 1, 0]], np.float64) @ np.vstack([matrix, [0, 0, 1]])
    if angle or zoom != 1.0 or matrix[0, 0] < 0:
        image = cv2.warpAffine(image, matrix, (s, s), flags=cv2.INTER_LINEAR)
        targets = np.stack([cv2.warpAffine(t, matrix, (s, s), flags=cv2.INTER_NEAREST) for t in targets])
    if rng.random() < 0.5:
        b, c = rng.uniform(-0.2, 0.2) * 255, rng.uniform(0.8, 1.2)
        image = np.clip((image.astype(np.float32) - 128) * c + 128 + b, 0, 255).astype(np.uint8)
    return image, targets
