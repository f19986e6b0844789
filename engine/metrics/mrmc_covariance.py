"""Figures of merit of MRMC reads and the covariances of their estimates across readers and treatments.

A reading is one reader's scores on every case in one treatment; its figure of merit (FOM) is the empirical
(Mann-Whitney) AUC of ordinal or continuous scores, or the sensitivity / specificity of 0/1 calls. The OR
analyses (`engine.metrics.mrmc`) need the covariance matrix of the FOM estimates of all readings caused by
reading the same cases. Two estimators:

- jackknife (the default; OR-DBM MRMC's, RJafroc's and MRMCaov's): leave-one-case-out FOMs, covariance scaled
  by (n - 1) / n, n the number of cases the FOM depends on: all cases for the AUC, the positives for sensitivity,
  the negatives for specificity (as MRMCaov, which scores a sensitivity on the positive cases alone).
- DeLong (MRMCaov's default for the empirical AUC; DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837):
  per-case structural components V10 (each positive: the share of negatives it outranks, ties half) and V01
  (each negative: the share of positives that outrank it); cov = S10 / n_pos + S01 / n_neg with S10, S01 the
  sample covariances (denominators n_pos - 1, n_neg - 1) of the components. AUC only, like MRMCaov.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.metrics.classification import _below, _both_classes, _labels, auc, sensitivity, specificity
from engine.metrics.resampling import leave_one_out

MRMC_FOMS = ("auc", "sensitivity", "specificity")
COVARIANCE_METHODS = ("jackknife", "delong")


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


_SCALAR_FOMS = {"auc": auc, "sensitivity": sensitivity, "specificity": specificity}


def fom_matrix(truth: Any, scores: Any, fom: str = "auc") -> np.ndarray:
    """The FOM of every reading: `scores[..., c]` (e.g. [treatment, reader, case]) -> array [...]."""
    y, s = _check_reads(truth, scores, fom)
    fn = _SCALAR_FOMS[fom]
    rows = s.reshape(-1, y.size)
    return np.array([fn(y, row) for row in rows]).reshape(s.shape[:-1])


def jackknife_foms(truth: Any, scores: Any, fom: str = "auc") -> np.ndarray:
    """Leave-one-case-out FOMs: `scores[..., c]` -> array [..., c], entry k computed without case k."""
    y, s = _check_reads(truth, scores, fom)
    rows = s.reshape(-1, y.size)
    return np.stack([leave_one_out(fom, y, row) for row in rows]).reshape(s.shape)


def jackknife_covariance(jackknife: Any, n_used: int | None = None) -> np.ndarray:
    """Jackknife covariance matrix of FOMs from `jackknife_foms` output [..., c] -> [m, m], m = prod(...).

    cov(a, b) = (n - 1) / n * sum_k (a_(k) - mean a_(.)) (b_(k) - mean b_(.)), rows in C order, with n the number
    of cases the FOM depends on (`n_used`; default all c). Cases a FOM ignores (negatives for sensitivity) leave
    it unchanged and add nothing to the sum; n = n_pos then gives a proportion its usual variance s^2 / n_pos.
    """
    jk = np.asarray(jackknife, dtype=float)
    c = jk.shape[-1]
    n = c if n_used is None else int(n_used)
    centred = jk.reshape(-1, c) - jk.reshape(-1, c).mean(axis=1, keepdims=True)
    return (n - 1) / n * (centred @ centred.T)


def delong_covariance(truth: Any, scores: Any) -> np.ndarray:
    """DeLong covariance matrix of the empirical AUCs of the readings `scores[..., c]` -> [m, m], rows in C order."""
    y, s = _check_reads(truth, scores, "auc")
    rows = s.reshape(-1, y.size)
    n_pos, n_neg = int(np.count_nonzero(y)), int(np.count_nonzero(~y))
    v10 = np.stack([_below(row[y], row[~y]) / n_neg for row in rows])  # [m, n_pos]
    v01 = np.stack([(n_pos - _below(row[~y], row[y])) / n_pos for row in rows])  # [m, n_neg]
    d10 = v10 - v10.mean(axis=1, keepdims=True)
    d01 = v01 - v01.mean(axis=1, keepdims=True)
    return (d10 @ d10.T) / ((n_pos - 1) * n_pos) + (d01 @ d01.T) / ((n_neg - 1) * n_neg)


def fom_covariance(truth: Any, scores: Any, fom: str = "auc", method: str = "jackknife") -> np.ndarray:
    """Covariance matrix [m, m] of the FOM estimates of the readings `scores[..., c]` (m = prod(...), C order)."""
    if method not in COVARIANCE_METHODS:
        raise ValueError(f"unknown covariance method {method!r}; known: {', '.join(COVARIANCE_METHODS)}")
    if method == "delong":
        if fom != "auc":
            raise ValueError(f"the DeLong covariance is defined for the empirical AUC only (as in MRMCaov); for "
                             f"{fom} use method='jackknife'")
        return delong_covariance(truth, scores)
    y, _ = _check_reads(truth, scores, fom)
    n_used = {"auc": y.size, "sensitivity": int(np.count_nonzero(y)), "specificity": int(np.count_nonzero(~y))}
    return jackknife_covariance(jackknife_foms(truth, scores, fom), n_used[fom])
