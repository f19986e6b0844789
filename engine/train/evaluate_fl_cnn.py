"""Evaluate the shipped FL-CNN cascade nets of one modality on a dataset: each net on its own (tables, CSV/JSON,
ROC PNG) and the cascade end to end (gated as the app gates it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.device import select_device
from engine.exports import write_csv
from engine.metrics.evaluation import write_evaluation
from engine.metrics.plots import plot_roc
from engine.predict.glioma import TASKS, GliomaCascadePredictor
from engine.train.fl_cnn import record_scores
from engine.train.fl_cnn_cascade import CascadeEvaluation, evaluate_cascade
from engine.train.specimen_data import SpecimenRecord, task_records


def evaluate_fl_cnn(records: list[SpecimenRecord], modality: str, out_dir: str | Path, split: str = "test",
                    n_bootstrap: int = 1000, seed: int = 0, root: Path | None = None) -> dict:
    """Score every task's net on `records` (split='test': only the card's held-out patients) at the card's
    operating threshold; write <out>/fl_cnn_<mod>.csv/.json, per-specimen scores and a ROC figure."""
    from engine.metrics.evaluation import evaluate_binary

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = GliomaCascadePredictor(modality, device=select_device(), run_all=True, root=root, backend="eager")
    evaluations, curves, points, rows = {}, {}, {}, []
    for task in TASKS:
        card = predictor.cards[task]
        recs = task_records(records, task, modality)
        if split == "test":
            test_patients = set(card.training.get("test_patients", []))
            recs = [r for r in recs if r.patient_id in test_patients]
        if not recs:
            raise ValueError(f"No {modality} specimens with a {task} label in the {split} split.")
        y = np.array([r.labels[task] for r in recs])
        scores = record_scores(predictor, task, recs)  # the app's own path, so card and app agree
        threshold = card.threshold(task)
        ev = evaluate_binary(y, scores, threshold, n_resamples=n_bootstrap, seed=seed)
        name = f"{modality}-CNN {task}"
        evaluations[name] = ev
        curves[name] = (y, scores)
        preds = scores >= threshold
        points[name] = (float(np.mean(preds[y == 0])) if (y == 0).any() else np.nan,
                        float(np.mean(preds[y == 1])) if (y == 1).any() else np.nan)
        rows += [{"task": task, "specimen_id": r.specimen_id, "patient_id": r.patient_id, "label": int(t),
                  "score": float(sc), "call": int(sc >= threshold)} for r, t, sc in zip(recs, y, scores)]
    stem = f"fl_cnn_{modality.lower()}_{split}"
    write_evaluation(evaluations, out_dir, stem)
    write_csv(out_dir / f"{stem}_per_specimen.csv", rows)
    plot_roc(curves, out_dir / f"{stem}_roc.png", operating_points=points,
             title=f"FL-CNN cascade, {modality} images ({split} split)")
    return evaluations


def evaluate_cascade_end_to_end(records: list[SpecimenRecord], modality: str, out_dir: str | Path,
                                split: str = "test", root: Path | None = None) -> tuple[CascadeEvaluation, dict]:
    """The installed cascade's gated calls on the tumor card's test patients (split='test') or on every patient,
    against truth; <out>/fl_cnn_<mod>_<split>_cascade.json/.md. Also returns, per net, how many of those patients
    it was trained or validated on (0 when the three nets share one split, as they are trained now)."""
    predictor = GliomaCascadePredictor(modality, device=select_device(), root=root, backend="eager")
    if split == "test":
        patients = set(predictor.cards["tumor"].training.get("test_patients", []))
    else:
        patients = {r.patient_id for r in records}
    seen = {task: len(patients - set(card.training.get("test_patients", []))) for task, card in predictor.cards.items()}
    evaluation = evaluate_cascade(predictor, records, patients)
    out_dir = Path(out_dir)
    stem = f"fl_cnn_{modality.lower()}_{split}_cascade"
    (out_dir / f"{stem}.json").write_text(json.dumps({**evaluation.to_dict(), "test_patients_seen_by": seen},
                                                     indent=2), encoding="utf-8")
    (out_dir / f"{stem}.md").write_text(evaluation.markdown() + "\n", encoding="utf-8")
    return evaluation, seen
