"""The FL-CNN cascade end to end (Shen et al. 2021, Fig. 1b): one patient split for the three nets, and the
cascade's calls scored against truth on its test patients.

The paper split "the data for three tasks" 70/30 at patient level. Splitting each net's data on its own lets
the grade net train on patients whose specimens test the tumor net, so a cascade read of a test specimen would
pass through nets that have seen its patient. `cascade_split` makes one split for all three nets (and for both
cascades, FL and WL), stratified by every task's labels.

`evaluate_cascade` runs the app's predictor on every specimen of the test patients: CNN1 calls tumor or
non-tumor, and CNN2/CNN3 answer only for tumor calls, as the app gates them. Grade and Ki-67 are then scored
end to end on the tumor specimens that have those labels: a tumor that CNN1 missed gets no grade call and counts
as not correct; the same metrics among the specimens the cascade assessed are given beside them, and grade or
Ki-67 calls made on non-tumor specimens (false tumor calls) are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.data import image_of
from engine.metrics.intervals import proportion_ci
from engine.predict.glioma import GATED_TASKS, GliomaCascadePredictor
from engine.train.specimen_data import TASK_LABELS, SpecimenRecord
from engine.train.splits import patient_split

CASCADE_TASKS = ("tumor", "grade", "ki67")


@dataclass(frozen=True)
class CascadeSplit:
    """Patients of the cascade's training (fit), validation (threshold choice) and test sides."""

    fit: frozenset[str]
    validation: frozenset[str]
    test: frozenset[str]
    seed: int = 0

    def sides(self, patients: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of `patients` (one per sample) on the fit, validation and test sides."""
        ids = list(patients)
        return tuple(np.array([i for i, p in enumerate(ids) if p in side], np.int64)
                     for side in (self.fit, self.validation, self.test))

    def describe(self) -> dict:
        return {"test_patients": sorted(self.test), "validation_patients": sorted(self.validation),
                "split_seed": self.seed}


def cascade_split(records: Sequence[SpecimenRecord], test_fraction: float = 0.3, val_fraction: float = 0.2,
                  seed: int = 0) -> CascadeSplit:
    """One patient-level split for every task: test patients (about `test_fraction` of the specimens), then
    validation patients (about `val_fraction` of the rest), each side holding both classes of every task."""
    patients = [r.patient_id for r in records]
    labels = {task: [r.labels.get(task) for r in records] for task in CASCADE_TASKS}
    train, test = patient_split(patients, test_fraction, seed, labels=labels)
    train_idx = np.flatnonzero(train)
    fit_sub, val_sub = patient_split([patients[i] for i in train_idx], val_fraction, seed + 1,
                                     labels={t: [v[i] for i in train_idx] for t, v in labels.items()})
    side = lambda mask: frozenset(patients[i] for i in train_idx[mask])  # noqa: E731
    return CascadeSplit(side(fit_sub), side(val_sub), frozenset(patients[i] for i in np.flatnonzero(test)), seed)


def _rate(correct: int, total: int) -> dict:
    low, high = proportion_ci(correct, total)
    value = correct / total if total else None
    return {"value": value, "ci_low": None if total == 0 else low, "ci_high": None if total == 0 else high,
            "x": int(correct), "n": int(total)}


def _scores(truth: np.ndarray, called: np.ndarray, calls: np.ndarray) -> dict:
    """Accuracy, sensitivity, specificity of `calls` (1/0) against `truth` where `called`; a specimen that was
    not called counts as wrong. Wilson intervals."""
    right = called & (calls == truth)
    pos, neg = truth == 1, truth == 0
    return {"accuracy": _rate(int(right.sum()), len(truth)),
            "sensitivity": _rate(int((right & pos).sum()), int(pos.sum())),
            "specificity": _rate(int((right & neg).sum()), int(neg.sum()))}


@dataclass
class CascadeEvaluation:
    modality: str
    n_specimens: int
    n_patients: int
    tumor: dict
    gated: dict[str, dict]

    def to_dict(self) -> dict:
        return {"modality": self.modality, "n_specimens": self.n_specimens, "n_patients": self.n_patients,
                "tumor": self.tumor, "gated": self.gated}

    def markdown(self) -> str:
        def cell(e: dict) -> str:
            return "n/a" if e["value"] is None else f"{e['value']:.3f} ({e['ci_low']:.3f}-{e['ci_high']:.3f}) {e['x']}/{e['n']}"

        head = ("| task | specimens with truth | assessed by the cascade | ACC end to end | SEN end to end | "
                "SPE end to end | ACC among assessed | SEN among assessed | SPE among assessed | calls on non-tumor |")
        lines = [head, "|" + "---|" * 10]
        t = self.tumor
        lines.append(f"| tumor (CNN1) | {t['n']} | {t['n']} | {cell(t['accuracy'])} | {cell(t['sensitivity'])} | "
                     f"{cell(t['specificity'])} | | | | |")
        for task, g in self.gated.items():
            e2e, among = g["end_to_end"], g["among_assessed"]
            lines.append(f"| {task} | {g['n']} | {g['assessed']} | {cell(e2e['accuracy'])} | "
                         f"{cell(e2e['sensitivity'])} | {cell(e2e['specificity'])} | {cell(among['accuracy'])} | "
                         f"{cell(among['sensitivity'])} | {cell(among['specificity'])} | {g['calls_on_non_tumor']} |")
        return "\n".join(lines)

    def card_entry(self, title: str) -> dict:
        """For a card's evaluation: rendered as a section of its README."""
        return {"title": title, "markdown": self.markdown(), "results": self.to_dict(), "files": []}


def evaluate_cascade(predictor: GliomaCascadePredictor, records: Sequence[SpecimenRecord],
                     test_patients: Sequence[str] | frozenset[str]) -> CascadeEvaluation:
    """The cascade's gated calls (the app's predictor, explain off) on every specimen of `test_patients` that has
    the predictor's modality, against truth."""
    if predictor.run_all:
        raise ValueError("The cascade is evaluated as the app runs it: a predictor with run_all=False.")
    missing = [t for t in CASCADE_TASKS if t not in predictor.cards]
    if missing:
        raise ValueError(f"The cascade evaluation needs all three nets; missing {', '.join(missing)}.")
    modality = predictor.modality
    test = set(test_patients)
    recs = [r for r in records if r.patient_id in test and modality in r.images]
    if not recs:
        raise ValueError(f"No {modality} specimens of the test patients.")
    calls: dict[str, list[int | None]] = {t: [] for t in CASCADE_TASKS}
    for r in recs:
        pred = predictor.predict({modality: image_of(modality, r.images[modality], r.bit_depths.get(modality))},
                                 explain=False)
        for task in CASCADE_TASKS:
            result = pred.tasks[task]
            calls[task].append(None if not result.assessed else int(result.call == TASK_LABELS[task][1]))
    tumor_truth = np.array([r.labels["tumor"] for r in recs])
    tumor_calls = np.array(calls["tumor"])
    tumor = {"n": len(recs), **_scores(tumor_truth, np.ones(len(recs), bool), tumor_calls)}
    gated = {}
    for task in GATED_TASKS:
        with_truth = [i for i, r in enumerate(recs) if r.labels.get(task) is not None]
        truth = np.array([recs[i].labels[task] for i in with_truth], np.int64)
        made = [calls[task][i] for i in with_truth]
        called = np.array([c is not None for c in made], bool)
        values = np.array([-1 if c is None else c for c in made], np.int64)
        gated[task] = {
            "n": len(with_truth), "assessed": int(called.sum()),
            "end_to_end": _scores(truth, called, values),
            "among_assessed": _scores(truth[called], np.ones(int(called.sum()), bool), values[called]),
            "calls_on_non_tumor": int(sum(calls[task][i] is not None for i, r in enumerate(recs)
                                          if r.labels["tumor"] == 0)),
        }
    return CascadeEvaluation(modality, len(recs), len({r.patient_id for r in recs}), tumor, gated)
