"""Multi-reader multi-case (MRMC) analysis: the Obuchowski-Rockette (OR) model with Hillis' methods.

A figure of merit (FOM) per treatment and reader (the empirical AUC of scores, or the sensitivity / specificity
of 0/1 calls) varies with the readers and with the cases read. The covariances of FOM estimates caused by reading
the same cases come from `engine.metrics.mrmc_covariance` ("jackknife", the default, or "delong" for the AUC).
Analyses of t >= 2 treatments read by the same readers on the same cases (Obuchowski & Rockette 1995;
Hillis 2007, Stat Med 26:596-619; Hillis, Berbaum & Metz 2008, Acad Radiol 15:647-661; Hillis 2018):

- `or_hillis`: readers and cases random (RRRC), Hillis denominator df: conclusions for readers and cases like
  these.
- `or_fixed_readers`: readers fixed, cases random (FRRC): for these readers, with per-reader differences.
- `or_fixed_cases`: readers random, cases fixed (RRFC): for these cases.
- `or_hillis_fixed_reference`: one set of readers against a reference (a model scored on the same cases, or a
  fixed number), the single-test OR analysis of Hillis 2007 (section 5.3) applied to the reader-minus-reference
  differences, as in RJafroc's CAD-vs-radiologists analysis.

The tests check all of them against published output for the Van Dyke data (OR-DBM MRMC 2.51 and MRMCaov).
The reads in long format and the MRMC tools' input files are written by `engine.metrics.mrmc_export`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from engine.metrics.classification import _json_float
from engine.metrics.mrmc_covariance import _check_reads, _ids, fom_covariance, fom_matrix

# ----------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ORComparison:
    """One contrast (a treatment difference, or reference minus mean reader) with its t-based CI."""

    label: str
    estimate: float
    std_err: float
    df: float
    t_stat: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, **{k: _json_float(getattr(self, k)) for k in
                ("estimate", "std_err", "df", "t_stat", "p_value", "ci_low", "ci_high")}}


@dataclass(frozen=True)
class TreatmentCI:
    """Reader-averaged FOM of one treatment with its single-treatment OR-Hillis interval."""

    treatment: str
    estimate: float
    std_err: float
    df: float
    ci_low: float
    ci_high: float
    ms_r: float
    var_error: float
    cov2: float

    def to_dict(self) -> dict[str, Any]:
        return {"treatment": self.treatment, **{k: _json_float(getattr(self, k)) for k in
                ("estimate", "std_err", "df", "ci_low", "ci_high", "ms_r", "var_error", "cov2")}}


@dataclass(frozen=True, eq=False)
class ORResult:
    """Outcome of an OR analysis; `factors` says which of readers and cases are random.

    `foms[i, j]` is treatment i, reader j. The global test is F(ndf, ddf) (ddf = inf: chi-square of
    ndf * F on ndf df, z instead of t for the contrasts); `comparisons` holds each
    pairwise treatment difference ("a - b"), or for the fixed-reference design the single contrast
    reference minus mean reader. OR variance components: var_r (readers), var_tr (treatment x reader),
    cov1 (same reader, other treatment), cov2 (other reader, same treatment), cov3 (other reader and
    treatment), var_error (case-sampling variance of one FOM). Components that a design does not
    have are NaN; the ANOVA estimates of var_r and var_tr can be negative.
    """

    design: str
    fom: str
    alpha: float
    n_cases: int
    n_pos: int
    n_neg: int
    treatment_ids: tuple[str, ...]
    reader_ids: tuple[str, ...]
    foms: np.ndarray
    reference_id: str | None
    reference_fom: float
    reference_from_scores: bool
    f_stat: float
    ndf: float
    ddf: float
    p_value: float
    comparisons: tuple[ORComparison, ...]
    treatments: tuple[TreatmentCI, ...]
    ms_t: float
    ms_r: float
    ms_tr: float
    var_r: float
    var_tr: float
    cov1: float
    cov2: float
    cov3: float
    var_error: float
    factors: str = "random readers, random cases"
    covariance: str = "jackknife"  # "none" when the cases are fixed
    reader_comparisons: tuple[ORComparison, ...] = ()  # fixed readers: each reader's treatment differences

    @property
    def treatment_means(self) -> np.ndarray:
        return self.foms.mean(axis=1)

    @property
    def variance_components(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("var_r", "var_tr", "cov1", "cov2", "cov3", "var_error")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return {
            "design": self.design, "fom": self.fom, "alpha": self.alpha, "factors": self.factors,
            "covariance": self.covariance,
            "n_cases": self.n_cases, "n_pos": self.n_pos, "n_neg": self.n_neg,
            "treatment_ids": list(self.treatment_ids), "reader_ids": list(self.reader_ids),
            "foms": [[_json_float(v) for v in row] for row in self.foms],
            "treatment_means": [_json_float(v) for v in self.treatment_means],
            "reference": None if self.reference_id is None else {
                "id": self.reference_id, "fom": _json_float(self.reference_fom),
                "from_scores": self.reference_from_scores},
            "test": {k: _json_float(getattr(self, k)) for k in ("f_stat", "ndf", "ddf", "p_value")},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "reader_comparisons": [c.to_dict() for c in self.reader_comparisons],
            "treatments": [t.to_dict() for t in self.treatments],
            "mean_squares": {k: _json_float(getattr(self, k)) for k in ("ms_t", "ms_r", "ms_tr")},
            "variance_components": {k: _json_float(v) for k, v in self.variance_components.items()},
        }

    def comparison_rows(self) -> list[dict[str, Any]]:
        """One flat row per contrast, with the global test and variance components repeated."""
        shared = {"design": self.design, "fom": self.fom, "factors": self.factors, "covariance": self.covariance,
                  "n_readers": len(self.reader_ids),
                  "n_cases": self.n_cases, "f_stat": self.f_stat, "ndf": self.ndf, "ddf": self.ddf,
                  "p_global": self.p_value, **self.variance_components}
        return [{**shared, "comparison": c.label, "estimate": c.estimate, "std_err": c.std_err,
                 "df": c.df, "p_value": c.p_value, "ci_low": c.ci_low, "ci_high": c.ci_high}
                for c in self.comparisons]

    def reader_rows(self) -> list[dict[str, Any]]:
        """One row per (treatment, reader) FOM, plus the reference when there is one."""
        rows = [{"fom": self.fom, "treatment": t, "reader": r, "value": float(self.foms[i, j])}
                for i, t in enumerate(self.treatment_ids) for j, r in enumerate(self.reader_ids)]
        if self.reference_id is not None:
            rows.append({"fom": self.fom, "treatment": "reference", "reader": self.reference_id,
                         "value": self.reference_fom})
        return rows


# ----------------------------------------------------------------------------------------------------
# Distributions with an infinite denominator df (MS(T*R) = 0)


def _t_two_sided(t_stat: float, df: float) -> float:
    return float(2 * stats.t.sf(abs(t_stat), df)) if math.isfinite(t_stat) else math.nan


def _f_sf(f_stat: float, ndf: float, ddf: float) -> float:
    if not math.isfinite(f_stat):
        return math.nan
    if math.isinf(ddf):
        return float(stats.chi2.sf(f_stat * ndf, ndf))
    return float(stats.f.sf(f_stat, ndf, ddf))


def _hillis_df(denominator: float, ms: float, df_ms: int) -> float:
    """Satterthwaite-style df of the error term: den^2 / (ms^2 / df_ms); infinite when ms is 0."""
    if ms == 0.0:
        return math.inf if denominator > 0 else math.nan
    return denominator ** 2 / (ms ** 2 / df_ms)


def _contrast(label: str, estimate: float, variance: float, df: float, alpha: float) -> ORComparison:
    se = math.sqrt(variance) if variance > 0 else math.nan
    t_stat = estimate / se if se > 0 else math.nan
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se if math.isfinite(se) and not math.isnan(df) else math.nan
    return ORComparison(label, float(estimate), se, float(df), t_stat, _t_two_sided(t_stat, df),
                        estimate - half, estimate + half)


def _single_treatment(name: str, theta: np.ndarray, cov: np.ndarray, alpha: float) -> TreatmentCI:
    """Reader-mean CI of one treatment: SE^2 = [MS(R) + r max(Cov2, 0)] / r, df = ddf_H_single."""
    r = theta.size
    ms_r = float(theta.var(ddof=1))
    var_error = float(np.mean(np.diag(cov)))
    cov2 = float(cov[~np.eye(r, dtype=bool)].mean())
    den = ms_r + r * max(cov2, 0.0)
    c = _contrast(name, float(theta.mean()), den / r, _hillis_df(den, ms_r, r - 1), alpha)
    return TreatmentCI(name, c.estimate, c.std_err, c.df, c.ci_low, c.ci_high, ms_r, var_error, cov2)


# ----------------------------------------------------------------------------------------------------
# OR analyses of t >= 2 treatments: readers and cases random (RRRC), readers fixed (FRRC), cases fixed (RRFC)

RRRC, FRRC, RRFC = "random readers, random cases", "fixed readers, random cases", "random readers, fixed cases"


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


@dataclass(frozen=True)
class _ORFit:
    """What every OR analysis of a crossed treatment x reader x case design starts from."""

    y: np.ndarray
    theta: np.ndarray  # [t, r] FOMs
    cov4: np.ndarray | None  # [t, r, t, r] covariances of the FOM estimates (None with fixed cases)
    t_ids: tuple[str, ...]
    r_ids: tuple[str, ...]
    ms_t: float
    ms_r: float
    ms_tr: float
    var_error: float = math.nan
    cov1: float = math.nan
    cov2: float = math.nan
    cov3: float = math.nan

    @property
    def means(self) -> np.ndarray:
        return self.theta.mean(axis=1)

    def pairs(self) -> list[tuple[int, int]]:
        t = self.theta.shape[0]
        return [(a, b) for a in range(t) for b in range(a + 1, t)]


def _or_fit(truth: Any, scores: Any, fom: str, alpha: float, treatment_ids: Sequence[Any] | None,
            reader_ids: Sequence[Any] | None, covariance: str | None, who: str) -> _ORFit:
    """Checked inputs, FOMs, mean squares and (unless `covariance` is None) the OR covariance components."""
    _check_alpha(alpha)
    y, s = _check_reads(truth, scores, fom)
    if s.ndim != 3:
        raise ValueError(f"scores must be [treatment, reader, case], got shape {s.shape}")
    t, r, _ = s.shape
    if t < 2:
        raise ValueError(f"{who} compares at least 2 treatments; for readers against a model or a fixed value "
                         "use or_hillis_fixed_reference")
    if r < 2:
        raise ValueError(f"MRMC analysis needs at least 2 readers, got {r}; report per-reader metrics instead")
    t_ids = _ids(treatment_ids, t, "treatment", "treatment_ids")
    r_ids = _ids(reader_ids, r, "reader", "reader_ids")
    theta = fom_matrix(y, s, fom)
    grand = theta.mean()
    by_t, by_r = theta.mean(axis=1), theta.mean(axis=0)
    ms = {"ms_t": float(r * np.sum((by_t - grand) ** 2) / (t - 1)),
          "ms_r": float(t * np.sum((by_r - grand) ** 2) / (r - 1)),
          "ms_tr": float(np.sum((theta - by_t[:, None] - by_r[None, :] + grand) ** 2) / ((t - 1) * (r - 1)))}
    if covariance is None:
        return _ORFit(y, theta, None, t_ids, r_ids, **ms)
    cov4 = fom_covariance(y, s, fom, covariance).reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]
    return _ORFit(y, theta, cov4, t_ids, r_ids, **ms, var_error=float(cov4[same_t & same_r].mean()),
                  cov1=float(cov4[~same_t & same_r].mean()), cov2=float(cov4[same_t & ~same_r].mean()),
                  cov3=float(cov4[~same_t & ~same_r].mean()))


def _result(fit: _ORFit, fom: str, alpha: float, factors: str, covariance: str | None, f_stat: float, ddf: float,
            comparisons: Sequence[ORComparison], treatments: Sequence[TreatmentCI],
            reader_comparisons: Sequence[ORComparison] = ()) -> ORResult:
    t = fit.theta.shape[0]
    n_pos = int(np.count_nonzero(fit.y))
    return ORResult(
        design="treatments", fom=fom, alpha=float(alpha), n_cases=fit.y.size, n_pos=n_pos, n_neg=fit.y.size - n_pos,
        treatment_ids=fit.t_ids, reader_ids=fit.r_ids, foms=fit.theta, reference_id=None, reference_fom=math.nan,
        reference_from_scores=False, f_stat=f_stat, ndf=float(t - 1), ddf=ddf, p_value=_f_sf(f_stat, t - 1, ddf),
        comparisons=tuple(comparisons), treatments=tuple(treatments), ms_t=fit.ms_t, ms_r=fit.ms_r,
        ms_tr=fit.ms_tr, var_r=(fit.ms_r - fit.ms_tr) / t - fit.cov1 + fit.cov3,
        var_tr=fit.ms_tr - fit.var_error + fit.cov1 + fit.cov2 - fit.cov3, cov1=fit.cov1, cov2=fit.cov2,
        cov3=fit.cov3, var_error=fit.var_error, factors=factors, covariance=covariance or "none",
        reader_comparisons=tuple(reader_comparisons),
    )


def or_hillis(truth: Any, scores: Any, fom: str = "auc", alpha: float = 0.05,
              treatment_ids: Sequence[Any] | None = None, reader_ids: Sequence[Any] | None = None,
              covariance: str = "jackknife") -> ORResult:
    """OR analysis of t >= 2 treatments read by the same r >= 2 readers on the same cases, readers and cases
    random (RRRC).

    `scores[t, r, c]`: ratings (any ordinal or continuous scale, higher = more likely positive) for
    `fom="auc"`, 0/1 calls for sensitivity / specificity. `covariance`: "jackknife" or "delong" (AUC only).
    Global test F = MS(T) / [MS(T*R) + r max(Cov2 - Cov3, 0)] on (t - 1, ddf_H) degrees of freedom with
    ddf_H = [MS(T*R) + r max(Cov2 - Cov3, 0)]^2 / [MS(T*R)^2 / ((t - 1)(r - 1))] (Hillis 2007).
    Each pair a < b gets FOM_a - FOM_b with SE^2 = 2 / r * [MS(T*R) + r max(Cov2 - Cov3, 0)].
    """
    fit = _or_fit(truth, scores, fom, alpha, treatment_ids, reader_ids, covariance, "or_hillis")
    r = fit.theta.shape[1]
    den = fit.ms_tr + r * max(fit.cov2 - fit.cov3, 0.0)
    ddf = _hillis_df(den, fit.ms_tr, (fit.theta.shape[0] - 1) * (r - 1))
    comparisons = [_contrast(f"{fit.t_ids[a]} - {fit.t_ids[b]}", float(fit.means[a] - fit.means[b]), 2 * den / r,
                             ddf, alpha) for a, b in fit.pairs()]
    treatments = [_single_treatment(fit.t_ids[i], fit.theta[i], fit.cov4[i, :, i, :], alpha)
                  for i in range(fit.theta.shape[0])]
    return _result(fit, fom, alpha, RRRC, covariance, fit.ms_t / den if den > 0 else math.nan, ddf, comparisons,
                   treatments)


def or_fixed_readers(truth: Any, scores: Any, fom: str = "auc", alpha: float = 0.05,
                     treatment_ids: Sequence[Any] | None = None, reader_ids: Sequence[Any] | None = None,
                     covariance: str = "jackknife") -> ORResult:
    """OR analysis with the readers fixed and the cases random (FRRC, Hillis 2007 section 4): conclusions hold
    for these readers only.

    Den = Var - Cov1 + (r - 1) max(Cov2 - Cov3, 0); the global statistic (t - 1) MS(T) / Den is chi-square on
    t - 1 df, kept here as F = MS(T) / Den with ddf = inf. Differences: SE^2 = 2 Den / r, normal CI. Each
    treatment: SE^2 = [Var_i + (r - 1) max(Cov2_i, 0)] / r. `reader_comparisons`: each reader's own treatment
    differences, SE^2 = Var_a + Var_b - 2 Cov1 of that reader, normal CI.
    """
    fit = _or_fit(truth, scores, fom, alpha, treatment_ids, reader_ids, covariance, "or_fixed_readers")
    t, r = fit.theta.shape
    den = fit.var_error - fit.cov1 + (r - 1) * max(fit.cov2 - fit.cov3, 0.0)
    comparisons = [_contrast(f"{fit.t_ids[a]} - {fit.t_ids[b]}", float(fit.means[a] - fit.means[b]), 2 * den / r,
                             math.inf, alpha) for a, b in fit.pairs()]
    treatments = []
    for i in range(t):
        cov = fit.cov4[i, :, i, :]
        var_error, cov2 = float(np.mean(np.diag(cov))), float(cov[~np.eye(r, dtype=bool)].mean())
        c = _contrast(fit.t_ids[i], float(fit.means[i]), (var_error + (r - 1) * max(cov2, 0.0)) / r, math.inf,
                      alpha)
        treatments.append(TreatmentCI(c.label, c.estimate, c.std_err, c.df, c.ci_low, c.ci_high,
                                      float(fit.theta[i].var(ddof=1)), var_error, cov2))
    per_reader = [_contrast(f"{fit.r_ids[j]}: {fit.t_ids[a]} - {fit.t_ids[b]}", float(fit.theta[a, j] - fit.theta[b, j]),
                            fit.cov4[a, j, a, j] + fit.cov4[b, j, b, j] - 2 * fit.cov4[a, j, b, j], math.inf, alpha)
                  for j in range(r) for a, b in fit.pairs()]
    return _result(fit, fom, alpha, FRRC, covariance, fit.ms_t / den if den > 0 else math.nan, math.inf,
                   comparisons, treatments, per_reader)


def or_fixed_cases(truth: Any, scores: Any, fom: str = "auc", alpha: float = 0.05,
                   treatment_ids: Sequence[Any] | None = None, reader_ids: Sequence[Any] | None = None) -> ORResult:
    """OR analysis with the readers random and the cases fixed (RRFC, Hillis 2007 section 4): conclusions hold
    for these cases only, so no case-sampling covariance enters (the conventional treatment x reader ANOVA).

    F = MS(T) / MS(T*R) on (t - 1, (t - 1)(r - 1)) df; differences SE^2 = 2 MS(T*R) / r on (t - 1)(r - 1) df;
    each treatment SE^2 = MS(R)_i / r on r - 1 df, MS(R)_i the variance of its readers' FOMs.
    """
    fit = _or_fit(truth, scores, fom, alpha, treatment_ids, reader_ids, None, "or_fixed_cases")
    t, r = fit.theta.shape
    ddf = float((t - 1) * (r - 1))
    comparisons = [_contrast(f"{fit.t_ids[a]} - {fit.t_ids[b]}", float(fit.means[a] - fit.means[b]),
                             2 * fit.ms_tr / r, ddf, alpha) for a, b in fit.pairs()]
    treatments = []
    for i in range(t):
        ms_r = float(fit.theta[i].var(ddof=1))
        c = _contrast(fit.t_ids[i], float(fit.means[i]), ms_r / r, float(r - 1), alpha)
        treatments.append(TreatmentCI(c.label, c.estimate, c.std_err, c.df, c.ci_low, c.ci_high, ms_r,
                                      math.nan, math.nan))
    return _result(fit, fom, alpha, RRFC, None, fit.ms_t / fit.ms_tr if fit.ms_tr > 0 else math.nan, ddf,
                   comparisons, treatments)


def or_hillis_fixed_reference(truth: Any, reader_scores: Any, reference_scores: Any = None,
                              reference_fom: float | None = None, fom: str = "auc", alpha: float = 0.05,
                              reader_ids: Sequence[Any] | None = None, reference_id: str = "model",
                              readers_id: str = "readers", covariance: str = "jackknife") -> ORResult:
    """Does the mean reader FOM differ from a reference? Readers and cases random, the reference fixed.

    `reader_scores[r, c]`. Give exactly one of:
    - `reference_scores[c]`: a model read the same cases. Its FOM is fixed across readers (no reader
      effect) but still varies with the case sample, so the analysis works on the differences
      D_j = FOM_ref - FOM_j, whose covariance comes from that of (model, readers) on the same cases.
    - `reference_fom`: a known constant (e.g. a performance goal); only the readers vary.

    With Var and Cov2 the variance and between-reader covariance of the D_j (Hillis 2007,
    section 5.3, single-test inference): den = MS(R) + r max(Cov2, 0), SE^2 = den / r,
    df = den^2 / [MS(R)^2 / (r - 1)], t = mean(D) / SE and F = t^2 on (1, df). This equals the
    two-treatment `or_hillis` with the model copied to every reader: there MS(T*R) = MS(R) / 2 and
    Cov2 - Cov3 = Cov2(D) / 2, so both give the same F, ddf and p. var_r = MS(R) - Var + Cov2.
    """
    _check_alpha(alpha)
    y, s = _check_reads(truth, reader_scores, fom, "reader_scores")
    if s.ndim != 2:
        raise ValueError(f"reader_scores must be [reader, case], got shape {s.shape}")
    r, c = s.shape
    if r < 2:
        raise ValueError(f"MRMC analysis needs at least 2 readers, got {r}; report per-reader metrics instead")
    if (reference_scores is None) == (reference_fom is None):
        raise ValueError("give exactly one of reference_scores (a model read the same cases) or "
                         "reference_fom (a fixed value)")
    r_ids = _ids(reader_ids, r, "reader", "reader_ids")

    theta = fom_matrix(y, s, fom)
    if reference_scores is not None:
        _, ref = _check_reads(y, reference_scores, fom, "reference_scores")
        if ref.shape != (c,):
            raise ValueError(f"reference_scores must have shape ({c},), got {ref.shape}")
        ref_fom = float(fom_matrix(y, ref, fom))
        joint = fom_covariance(y, np.vstack([ref, s]), fom, covariance)  # [1 + r, 1 + r]: model, then readers
        to_diff = np.hstack([np.ones((r, 1)), -np.eye(r)])  # D_j = model - reader j
        cov_readers = joint[1:, 1:]
    else:
        ref_fom = float(reference_fom)
        if not math.isfinite(ref_fom):
            raise ValueError(f"reference_fom must be a finite number, got {reference_fom!r}")
        joint = cov_readers = fom_covariance(y, s, fom, covariance)
        to_diff = -np.eye(r)

    cov = to_diff @ joint @ to_diff.T
    var_error = float(np.mean(np.diag(cov)))
    cov2 = float(cov[~np.eye(r, dtype=bool)].mean())
    ms_r = float(theta.var(ddof=1))
    den = ms_r + r * max(cov2, 0.0)
    ddf = _hillis_df(den, ms_r, r - 1)
    contrast = _contrast(f"{reference_id} - mean reader", ref_fom - float(theta.mean()), den / r, ddf, alpha)
    readers_ci = _single_treatment(readers_id, theta, cov_readers, alpha)
    n_pos = int(np.count_nonzero(y))
    return ORResult(
        design="fixed_reference", fom=fom, alpha=float(alpha), n_cases=c, n_pos=n_pos, n_neg=c - n_pos,
        treatment_ids=(readers_id,), reader_ids=r_ids, foms=theta[None, :], reference_id=reference_id,
        reference_fom=ref_fom, reference_from_scores=reference_scores is not None,
        f_stat=contrast.t_stat ** 2, ndf=1.0, ddf=ddf, p_value=contrast.p_value, comparisons=(contrast,),
        treatments=(readers_ci,), ms_t=math.nan, ms_r=ms_r, ms_tr=math.nan,
        var_r=ms_r - var_error + cov2, var_tr=math.nan, cov1=math.nan, cov2=cov2, cov3=math.nan,
        var_error=var_error, factors=RRRC, covariance=covariance,
    )
