"""The FL-CNN cascade: one patient split for its three nets, and its gated calls scored end to end."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import Prediction
from engine.train.fl_cnn_cascade import CascadeSplit, cascade_split, evaluate_cascade
from engine.train.specimen_data import TASK_LABELS, SpecimenRecord
from engine.train.splits import patient_split


def records_of(rows: list[tuple[str, int, int | None, int | None]]) -> list[SpecimenRecord]:
    image = np.zeros((8, 8), np.uint16)
    return [SpecimenRecord(f"S{i}", patient, {"FL": image}, {"FL": 16},
                           {"tumor": tumor, "grade": grade, "ki67": ki67})
            for i, (patient, tumor, grade, ki67) in enumerate(rows)]


def phantom_like(n_patients: int = 12, per_patient: int = 10, seed: int = 0) -> list[SpecimenRecord]:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for _ in range(per_patient):
            tumor = int(rng.random() < 0.7)
            grade = int(rng.random() < 0.3) if tumor else None
            ki67 = int(rng.random() < 0.4) if tumor else None
            rows.append((f"P{p:02d}", tumor, grade, ki67))
    return records_of(rows)


def test_one_split_for_several_tasks_keeps_every_class_on_both_sides():
    records = phantom_like()
    patients = [r.patient_id for r in records]
    labels = {t: [r.labels[t] for r in records] for t in ("tumor", "grade", "ki67")}
    train, test = patient_split(patients, 0.3, seed=2, labels=labels)
    assert not {p for p, t in zip(patients, test) if t} & {p for p, t in zip(patients, train) if t}
    for values in labels.values():
        known = np.array([v is not None for v in values])
        y = np.array([-1 if v is None else v for v in values])
        assert set(y[test & known]) == {0, 1} and set(y[train & known]) == {0, 1}
    # a single label list splits exactly as before the mapping form existed
    one = patient_split(patients, 0.3, seed=2, labels=labels["tumor"])
    same = patient_split(patients, 0.3, seed=2, labels={"label": labels["tumor"]})
    assert all(np.array_equal(a, b) for a, b in zip(one, same))


def test_cascade_split_gives_every_net_the_same_disjoint_patients():
    records = phantom_like()
    split = cascade_split(records, 0.3, 0.2, seed=0)
    assert not (split.fit & split.test or split.fit & split.validation or split.validation & split.test)
    assert split.fit | split.validation | split.test == {r.patient_id for r in records}
    for task in ("tumor", "grade", "ki67"):  # what each net trains and tests on comes from the one split
        task_records = [r for r in records if r.labels[task] is not None]
        fit, val, test = split.sides([r.patient_id for r in task_records])
        assert {task_records[i].patient_id for i in test} <= split.test
        assert {task_records[i].patient_id for i in fit} <= split.fit
        assert len(fit) + len(val) + len(test) == len(task_records)
    assert split.describe()["test_patients"] == sorted(split.test)
    assert cascade_split(records, 0.3, 0.2, seed=0) == split  # the same for every net and both cascades


class ScriptedCascade:
    """Answers as the app's cascade would, from scripted calls: grade and Ki-67 only for tumor calls."""

    modality, run_all = "FL", False

    def __init__(self, calls: dict[str, tuple[int, int, int]]) -> None:
        self.cards = dict.fromkeys(("tumor", "grade", "ki67"))
        self.calls = calls  # specimen id -> (tumor, grade, ki67) calls
        self.order: list[str] = []

    def predict(self, images, *, explain=True) -> Prediction:
        sid = self.order.pop(0)
        tumor, grade, ki67 = self.calls[sid]
        pred = Prediction(family="fl_cnn", variant="FL")
        pred.set_result("tumor", TASK_LABELS["tumor"][tumor], 0.9 if tumor else 0.1, 0.5)
        for task, call in (("grade", grade), ("ki67", ki67)):
            if tumor:
                pred.set_result(task, TASK_LABELS[task][call], 0.9 if call else 0.1, 0.5)
            else:
                pred.set_result(task, "not assessed (non-tumor call)", threshold=0.5)
        return pred


def test_cascade_scores_gated_calls_against_truth():
    records = records_of([("A", 1, 1, 1), ("A", 1, 0, 0), ("A", 1, 1, 0), ("B", 0, None, None), ("B", 0, None, None),
                          ("C", 1, 0, 1)])
    calls = {"S0": (1, 1, 1),  # tumor found, grade and Ki-67 right
             "S1": (1, 1, 0),  # tumor found, grade wrong, Ki-67 right
             "S2": (0, 0, 0),  # tumor missed: no grade or Ki-67 call, not correct end to end
             "S3": (1, 0, 1),  # a false tumor call: grade and Ki-67 called on a non-tumor specimen
             "S4": (0, 0, 0),
             "S5": (1, 0, 1)}  # patient C is not a test patient
    cascade = ScriptedCascade(calls)
    cascade.order = ["S0", "S1", "S2", "S3", "S4"]
    ev = evaluate_cascade(cascade, records, {"A", "B"})
    assert (ev.n_specimens, ev.n_patients) == (5, 2)
    assert ev.tumor["sensitivity"]["x"] == 2 and ev.tumor["sensitivity"]["n"] == 3
    assert ev.tumor["specificity"]["value"] == pytest.approx(0.5)
    grade, ki67 = ev.gated["grade"], ev.gated["ki67"]
    assert (grade["n"], grade["assessed"], grade["calls_on_non_tumor"]) == (3, 2, 1)
    assert grade["end_to_end"]["accuracy"]["x"] == 1 and grade["end_to_end"]["accuracy"]["n"] == 3
    assert grade["among_assessed"]["accuracy"]["value"] == pytest.approx(0.5)
    assert grade["end_to_end"]["sensitivity"]["x"] == 1 and grade["end_to_end"]["sensitivity"]["n"] == 2
    assert ki67["end_to_end"]["accuracy"]["value"] == pytest.approx(2 / 3)
    assert ki67["among_assessed"]["accuracy"]["value"] == pytest.approx(1.0)
    table = ev.markdown()
    assert "| grade | 3 | 2 | 0.333" in table and table.count("\n") == 4
    entry = ev.card_entry("title")
    assert entry["title"] == "title" and entry["results"]["gated"]["ki67"]["n"] == 3


def test_cascade_evaluation_refuses_an_ungated_predictor():
    cascade = ScriptedCascade({})
    cascade.run_all = True
    with pytest.raises(ValueError, match="as the app runs it"):
        evaluate_cascade(cascade, records_of([("A", 1, 1, 1)]), {"A"})
    cascade.run_all, cascade.cards = False, {"tumor": None}
    with pytest.raises(ValueError, match="all three nets"):
        evaluate_cascade(cascade, records_of([("A", 1, 1, 1)]), {"A"})


def test_split_sides_are_indices_of_the_given_patients():
    split = CascadeSplit(frozenset({"A"}), frozenset({"B"}), frozenset({"C"}))
    fit, val, test = split.sides(["C", "A", "B", "A", "D"])
    assert fit.tolist() == [1, 3] and val.tolist() == [2] and test.tolist() == [0]
