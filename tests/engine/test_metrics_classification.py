"""Binary classification statistics: hand-checked metrics, sklearn parity, brute-force thresholds, resampling."""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from engine.metrics import (
    BinaryEvaluation,
    Counts,
    ThresholdRule,
    accuracy,
    auc,
    binary_metrics,
    bootstrap_ci,
    confusion_counts,
    evaluate_binary,
    paired_permutation_test,
    proportion_ci,
    roc_curve_points,
    sensitivity,
    threshold_by_rule,
    threshold_closest_to_corner,
    threshold_for_sensitivity,
    threshold_youden,
    write_evaluation,
)
from engine.metrics.plots import plot_roc


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def scored_cases(n: int, seed: int, separation: float = 1.2, prevalence: float = 0.4, decimals: int | None = None):
    """Synthetic labels and scores; rounding the scores creates ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    scores = rng.normal(size=n) + separation * y
    if decimals is not None:
        scores = np.round(scores, decimals)
    return y, scores


def exact_rates(y, scores, t):
    counts = confusion_counts(y, scores >= t)
    return Fraction(counts.tp, counts.tp + counts.fn), Fraction(counts.tn, counts.tn + counts.fp)


# ---------------------------------------------------------------------------------------------------
# Counts and metrics


def test_counts_and_metrics_match_hand_computed_values(no_warnings):
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    assert confusion_counts(y_true, y_pred) == Counts(tp=3, fp=1, tn=5, fn=1)
    metrics = binary_metrics(y_true, y_pred)
    assert metrics == pytest.approx({
        "accuracy": 8 / 10, "sensitivity": 3 / 4, "specificity": 5 / 6,
        "ppv": 3 / 4, "npv": 5 / 6, "f1": 2 * 3 / (2 * 3 + 1 + 1),
    })
    assert accuracy(y_true, y_pred) == pytest.approx(0.8)
    assert sensitivity(np.array(y_true, bool), np.array(y_pred, bool)) == pytest.approx(0.75)


@pytest.mark.parametrize(("y_true", "y_pred", "undefined", "defined"), [
    ([0, 0, 0], [0, 0, 0], {"sensitivity", "ppv", "f1"}, {"accuracy": 1.0, "specificity": 1.0, "npv": 1.0}),
    ([1, 1], [1, 1], {"specificity", "npv"}, {"accuracy": 1.0, "sensitivity": 1.0, "ppv": 1.0, "f1": 1.0}),
    ([1, 0, 1], [0, 0, 0], {"ppv"}, {"sensitivity": 0.0, "f1": 0.0, "npv": 1 / 3}),
    ([], [], {"accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"}, {}),
])
def test_zero_denominators_give_nan_silently(no_warnings, y_true, y_pred, undefined, defined):
    metrics = binary_metrics(y_true, y_pred)
    assert {name for name, value in metrics.items() if math.isnan(value)} == undefined
    for name, value in defined.items():
        assert metrics[name] == pytest.approx(value)


def test_inputs_are_checked_with_a_useful_message():
    with pytest.raises(ValueError, match="scores >= threshold"):
        binary_metrics([0, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="0/1"):
        confusion_counts([0, 2], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        auc([0, 1], [0.1, np.nan])


# ---------------------------------------------------------------------------------------------------
# AUC and ROC


def test_auc_equals_sklearn_including_ties(no_warnings):
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 80))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        scores = rng.integers(0, 6, n) / 5.0 if rng.random() < 0.5 else rng.normal(size=n)
        assert auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_is_nan_with_one_class(no_warnings):
    assert math.isnan(auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(auc([0, 0], [0.1, 0.5]))


def test_roc_points_match_sklearn(no_warnings):
    y, scores = scored_cases(200, seed=1, decimals=1)
    fpr, tpr, thresholds = roc_curve_points(y, scores)
    ref_fpr, ref_tpr, ref_thresholds = roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_array_equal(thresholds[1:], ref_thresholds[1:])
    assert thresholds[0] == np.inf
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc(y, scores))


# ---------------------------------------------------------------------------------------------------
# Threshold rules, checked against brute force over every observed score


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_sensitivity", [0.5, 0.9, 0.95])
def test_threshold_for_sensitivity_is_best_specificity_brute_force(seed, min_sensitivity):
    y, scores = scored_cases(150, seed=seed, decimals=1 if seed % 2 else None)
    t = threshold_for_sensitivity(y, scores, min_sensitivity)
    sens, spec = exact_rates(y, scores, t)
    assert sens > min_sensitivity
    candidates = [(exact_rates(y, scores, c), c) for c in np.unique(scores)]
    reaching = [(rates, c) for rates, c in candidates if rates[0] > Fraction(str(min_sensitivity))]  # the decimal, not its float
    best = max(reaching, key=lambda item: (item[0][1], item[0][0]))  # specificity, then sensitivity
    assert t == best[1]


def test_threshold_for_sensitivity_prefers_the_dominating_point_on_a_specificity_tie():
    # Three positives above every negative: 0.7 and 0.8 both keep specificity 1, 0.7 is more sensitive.
    y = [1, 1, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.1]
    assert threshold_for_sensitivity(y, scores, 0.5) == 0.7


def test_threshold_for_sensitivity_is_strict():
    y = [1] * 10 + [0] * 10
    scores = np.r_[np.arange(10, 20), np.arange(10)] / 20.0
    scores[0] = 0.01  # one positive scores below every negative
    t = threshold_for_sensitivity(y, scores, 0.9)  # 9/10 is not > 0.9: must reach 10/10
    assert exact_rates(y, scores, t)[0] == 1
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        threshold_for_sensitivity(y, scores, 1.0)


@pytest.mark.parametrize("seed", range(8))
def test_closest_to_corner_and_youden_match_brute_force(seed):
    y, scores = scored_cases(120, seed=seed, decimals=1 if seed % 2 else None)
    candidates = []
    for c in np.unique(scores):
        sens, spec = exact_rates(y, scores, c)
        candidates.append(((1 - spec) ** 2 + (1 - sens) ** 2, sens + spec, sens, c))
    corner = min(candidates, key=lambda item: (item[0], -item[2]))
    youden = max(candidates, key=lambda item: (item[1], item[2]))
    assert threshold_closest_to_corner(y, scores) == corner[3]
    assert threshold_youden(y, scores) == youden[3]


def test_threshold_rules_parse_store_and_dispatch():
    y, scores = scored_cases(100, seed=4)
    expected = threshold_for_sensitivity(y, scores, 0.9)
    for rule in ("sensitivity>0.90", {"rule": "min_sensitivity", "value": 0.9},
                 ThresholdRule("min_sensitivity", 0.9)):
        assert threshold_by_rule(rule, y, scores) == expected
    assert threshold_by_rule("min_sensitivity", y, scores, value=0.9) == expected
    assert threshold_by_rule("min_sensitivity", y, scores, min_sensitivity=0.9) == expected
    assert threshold_by_rule("closest_to_corner", y, scores) == threshold_closest_to_corner(y, scores)
    assert threshold_by_rule({"rule": "youden"}, y, scores) == threshold_youden(y, scores)

    rule = ThresholdRule.parse("sensitivity > 0.9")
    assert rule.to_dict() == {"rule": "min_sensitivity", "value": 0.9}
    assert ThresholdRule.parse(json.loads(json.dumps(rule.to_dict()))) == rule
    assert str(rule) == "sensitivity>0.9"
    assert ThresholdRule.parse("youden").to_dict() == {"rule": "youden"}
    with pytest.raises(ValueError, match="unknown threshold rule"):
        ThresholdRule.parse("best")
    with pytest.raises(ValueError, match="needs a value"):
        ThresholdRule.parse("min_sensitivity")


# ---------------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_ci_contains_estimate_and_narrows_with_n(no_warnings):
    widths = {}
    for n in (50, 2000):
        y, scores = scored_cases(n, seed=n)
        ci = bootstrap_ci(auc, y, scores, n_resamples=500)
        assert ci.ci_low <= ci.value <= ci.ci_high
        assert ci.value == pytest.approx(auc(y, scores))
        widths[n] = ci.ci_high - ci.ci_low
    assert widths[2000] < widths[50] / 3


def test_vectorised_bootstrap_equals_a_plain_loop_with_the_same_resamples():
    y, scores = scored_cases(80, seed=7, decimals=1)
    calls = (scores >= 0.5).astype(int)
    for metric, x in ((auc, scores), (sensitivity, calls), ("ppv", calls)):
        fast = bootstrap_ci(metric, y, x, n_resamples=300, seed=3)
        name = metric if isinstance(metric, str) else metric.__name__
        reference = {"auc": auc, "sensitivity": sensitivity, "ppv": lambda a, b: binary_metrics(a, b)["ppv"]}[name]
        slow = bootstrap_ci(lambda a, b, f=reference: f(a, b), y, x, n_resamples=300, seed=3)
        assert fast == pytest.approx(slow)


def test_bootstrap_drops_undefined_resamples_and_reports_the_count(no_warnings):
    y = np.r_[1, np.zeros(9, int)]  # one positive: many resamples miss it
    scores = np.linspace(0, 1, 10)
    ci = bootstrap_ci(auc, y, scores, n_resamples=400, seed=0, stratified=False)
    assert 0 < ci.n_resamples_used < 400
    stratified = bootstrap_ci(auc, y, scores, n_resamples=400, seed=0)  # stratified by default
    assert stratified.n_resamples_used == 400


def test_evaluate_binary_at_600_cases_is_fast_and_consistent(no_warnings):
    y, scores = scored_cases(600, seed=11, decimals=2)
    threshold = threshold_for_sensitivity(y, scores, 0.9)
    evaluate_binary(y, scores, threshold, n_resamples=50)  # warm-up
    start = time.perf_counter()
    evaluation = evaluate_binary(y, scores, threshold, n_resamples=1000, seed=0)
    assert time.perf_counter() - start < 1.0
    point = binary_metrics(y, scores >= threshold)
    assert evaluation.n == 600 and evaluation.n_pos + evaluation.n_neg == 600
    assert evaluation.auc.value == pytest.approx(auc(y, scores))
    for name, value in point.items():
        metric = evaluation.metrics[name]
        assert metric.value == pytest.approx(value)
        assert metric.ci_low <= metric.value <= metric.ci_high
        # proportions: Wilson from the counts; F1 (and AUC): stratified percentile bootstrap
        assert (metric.method, metric.n_resamples_used) == (("percentile", 1000) if name == "f1" else ("wilson", 0))
    tp = evaluation.counts.tp
    assert (evaluation.sensitivity.ci_low, evaluation.sensitivity.ci_high) == proportion_ci(tp, evaluation.n_pos)
    assert evaluation.f1 == bootstrap_ci("f1", y, scores >= threshold, n_resamples=1000, seed=0)
    resampled = evaluate_binary(y, scores, threshold, n_resamples=1000, seed=0, proportion_interval="percentile")
    assert resampled.sensitivity == bootstrap_ci(sensitivity, y, scores >= threshold, n_resamples=1000, seed=0)
    assert "Wilson score for accuracy, sensitivity, specificity, PPV, NPV" in evaluation.ci_description()

    by_rule = evaluate_binary(y, scores, "sensitivity>0.9", n_resamples=100)
    assert by_rule.threshold == threshold
    assert by_rule.threshold_rule == {"rule": "min_sensitivity", "value": 0.9}


# ---------------------------------------------------------------------------------------------------
# Paired permutation test


def test_permutation_p_values_are_about_uniform_under_the_null():
    rng = np.random.default_rng(2024)
    p_auc, p_accuracy = [], []
    for _ in range(200):
        y = (rng.random(60) < 0.5).astype(int)
        a, b = rng.normal(size=60) + y, rng.normal(size=60) + y  # exchangeable readers
        p_auc.append(paired_permutation_test(auc, y, a, b, n_resamples=500, seed=int(rng.integers(1 << 31)))[1])
        p_accuracy.append(paired_permutation_test(accuracy, y, a > 0.5, b > 0.5, n_resamples=500,
                                                  seed=int(rng.integers(1 << 31)))[1])
    for p in (np.array(p_auc), np.array(p_accuracy)):
        assert ((p > 0) & (p <= 1)).all()
        assert 0.01 <= np.mean(p < 0.05) <= 0.10


def test_permutation_detects_a_clearly_better_predictor():
    y, better = scored_cases(300, seed=5, separation=2.5)
    worse = np.random.default_rng(6).normal(size=300) + 0.3 * y
    diff, p = paired_permutation_test(auc, y, better, worse, n_resamples=2000)
    assert diff == pytest.approx(auc(y, better) - auc(y, worse))
    assert diff > 0 and p < 0.01
    assert p == pytest.approx(1 / 2001)  # no swap reaches the observed difference
    diff, p = paired_permutation_test("sensitivity", y, better > 1, worse > 1, n_resamples=2000)
    assert diff > 0 and p < 0.01


def test_permutation_of_identical_predictors_gives_p_one():
    y, scores = scored_cases(50, seed=8)
    assert paired_permutation_test(auc, y, scores, scores, n_resamples=200) == (0.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# Writers and plots


def test_write_evaluation_round_trips(tmp_path, no_warnings):
    y, scores = scored_cases(120, seed=9)
    evaluations = {
        "FL-CNN": evaluate_binary(y, scores, 0.5, n_resamples=200),
        "all negative": evaluate_binary(y, scores, 99.0, n_resamples=200),  # PPV undefined
    }
    csv_path, json_path = write_evaluation(evaluations, tmp_path / "eval", "tumour")
    assert (csv_path.name, json_path.name) == ("tumour.csv", "tumour.json")

    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 7
    row = next(r for r in rows if r["name"] == "FL-CNN" and r["metric"] == "auc")
    assert float(row["value"]) == pytest.approx(evaluations["FL-CNN"].auc.value)
    assert float(row["ci_low"]) == pytest.approx(evaluations["FL-CNN"].auc.ci_low)
    ppv_row = next(r for r in rows if r["name"] == "all negative" and r["metric"] == "ppv")
    assert math.isnan(float(ppv_row["value"]))

    assert {r["ci_method"] for r in rows} == {"wilson", "percentile"}
    document = json.loads(json_path.read_text())
    assert document["version"] == 2
    assert document["evaluations"]["FL-CNN"]["ci"]["methods"]["specificity"] == "wilson"
    assert document["evaluations"]["FL-CNN"]["bootstrap"]["stratified"] is True
    stored = document["evaluations"]["FL-CNN"]
    assert stored == json.loads(json.dumps(evaluations["FL-CNN"].to_dict()))
    assert stored["metrics"]["f1"]["ci_high"] == pytest.approx(evaluations["FL-CNN"].f1.ci_high)
    assert document["evaluations"]["all negative"]["metrics"]["ppv"]["value"] is None


def test_evaluation_rows_cover_every_metric():
    y, scores = scored_cases(60, seed=10)
    evaluation = evaluate_binary(y, scores, 0.0, n_resamples=50)
    assert isinstance(evaluation, BinaryEvaluation)
    assert [row["metric"] for row in evaluation.to_rows()] == list(evaluation.metrics)


def test_plot_roc_writes_a_png(tmp_path):
    y, fl = scored_cases(200, seed=12, separation=2.0)
    wl = np.random.default_rng(13).normal(size=200) + 1.0 * y
    fl_eval = evaluate_binary(y, fl, "sensitivity>0.9", n_resamples=100)
    out = plot_roc(
        {"FL-CNN": (y, fl), "WL-CNN": (y, wl)}, tmp_path / "roc.png",
        operating_points={"FL-CNN": (1 - fl_eval.specificity.value, fl_eval.sensitivity.value),
                          "Reader": (0.3, 0.8)},
        auc_ci={"FL-CNN": fl_eval.auc}, title="Tumour vs non-tumour",
    )
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_names_moved_out_of_classification_still_import_from_it():
    from engine.metrics import classification, evaluation, resampling

    assert classification.evaluate_binary is evaluation.evaluate_binary
    assert classification.bootstrap_ci is resampling.bootstrap_ci
    with pytest.raises(AttributeError):
        classification.no_such_name  # noqa: B018
