"""Binary classification statistics: counts, metrics, AUC, threshold rules, bootstrap CIs, paired tests.

Plain functions on 1-D numpy arrays (labels 0/1, scores where higher means "more positive", a case is
called positive when `score >= threshold`). Every ratio whose denominator is 0 is NaN, never a warning.
Resampling is vectorised: each known metric has a row-wise form that scores a whole matrix of resamples
at once; any other callable still works, one resample at a time.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METRIC_NAMES = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")
COUNT_METRIC_NAMES = METRIC_NAMES[1:]
EVALUATION_FORMAT = "oncolens.binary_evaluation"
EVALUATION_VERSION = 1
CSV_COLUMNS = ("name", "metric", "value", "ci_low", "ci_high", "n_resamples_used",
               "n", "n_pos", "n_neg", "threshold")

_CHUNK_ELEMENTS = 1_000_000  # resample matrices are built in chunks of about this many cells


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Counts:
    """Confusion-matrix counts of a binary call against the truth."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True)
class MetricCI:
    """A point estimate with its percentile bootstrap interval; NaN bounds when no resample was usable."""

    value: float
    ci_low: float
    ci_high: float
    n_resamples_used: int

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json_float(self.value), "ci_low": _json_float(self.ci_low),
                "ci_high": _json_float(self.ci_high), "n_resamples_used": self.n_resamples_used}


# ----------------------------------------------------------------------------------------------------
# Input checks


def _labels(y_true: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.dtype != bool and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0/1 (or False/True); map the positive class to 1 first")
    return y.astype(bool)


def _calls(y_pred: Any, n: int) -> np.ndarray:
    p = np.asarray(y_pred)
    if p.shape != (n,):
        raise ValueError(f"y_pred must have shape ({n},) like y_true, got {p.shape}")
    if p.dtype != bool and not np.isin(p, (0, 1)).all():
        raise ValueError("y_pred must hold only 0/1; for scores call it with `scores >= threshold` first")
    return p.astype(bool)


def _scores(scores: Any, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},) like y_true, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity; drop or repair those cases first")
    return s


# ----------------------------------------------------------------------------------------------------
# Counts and the metrics built on them (the same formulas serve scalars and resample vectors)


def _div(num: Any, den: Any) -> np.ndarray:
    """num / den with NaN where den == 0, silently."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


_COUNT_FORMULAS: dict[str, Callable[..., np.ndarray]] = {
    "accuracy": lambda tp, fp, tn, fn: _div(tp + tn, tp + fp + tn + fn),
    "sensitivity": lambda tp, fp, tn, fn: _div(tp, tp + fn),
    "specificity": lambda tp, fp, tn, fn: _div(tn, tn + fp),
    "ppv": lambda tp, fp, tn, fn: _div(tp, tp + fp),
    "npv": lambda tp, fp, tn, fn: _div(tn, tn + fn),
    # 2TP / (2TP + FP + FN): the harmonic mean of PPV and sensitivity, 0 when TP = 0 but errors exist.
    "f1": lambda tp, fp, tn, fn: _div(2 * tp, 2 * tp + fp + fn),
}


def _row_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """tp, fp, tn, fn per row of boolean label / call matrices (labels may broadcast)."""
    tp = np.count_nonzero(y & p, axis=-1)
    fp = np.count_nonzero(~y & p, axis=-1)
    fn = np.count_nonzero(y & ~p, axis=-1)
    tn = p.shape[-1] - tp - fp - fn
    return tp, fp, tn, fn


def confusion_counts(y_true: Any, y_pred: Any) -> Counts:
    """Counts of true/false positives/negatives for 0/1 truth and 0/1 calls."""
    y = _labels(y_true)
    tp, fp, tn, fn = _row_counts(y, _calls(y_pred, y.size))
    return Counts(int(tp), int(fp), int(tn), int(fn))


def metrics_from_counts(counts: Counts) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, PPV, NPV and F1 from counts; NaN where a denominator is 0."""
    c = (counts.tp, counts.fp, counts.tn, counts.fn)
    return {name: float(_COUNT_FORMULAS[name](*c)) for name in COUNT_METRIC_NAMES}


def binary_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """accuracy, sensitivity, specificity, ppv, npv, f1 of 0/1 calls.

    A metric whose denominator is 0 (e.g. PPV with no positive call, sensitivity with no positive
    case, F1 with neither) is NaN; nothing warns.
    """
    return metrics_from_counts(confusion_counts(y_true, y_pred))


def _count_metric(name: str) -> Callable[[Any, Any], float]:
    def metric(y_true: Any, y_pred: Any) -> float:
        c = confusion_counts(y_true, y_pred)
        return float(_COUNT_FORMULAS[name](c.tp, c.fp, c.tn, c.fn))

    metric.__name__ = metric.__qualname__ = name if name != "f1" else "f1_score"
    metric.__doc__ = f"{name} of 0/1 calls against 0/1 truth; NaN when its denominator is 0."
    return metric


accuracy = _count_metric("accuracy")
sensitivity = _count_metric("sensitivity")
specificity = _count_metric("specificity")
ppv = _count_metric("ppv")
npv = _count_metric("npv")
f1_score = _count_metric("f1")


# ----------------------------------------------------------------------------------------------------
# AUC and the ROC curve


def _dense_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values replaced by 0..G-1 in sorted order (equal values share a rank), and G."""
    distinct, ranks = np.unique(values, return_inverse=True)
    return ranks.reshape(values.shape), int(distinct.size)


def _row_auc(y: np.ndarray, ranks: np.ndarray, n_groups: int) -> np.ndarray:
    """Mann-Whitney AUC of each row: P(score_pos > score_neg) + P(tie) / 2, NaN without both classes.

    Scores come as dense ranks (`_dense_ranks`), so no row needs sorting: one bincount gives every
    row's negatives per rank, one running sum the negatives below each rank. `y` is a boolean matrix
    or a vector shared by all rows.
    """
    rows, n = ranks.shape
    if n == 0:
        return np.full(rows, np.nan)
    y = np.broadcast_to(y, ranks.shape)
    cell = ranks + (np.arange(rows) * n_groups)[:, None]
    neg = np.bincount(cell[~y], minlength=rows * n_groups)
    running = np.cumsum(neg)
    earlier_rows = np.r_[0, running[n_groups - 1 :: n_groups][:-1]]
    # for each case: negatives ranked below it in its row, plus half of those tied with it
    beaten = running[cell] - 0.5 * neg[cell] - earlier_rows[:, None]
    n_pos = np.count_nonzero(y, axis=1)
    return _div(np.where(y, beaten, 0.0).sum(axis=1), n_pos * (n - n_pos))


def auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic P(score_pos > score_neg) + P(tie) / 2.

    Equals sklearn's `roc_auc_score`; NaN (no warning) when either class is missing.
    """
    y = _labels(y_true)
    ranks, n_groups = _dense_ranks(_scores(scores, y.size))
    return float(_row_auc(y[None, :], ranks[None, :], n_groups)[0])


def _roc_steps(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with the TP and FP counts of `s >= threshold` at each."""
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    last_of_group = np.r_[s_desc[1:] != s_desc[:-1], True]
    tp = np.cumsum(y_desc)[last_of_group]
    fp = np.cumsum(~y_desc)[last_of_group]
    return s_desc[last_of_group], tp, fp


def _both_classes(y: np.ndarray, what: str) -> tuple[int, int]:
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{what} needs positive and negative cases; got {n_pos} positive, {n_neg} negative")
    return n_pos, n_neg


def roc_curve_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, thresholds descending, starting at (0, 0) / +inf.

    Point k is the call `scores >= thresholds[k]`; all points are kept (no dropping of collinear ones).
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos, n_neg = _both_classes(y, "an ROC curve")
    thresholds, tp, fp = _roc_steps(y, s)
    return (np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, thresholds])


# ----------------------------------------------------------------------------------------------------
# Threshold rules


def threshold_for_sensitivity(y_true: Any, scores: Any, min_sensitivity: float = 0.9) -> float:
    """Operating threshold with sensitivity strictly above `min_sensitivity` and the best specificity.

    Candidates are the observed scores. Among those reaching the sensitivity, the highest specificity
    wins; if several tie on specificity, the one with the higher sensitivity (the lowest of them) wins,
    since it dominates the others. Returns t for the call `scores >= t`.
    """
    if not 0.0 <= min_sensitivity < 1.0:
        raise ValueError(f"min_sensitivity must be in [0, 1) (sensitivity must exceed it), got {min_sensitivity}")
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos, _ = _both_classes(y, "choosing a threshold")
    thresholds, tp, fp = _roc_steps(y, s)
    reaching = np.flatnonzero(tp / n_pos > min_sensitivity)  # never empty: the lowest score gives 1.0
    fewest_fp = fp[reaching[0]]  # fp grows as the threshold falls, so the first candidate has the fewest
    return float(thresholds[reaching[fp[reaching] == fewest_fp][-1]])


def _best_step(key: np.ndarray) -> int:
    """Index of the largest key; ties go to the last (lowest threshold, highest sensitivity)."""
    return int(np.flatnonzero(key == key.max())[-1])


def threshold_closest_to_corner(y_true: Any, scores: Any) -> float:
    """Observed score whose ROC point is nearest (FPR 0, TPR 1) in Euclidean distance.

    Distances are compared exactly (integer arithmetic); ties go to the higher sensitivity.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos, n_neg = _both_classes(y, "choosing a threshold")
    thresholds, tp, fp = _roc_steps(y, s)
    # distance^2 * (n_pos * n_neg)^2, in Python ints so that equal distances compare equal
    fp_i, fn_i = fp.astype(object), (n_pos - tp).astype(object)
    scaled = fp_i * fp_i * (n_pos * n_pos) + fn_i * fn_i * (n_neg * n_neg)
    return float(thresholds[_best_step(-np.array(scaled, dtype=object))])


def threshold_youden(y_true: Any, scores: Any) -> float:
    """Observed score maximising Youden's J = sensitivity + specificity - 1; ties go to higher sensitivity."""
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos, n_neg = _both_classes(y, "choosing a threshold")
    thresholds, tp, fp = _roc_steps(y, s)
    return float(thresholds[_best_step(tp * n_neg - fp * n_pos)])  # J * n_pos * n_neg, exact


RULE_MIN_SENSITIVITY = "min_sensitivity"
RULE_CLOSEST_TO_CORNER = "closest_to_corner"
RULE_YOUDEN = "youden"
_RULES_WITHOUT_VALUE = (RULE_CLOSEST_TO_CORNER, RULE_YOUDEN)
_SENSITIVITY_SHORTHAND = re.compile(r"^\s*sensitivity\s*>\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass(frozen=True)
class ThresholdRule:
    """How an operating threshold is chosen, stored in a model card as `to_dict()`.

    Stored form: {"rule": "min_sensitivity", "value": 0.9}, {"rule": "closest_to_corner"} or
    {"rule": "youden"}. `parse` also takes the bare names and the shorthand "sensitivity>0.90";
    `str()` gives the shorthand back for labels and tables.
    """

    rule: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.rule == RULE_MIN_SENSITIVITY:
            if self.value is None or not 0.0 <= float(self.value) < 1.0:
                raise ValueError(f"rule '{RULE_MIN_SENSITIVITY}' needs a value in [0, 1), got {self.value!r}")
            object.__setattr__(self, "value", float(self.value))
        elif self.rule in _RULES_WITHOUT_VALUE:
            if self.value is not None:
                raise ValueError(f"rule '{self.rule}' takes no value, got {self.value!r}")
        else:
            known = (RULE_MIN_SENSITIVITY, *_RULES_WITHOUT_VALUE)
            raise ValueError(f"unknown threshold rule {self.rule!r}; known: {', '.join(known)} "
                             "or the shorthand 'sensitivity>0.90'")

    @classmethod
    def parse(cls, rule: str | Mapping[str, Any] | ThresholdRule, **kw: Any) -> ThresholdRule:
        """From a stored dict, a name (value from `value=` / `min_sensitivity=`) or 'sensitivity>0.9'."""
        if isinstance(rule, ThresholdRule):
            if kw:
                raise TypeError(f"a ThresholdRule takes no extra keywords, got {sorted(kw)}")
            return rule
        if isinstance(rule, Mapping):
            unexpected = set(rule) - {"rule", "value"}
            if unexpected or "rule" not in rule:
                raise ValueError(f"a stored rule is {{'rule': ..., 'value': ...}}, got {dict(rule)!r}")
            return cls.parse(str(rule["rule"]), **({"value": rule["value"]} if "value" in rule else {}), **kw)
        if not isinstance(rule, str):
            raise TypeError(f"a threshold rule is a name, a stored dict or a ThresholdRule, got {rule!r}")
        unexpected = set(kw) - {"value", "min_sensitivity"}
        if unexpected or len(kw) > 1:
            raise TypeError(f"threshold rules take one keyword, value= (or min_sensitivity=), got {sorted(kw)}")
        value = next(iter(kw.values()), None)
        match = _SENSITIVITY_SHORTHAND.match(rule)
        if match:
            if value is not None:
                raise TypeError(f"{rule!r} already carries its value; drop the keyword")
            return cls(RULE_MIN_SENSITIVITY, float(match.group(1)))
        return cls(rule.strip(), value)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule} if self.value is None else {"rule": self.rule, "value": self.value}

    def __str__(self) -> str:
        return f"sensitivity>{self.value:g}" if self.rule == RULE_MIN_SENSITIVITY else self.rule


def threshold_by_rule(rule: str | Mapping[str, Any] | ThresholdRule, y_true: Any, scores: Any,
                      **kw: Any) -> float:
    """Threshold chosen by a named rule (see `ThresholdRule`), e.g. `threshold_by_rule("youden", y, s)`,
    `threshold_by_rule({"rule": "min_sensitivity", "value": 0.9}, y, s)` or `("sensitivity>0.9", y, s)`."""
    parsed = ThresholdRule.parse(rule, **kw)
    if parsed.rule == RULE_MIN_SENSITIVITY:
        return threshold_for_sensitivity(y_true, scores, parsed.value)
    if parsed.rule == RULE_CLOSEST_TO_CORNER:
        return threshold_closest_to_corner(y_true, scores)
    return threshold_youden(y_true, scores)


# ----------------------------------------------------------------------------------------------------
# Resampling: bootstrap intervals and the paired permutation test

_SCALAR_TO_NAME: dict[Callable, str] = {
    auc: "auc", accuracy: "accuracy", sensitivity: "sensitivity", specificity: "specificity",
    ppv: "ppv", npv: "npv", f1_score: "f1",
}
_NAME_TO_SCALAR = {name: fn for fn, name in _SCALAR_TO_NAME.items()}


def _resolve_metric(metric_fn: Callable | str) -> tuple[Callable, str | None]:
    """(scalar function, known name or None); names are those of METRIC_NAMES."""
    if isinstance(metric_fn, str):
        if metric_fn not in _NAME_TO_SCALAR:
            raise ValueError(f"unknown metric {metric_fn!r}; known: {', '.join(METRIC_NAMES)}")
        return _NAME_TO_SCALAR[metric_fn], metric_fn
    return metric_fn, _SCALAR_TO_NAME.get(metric_fn)


def _prepare(name: str | None, y: np.ndarray, x: Any) -> np.ndarray:
    """Checked second argument of a known metric (scores for AUC, 0/1 calls otherwise)."""
    if name == "auc":
        return _scores(x, y.size)
    if name is not None:
        return _calls(x, y.size)
    return np.asarray(x)


def _rows_metric(name: str | None, fn: Callable, y_rows: np.ndarray, x_rows: np.ndarray,
                 n_groups: int = 0) -> np.ndarray:
    """The metric of each row pair: vectorised for known metrics (AUC takes dense ranks of the scores
    and their number), a Python loop otherwise."""
    if name == "auc":
        return _row_auc(y_rows, x_rows, n_groups)
    if name is not None:
        return _COUNT_FORMULAS[name](*_row_counts(y_rows, x_rows))
    y_rows = np.broadcast_to(y_rows, x_rows.shape)
    return np.array([float(fn(yr, xr)) for yr, xr in zip(y_rows, x_rows, strict=True)])


def _chunks(total: int, n: int) -> list[int]:
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    return [min(rows, total - start) for start in range(0, total, rows)]


def _resample_indices(y: np.ndarray, rows: int, rng: np.random.Generator, stratified: bool) -> np.ndarray:
    """`rows` bootstrap resamples of case indices; stratified keeps the positive / negative counts."""
    if not stratified:
        return rng.integers(0, y.size, size=(rows, y.size))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    return np.hstack([pos[rng.integers(0, pos.size, size=(rows, pos.size))],
                      neg[rng.integers(0, neg.size, size=(rows, neg.size))]])


def _percentile_ci(value: float, replicates: np.ndarray, alpha: float) -> MetricCI:
    kept = replicates[np.isfinite(replicates)]
    if kept.size == 0:
        return MetricCI(float(value), math.nan, math.nan, 0)
    low, high = np.percentile(kept, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return MetricCI(float(value), float(low), float(high), int(kept.size))


def _check_resampling(n_cases: int, n_resamples: int, alpha: float | None = None) -> None:
    if n_cases < 1:
        raise ValueError("resampling needs at least one case")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_ci(metric_fn: Callable | str, y_true: Any, scores_or_preds: Any, n_resamples: int = 1000,
                 alpha: float = 0.05, seed: int = 0, stratified: bool = False) -> MetricCI:
    """Percentile bootstrap interval of `metric_fn(y_true, scores_or_preds)` over resampled cases.

    `metric_fn` is one of this module's metrics (or its name in METRIC_NAMES), scored on all resamples
    at once, or any callable, called per resample. Resamples where the metric is undefined (NaN, e.g.
    one class missing) are dropped; `n_resamples_used` says how many were kept. `stratified` resamples
    positives and negatives separately, keeping their counts.
    """
    fn, name = _resolve_metric(metric_fn)
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples, alpha)
    x = _prepare(name, y, scores_or_preds)
    if stratified:
        _both_classes(y, "a stratified bootstrap")
    resampled, n_groups = _dense_ranks(x) if name == "auc" else (x, 0)
    rng = np.random.default_rng(seed)
    replicates = []
    for rows in _chunks(n_resamples, y.size):
        idx = _resample_indices(y, rows, rng, stratified)
        replicates.append(_rows_metric(name, fn, y[idx], resampled[idx], n_groups))
    return _percentile_ci(float(fn(y, x)), np.concatenate(replicates), alpha)


def paired_permutation_test(metric_fn: Callable | str, y_true: Any, pred_a: Any, pred_b: Any,
                            n_resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Two-sided paired permutation test of metric(a) - metric(b) on the same cases.

    Each resample swaps the two readers' / models' outputs case by case with probability 1/2.
    Returns (observed difference, p) with p = (#{|diff_perm| >= |observed|} + 1) / (n_used + 1), so
    0 < p <= 1. Resamples where the difference is undefined are dropped; (NaN, NaN) if the observed
    difference is undefined.
    """
    fn, name = _resolve_metric(metric_fn)
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples)
    a, b = _prepare(name, y, pred_a), _prepare(name, y, pred_b)
    if a.shape != b.shape:
        raise ValueError(f"pred_a and pred_b must have the same shape, got {a.shape} and {b.shape}")
    observed = float(fn(y, a)) - float(fn(y, b))
    if not math.isfinite(observed):
        return math.nan, math.nan
    n_groups = 0
    if name == "auc":  # rank both score sets together so that swapped rows stay comparable
        joint, n_groups = _dense_ranks(np.concatenate([a, b]))
        a, b = joint[: y.size], joint[y.size:]
    rng = np.random.default_rng(seed)
    as_large, used = 0, 0
    bound = abs(observed) - 1e-12 * max(1.0, abs(observed))  # equal differences must count as equal
    for rows in _chunks(n_resamples, y.size):
        swap = rng.random((rows, y.size)) < 0.5
        diff = (_rows_metric(name, fn, y[None, :], np.where(swap, b, a), n_groups)
                - _rows_metric(name, fn, y[None, :], np.where(swap, a, b), n_groups))
        diff = diff[np.isfinite(diff)]
        as_large += int(np.count_nonzero(np.abs(diff) >= bound))
        used += diff.size
    return observed, (as_large + 1) / (used + 1)


# ----------------------------------------------------------------------------------------------------
# Full evaluation and writers


@dataclass(frozen=True)
class BinaryEvaluation:
    """Every metric of one scored test set at one threshold, each with its bootstrap interval."""

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

    @property
    def metrics(self) -> dict[str, MetricCI]:
        return {name: getattr(self, name) for name in METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return {
            "n": self.n, "n_pos": self.n_pos, "n_neg": self.n_neg,
            "threshold": _json_float(self.threshold), "threshold_rule": self.threshold_rule,
            "counts": {"tp": self.counts.tp, "fp": self.counts.fp, "tn": self.counts.tn, "fn": self.counts.fn},
            "bootstrap": {"method": "percentile", "n_resamples": self.n_resamples, "alpha": self.alpha,
                          "seed": self.seed, "stratified": self.stratified},
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat row per metric (CSV_COLUMNS without `name`)."""
        return [{"metric": name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                 "n_resamples_used": m.n_resamples_used, "n": self.n, "n_pos": self.n_pos,
                 "n_neg": self.n_neg, "threshold": self.threshold}
                for name, m in self.metrics.items()]


def evaluate_binary(y_true: Any, scores: Any, threshold: float | str | Mapping[str, Any] | ThresholdRule,
                    n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05,
                    stratified: bool = False) -> BinaryEvaluation:
    """AUC, accuracy, sensitivity, specificity, PPV, NPV and F1 of `scores >= threshold`, with CIs.

    All metrics share the same bootstrap resamples. `threshold` is a number, or a rule (see
    `ThresholdRule`) applied to these same cases, which is then recorded; a threshold tuned on the
    test set flatters its metrics, so prefer one fixed on validation data.
    """
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples, alpha)
    s = _scores(scores, y.size)
    rule = None
    if isinstance(threshold, str | Mapping | ThresholdRule):
        rule = ThresholdRule.parse(threshold)
        threshold = threshold_by_rule(rule, y, s)
    threshold = float(threshold)
    calls = s >= threshold
    counts = confusion_counts(y, calls)
    point = metrics_from_counts(counts)
    if stratified:
        _both_classes(y, "a stratified bootstrap")

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
    point["auc"] = auc(y, s)
    cis = {name: _percentile_ci(point[name], np.concatenate(replicates[name]), alpha) for name in METRIC_NAMES}
    n_pos = int(np.count_nonzero(y))
    return BinaryEvaluation(
        n=int(y.size), n_pos=n_pos, n_neg=int(y.size) - n_pos, threshold=threshold, counts=counts, **cis,
        n_resamples=int(n_resamples), alpha=float(alpha), seed=int(seed), stratified=bool(stratified),
        threshold_rule=None if rule is None else rule.to_dict(),
    )


def write_evaluation(evaluations: Mapping[str, BinaryEvaluation], out_dir: str | Path,
                     stem: str) -> tuple[Path, Path]:
    """Write `<stem>.csv` (one row per (name, metric)) and `<stem>.json`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name, evaluation in evaluations.items():
            for row in evaluation.to_rows():
                writer.writerow({"name": name, **row})
    document = {"format": EVALUATION_FORMAT, "version": EVALUATION_VERSION,
                "evaluations": {name: evaluation.to_dict() for name, evaluation in evaluations.items()}}
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return csv_path, json_path


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
