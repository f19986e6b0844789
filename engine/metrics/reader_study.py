"""Reader studies: clinicians' calls and confidence scores against a model at its operating threshold.

Every rater (the model and each reader) is scored on the same bootstrap resamples of cases (stratified by
truth), so differences are paired. A rater's proportions (sensitivity, specificity, PPV, NPV, accuracy) get
the Wilson score interval from its counts by default, its AUC and F1 the percentile bootstrap.
Model-minus-reader differences get a percentile bootstrap CI and a two-sided paired permutation p-value;
`error_analysis` lists which cases each side gets wrong;
`analyze_reader_study` adds the OR-Hillis MRMC analyses (`engine.metrics.mrmc`) and writes all tables.

The permutation test runs on one shared stream of swap patterns for every reader and metric
(`engine.metrics.paired_swaps`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.exports import write_csv
from engine.metrics.classification import (
    _COUNT_FORMULAS,
    COUNT_METRIC_NAMES,
    METRIC_NAMES,
    PROPORTION_METRIC_NAMES,
    MetricCI,
    _both_classes,
    _calls,
    _dense_ranks,
    _json_float,
    _labels,
    _row_auc,
    _row_counts,
    _scores,
    auc,
    confusion_counts,
    metrics_from_counts,
)
from engine.metrics.evaluation import check_interval_methods, describe_intervals, proportion_metric_ci
from engine.metrics.intervals import PROPORTION_METHODS
from engine.metrics.mrmc import (
    ORResult,
    or_fixed_cases,
    or_fixed_readers,
    or_hillis,
    or_hillis_fixed_reference,
)
from engine.metrics.mrmc_export import long_format_rows
from engine.metrics.paired_swaps import PairedSwaps
from engine.metrics.resampling import (
    PermutationTally,
    _check_resampling,
    _chunks,
    _resample_indices,
    bootstrap_interval,
    leave_one_out,
)

AVERAGE_READER_ID = "average reader"
MODEL_ID = "model"
ERROR_CATEGORIES = ("both_correct", "model_corrects_reader", "reader_corrects_model", "both_wrong")


# ----------------------------------------------------------------------------------------------------
# Inputs and results


@dataclass(frozen=True, eq=False)
class ReaderScores:
    """One reader's reads: a 0/1 call per case and, optionally, a confidence score (higher = more
    likely positive; a 5-point or 0-100 scale is used as ordinal, ties allowed) for the AUC."""

    reader_id: str
    calls: Any
    scores: Any = None


@dataclass(frozen=True)
class MetricDifference:
    """Model minus a reader (or the average reader) for one metric."""

    metric: str
    model: float
    reader: float
    difference: MetricCI
    p_value: float
    n_permutations_used: int

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "model": _json_float(self.model), "reader": _json_float(self.reader),
                "difference": self.difference.to_dict(), "p_value": _json_float(self.p_value),
                "n_permutations_used": self.n_permutations_used}


@dataclass(frozen=True)
class ErrorAnalysis:
    """Which cases the model and one reader get right or wrong, by category (see ERROR_CATEGORIES)."""

    reader_id: str
    case_ids: dict[str, tuple[str, ...]]
    n_pos: dict[str, int]

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.case_ids.items()}

    def to_dict(self) -> dict[str, Any]:
        return {name: {"n": len(ids), "n_pos": self.n_pos[name], "n_neg": len(ids) - self.n_pos[name],
                       "case_ids": list(ids)} for name, ids in self.case_ids.items()}


@dataclass(frozen=True)
class ReaderComparison:
    """A reader's own metrics, the model minus that reader, and (for real readers) the error analysis."""

    reader_id: str
    metrics: dict[str, MetricCI]
    differences: dict[str, MetricDifference]
    errors: ErrorAnalysis | None

    def to_dict(self) -> dict[str, Any]:
        return {"reader_id": self.reader_id, "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
                "model_minus_reader": {k: d.to_dict() for k, d in self.differences.items()},
                "errors": None if self.errors is None else self.errors.to_dict()}


@dataclass(frozen=True)
class ComparisonResult:
    """Model against each reader and against the average reader on one set of cases."""

    n: int
    n_pos: int
    n_neg: int
    model_threshold: float
    model: dict[str, MetricCI]
    readers: tuple[ReaderComparison, ...]
    average_reader: ReaderComparison
    n_boot: int
    n_perm: int
    alpha: float
    seed: int
    proportion_interval: str = "wilson"  # the model's and each reader's proportions
    stratified: bool = True

    def ci_description(self) -> str:
        """Which interval each metric has, in one sentence (for reports)."""
        own = describe_intervals({k: m.method for k, m in self.model.items()}, self.alpha, self.n_boot,
                                 self.stratified)
        return (f"{own[:-1]} (the model and each reader); percentile bootstrap on the same resamples for the "
                "average reader and for every model \u2212 reader difference.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "n_pos": self.n_pos, "n_neg": self.n_neg, "model_threshold": _json_float(self.model_threshold),
            "bootstrap": {"method": "percentile, cases resampled jointly for all raters"
                                    + (", stratified by truth" if self.stratified else ""),
                          "n_resamples": self.n_boot, "alpha": self.alpha, "seed": self.seed,
                          "stratified": self.stratified},
            "ci": {"proportions": self.proportion_interval, "description": self.ci_description()},
            "permutation": {"method": "paired, per-case swap of model and reader outputs; AUC on within-rater "
                                      "normalised mid-ranks", "n_resamples": self.n_perm, "seed": self.seed},
            "model": {k: m.to_dict() for k, m in self.model.items()},
            "readers": [r.to_dict() for r in self.readers],
            "average_reader": self.average_reader.to_dict(),
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        raters = [(MODEL_ID, self.model)] + [(r.reader_id, r.metrics) for r in (*self.readers, self.average_reader)]
        return [{"rater": rid, "metric": name, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                 "n_resamples_used": m.n_resamples_used, "ci_method": m.method}
                for rid, metrics in raters for name, m in metrics.items()]

    def difference_rows(self) -> list[dict[str, Any]]:
        return [{"reader": r.reader_id, "metric": d.metric, "model": d.model, "reader_value": d.reader,
                 "model_minus_reader": d.difference.value, "ci_low": d.difference.ci_low,
                 "ci_high": d.difference.ci_high, "p_value": d.p_value, "n_permutations_used": d.n_permutations_used}
                for r in (*self.readers, self.average_reader) for d in r.differences.values()]

    def error_rows(self) -> list[dict[str, Any]]:
        return [{"reader": r.reader_id, "category": name, "n": len(ids), "n_pos": r.errors.n_pos[name],
                 "n_neg": len(ids) - r.errors.n_pos[name], "case_ids": ";".join(ids)}
                for r in self.readers if r.errors is not None for name, ids in r.errors.case_ids.items()]


# ----------------------------------------------------------------------------------------------------
# Checks


def _case_ids(case_ids: Sequence[Any] | None, n: int) -> tuple[str, ...]:
    if case_ids is None:
        return tuple(str(i) for i in range(n))
    ids = tuple(str(c) for c in case_ids)
    if len(ids) != n:
        raise ValueError(f"case_ids must have one id per case ({n}), got {len(ids)}")
    if len(set(ids)) != n:
        raise ValueError("case_ids must be unique")
    return ids


def _checked_readers(readers: Sequence[ReaderScores], n: int) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    if isinstance(readers, ReaderScores) or len(readers) == 0:
        raise ValueError("readers must be a non-empty list of ReaderScores")
    out, seen = [], set()
    for reader in readers:
        rid = str(reader.reader_id)
        if not rid or rid in seen or rid in (MODEL_ID, AVERAGE_READER_ID):
            raise ValueError(f"reader ids must be unique, non-empty and not {MODEL_ID!r} or "
                             f"{AVERAGE_READER_ID!r}; got {rid!r}")
        seen.add(rid)
        try:
            calls = _calls(reader.calls, n)
            scores = None if reader.scores is None else _scores(reader.scores, n)
        except ValueError as error:
            raise ValueError(f"reader {rid!r}: {error}") from None
        out.append((rid, calls, scores))
    return out


# ----------------------------------------------------------------------------------------------------
# Shared bootstrap


def _point_metrics(y: np.ndarray, calls: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    point = metrics_from_counts(confusion_counts(y, calls))
    return point if scores is None else {"auc": auc(y, scores), **point}


def _bootstrap_replicates(y: np.ndarray, raters: Sequence[tuple[np.ndarray, np.ndarray | None]],
                          n_boot: int, seed: int, stratified: bool = True) -> list[dict[str, np.ndarray]]:
    """Every metric of every rater on the same `n_boot` resamples of cases (drawn as `evaluate_binary` does)."""
    ranked = [None if s is None else _dense_ranks(s) for _, s in raters]
    reps: list[dict[str, list[np.ndarray]]] = [
        {name: [] for name in (COUNT_METRIC_NAMES if r is None else METRIC_NAMES)} for r in ranked]
    rng = np.random.default_rng(seed)
    for rows in _chunks(n_boot, y.size):
        idx = _resample_indices(y, rows, rng, stratified)
        y_rows = y[idx]
        for (calls, _), ranks, out in zip(raters, ranked, reps, strict=True):
            if ranks is not None:
                out["auc"].append(_row_auc(y_rows, ranks[0][idx], ranks[1]))
            counts = _row_counts(y_rows, calls[idx])
            for name in COUNT_METRIC_NAMES:
                out[name].append(_COUNT_FORMULAS[name](*counts))
    return [{name: np.concatenate(parts) for name, parts in out.items()} for out in reps]


def _rater_cis(y: np.ndarray, calls: np.ndarray, scores: np.ndarray | None, point: dict[str, float],
               reps: dict[str, np.ndarray], alpha: float, proportion_interval: str) -> dict[str, MetricCI]:
    """One rater's intervals: proportions from its counts (or the bootstrap), AUC and F1 percentile bootstrap."""
    counts = confusion_counts(y, calls)
    out = {}
    for name, value in point.items():
        if name in PROPORTION_METRIC_NAMES and proportion_interval in PROPORTION_METHODS:
            out[name] = proportion_metric_ci(name, counts, alpha, proportion_interval)
        elif name in PROPORTION_METRIC_NAMES and proportion_interval == "bca":
            jackknife = leave_one_out(name, y, calls)
            out[name] = bootstrap_interval(value, reps[name], alpha, "bca", jackknife)
        else:
            out[name] = bootstrap_interval(value, reps[name], alpha)
    return out


def reader_metrics(truth: Any, calls: Any, scores: Any = None, n_resamples: int = 1000, seed: int = 0,
                   alpha: float = 0.05, proportion_interval: str = "wilson",
                   stratified: bool = True) -> dict[str, MetricCI]:
    """Accuracy, sensitivity, specificity, PPV, NPV, F1 of one reader's 0/1 calls, plus the AUC of the
    confidence scores when given: proportions with `proportion_interval` (Wilson by default), AUC and F1 with
    a percentile bootstrap over cases (stratified by truth unless `stratified=False`)."""
    y = _labels(truth)
    _check_resampling(y.size, n_resamples, alpha)
    check_interval_methods(proportion_interval, "percentile")
    _both_classes(y, "reader metrics")
    [(_, c, s)] = _checked_readers([ReaderScores("reader", calls, scores)], y.size)
    point = _point_metrics(y, c, s)
    reps = _bootstrap_replicates(y, [(c, s)], n_resamples, seed, stratified)[0]
    return _rater_cis(y, c, s, point, reps, alpha, proportion_interval)


# ----------------------------------------------------------------------------------------------------
# Model against readers


def error_analysis(truth: Any, model_calls: Any, reader_calls: Any, case_ids: Sequence[Any] | None = None,
                   reader_id: str = "reader") -> ErrorAnalysis:
    """Cases both get right, reader errors the model gets right, model errors the reader gets right,
    and cases both get wrong, with case ids and how many of each are positive."""
    y = _labels(truth)
    ids = np.array(_case_ids(case_ids, y.size), dtype=object)
    model_right = _calls(model_calls, y.size) == y
    reader_right = _calls(reader_calls, y.size) == y
    masks = dict(zip(ERROR_CATEGORIES, (model_right & reader_right, model_right & ~reader_right,
                                        ~model_right & reader_right, ~model_right & ~reader_right), strict=True))
    return ErrorAnalysis(str(reader_id), {k: tuple(ids[m]) for k, m in masks.items()},
                         {k: int(np.count_nonzero(m & y)) for k, m in masks.items()})


def compare_model_with_readers(truth: Any, model_scores: Any, model_threshold: float,
                               readers: Sequence[ReaderScores], case_ids: Sequence[Any] | None = None,
                               n_boot: int = 1000, n_perm: int = 10000, alpha: float = 0.05,
                               seed: int = 0, proportion_interval: str = "wilson",
                               stratified: bool = True) -> ComparisonResult:
    """The model (called positive when `model_scores >= model_threshold`) against each reader and the
    average reader: metrics with CIs (as `reader_metrics`; the average reader's from the bootstrap),
    model-minus-reader differences with bootstrap CIs and paired permutation p-values, and per-reader
    error analyses. All bootstrap intervals share one set of resamples of the cases, stratified by truth
    unless `stratified=False`. AUC needs reader confidence scores; the average reader's AUC needs them
    from every reader.

    A reader's p-value equals `paired_permutation_test(metric, truth, model, reader, n_perm, seed)`
    (for AUC on normalised mid-ranks). For the average reader one swap pattern per case moves the
    model's output to every reader's side at once. These tests treat the readers as fixed; for a
    conclusion about readers in general use the MRMC analysis (`analyze_reader_study`).
    """
    y = _labels(truth)
    _both_classes(y, "a reader study")
    _check_resampling(y.size, n_boot, alpha)
    _check_resampling(y.size, n_perm)
    check_interval_methods(proportion_interval, "percentile")
    ids = _case_ids(case_ids, y.size)
    model_s = _scores(model_scores, y.size)
    threshold = float(model_threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"model_threshold must be a finite number, got {model_threshold!r}")
    model = (model_s >= threshold, model_s)
    checked = _checked_readers(readers, y.size)
    all_scored = all(s is not None for _, _, s in checked)

    points = [_point_metrics(y, *model)] + [_point_metrics(y, c, s) for _, c, s in checked]
    reps = _bootstrap_replicates(y, [model] + [(c, s) for _, c, s in checked], n_boot, seed, stratified)
    avg_names = METRIC_NAMES if all_scored else COUNT_METRIC_NAMES
    avg_point = {k: float(np.mean([p[k] for p in points[1:]])) for k in avg_names}
    avg_reps = {k: np.mean([r[k] for r in reps[1:]], axis=0) for k in avg_names}

    pairs = [PairedSwaps(y, model, (c, s)) for _, c, s in checked]
    tallies = [{k: PermutationTally(points[0][k] - p[k]) for k in p} for p in points[1:]]
    avg_tally = {k: PermutationTally(points[0][k] - avg_point[k]) for k in avg_names}
    vectors = np.concatenate([pair.vectors for pair in pairs], axis=1)  # one matrix product per block
    rng = np.random.default_rng(seed)
    for rows in _chunks(n_perm, y.size):
        products = (rng.random((rows, y.size)) < 0.5).astype(float) @ vectors
        per_reader = [pair.diffs(products[:, 3 * i: 3 * i + 3]) for i, pair in enumerate(pairs)]
        for diffs, tally in zip(per_reader, tallies, strict=True):
            for k, t in tally.items():
                t.add(diffs[k])
        for k, t in avg_tally.items():
            t.add(np.mean([d[k] for d in per_reader], axis=0))

    def differences(point: dict[str, float], rep: dict[str, np.ndarray], tally: dict[str, PermutationTally]):
        return {k: MetricDifference(k, points[0][k], point[k],
                                    bootstrap_interval(points[0][k] - point[k], reps[0][k] - rep[k], alpha),
                                    t.p_value, t.used) for k, t in tally.items()}

    def cis(rater: tuple[np.ndarray, np.ndarray | None], point: dict[str, float], rep: dict[str, np.ndarray]):
        return _rater_cis(y, rater[0], rater[1], point, rep, alpha, proportion_interval)

    comparisons = tuple(
        ReaderComparison(rid, cis((c, s), points[i + 1], reps[i + 1]),
                         differences(points[i + 1], reps[i + 1], tallies[i]), error_analysis(y, model[0], c, ids, rid))
        for i, (rid, c, s) in enumerate(checked))
    average = ReaderComparison(AVERAGE_READER_ID, {k: bootstrap_interval(v, avg_reps[k], alpha)
                                                   for k, v in avg_point.items()},
                               differences(avg_point, avg_reps, avg_tally), None)
    n_pos = int(np.count_nonzero(y))
    return ComparisonResult(n=int(y.size), n_pos=n_pos, n_neg=int(y.size) - n_pos, model_threshold=threshold,
                            model=cis(model, points[0], reps[0]), readers=comparisons, average_reader=average,
                            n_boot=int(n_boot), n_perm=int(n_perm), alpha=float(alpha), seed=int(seed),
                            proportion_interval=proportion_interval, stratified=bool(stratified))


# ----------------------------------------------------------------------------------------------------
# Full analysis and writer


@dataclass(frozen=True)
class ReaderStudyAnalysis:
    """Model-vs-reader comparison, MRMC analyses keyed "<design>/<fom>", notes on analyses not run,
    and the reads in long format (see `engine.metrics.mrmc_export.long_format_rows`)."""

    comparison: ComparisonResult
    mrmc: dict[str, ORResult]
    notes: tuple[str, ...]
    reads_calls: tuple[dict[str, str], ...]
    reads_scores: tuple[dict[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"comparison": self.comparison.to_dict(), "mrmc": {k: r.to_dict() for k, r in self.mrmc.items()},
                "notes": list(self.notes)}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Flat tables for CSV: metrics, differences, errors, mrmc, mrmc_foms, reads_calls, reads_scores."""
        return {
            "metrics": self.comparison.metric_rows(),
            "differences": self.comparison.difference_rows(),
            "errors": self.comparison.error_rows(),
            "mrmc": [{"analysis": k, **row} for k, r in self.mrmc.items() for row in r.comparison_rows()],
            "mrmc_foms": [{"analysis": k, **row} for k, r in self.mrmc.items() for row in r.reader_rows()],
            "reads_calls": list(self.reads_calls),
            "reads_scores": list(self.reads_scores),
        }

    def write(self, out_dir: str | Path, stem: str) -> list[Path]:
        """`<stem>.json` plus `<stem>_<table>.csv` for every non-empty table; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path = out / f"{stem}.json"
        json_path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        paths = [json_path]
        for name, rows in self.tables().items():
            if not rows:
                continue
            paths.append(write_csv(out / f"{stem}_{name}.csv", rows))
        return paths


def analyze_reader_study(truth: Any, model_scores: Any, model_threshold: float, readers: Sequence[ReaderScores],
                         aided_readers: Sequence[ReaderScores] | None = None, case_ids: Sequence[Any] | None = None,
                         n_boot: int = 1000, n_perm: int = 10000, alpha: float = 0.05,
                         seed: int = 0, covariance: str = "jackknife", proportion_interval: str = "wilson",
                         stratified: bool = True) -> ReaderStudyAnalysis:
    """Everything for one reader study: `compare_model_with_readers`, then OR-Hillis MRMC analyses:
    model vs readers (model fixed, readers and cases random) for sensitivity and specificity of the
    calls and, when every reader gave scores, the AUC; and aided vs unaided reading (difference
    aided - unaided) when `aided_readers` holds the same reader ids, with readers and cases random
    ("aided_vs_unaided/<fom>") and also with the readers fixed ("aided_vs_unaided_fixed_readers/<fom>",
    for these readers) or the cases fixed ("aided_vs_unaided_fixed_cases/<fom>", for these cases).
    `covariance` ("jackknife" or "delong") is used for the AUC; sensitivity and specificity always use the
    jackknife. Analyses that cannot run are listed in `notes` with the reason."""
    comparison = compare_model_with_readers(truth, model_scores, model_threshold, readers, case_ids,
                                            n_boot, n_perm, alpha, seed, proportion_interval, stratified)
    y = _labels(truth)
    model_s = _scores(model_scores, y.size)
    model_calls = (model_s >= float(model_threshold)).astype(float)
    unaided = _checked_readers(readers, y.size)
    reader_ids = [rid for rid, _, _ in unaided]
    scored = all(s is not None for _, _, s in unaided)
    aided = None
    if aided_readers is not None:
        by_id = {rid: (c, s) for rid, c, s in _checked_readers(aided_readers, y.size)}
        if set(by_id) != set(reader_ids):
            raise ValueError(f"aided_readers must hold the same reader ids as readers; got {sorted(by_id)} "
                             f"and {sorted(reader_ids)}")
        aided = [(rid, *by_id[rid]) for rid in reader_ids]

    mrmc: dict[str, ORResult] = {}
    notes: list[str] = []
    if len(unaided) < 2:
        notes.append(f"MRMC analyses need at least 2 readers; got {len(unaided)}, so none were run")
    else:
        calls = np.array([c for _, c, _ in unaided], dtype=float)
        for fom in ("sensitivity", "specificity"):
            mrmc[f"model_vs_readers/{fom}"] = or_hillis_fixed_reference(
                y, calls, reference_scores=model_calls, fom=fom, alpha=alpha, reader_ids=reader_ids)
        if scored:
            mrmc["model_vs_readers/auc"] = or_hillis_fixed_reference(
                y, np.array([s for _, _, s in unaided]), reference_scores=model_s, alpha=alpha, reader_ids=reader_ids,
                covariance=covariance)
        else:
            notes.append("model_vs_readers/auc not run: not every reader gave confidence scores")
        if aided is not None:
            arms = {"sensitivity": np.array([[c for _, c, _ in aided], calls], dtype=float)}
            arms["specificity"] = arms["sensitivity"]
            if scored and all(s is not None for _, _, s in aided):
                arms["auc"] = np.array([[s for _, _, s in aided], [s for _, _, s in unaided]])
            else:
                notes.append("aided_vs_unaided/auc not run: not every reader gave confidence scores in both arms")
            for fom, both in arms.items():
                cov = covariance if fom == "auc" else "jackknife"
                ids = {"treatment_ids": ("aided", "unaided"), "reader_ids": reader_ids}
                mrmc[f"aided_vs_unaided/{fom}"] = or_hillis(y, both, fom, alpha, covariance=cov, **ids)
                mrmc[f"aided_vs_unaided_fixed_readers/{fom}"] = or_fixed_readers(y, both, fom, alpha, covariance=cov,
                                                                                 **ids)
                mrmc[f"aided_vs_unaided_fixed_cases/{fom}"] = or_fixed_cases(y, both, fom, alpha, **ids)

    ids = _case_ids(case_ids, y.size)
    arms = [("unaided", unaided)] + ([("aided", aided)] if aided is not None else [])
    calls_rows = long_format_rows(y, {MODEL_ID: {MODEL_ID: model_calls},
                                      **{arm: {rid: c for rid, c, _ in rs} for arm, rs in arms}}, ids)
    score_rows: list[dict[str, str]] = []
    if all(s is not None for _, rs in arms for _, _, s in rs):
        score_rows = long_format_rows(y, {MODEL_ID: {MODEL_ID: model_s},
                                          **{arm: {rid: s for rid, _, s in rs} for arm, rs in arms}}, ids)
    return ReaderStudyAnalysis(comparison, mrmc, tuple(notes), tuple(calls_rows), tuple(score_rows))
