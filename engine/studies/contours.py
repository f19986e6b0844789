"""Contours drawn by readers, scored against the truth mask and set beside the model's mask.

In a study created with `contours=True` the reader may outline the tumor with one or more polygons on
each case (stored with the answer as [[x, y], ...] polygons in image pixels, x = column, y = row). The
analysis rasterises them (even-odd rule, so a polygon drawn inside another is a hole) and scores every
reader and the study's model against the case's truth mask with the segmentation metrics of
`engine.metrics.segmentation` (Dice, FPSR, FNSR, HD95). A case read without a contour counts as an empty
mask: the reader saw no tumor to outline. Cases whose bundle has no truth mask are left out and listed.

Per rater: mean Dice with a percentile bootstrap interval over cases (stratified: frames with and without a
tumor in the truth mask are resampled separately), mean FPSR / FNSR, median HD95 (the
larger of the two directed 95th percentiles, MONAI's convention) over the cases where it is defined, with
`hd95_undefined` counting the cases where exactly one mask is empty, and the model's mean Dice minus the reader's with a two-sided paired permutation p-value (case-wise swaps of
the two masks' scores, the same test the classification metrics use).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.metrics.reader_study import MODEL_ID
from engine.metrics.resampling import bootstrap_ci, paired_permutation_test
from engine.metrics.segmentation import segmentation_metrics
from engine.seg.contours import contours_to_mask
from engine.store import Store, StoreError

PER_CASE_COLUMNS = ("arm", "rater", "case_id", "dice", "fpsr", "fnsr", "hd95_px", "truth_px", "drawn_px")


def polygons_to_mask(contour_json: str | None, shape: tuple[int, int]) -> np.ndarray:
    """A reader's stored polygons ([[x, y], ...] each) as a boolean mask of `shape`; None is an empty mask."""
    if contour_json is None:
        return np.zeros(shape, bool)
    polygons = json.loads(contour_json)
    return contours_to_mask([np.asarray(p, dtype=np.float64)[:, ::-1] for p in polygons], shape)


def _mask_named(masks: Mapping[str, np.ndarray], label: str) -> np.ndarray | None:
    """The mask for the study's task label, or the only mask when there is exactly one."""
    if label in masks:
        return np.asarray(masks[label]).astype(bool)
    return np.asarray(next(iter(masks.values()))).astype(bool) if len(masks) == 1 else None


@dataclass(frozen=True)
class CaseMasks:
    """Truth and (when the bundle holds it) the study model's mask for one case."""

    truth: np.ndarray
    model: np.ndarray | None


def load_case_masks(store: Store, case_ids: Sequence[str], label: str, model: str | None
                    ) -> tuple[dict[str, CaseMasks], dict[str, str]]:
    """Masks per case from the bundles, and the reason for every case left out."""
    masks: dict[str, CaseMasks] = {}
    missing: dict[str, str] = {}
    for case_id in case_ids:
        try:
            case = store.load_case(case_id)
        except StoreError as exc:
            missing[case_id] = f"bundle cannot be read: {exc}"
            continue
        truth = _mask_named(case.truth.masks, label) if case.truth is not None and case.truth.masks else None
        if truth is None:
            missing[case_id] = f"its bundle has no truth mask for {label!r}"
            continue
        prediction = next((p for p in reversed(case.predictions) if p.model == model and p.masks), None)
        model_mask = None if prediction is None else _mask_named(prediction.masks, label)
        if model_mask is not None and model_mask.shape != truth.shape:
            model_mask = None
        masks[case_id] = CaseMasks(truth, model_mask)
    return masks, missing


def _per_case(arm: str, rater: str, case_id: str, drawn: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    m = segmentation_metrics(drawn, truth)
    return {"arm": arm, "rater": rater, "case_id": case_id, "dice": m["dice"], "fpsr": m["fpsr"], "fnsr": m["fnsr"],
            "hd95_px": m["hd95"], "truth_px": int(truth.sum()), "drawn_px": int(drawn.sum())}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _summary(arm: str, rater: str, rows: list[dict[str, Any]], model_dice: np.ndarray | None, n_boot: int,
             n_perm: int, alpha: float, seed: int) -> dict[str, Any]:
    dice = np.array([r["dice"] for r in rows])
    hd95 = np.array([r["hd95_px"] for r in rows])
    finite = hd95[np.isfinite(hd95)]
    tumor = np.array([r["truth_px"] > 0 for r in rows])  # resampled within frames with and without tumor
    ci = bootstrap_ci(lambda _y, d: _mean(d), tumor, dice, n_boot, alpha, seed, stratified=True)
    row = {"arm": arm, "rater": rater, "n_cases": int(dice.size), "dice_mean": ci.value, "dice_ci_low": ci.ci_low,
           "dice_ci_high": ci.ci_high, "fpsr_mean": _mean(np.array([r["fpsr"] for r in rows])),
           "fnsr_mean": _mean(np.array([r["fnsr"] for r in rows])),
           "hd95_median_px": float(np.median(finite)) if finite.size else math.nan,
           "hd95_undefined": int(hd95.size - finite.size), "model_minus_rater_dice": math.nan, "p_value": math.nan}
    if model_dice is not None and rater != MODEL_ID:
        diff, p = paired_permutation_test(lambda _y, d: _mean(d), np.zeros(dice.size, int), model_dice, dice,
                                          n_perm, seed)
        row.update(model_minus_rater_dice=diff, p_value=p)
    return row


@dataclass(frozen=True)
class ContourAgreement:
    """Per-case scores and per-rater summaries of the drawn contours (one row per arm and rater)."""

    per_case: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    excluded: dict[str, str]
    notes: tuple[str, ...]


def contour_agreement(store: Store, label: str, model: str | None, case_ids: Sequence[str],
                      contours: Mapping[str, Mapping[str, Sequence[str | None]]], *, n_boot: int = 1000,
                      n_perm: int = 10000, alpha: float = 0.05, seed: int = 0) -> ContourAgreement:
    """Score the readers' contours. `contours[arm][reader]` holds the stored polygon JSON per case, in the
    order of `case_ids` (None where the reader drew nothing)."""
    masks, excluded = load_case_masks(store, case_ids, label, model)
    kept = [i for i, c in enumerate(case_ids) if c in masks]
    notes = []
    if excluded:
        notes.append(f"Contours: {len(excluded)} of {len(case_ids)} cases have no truth mask and are not scored.")
    if not kept:
        return ContourAgreement([], [], excluded, tuple(notes))
    with_model = all(masks[case_ids[i]].model is not None for i in kept)
    if not with_model:
        notes.append(f"Contours: the model {model!r} has no stored mask on every scored case; "
                     "it is not compared with the readers.")
    per_case: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    model_dice = None
    for arm, readers in contours.items():
        if with_model:
            rows = [_per_case(arm, MODEL_ID, case_ids[i], masks[case_ids[i]].model, masks[case_ids[i]].truth)
                    for i in kept]
            model_dice = np.array([r["dice"] for r in rows])
            per_case.extend(rows)
            summary.append(_summary(arm, MODEL_ID, rows, None, n_boot, n_perm, alpha, seed))
        for reader, drawn in readers.items():
            rows = []
            for i in kept:
                truth = masks[case_ids[i]].truth
                rows.append(_per_case(arm, reader, case_ids[i], polygons_to_mask(drawn[i], truth.shape), truth))
            per_case.extend(rows)
            summary.append(_summary(arm, reader, rows, model_dice, n_boot, n_perm, alpha, seed))
    return ContourAgreement(per_case, summary, excluded, tuple(notes))
