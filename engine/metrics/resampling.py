"""Resampling over cases: bootstrap confidence intervals and the paired permutation test.

The bootstrap resamples positives and negatives separately by default (stratified: each resample keeps the
study's class counts, as the study design fixed them); the unstratified bootstrap also varies the class counts,
which adds variance that the study does not have and makes the percentile interval under-cover proportions near
0 or 1 (docs/ci_coverage.md). Intervals: percentile or BCa (`engine.metrics.intervals`). Known metrics are
scored on a whole matrix of resamples at once and have closed-form leave-one-out values (for BCa); any other
callable works too, one resample at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.metrics.classification import (
    _COUNT_FORMULAS,
    METRIC_NAMES,
    MetricCI,
    _below,
    _calls,
    _dense_ranks,
    _div,
    _labels,
    _row_auc,
    _row_counts,
    _scores,
    accuracy,
    auc,
    f1_score,
    npv,
    ppv,
    sensitivity,
    specificity,
)
from engine.metrics.intervals import BOOTSTRAP_METHODS, bca_limits, percentile_limits

_CHUNK_ELEMENTS = 1_000_000  # resample matrices are built in chunks of about this many cells
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
    """`rows` bootstrap resamples of case indices; stratified keeps the positive / negative counts (with one
    class only, that is the same as resampling all cases)."""
    if not stratified or y.all() or not y.any():
        return rng.integers(0, y.size, size=(rows, y.size))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    return np.hstack([pos[rng.integers(0, pos.size, size=(rows, pos.size))],
                      neg[rng.integers(0, neg.size, size=(rows, neg.size))]])


def _check_resampling(n_cases: int, n_resamples: int, alpha: float | None = None) -> None:
    if n_cases < 1:
        raise ValueError("resampling needs at least one case")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_method(method: str) -> None:
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"unknown bootstrap interval {method!r}; known: {', '.join(BOOTSTRAP_METHODS)}")


def leave_one_out(metric_fn: Callable | str, y_true: Any, scores_or_preds: Any) -> np.ndarray:
    """The metric with each case left out in turn (jackknife values): closed forms for the known metrics
    (counts minus the case's own cell; the AUC minus the case's pairs), a loop for any other callable."""
    fn, name = _resolve_metric(metric_fn)
    y = _labels(y_true)
    x = _prepare(name, y, scores_or_preds)
    if name == "auc":
        n_pos, n_neg = int(np.count_nonzero(y)), int(np.count_nonzero(~y))
        beaten = _below(x[y], x[~y])  # per positive: negatives it outranks, ties half
        beating = n_pos - _below(x[~y], x[y])  # per negative: positives that outrank it
        out = np.empty(y.size)
        out[y] = _div(beaten.sum() - beaten, (n_pos - 1) * n_neg)
        out[~y] = _div(beaten.sum() - beating, n_pos * (n_neg - 1))
        return out
    if name is not None:
        cells = (y & x, ~y & x, ~y & ~x, y & ~x)  # this case's own tp, fp, tn, fn
        totals = _row_counts(y, x)
        return _COUNT_FORMULAS[name](*(total - cell for total, cell in zip(totals, cells, strict=True)))
    keep = ~np.eye(y.size, dtype=bool)
    return np.array([float(fn(y[k], x[k])) for k in keep])


def bootstrap_interval(value: float, replicates: np.ndarray, alpha: float, method: str = "percentile",
                       jackknife: np.ndarray | None = None) -> MetricCI:
    """A MetricCI from bootstrap replicates (non-finite ones dropped); BCa needs the jackknife values."""
    _check_method(method)
    used = int(np.count_nonzero(np.isfinite(replicates)))
    if method == "bca":
        if jackknife is None:
            raise ValueError("a BCa interval needs the leave-one-out values of the statistic (jackknife=)")
        low, high = bca_limits(value, replicates, jackknife, alpha)
    else:
        low, high = percentile_limits(replicates, alpha)
    return MetricCI(float(value), low, high, used, method)


def bootstrap_replicates(metric_fn: Callable | str, y_true: Any, scores_or_preds: Any, n_resamples: int = 1000,
                         seed: int = 0, stratified: bool = True) -> np.ndarray:
    """The metric on `n_resamples` bootstrap resamples of the cases (NaN where it is undefined)."""
    fn, name = _resolve_metric(metric_fn)
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples)
    x = _prepare(name, y, scores_or_preds)
    resampled, n_groups = _dense_ranks(x) if name == "auc" else (x, 0)
    rng = np.random.default_rng(seed)
    replicates = []
    for rows in _chunks(n_resamples, y.size):
        idx = _resample_indices(y, rows, rng, stratified)
        replicates.append(_rows_metric(name, fn, y[idx], resampled[idx], n_groups))
    return np.concatenate(replicates)


def bootstrap_ci(metric_fn: Callable | str, y_true: Any, scores_or_preds: Any, n_resamples: int = 1000,
                 alpha: float = 0.05, seed: int = 0, stratified: bool = True, method: str = "percentile") -> MetricCI:
    """Bootstrap interval of `metric_fn(y_true, scores_or_preds)` over resampled cases.

    `metric_fn` is one of the metrics of `engine.metrics.classification` (or its name in METRIC_NAMES), scored
    on all resamples at once, or any callable, called per resample. `stratified` (the default) resamples
    positives and negatives separately, keeping their counts. `method`: "percentile" or
    "bca". Resamples where the metric is undefined (NaN, e.g. one class missing) are dropped;
    `n_resamples_used` says how many were kept.
    """
    fn, name = _resolve_metric(metric_fn)
    y = _labels(y_true)
    _check_resampling(y.size, n_resamples, alpha)
    _check_method(method)
    x = _prepare(name, y, scores_or_preds)
    replicates = bootstrap_replicates(metric_fn, y, x, n_resamples, seed, stratified)
    jackknife = leave_one_out(metric_fn, y, x) if method == "bca" else None
    return bootstrap_interval(float(fn(y, x)), replicates, alpha, method, jackknife)


class PermutationTally:
    """Two-sided permutation p: (#{|d| >= |observed|} + 1) / (used + 1), resamples with an undefined d dropped;
    equal differences count as equal despite rounding."""

    def __init__(self, observed: float) -> None:
        self.observed, self.as_large, self.used = observed, 0, 0
        self.bound = abs(observed) - 1e-12 * max(1.0, abs(observed))

    def add(self, diffs: np.ndarray) -> None:
        kept = diffs[np.isfinite(diffs)]
        self.as_large += int(np.count_nonzero(np.abs(kept) >= self.bound))
        self.used += kept.size

    @property
    def p_value(self) -> float:
        return (self.as_large + 1) / (self.used + 1) if math.isfinite(self.observed) else math.nan


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
    tally = PermutationTally(observed)
    for rows in _chunks(n_resamples, y.size):
        swap = rng.random((rows, y.size)) < 0.5
        tally.add(_rows_metric(name, fn, y[None, :], np.where(swap, b, a), n_groups)
                  - _rows_metric(name, fn, y[None, :], np.where(swap, a, b), n_groups))
    return observed, tally.p_value
