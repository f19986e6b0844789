"""Runs of DGFNet as `oncolens train|evaluate dgfnet` ask for them, from typed settings.

The protocol per site: under-sample the majority class once (seeded), 8-fold cross-validation grouped by patient;
in every fold the unimodal multi-task models (US, CT) and the fused models (concatenation, sum, product, DGF)
on them. Out-of-fold scores of the largest-area image pair give the ablation table (pooled, with CIs, beside the
paper's Tables 2-3), DGF scored both ways: in the paper's fixed-order batches of 30 and one nodule at a time
(the app). Fold 1's DGF model is installed; its card's metrics come from its held-out fold scored through the
predictor the app runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.data import HU, image_of
from engine.metrics.evaluation import evaluate_binary
from engine.predict.thyroid import SITE_TITLES, SITES, DGFNetPredictor, card_name
from engine.preprocess.us_ct import CT, ROI_KEY, US, preprocessing_constants
from engine.train.data_source import PhantomOrManifest
from engine.train.dgfnet import DGFTrainSettings, net_scores, train_fold
from engine.train.dgfnet_data import (
    CropArrays,
    grouped_folds,
    load_manifest,
    phantom_records,
    undersample,
)

Say = Callable[[str], None]
FUSIONS = ("concat", "sum", "product", "dgf")
ROW_ORDER = ("US", "CT", "concat", "sum", "product", "basic average", "DGF (batch of 30)", "DGF (single nodule)")
METRICS = ("accuracy", "auc", "sensitivity", "specificity", "ppv", "f1")
# The paper's Tables 2-3 (8-fold means): ACC, AUC, SENS, SPEC, PREC, F1.
PAPER = {
    "central_lnm": {"US": (0.782, 0.820, 0.836, 0.728, 0.754, 0.792), "CT": (0.745, 0.774, 0.737, 0.755, 0.751, 0.743),
                    "concat": (0.810, 0.853, 0.862, 0.759, 0.782, 0.819), "sum": (0.806, 0.850, 0.855, 0.757, 0.779, 0.814),
                    "product": (0.812, 0.840, 0.861, 0.763, 0.790, 0.820),
                    "basic average": (0.809, 0.848, 0.859, 0.760, 0.784, 0.818),
                    "DGF": (0.826, 0.875, 0.848, 0.803, 0.813, 0.830)},
    "lateral_lnm": {"US": (0.767, 0.785, 0.843, 0.693, 0.737, 0.784), "CT": (0.764, 0.778, 0.725, 0.797, 0.796, 0.751),
                    "concat": (0.804, 0.825, 0.860, 0.744, 0.779, 0.815), "sum": (0.808, 0.854, 0.878, 0.742, 0.771, 0.819),
                    "product": (0.811, 0.835, 0.867, 0.755, 0.784, 0.821),
                    "basic average": (0.808, 0.838, 0.868, 0.747, 0.778, 0.818),
                    "DGF": (0.838, 0.859, 0.862, 0.814, 0.835, 0.842)},
}


@dataclass(frozen=True)
class ThyroidData(PhantomOrManifest):
    """Phantom nodules (500 patients, about 1.13 nodules each, seed 2025 by default) or a nodule manifest."""

    patients: int = 500
    per_patient: int = 1
    seed: int = 2025
    PER_PATIENT_KEY: ClassVar[str] = "nodules_per_patient"


def load_records(data: ThyroidData):
    if data.source == "phantom":
        return phantom_records(data.patients, data.seed), data.describe(
            "engine.phantoms.thyroid.make_thyroid_dataset", "thyroid nodules (US + CT)")
    return load_manifest(data.source), {"kind": "manifest", "path": str(data.source)}


@dataclass
class SiteResult:
    """One site's cross-validation: out-of-fold scores per row, per-fold AUCs, folds, the installed fold's model."""

    site: str
    index: np.ndarray
    scores: dict[str, np.ndarray]
    fold_aucs: dict[str, list[float]]
    folds: list[tuple[np.ndarray, np.ndarray]]
    shipped: object  # the DGF net of fold 1
    seconds: float
    evaluations: dict = field(default_factory=dict)


def cross_validate(data: CropArrays, s: DGFTrainSettings, folds: int = 8, say: Say | None = None,
                   max_folds: int | None = None) -> SiteResult:
    from engine.metrics.classification import auc

    started = time.perf_counter()
    y = data.labels[s.site]
    index = undersample(y, s.seed)
    splits = grouped_folds(index, y, data.patients, folds, s.seed)[:max_folds]
    rows = ("US", "CT", *FUSIONS, "dgf_batch")
    oof = {r: np.full(len(y), np.nan) for r in rows}
    fold_aucs = {r: [] for r in rows}
    shipped = None
    for k, (train, test) in enumerate(splits):
        if say:
            say(f"{s.site}: fold {k + 1}/{len(splits)} ({len(train)} train, {len(test)} test nodules)")
        models = train_fold(data, train, replace(s, seed=s.seed + k), FUSIONS, say=None)
        nets = {"US": models.us, "CT": models.ct, **models.fused, "dgf_batch": models.fused["dgf"]}
        for row, net in nets.items():
            oof[row][test] = net_scores(net, data, test, "batch" if row == "dgf_batch" else "single")
            fold_aucs[row].append(auc(y[test], oof[row][test]))
        if say:
            say(f"{s.site}: fold {k + 1} AUC " + ", ".join(f"{r} {fold_aucs[r][-1]:.3f}" for r in rows)
                + f" ({models.seconds:.0f} s)")
        if k == 0:
            shipped = models.fused["dgf"]
    tested = np.concatenate([t for _, t in splits])
    return SiteResult(s.site, tested, {r: v[tested] for r, v in oof.items()}, fold_aucs, splits, shipped,
                      time.perf_counter() - started)


def _row_name(row: str) -> str:
    return {"dgf": "DGF (single nodule)", "dgf_batch": "DGF (batch of 30)"}.get(row, row)


def ablation_rows(result: SiteResult, y: np.ndarray, n_bootstrap: int = 1000) -> list[dict]:
    """Pooled out-of-fold metrics at threshold 0.5 with CIs per row, the basic-fusion average, the paper's row."""
    truth = y[result.index]
    rows = []
    for key, scores in result.scores.items():
        ev = evaluate_binary(truth, scores, 0.5, n_resamples=n_bootstrap, seed=0)
        metrics = ev.to_dict()["metrics"]
        paper_key = "DGF" if key.startswith("dgf") else key
        rows.append({"name": _row_name(key), "n": int(len(truth)), "positives": int(truth.sum()),
                     "metrics": {m: metrics[m] for m in METRICS},
                     "fold_mean_auc": float(np.mean(result.fold_aucs[key])),
                     "paper": dict(zip(("accuracy", "auc", "sensitivity", "specificity", "ppv", "f1"),
                                       PAPER[result.site][paper_key], strict=True))})
    basic = [r for r in rows if r["name"] in ("concat", "sum", "product")]
    rows.append({"name": "basic average", "n": basic[0]["n"], "positives": basic[0]["positives"],
                 "metrics": {m: {"value": _mean([r["metrics"][m]["value"] for r in basic]),
                                 "ci_low": None, "ci_high": None} for m in METRICS},
                 "fold_mean_auc": float(np.mean([r["fold_mean_auc"] for r in basic])),
                 "paper": dict(zip(METRICS, PAPER[result.site]["basic average"], strict=True))})
    return sorted(rows, key=lambda r: ROW_ORDER.index(r["name"]))


def _mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _cell(entry: dict) -> str:
    if entry.get("value") is None:
        return "n/a"
    if entry.get("ci_low") is None:
        return f"{entry['value']:.3f}"
    return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


def format_table(site: str, rows: list[dict]) -> str:
    """Markdown: each row's pooled out-of-fold metrics with 95 % CIs, then the paper's figure."""
    head = "| model | " + " | ".join(f"{m.upper() if m != 'ppv' else 'PREC'} (paper)" for m in METRICS) + \
           " | AUC fold mean |"
    lines = [f"**{SITE_TITLES[site]}** ({rows[0]['n']} nodules, {rows[0]['positives']} positive, balanced)", "",
             head, "|" + "---|" * (len(METRICS) + 2)]
    for r in rows:
        cells = [f"{_cell(r['metrics'][m])} ({r['paper'][m]:.3f})" for m in METRICS]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['fold_mean_auc']:.3f} |")
    return "\n".join(lines)


def batch_gap(result: SiteResult) -> dict:
    """How far the app's single-nodule DGF scores are from the paper's batch-of-30 scores."""
    single, batch = result.scores["dgf"], result.scores["dgf_batch"]
    return {"auc_batch": float(np.mean(result.fold_aucs["dgf_batch"])),
            "auc_single": float(np.mean(result.fold_aucs["dgf"])),
            "mean_abs_probability_difference": float(np.mean(np.abs(single - batch))),
            "max_abs_probability_difference": float(np.max(np.abs(single - batch))),
            "calls_changed": int(np.sum((single >= 0.5) != (batch >= 0.5))), "n": int(len(single))}


def nodule_images(data: CropArrays, i: int) -> dict:
    """The largest-area US and CT image of nodule i as ModalityImages with their boxes (what the app gets)."""
    record = data.records[i]
    k_us = data.us_of[i].index(int(data.us_eval[i]))
    k_ct = data.ct_of[i].index(int(data.ct_eval[i]))
    us = image_of(US, record.us[k_us])
    us.meta.extra[ROI_KEY] = record.us_boxes[k_us].to_dict()
    if k_us < len(record.us_regions) and record.us_regions[k_us] is not None:
        x0, y0, x1, y1 = record.us_regions[k_us]
        us.meta.extra["us_region"] = {"x0": x0, "y0": y0, "x1": x1, "y1": y1, "spacing_mm": None}
    ct = image_of(CT, record.ct[k_ct], units=HU)
    ct.meta.extra[ROI_KEY] = record.ct_boxes[k_ct].to_dict()
    return {US: us, CT: ct}


def write_tables(results: dict[str, dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "dgfnet_ablation.json", out / "dgfnet_ablation.md", out / "dgfnet_ablation.csv"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text("\n\n".join(r["markdown"] for r in results.values()) + "\n", encoding="utf-8")
    lines = ["site,model,metric,value,ci_low,ci_high,paper"]
    for site, r in results.items():
        for row in r["rows"]:
            for m in METRICS:
                e = row["metrics"][m]
                lines.append(f"{site},{row['name']},{m},{e['value']},{'' if e['ci_low'] is None else e['ci_low']},"
                             f"{'' if e['ci_high'] is None else e['ci_high']},{row['paper'][m]}")
    paths[2].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


__all__ = ["FUSIONS", "PAPER", "SITES", "DGFNetPredictor", "SiteResult", "ThyroidData", "ablation_rows", "batch_gap",
           "card_name", "cross_validate", "format_table", "load_records", "nodule_images", "preprocessing_constants",
           "write_tables"]
