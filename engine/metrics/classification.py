"""Binary classification statistics: counts, metrics, AUC, the ROC curve and threshold rules.

Plain functions on 1-D numpy arrays (labels 0/1, scores where higher means "more positive", a case is
called positive when `score >= threshold`). Every ratio whose denominator is 0 is NaN, never a warning.
Each metric also has a row-wise form that scores a whole matrix of resamples at once, used by the bootstrap
and permutation tests of `engine.metrics.resampling`; intervals are in `engine.metrics.intervals`, the full
evaluation with its writers in `engine.metrics.evaluation`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

METRIC_NAMES = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")
COUNT_METRIC_NAMES = METRIC_NAMES[1:]
PROPORTION_METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "ppv", "npv")  # x of n: binomial intervals


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
    """A point estimate with its interval and how it was made: `method` is "percentile" or "bca" (bootstrap;
    `n_resamples_used` resamples gave a defined value) or "wilson", "wilson_cc", "clopper_pearson" (from the
    counts; `n_resamples_used` 0). NaN bounds when the interval is undefined."""

    value: float
    ci_low: float
    ci_high: float
    n_resamples_used: int
    method: str = "percentile"

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json_float(self.value), "ci_low": _json_float(self.ci_low),
                "ci_high": _json_float(self.ci_high), "n_resamples_used": self.n_resamples_used,
                "method": self.method}


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


def _below(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each value: how many reference values lie below it, ties counting one half."""
    ref = np.sort(reference)
    low = np.searchsorted(ref, values, side="left")
    high = np.searchsorted(ref, values, side="right")
    return low + 0.5 * (high - low)


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


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# Names that lived here before the resampling and evaluation code got modules of their own.
_MOVED = {"bootstrap_ci": "resampling", "paired_permutation_test": "resampling",
          "BinaryEvaluation": "evaluation", "evaluate_binary": "evaluation", "write_evaluation": "evaluation",
          "EVALUATION_FORMAT": "evaluation", "EVALUATION_VERSION": "evaluation", "CSV_COLUMNS": "evaluation"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"engine.metrics.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
