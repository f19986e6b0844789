"""The full evaluation of one scored test set at one threshold: every metric with its interval, and the writers.

Intervals by default: the Wilson score interval for the proportions (accuracy, sensitivity, specificity, PPV,
NPV; x of n from the confusion counts), and the percentile bootstrap over cases stratified by truth for the AUC
and F1, which are not proportions. docs/ci_coverage.md measures why: in a study of 195 positive and 75
negative cases, at a sensitivity of 0.145 and a specificity of 0.938, the percentile bootstrap used before covered
0.946 and 0.935, the Wilson interval 0.947 and 0.950 (exact). Both choices can be changed and are recorded in the
output ('ci' and 'bootstrap' in the JSON, `ci_method` in the CSV).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.exports import csv_dict_writer, open_csv
from engine.metrics.classification import (
    _COUNT_FORMULAS,
    COUNT_METRIC_NAMES,
    METRIC_NAMES,
    PROPORTION_METRIC_NAMES,
    Counts,
    MetricCI,
    ThresholdRule,
    _dense_ranks,
    _json_float,
    _labels,
    _row_auc,
    _row_counts,
    _scores,
    auc,
    confusion_counts,
    metrics_from_counts,
    threshold_by_rule,
)
from engine.metrics.intervals import BOOTSTRAP_METHODS, PROPORTION_METHODS, proportion_ci
from engine.metrics.resampling import (
    _check_resampling,
    _chunks,
    _resample_indices,
    bootstrap_interval,
    leave_one_out,
)

EVALUATION_FORMAT = "oncolens.binary_evaluation"
EVALUATION_VERSION = 2  # 2: per-metric interval method ('ci'), stratified bootstrap and Wilson by default
CSV_COLUMNS = ("name", "metric", "value", "ci_low", "ci_high", "n_resamples_used",
               "n", "n_pos", "n_neg", "threshold", "ci_method")
METHOD_TITLES = {"wilson": "Wilson score", "wilson_cc": "Wilson score with continuity correction",
                 "clopper_pearson": "Clopper-Pearson exact", "percentile": "percentile bootstrap",
                 "bca": "BCa bootstrap"}
METRIC_TITLES = {"auc": "AUC", "accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity",
                 "ppv": "PPV", "npv": "NPV", "f1": "F1"}


def proportion_parts(name: str, counts: Counts) -> tuple[int, int]:
    """(successes, total) of a proportion metric, e.g. sensitivity = TP of TP + FN."""
    tp, fp, tn, fn = counts.tp, counts.fp, counts.tn, counts.fn
    return {"accuracy": (tp + tn, counts.n), "sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp),
            "ppv": (tp, tp + fp), "npv": (tn, tn + fn)}[name]


def proportion_metric_ci(name: str, counts: Counts, alpha: float = 0.05, method: str = "wilson") -> MetricCI:
    """A proportion metric with its binomial interval from the counts (see `engine.metrics.intervals`)."""
    x, n = proportion_parts(name, counts)
    low, high = proportion_ci(x, n, alpha, method)
    return MetricCI(float(_COUNT_FORMULAS[name](counts.tp, counts.fp, counts.tn, counts.fn)), low, high, 0, method)


def check_interval_methods(proportion_interval: str, bootstrap_method: str) -> None:
    if proportion_interval not in PROPORTION_METHODS + BOOTSTRAP_METHODS:
        raise ValueError(f"unknown proportion interval {proportion_interval!r}; known: "
                         f"{', '.join(PROPORTION_METHODS + BOOTSTRAP_METHODS)}")
    if bootstrap_method not in BOOTSTRAP_METHODS:
        raise ValueError(f"unknown bootstrap interval {bootstrap_method!r}; known: {', '.join(BOOTSTRAP_METHODS)}")


def describe_intervals(methods: Mapping[str, str], alpha: float, n_resamples: int, stratified: bool) -> str:
    """One sentence naming each metric's interval, e.g. for a table's footnote."""
    groups: dict[str, list[str]] = {}
    for name, method in methods.items():
        groups.setdefault(method, []).append(METRIC_TITLES.get(name, name))
    parts = []
    for method, names in groups.items():
        how = METHOD_TITLES.get(method, method)
        if method in BOOTSTRAP_METHODS:
            how += f" ({n_resamples} resamples of the cases{', stratified by truth' if stratified else ''})"
        parts.append(f"{how} for {', '.join(names)}")
    return f"{1 - alpha:.0%} CIs: " + "; ".join(parts) + "."


@dataclass(frozen=True)
class BinaryEvaluation:
    """Every metric of one scored test set at one threshold, each with its interval (`MetricCI.method`)."""

    n: int
    n_pos: int
    n_neg: int
    threshold: float
    counts: Counts
    auc: MetricCI
    accuracy: MetricCI
    sensitivity: MetricCI
    specificity: MetricCI
    ppv: MetricCI
    npv: MetricCI
    f1: MetricCI
    n_resamples: int
    alpha: float
    seed: int
    stratified: bool
    threshold_rule: dict[str, Any] | None = None  # ThresholdRule.to_dict() when a rule chose it
    bootstrap_method: str = "percentile"

    @property
    def metrics(self) -> dict[str, MetricCI]:
        return {name: getattr(self, name) for name in METRIC_NAMES}

    def ci_description(self) -> str:
        return describe_intervals({k: m.method for k, m in self.metrics.items()}, self.alpha, self.n_resamples,
                                  self.stratified)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        bootstrapped = [k for k, m in self.metrics.items() if m.method in BOOTSTRAP_METHODS]
        return {
            "n": self.n, "n_pos": self.n_pos, "n_neg": self.n_neg,
            "threshold": _json_float(self.threshold), "threshold_rule": self.threshold_rule,
            "counts": {"tp": self.counts.tp, "fp": self.counts.fp, "tn": self.counts.tn, "fn": self.counts.fn},
            "bootstrap": {"method": self.bootstrap_method, "n_resamples": self.n_resamples, "alpha": self.alpha,
                          "seed": self.seed, "stratified": self.stratified, "metrics": bootstrapped},
            "ci": {"alpha": self.alpha, "methods": {k: m.method for k, m in self.metrics.items()},
                   "description": self.ci_description()},
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat row per metric (CSV_COLUMNS without `name`)."""
        return [{"metric": name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                 "n_resamples_used": m.n_resamples_used, "n": self.n, "n_pos": self.n_pos,
                 "n_neg": self.n_neg, "threshold": self.threshold, "ci_method": m.method}
                for name, m in self.metrics.items()]


def evaluate_binary(y_true: Any, scores: Any, threshold: float | str | Mapping[str, Any] | ThresholdRule,
                    n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05, stratified: bool = True,
                    proportion_interval: str = "wilson", bootstrap_method: str = "percentile") -> BinaryEvaluation:
    """AUC, accuracy, sensitivity, specificity, PPV, NPV and F1 of `scores >= threshold`, with CIs.

    Proportions get `proportion_interval` ("wilson", "wilson_cc", "clopper_pearson" from the counts, or a
    bootstrap method); AUC and F1 the bootstrap with `bootstrap_method` ("percentile" or "bca"). All
    bootstrap intervals share the same resamples, stratified by truth unless `stratified=False`. `threshold`
    is a number, or a rule (see `ThresholdRule`) applied to these same cases, which is then recorded; a
    threshold tuned on the test set flatters its metrics, so prefer one fixed on validation data.
    """
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples, alpha)
    check_interval_methods(proportion_interval, bootstrap_method)
    s = _scores(scores, y.size)
    rule = None
    if isinstance(threshold, str | Mapping | ThresholdRule):
        rule = ThresholdRule.parse(threshold)
        threshold = threshold_by_rule(rule, y, s)
    threshold = float(threshold)
    calls = s >= threshold
    counts = confusion_counts(y, calls)
    point = metrics_from_counts(counts)
    point["auc"] = auc(y, s)

    ranks, n_groups = _dense_ranks(s)
    rng = np.random.default_rng(seed)
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    for rows in _chunks(n_resamples, y.size):
        idx = _resample_indices(y, rows, rng, stratified)
        y_rows = y[idx]
        replicates["auc"].append(_row_auc(y_rows, ranks[idx], n_groups))
        row_counts = _row_counts(y_rows, calls[idx])
        for name in COUNT_METRIC_NAMES:
            replicates[name].append(_COUNT_FORMULAS[name](*row_counts))
    cis = {}
    for name in METRIC_NAMES:
        if name in PROPORTION_METRIC_NAMES and proportion_interval in PROPORTION_METHODS:
            cis[name] = proportion_metric_ci(name, counts, alpha, proportion_interval)
            continue
        method = proportion_interval if name in PROPORTION_METRIC_NAMES else bootstrap_method
        jackknife = leave_one_out(name, y, s if name == "auc" else calls) if method == "bca" else None
        cis[name] = bootstrap_interval(point[name], np.concatenate(replicates[name]), alpha, method, jackknife)
    n_pos = int(np.count_nonzero(y))
    return BinaryEvaluation(
        n=int(y.size), n_pos=n_pos, n_neg=int(y.size) - n_pos, threshold=threshold, counts=counts, **cis,
        n_resamples=int(n_resamples), alpha=float(alpha), seed=int(seed), stratified=bool(stratified),
        threshold_rule=None if rule is None else rule.to_dict(), bootstrap_method=bootstrap_method,
    )


def write_evaluation(evaluations: Mapping[str, BinaryEvaluation], out_dir: str | Path,
                     stem: str) -> tuple[Path, Path]:
    """Write `<stem>.csv` (one row per (name, metric)) and `<stem>.json`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    with open_csv(csv_path) as handle:
        writer = csv_dict_writer(handle, CSV_COLUMNS)
        writer.writeheader()
        for name, evaluation in evaluations.items():
            for row in evaluation.to_rows():
                writer.writerow({"name": name, **row})
    document = {"format": EVALUATION_FORMAT, "version": EVALUATION_VERSION,
                "evaluations": {name: evaluation.to_dict() for name, evaluation in evaluations.items()}}
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return csv_path, json_path
