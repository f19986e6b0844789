"""Interval methods: binomial intervals against scipy's independent implementation, BCa against scipy's
bootstrap, leave-one-out closed forms against loops, stratified resampling, and a small coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from engine.metrics import bca_limits, bootstrap_ci, leave_one_out, percentile_limits, proportion_ci
from engine.metrics.ci_coverage import METHODS, simulate_coverage
from engine.metrics.classification import METRIC_NAMES, auc, binary_metrics
from engine.metrics.resampling import _resample_indices, bootstrap_interval

SCIPY_NAMES = {"wilson": "wilson", "wilson_cc": "wilsoncc", "clopper_pearson": "exact"}


@pytest.mark.parametrize("method", list(SCIPY_NAMES))
def test_proportion_intervals_equal_scipys(method):
    for n in (1, 2, 7, 20, 29, 75, 263):
        for x in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for alpha in (0.05, 0.1):
                expected = stats.binomtest(x, n).proportion_ci(1 - alpha, SCIPY_NAMES[method])
                assert proportion_ci(x, n, alpha, method) == pytest.approx((expected.low, expected.high), abs=1e-10)
    assert all(math.isnan(v) for v in proportion_ci(0, 0))
    with pytest.raises(ValueError, match="unknown proportion interval"):
        proportion_ci(1, 2, method="wald")


def test_bca_agrees_with_scipys_bootstrap_on_a_skewed_mean():
    """Different resamples, so agreement within Monte Carlo error (a few % of the width), and BCa shifted right
    of the percentile interval for a right-skewed statistic."""
    x = np.random.default_rng(3).exponential(size=60)
    ours = bootstrap_ci(lambda _y, v: float(np.mean(v)), np.zeros(x.size, int), x, n_resamples=4000, seed=1,
                        method="bca")
    theirs = stats.bootstrap((x,), np.mean, n_resamples=4000, method="BCa", random_state=2).confidence_interval
    width = theirs.high - theirs.low
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.06 * width)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.06 * width)
    percentile = bootstrap_ci(lambda _y, v: float(np.mean(v)), np.zeros(x.size, int), x, n_resamples=4000, seed=1)
    assert ours.ci_low > percentile.ci_low and ours.ci_high > percentile.ci_high
    assert ours.method == "bca"


def test_bca_without_bias_or_skew_is_the_percentile_interval():
    replicates = np.linspace(-1, 1, 2001)
    symmetric = np.r_[-1.0, 1.0, -2.0, 2.0]  # jackknife values with no skew: acceleration 0
    assert bca_limits(0.0, replicates, symmetric, 0.05) == pytest.approx(percentile_limits(replicates, 0.05))
    with pytest.raises(ValueError, match="jackknife"):
        bootstrap_interval(0.0, replicates, 0.05, "bca")


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_leave_one_out_closed_forms_equal_loops(metric):
    rng = np.random.default_rng(5)
    y = (rng.random(40) < 0.4).astype(int)
    scores = np.round(rng.random(40) + 0.4 * y, 1)  # ties
    x = scores if metric == "auc" else (scores >= 0.6).astype(int)

    def value(yy, xx):
        return auc(yy, xx) if metric == "auc" else binary_metrics(yy, xx)[metric]

    loops = [value(np.delete(y, k), np.delete(x, k)) for k in range(y.size)]
    assert leave_one_out(metric, y, x) == pytest.approx(np.array(loops), nan_ok=True)


def test_stratified_resamples_keep_the_class_counts():
    y = np.r_[np.ones(7, bool), np.zeros(30, bool)]
    idx = _resample_indices(y, 50, np.random.default_rng(0), stratified=True)
    assert (y[idx].sum(axis=1) == 7).all()
    loose = _resample_indices(y, 50, np.random.default_rng(0), stratified=False)
    assert len(set(y[loose].sum(axis=1))) > 1
    one_class = _resample_indices(np.ones(5, bool), 3, np.random.default_rng(0), stratified=True)
    assert one_class.shape == (3, 5)


def test_coverage_command_writes_its_table(tmp_path):
    from engine.cli import main

    assert main(["bench", "ci-coverage", "--n-pos", "40", "--n-neg", "30", "--sensitivity", "0.2", "--specificity",
                 "0.9", "--studies", "10", "--n-boot", "50", "--seed", "1", "--out", str(tmp_path / "coverage.md")]) == 0
    text = (tmp_path / "coverage.md").read_text()
    assert all(method in text for method in METHODS) and "10 simulated studies of 40 positive and 30 negative" in text


@pytest.mark.slow
def test_coverage_simulation_small_version():
    """Studies of 195 positives and 75 negatives (the FL-CNN test set's split) at a sensitivity of 0.145 and a
    specificity of 0.938. The binomial intervals' simulated coverage matches their exact binomial coverage
    (within 4 Monte Carlo SE); the bootstrap methods run on fewer studies. The full run: docs/ci_coverage.md."""
    cheap = simulate_coverage(studies=3000, seed=7, methods=("Wilson score (default)", "Clopper-Pearson"))
    for method in cheap.coverage:
        for metric, share in cheap.coverage[method].items():
            assert abs(share - cheap.exact(method, metric)) < 4 * cheap.mc_se(share), (method, metric)
    assert 0.94 <= cheap.exact("Wilson score (default)", "sensitivity") <= 0.96
    assert cheap.exact("Clopper-Pearson", "specificity") >= 0.95  # exact intervals never under-cover
    resampled = simulate_coverage(studies=200, n_resamples=300, seed=8,
                                  methods=("percentile bootstrap, unstratified (before)", "BCa bootstrap, stratified"))
    for method in resampled.coverage:
        assert all(0.85 <= share <= 1.0 for share in resampled.coverage[method].values())
