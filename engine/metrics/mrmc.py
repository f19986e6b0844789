"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette (OR) with Hillis degrees of freedom.

Readers and cases are both random. A figure of merit (FOM) per treatment and reader is the empirical
(Wilcoxon / trapezoidal) AUC of ordinal or continuous scores, or the sensitivity / specificity of 0/1
calls. The covariances of FOMs caused by reading the same cases come from the leave-one-case-out
jackknife, scaled by (c - 1) / c. Two designs:

- `or_hillis`: two or more treatments (e.g. unaided and aided reading), same readers and cases,
  fully crossed (Obuchowski & Rockette 1995; Hillis 2007, Stat Med 26:596-619; Hillis, Berbaum &
  Metz 2008, Acad Radiol 15:647-661).
- `or_hillis_fixed_reference`: one set of readers against a reference (a model scored on the same
  cases, or a fixed number), the single-test OR analysis of Hillis 2007 (section 5.3) applied to the
  reader-minus-reference differences, as in RJafroc's CAD-vs-radiologists analysis.

The reads in long format and the MRMC tools' input files are written by `engine.metrics.mrmc_export`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from engine.metrics.classification import _both_classes, _json_float, _labels, auc, sensitivity, specificity

MRMC_FOMS = ("auc", "sensitivity", "specificity")


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
    """Outcome of an OR-Hillis analysis (random readers, random cases).

    `foms[i, j]` is treatment i, reader j. The global test is F(ndf, ddf); `comparisons` holds each
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

    @property
    def treatment_means(self) -> np.ndarray:
        return self.foms.mean(axis=1)

    @property
    def variance_components(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("var_r", "var_tr", "cov1", "cov2", "cov3", "var_error")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return {
            "design": self.design, "fom": self.fom, "alpha": self.alpha,
            "n_cases": self.n_cases, "n_pos": self.n_pos, "n_neg": self.n_neg,
            "treatment_ids": list(self.treatment_ids), "reader_ids": list(self.reader_ids),
            "foms": [[_json_float(v) for v in row] for row in self.foms],
            "treatment_means": [_json_float(v) for v in self.treatment_means],
            "reference": None if self.reference_id is None else {
                "id": self.reference_id, "fom": _json_float(self.reference_fom),
                "from_scores": self.reference_from_scores},
            "test": {k: _json_float(getattr(self, k)) for k in ("f_stat", "ndf", "ddf", "p_value")},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "treatments": [t.to_dict() for t in self.treatments],
            "mean_squares": {k: _json_float(getattr(self, k)) for k in ("ms_t", "ms_r", "ms_tr")},
            "variance_components": {k: _json_float(v) for k, v in self.variance_components.items()},
        }

    def comparison_rows(self) -> list[dict[str, Any]]:
        """One flat row per contrast, with the global test and variance components repeated."""
        shared = {"design": self.design, "fom": self.fom, "n_readers": len(self.reader_ids),
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
# Input checks


def _check_fom(fom: str) -> None:
    if fom not in MRMC_FOMS:
        raise ValueError(f"unknown MRMC figure of merit {fom!r}; known: {', '.join(MRMC_FOMS)}")


def _check_reads(truth: Any, scores: Any, fom: str, what: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """(bool truth, float scores with cases on the last axis), checked for the jackknife."""
    _check_fom(fom)
    y = _labels(truth)
    n_pos, n_neg = _both_classes(y, "an MRMC analysis")
    s = np.asarray(scores, dtype=float)
    if s.ndim == 0 or s.shape[-1] != y.size:
        raise ValueError(f"{what} need one value per case on the last axis ({y.size} cases), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{what} contain NaN or infinity; MRMC needs every reader to read every case "
                         "(fully crossed); drop unread cases for everyone first")
    if fom != "auc" and not np.isin(s, (0.0, 1.0)).all():
        raise ValueError(f"{fom} as a figure of merit needs 0/1 calls; threshold the scores first")
    smallest = {"auc": min(n_pos, n_neg), "sensitivity": n_pos, "specificity": n_neg}[fom]
    if smallest < 2:
        raise ValueError(f"the jackknife of {fom} needs at least 2 cases of each class it uses; "
                         f"got {n_pos} positive, {n_neg} negative")
    return y, s


def _ids(ids: Sequence[Any] | None, n: int, prefix: str, what: str) -> tuple[str, ...]:
    if ids is None:
        return tuple(f"{prefix}{i}" for i in range(n))
    out = tuple(str(i) for i in ids)
    if len(out) != n:
        raise ValueError(f"{what} must name {n} entries, got {len(out)}")
    if len(set(out)) != n:
        raise ValueError(f"{what} must be unique, got {list(out)}")
    return out


# ----------------------------------------------------------------------------------------------------
# Figures of merit and their jackknife


def _below(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each value: how many reference values lie below it, ties counting one half."""
    ref = np.sort(reference)
    low = np.searchsorted(ref, values, side="left")
    high = np.searchsorted(ref, values, side="right")
    return low + 0.5 * (high - low)


_SCALAR_FOMS = {"auc": auc, "sensitivity": sensitivity, "specificity": specificity}


def fom_matrix(truth: Any, scores: Any, fom: str = "auc") -> np.ndarray:
    """The FOM of every reading: `scores[..., c]` (e.g. [treatment, reader, case]) -> array [...]."""
    y, s = _check_reads(truth, scores, fom)
    fn = _SCALAR_FOMS[fom]
    rows = s.reshape(-1, y.size)
    return np.array([fn(y, row) for row in rows]).reshape(s.shape[:-1])


def _jackknife_row(y: np.ndarray, row: np.ndarray, fom: str) -> np.ndarray:
    """FOM of one reading with each case left out in turn, in closed form (no refitting)."""
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    out = np.empty(y.size)
    if fom == "auc":
        pos, neg = row[y], row[~y]
        beaten = _below(pos, neg)  # per positive: negatives it outranks
        beating = n_pos - _below(neg, pos)  # per negative: positives that outrank it
        total = beaten.sum()
        out[y] = (total - beaten) / ((n_pos - 1) * n_neg)
        out[~y] = (total - beating) / (n_pos * (n_neg - 1))
    elif fom == "sensitivity":
        hits = row[y]
        out[y] = (hits.sum() - hits) / (n_pos - 1)
        out[~y] = hits.sum() / n_pos
    else:
        rejections = 1.0 - row[~y]
        out[~y] = (rejections.sum() - rejections) / (n_neg - 1)
        out[y] = rejections.sum() / n_neg
    return out


def jackknife_foms(truth: Any, scores: Any, fom: str = "auc") -> np.ndarray:
    """Leave-one-case-out FOMs: `scores[..., c]` -> array [..., c], entry k computed without case k."""
    y, s = _check_reads(truth, scores, fom)
    rows = s.reshape(-1, y.size)
    return np.stack([_jackknife_row(y, row, fom) for row in rows]).reshape(s.shape)


def jackknife_covariance(jackknife: Any) -> np.ndarray:
    """Jackknife covariance matrix of FOMs from `jackknife_foms` output [..., c] -> [m, m], m = prod(...).

    cov(a, b) = (c - 1) / c * sum_k (a_(k) - mean a_(.)) (b_(k) - mean b_(.)), rows in C order.
    """
    jk = np.asarray(jackknife, dtype=float)
    c = jk.shape[-1]
    centred = jk.reshape(-1, c) - jk.reshape(-1, c).mean(axis=1, keepdims=True)
    return (c - 1) / c * (centred @ centred.T)


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
# OR-Hillis analyses


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def or_hillis(truth: Any, scores: Any, fom: str = "auc", alpha: float = 0.05,
              treatment_ids: Sequence[Any] | None = None, reader_ids: Sequence[Any] | None = None) -> ORResult:
    """OR analysis of t >= 2 treatments read by the same r >= 2 readers on the same cases.

    `scores[t, r, c]`: ratings (any ordinal or continuous scale, higher = more likely positive) for
    `fom="auc"`, 0/1 calls for sensitivity / specificity. Global test
    F = MS(T) / [MS(T*R) + r max(Cov2 - Cov3, 0)] on (t - 1, ddf_H) degrees of freedom with
    ddf_H = [MS(T*R) + r max(Cov2 - Cov3, 0)]^2 / [MS(T*R)^2 / ((t - 1)(r - 1))] (Hillis 2007).
    Each pair a < b gets FOM_a - FOM_b with SE^2 = 2 / r * [MS(T*R) + r max(Cov2 - Cov3, 0)].
    """
    _check_alpha(alpha)
    y, s = _check_reads(truth, scores, fom)
    if s.ndim != 3:
        raise ValueError(f"scores must be [treatment, reader, case], got shape {s.shape}")
    t, r, c = s.shape
    if t < 2:
        raise ValueError("or_hillis compares at least 2 treatments; for readers against a model or a "
                         "fixed value use or_hillis_fixed_reference")
    if r < 2:
        raise ValueError(f"MRMC analysis needs at least 2 readers, got {r}; report per-reader metrics instead")
    t_ids = _ids(treatment_ids, t, "treatment", "treatment_ids")
    r_ids = _ids(reader_ids, r, "reader", "reader_ids")

    theta = fom_matrix(y, s, fom)
    cov4 = jackknife_covariance(jackknife_foms(y, s, fom)).reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]
    var_error = float(cov4[same_t & same_r].mean())
    cov1 = float(cov4[~same_t & same_r].mean())
    cov2 = float(cov4[same_t & ~same_r].mean())
    cov3 = float(cov4[~same_t & ~same_r].mean())

    grand = theta.mean()
    by_t, by_r = theta.mean(axis=1), theta.mean(axis=0)
    ms_t = float(r * np.sum((by_t - grand) ** 2) / (t - 1))
    ms_r = float(t * np.sum((by_r - grand) ** 2) / (r - 1))
    ms_tr = float(np.sum((theta - by_t[:, None] - by_r[None, :] + grand) ** 2) / ((t - 1) * (r - 1)))

    den = ms_tr + r * max(cov2 - cov3, 0.0)
    ddf = _hillis_df(den, ms_tr, (t - 1) * (r - 1))
    f_stat = ms_t / den if den > 0 else math.nan
    comparisons = tuple(_contrast(f"{t_ids[a]} - {t_ids[b]}", float(by_t[a] - by_t[b]), 2 * den / r, ddf, alpha)
                        for a in range(t) for b in range(a + 1, t))
    treatments = tuple(_single_treatment(t_ids[i], theta[i], cov4[i, :, i, :], alpha) for i in range(t))
    n_pos = int(np.count_nonzero(y))
    return ORResult(
        design="treatments", fom=fom, alpha=float(alpha), n_cases=c, n_pos=n_pos, n_neg=c - n_pos,
        treatment_ids=t_ids, reader_ids=r_ids, foms=theta, reference_id=None, reference_fom=math.nan,
        reference_from_scores=False, f_stat=f_stat, ndf=float(t - 1), ddf=ddf,
        p_value=_f_sf(f_stat, t - 1, ddf), comparisons=comparisons, treatments=treatments,
        ms_t=ms_t, ms_r=ms_r, ms_tr=ms_tr,
        var_r=(ms_r - ms_tr) / t - cov1 + cov3, var_tr=ms_tr - var_error + cov1 + cov2 - cov3,
        cov1=cov1, cov2=cov2, cov3=cov3, var_error=var_error,
    )


def or_hillis_fixed_reference(truth: Any, reader_scores: Any, reference_scores: Any = None,
                              reference_fom: float | None = None, fom: str = "auc", alpha: float = 0.05,
                              reader_ids: Sequence[Any] | None = None, reference_id: str = "model",
                              readers_id: str = "readers") -> ORResult:
    """Does the mean reader FOM differ from a reference? Readers and cases random, the reference fixed.

    `reader_scores[r, c]`. Give exactly one of:
    - `reference_scores[c]`: a model read the same cases. Its FOM is fixed across readers (no reader
      effect) but still varies with the case sample, so the analysis works on the differences
      D_j = FOM_ref - FOM_j, jackknifing the model and the readers on the same left-out case.
    - `reference_fom`: a known constant (e.g. a performance goal); only the readers vary.

    With Var and Cov2 the jackknife variance and between-reader covariance of the D_j (Hillis 2007,
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
    jack = jackknife_foms(y, s, fom)
    if reference_scores is not None:
        _, ref = _check_reads(y, reference_scores, fom, "reference_scores")
        if ref.shape != (c,):
            raise ValueError(f"reference_scores must have shape ({c},), got {ref.shape}")
        ref_fom = float(fom_matrix(y, ref, fom))
        diff_jack = jackknife_foms(y, ref, fom)[None, :] - jack
    else:
        ref_fom = float(reference_fom)
        if not math.isfinite(ref_fom):
            raise ValueError(f"reference_fom must be a finite number, got {reference_fom!r}")
        diff_jack = -jack

    cov = jackknife_covariance(diff_jack)
    var_error = float(np.mean(np.diag(cov)))
    cov2 = float(cov[~np.eye(r, dtype=bool)].mean())
    ms_r = float(theta.var(ddof=1))
    den = ms_r + r * max(cov2, 0.0)
    ddf = _hillis_df(den, ms_r, r - 1)
    contrast = _contrast(f"{reference_id} - mean reader", ref_fom - float(theta.mean()), den / r, ddf, alpha)
    readers_ci = _single_treatment(readers_id, theta, jackknife_covariance(jack), alpha)
    n_pos = int(np.count_nonzero(y))
    return ORResult(
        design="fixed_reference", fom=fom, alpha=float(alpha), n_cases=c, n_pos=n_pos, n_neg=c - n_pos,
        treatment_ids=(readers_id,), reader_ids=r_ids, foms=theta[None, :], reference_id=reference_id,
        reference_fom=ref_fom, reference_from_scores=reference_scores is not None,
        f_stat=contrast.t_stat ** 2, ndf=1.0, ddf=ddf, p_value=contrast.p_value, comparisons=(contrast,),
        treatments=(readers_ci,), ms_t=math.nan, ms_r=ms_r, ms_tr=math.nan,
        var_r=ms_r - var_error + cov2, var_tr=math.nan, cov1=math.nan, cov2=cov2, cov3=math.nan,
        var_error=var_error,
    )
