"""How often does each interval method cover the true sensitivity and specificity? A simulation of many studies.

Each simulated study has a fixed number of positive and negative cases (as a diagnostic study's design fixes
them); each positive is called positive with probability `sensitivity`, each negative negative with probability
`specificity`. Every method computes its interval with OncoLens' own code (`bootstrap_ci`, `proportion_ci`),
and the coverage is the share of studies whose interval contains the true value, with its Monte Carlo standard
error sqrt(c (1 - c) / studies). `oncolens bench ci-coverage` runs it; docs/ci_coverage.md holds a run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.metrics.classification import confusion_counts
from engine.metrics.evaluation import proportion_parts
from engine.metrics.intervals import proportion_ci
from engine.metrics.resampling import bootstrap_ci

METHODS = {  # name shown -> (kind, option): bootstrap (stratified?, interval) or a proportion interval
    "percentile bootstrap, unstratified (before)": ("bootstrap", (False, "percentile")),
    "percentile bootstrap, stratified": ("bootstrap", (True, "percentile")),
    "BCa bootstrap, stratified": ("bootstrap", (True, "bca")),
    "Wilson score (default)": ("proportion", "wilson"),
    "Wilson score, continuity-corrected": ("proportion", "wilson_cc"),
    "Clopper-Pearson": ("proportion", "clopper_pearson"),
}


@dataclass
class CoverageResult:
    """Coverage and mean width per method and metric, with the simulation's settings."""

    settings: dict[str, Any]
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> share covered
    width: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def mc_se(self, share: float) -> float:
        return math.sqrt(share * (1 - share) / self.settings["studies"])

    def exact(self, method: str, metric: str) -> float | None:
        """Exact binomial coverage of a proportion method (None for the bootstrap)."""
        family, option = METHODS[method]
        if family != "proportion":
            return None
        n = self.settings["n_pos" if metric == "sensitivity" else "n_neg"]
        return exact_proportion_coverage(n, self.settings[metric], option, self.settings["alpha"])

    def markdown(self) -> str:
        s = self.settings
        metrics = ("sensitivity", "specificity")
        head = (f"| method | {' | '.join(f'{m} {s[m]:g}: coverage (exact)' for m in metrics)} | "
                f"{' | '.join(f'{m}: mean width' for m in metrics)} |")
        lines = [head, "|---" * (1 + 2 * len(metrics)) + "|"]
        for method in self.coverage:
            cover = []
            for m in metrics:
                exact = self.exact(method, m)
                cover.append(f"{self.coverage[method][m]:.3f} ± {self.mc_se(self.coverage[method][m]):.3f}"
                             + ("" if exact is None else f" ({exact:.3f})"))
            width = [f"{self.width[method][m]:.3f}" for m in metrics]
            lines.append(f"| {method} | {' | '.join(cover)} | {' | '.join(width)} |")
        return "\n".join(lines)


def exact_proportion_coverage(n: int, p: float, method: str, alpha: float = 0.05) -> float:
    """The exact coverage of a binomial interval method at (n, p): the binomial probability of the counts x
    whose interval contains p. It checks the simulation of the same method."""
    from scipy import stats

    covered = [x for x in range(n + 1) if (lambda ci: ci[0] <= p <= ci[1])(proportion_ci(x, n, alpha, method))]
    return float(stats.binom.pmf(covered, n, p).sum())


def simulate_coverage(n_pos: int = 195, n_neg: int = 75, sensitivity: float = 0.145, specificity: float = 0.938,
                      studies: int = 2000, n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0,
                      methods: Sequence[str] = tuple(METHODS),
                      progress: Callable[[str], None] | None = None) -> CoverageResult:
    """Coverage of each method in `methods` (keys of METHODS) over `studies` simulated studies."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
    if min(n_pos, n_neg) < 1 or studies < 1:
        raise ValueError("the simulated studies need positive and negative cases, and at least one study")
    truth = {"sensitivity": sensitivity, "specificity": specificity}
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    hits = {m: {k: 0 for k in truth} for m in methods}
    widths = {m: {k: 0.0 for k in truth} for m in methods}
    started = time.perf_counter()
    for study in range(studies):
        calls = np.r_[rng.random(n_pos) < sensitivity, rng.random(n_neg) >= specificity].astype(int)
        counts = confusion_counts(y, calls)
        for method in methods:
            family, option = METHODS[method]
            for metric, true in truth.items():
                if family == "bootstrap":
                    ci = bootstrap_ci(metric, y, calls, n_resamples, alpha, seed=seed + study, stratified=option[0],
                                      method=option[1])
                    low, high = ci.ci_low, ci.ci_high
                else:
                    low, high = proportion_ci(*proportion_parts(metric, counts), alpha, option)
                hits[method][metric] += int(low <= true <= high)
                widths[method][metric] += high - low
        if progress and (study + 1) % max(1, studies // 10) == 0:
            progress(f"{study + 1}/{studies} studies ({time.perf_counter() - started:.0f} s)")
    settings = {"n_pos": n_pos, "n_neg": n_neg, "sensitivity": sensitivity, "specificity": specificity,
                "studies": studies, "n_resamples": n_resamples, "alpha": alpha, "seed": seed}
    return CoverageResult(settings, {m: {k: v / studies for k, v in h.items()} for m, h in hits.items()},
                          {m: {k: v / studies for k, v in w.items()} for m, w in widths.items()},
                          time.perf_counter() - started)


@dataclass(frozen=True)
class CoverageBench:
    """`oncolens bench ci-coverage`: the simulated studies' design; `out` also writes the table as Markdown."""

    studies: int = 2000
    n_pos: int = 195
    n_neg: int = 75
    sensitivity: float = 0.145
    specificity: float = 0.938
    n_resamples: int = 1000
    seed: int = 0
    out: Path | None = None


def bench_ci_coverage(bench: CoverageBench, say: Callable[[str], None] = print) -> int:
    """Print the coverage table (and write it as Markdown with `out`)."""
    result = simulate_coverage(n_pos=bench.n_pos, n_neg=bench.n_neg, sensitivity=bench.sensitivity,
                               specificity=bench.specificity, studies=bench.studies, n_resamples=bench.n_resamples,
                               seed=bench.seed, progress=say)
    s = result.settings
    title = (f"Coverage of nominal {1 - s['alpha']:.0%} intervals: {s['studies']} simulated studies of "
             f"{s['n_pos']} positive and {s['n_neg']} negative cases, {s['n_resamples']} bootstrap resamples, "
             f"seed {s['seed']} ({result.seconds:.0f} s)")
    say(title)
    say(result.markdown())
    if bench.out:
        out = Path(bench.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{title}\n\n{result.markdown()}\n", encoding="utf-8")
        say(f"wrote {out}")
    return 0
