"""Confidence limits from counts (proportions) and from bootstrap replicates.

Proportions (sensitivity, specificity, PPV, NPV, accuracy: x successes out of n):
- "wilson": the Wilson score interval, the default. Its coverage stays close to nominal for proportions near
  0 or 1 and for small n, where the percentile bootstrap and the Wald interval fall short (Brown, Cai &
  DasGupta 2001, Stat Sci 16:101; docs/ci_coverage.md measures it for OncoLens' own study sizes).
- "wilson_cc": Wilson with continuity correction (Newcombe 1998, Stat Med 17:857, method 4): wider, coverage
  at or above nominal.
- "clopper_pearson": the exact (beta quantile) interval: guaranteed coverage, usually conservative.

Bootstrap replicates of any statistic:
- "percentile": the alpha/2 and 1 - alpha/2 quantiles of the replicates.
- "bca": bias-corrected and accelerated (Efron 1987, JASA 82:171): the quantile levels are shifted by the
  bias z0 = Phi^-1(share of replicates below the estimate, ties counted half) and the acceleration
  a = sum(d^3) / (6 sum(d^2)^1.5), d the deviations of the leave-one-case-out (jackknife) values from their mean.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

PROPORTION_METHODS = ("wilson", "wilson_cc", "clopper_pearson")
BOOTSTRAP_METHODS = ("percentile", "bca")


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def proportion_ci(successes: int, total: int, alpha: float = 0.05, method: str = "wilson") -> tuple[float, float]:
    """(low, high) of a binomial proportion successes / total; NaN limits when total is 0."""
    if method not in PROPORTION_METHODS:
        raise ValueError(f"unknown proportion interval {method!r}; known: {', '.join(PROPORTION_METHODS)}")
    x, n = int(successes), int(total)
    if n == 0:
        return math.nan, math.nan
    if not 0 <= x <= n:
        raise ValueError(f"successes must be between 0 and total ({n}), got {x}")
    p = x / n
    if method == "clopper_pearson":
        low = 0.0 if x == 0 else float(stats.beta.ppf(alpha / 2, x, n - x + 1))
        high = 1.0 if x == n else float(stats.beta.ppf(1 - alpha / 2, x + 1, n - x))
        return low, high
    z = _z(alpha)
    if method == "wilson":
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, centre - half), min(1.0, centre + half)
    # Newcombe's method 4: the Wilson interval of x -/+ 1/2
    denominator = 2 * (n + z * z)
    low = 0.0 if x == 0 else (2 * n * p + z * z - 1 - z * math.sqrt(z * z - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
                              ) / denominator
    high = 1.0 if x == n else (2 * n * p + z * z + 1 + z * math.sqrt(z * z + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))
                               ) / denominator
    return max(0.0, low), min(1.0, high)


def percentile_limits(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The alpha/2 and 1 - alpha/2 quantiles of the finite replicates (NaN when there are none)."""
    kept = np.asarray(replicates, dtype=float)
    kept = kept[np.isfinite(kept)]
    if kept.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(kept, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bca_limits(estimate: float, replicates: np.ndarray, jackknife: np.ndarray, alpha: float) -> tuple[float, float]:
    """BCa limits from the finite replicates and the leave-one-out values of the statistic (NaN ones ignored)."""
    kept = np.asarray(replicates, dtype=float)
    kept = kept[np.isfinite(kept)]
    if kept.size == 0 or not math.isfinite(estimate):
        return math.nan, math.nan
    below = (np.count_nonzero(kept < estimate) + 0.5 * np.count_nonzero(kept == estimate)) / kept.size
    below = min(max(below, 0.5 / kept.size), 1 - 0.5 / kept.size)
    z0 = float(stats.norm.ppf(below))
    jack = np.asarray(jackknife, dtype=float)
    d = jack[np.isfinite(jack)]
    d = d.mean() - d if d.size else d
    spread = float(np.sum(d ** 2))
    accel = float(np.sum(d ** 3)) / (6 * spread ** 1.5) if spread > 0 else 0.0
    levels = []
    for z in (-_z(alpha), _z(alpha)):
        shift = 1 - accel * (z0 + z)
        levels.append(float(stats.norm.cdf(z0 + (z0 + z) / shift)) if shift > 0 else (0.0 if z < 0 else 1.0))
    low, high = np.percentile(kept, [100 * levels[0], 100 * levels[1]])
    return float(low), float(high)
