"""Reader-study statistics: hand-checked metrics, paired bootstrap, permutation p-values, error analysis."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from engine.metrics import (
    ReaderScores,
    analyze_reader_study,
    compare_model_with_readers,
    error_analysis,
    evaluate_binary,
    paired_permutation_test,
    proportion_ci,
    reader_metrics,
)
from engine.metrics.paired_swaps import _auc_swap_weights


def simulated_study(n_cases=300, n_readers=10, seed=0, prevalence=0.4, reader_skill=1.0, scale="5-point"):
    """Truth, model scores and readers whose confidence is a noisy view of the same cases."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n_cases) < prevalence).astype(int)
    y[:2], y[2:4] = 1, 0  # both classes always present
    difficulty = rng.normal(scale=0.6, size=n_cases)
    model = 1 / (1 + np.exp(-(1.6 * y - 0.8 + difficulty + rng.normal(scale=0.8, size=n_cases))))
    readers = []
    for j in range(n_readers):
        latent = reader_skill * y + difficulty + rng.normal(scale=0.9, size=n_cases)
        if scale == "5-point":
            score = np.clip(np.round(1.1 * latent + 2.6), 1, 5)
            calls = (score >= 3).astype(int)
        else:
            score = np.clip(np.round(50 + 25 * latent), 0, 100)
            calls = (score >= 50).astype(int)
        readers.append(ReaderScores(f"R{j + 1}", calls, score))
    return y, model, readers


# ---------------------------------------------------------------------------------------------------
# Metrics of one reader


def test_reader_metrics_by_hand():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    calls = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]  # TP 3, FN 1, FP 1, TN 5
    scores = [5, 4, 4, 2, 4, 1, 2, 1, 3, 1]
    m = reader_metrics(y, calls, scores, n_resamples=200)
    expected = {"sensitivity": 3 / 4, "specificity": 5 / 6, "accuracy": 8 / 10, "ppv": 3 / 4, "npv": 5 / 6,
                "f1": 6 / 8}
    for name, value in expected.items():
        assert m[name].value == pytest.approx(value)
    # AUC by hand: 24 (positive, negative) pairs; positives 5,4,4,2 against negatives 4,1,2,1,3,1.
    # 5 beats all 6; each 4 beats 5 and ties 1; 2 beats the three 1s and ties 1.
    wins = 6 + 2 * (5 + 0.5) + (3 + 0.5)
    assert m["auc"].value == pytest.approx(wins / 24)
    assert "auc" not in reader_metrics(y, calls, n_resamples=10)
    # proportions: Wilson from the counts (3 of 4, 5 of 6, ...); AUC and F1: stratified percentile bootstrap
    assert (m["sensitivity"].ci_low, m["sensitivity"].ci_high) == proportion_ci(3, 4)
    assert (m["npv"].ci_low, m["npv"].ci_high) == proportion_ci(5, 6)
    assert {k: ci.method for k, ci in m.items()} == {**dict.fromkeys(expected, "wilson"), "f1": "percentile",
                                                     "auc": "percentile"}
    exact = reader_metrics(y, calls, scores, n_resamples=200, proportion_interval="clopper_pearson")
    assert (exact["specificity"].ci_low, exact["specificity"].ci_high) == proportion_ci(5, 6, method="clopper_pearson")
    with pytest.raises(ValueError, match="unknown proportion interval"):
        reader_metrics(y, calls, proportion_interval="wald")


@pytest.mark.parametrize("scale", ["5-point", "0-100"])
def test_reader_auc_equals_sklearn_with_tied_ratings(scale):
    y, _, readers = simulated_study(200, 3, seed=1, scale=scale)
    for reader in readers:
        m = reader_metrics(y, reader.calls, reader.scores, n_resamples=10)
        assert m["auc"].value == pytest.approx(roc_auc_score(y, reader.scores), abs=1e-12)


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_cases():
    widths = []
    for n in (80, 800):
        y, _, (reader,) = simulated_study(n, 1, seed=2)
        m = reader_metrics(y, reader.calls, reader.scores, n_resamples=1000, seed=3)
        for ci in m.values():
            assert ci.ci_low <= ci.value <= ci.ci_high
        widths.append({k: ci.ci_high - ci.ci_low for k, ci in m.items()})
    for name in ("auc", "sensitivity", "specificity", "accuracy"):
        assert widths[1][name] < 0.6 * widths[0][name]


# ---------------------------------------------------------------------------------------------------
# Model against readers


def test_model_intervals_and_reader_p_values_equal_the_single_comparison_functions():
    y, model, readers = simulated_study(150, 3, seed=4)
    threshold = 0.5
    result = compare_model_with_readers(y, model, threshold, readers, n_boot=300, n_perm=2000, seed=11)
    single = evaluate_binary(y, model, threshold, n_resamples=300, seed=11)
    for name, ci in result.model.items():
        assert (ci.value, ci.ci_low, ci.ci_high) == (single.metrics[name].value, single.metrics[name].ci_low,
                                                     single.metrics[name].ci_high)
    calls = (model >= threshold).astype(int)
    for reader, comparison in zip(readers, result.readers, strict=True):
        for name, diff in comparison.differences.items():
            if name == "auc":  # swapped on the common scale of normalised mid-ranks
                ref = paired_permutation_test("auc", y, rankdata(model) / y.size,
                                              rankdata(reader.scores) / y.size, 2000, seed=11)
            else:
                ref = paired_permutation_test(name, y, calls, reader.calls, 2000, seed=11)
            assert diff.difference.value == pytest.approx(ref[0], abs=1e-12)
            assert diff.p_value == ref[1]


def test_auc_difference_is_linear_in_the_swap_signs():
    rng = np.random.default_rng(5)
    y = rng.random(40) < 0.5
    a = rankdata(rng.integers(1, 6, 40)) / 40  # ties on both sides
    b = rankdata(rng.normal(size=40).round(1)) / 40
    w = _auc_swap_weights(y, a, b)
    for _ in range(20):
        s = rng.random(40) < 0.5
        direct = roc_auc_score(y, np.where(s, b, a)) - roc_auc_score(y, np.where(s, a, b))
        assert np.sum(w * (1 - 2 * s)) == pytest.approx(direct, abs=1e-12)


def test_bootstrap_differences_are_paired_and_average_reader_is_the_mean():
    y, model, readers = simulated_study(200, 4, seed=6)
    result = compare_model_with_readers(y, model, 0.5, readers, n_boot=500, n_perm=500)
    avg = result.average_reader
    for name in ("auc", "sensitivity", "ppv"):
        mean_reader = np.mean([r.metrics[name].value for r in result.readers])
        assert avg.metrics[name].value == pytest.approx(mean_reader)
        assert avg.differences[name].difference.value == pytest.approx(result.model[name].value - mean_reader)
        for comparison in result.readers:
            d = comparison.differences[name]
            assert d.difference.value == pytest.approx(d.model - d.reader)
            assert d.difference.ci_low <= d.difference.value <= d.difference.ci_high
            # paired resampling: the difference varies less than the two metrics would independently
            assert d.difference.ci_high - d.difference.ci_low < (
                (result.model[name].ci_high - result.model[name].ci_low)
                + (comparison.metrics[name].ci_high - comparison.metrics[name].ci_low))
    assert avg.errors is None


def test_average_of_one_reader_is_that_reader():
    y, model, readers = simulated_study(120, 1, seed=7)
    result = compare_model_with_readers(y, model, 0.5, readers, n_boot=200, n_perm=1000)
    (only,) = result.readers
    for name, d in only.differences.items():
        a = result.average_reader.differences[name]
        assert (a.difference.value, a.difference.ci_low, a.difference.ci_high, a.p_value) == pytest.approx(
            (d.difference.value, d.difference.ci_low, d.difference.ci_high, d.p_value))


def test_permutation_p_values_are_uniform_under_the_null():
    """Model and reader outputs exchangeable case by case: the AUC p spreads evenly over (0, 1]; the
    accuracy p (a coarse, discrete statistic on 40 cases) is valid, P(p <= a) <= a, and conservative."""
    rng = np.random.default_rng(8)
    p_auc, p_acc = [], []
    for i in range(200):
        y = np.r_[np.ones(20, int), np.zeros(20, int)]
        model, reader = (rng.normal(size=(2, 40)) + 1.0 * y)
        result = compare_model_with_readers(y, model, 0.5, [ReaderScores("R", reader >= 0.5, reader)],
                                            n_boot=1, n_perm=199, seed=i)
        p_auc.append(result.readers[0].differences["auc"].p_value)
        p_acc.append(result.readers[0].differences["accuracy"].p_value)
    p_auc, p_acc = np.array(p_auc), np.array(p_acc)
    assert ((p_auc > 0) & (p_auc <= 1)).all() and ((p_acc > 0) & (p_acc <= 1)).all()
    assert stats.kstest(p_auc, "uniform").pvalue > 0.001
    assert np.histogram(p_auc, bins=4, range=(0, 1))[0].min() >= 30  # 50 expected per quarter
    assert 0.01 <= np.mean(p_auc <= 0.05) <= 0.11
    assert 0.35 <= np.mean(p_auc <= 0.5) <= 0.65
    for level in (0.05, 0.1, 0.25, 0.5):
        assert np.mean(p_acc <= level) <= level + 0.05


def test_error_analysis_by_hand():
    y = [1, 1, 1, 0, 0, 0]
    model = [1, 1, 0, 0, 1, 0]
    reader = [1, 0, 1, 0, 1, 1]
    errors = error_analysis(y, model, reader, case_ids=list("abcdef"), reader_id="R1")
    assert errors.case_ids == {"both_correct": ("a", "d"), "model_corrects_reader": ("b", "f"),
                               "reader_corrects_model": ("c",), "both_wrong": ("e",)}
    assert errors.counts == {"both_correct": 2, "model_corrects_reader": 2, "reader_corrects_model": 1,
                             "both_wrong": 1}
    assert errors.n_pos == {"both_correct": 1, "model_corrects_reader": 1, "reader_corrects_model": 1,
                            "both_wrong": 0}
    assert errors.to_dict()["both_wrong"] == {"n": 1, "n_pos": 0, "n_neg": 1, "case_ids": ["e"]}


def test_comparison_carries_error_analysis_per_reader():
    y, model, readers = simulated_study(60, 2, seed=9)
    ids = [f"case{i:03d}" for i in range(60)]
    result = compare_model_with_readers(y, model, 0.5, readers, case_ids=ids, n_boot=50, n_perm=100)
    for reader, comparison in zip(readers, result.readers, strict=True):
        expected = error_analysis(y, model >= 0.5, reader.calls, ids, reader.reader_id)
        assert comparison.errors.case_ids == expected.case_ids
        assert sum(comparison.errors.counts.values()) == 60


def test_reader_without_scores_has_no_auc():
    y, model, readers = simulated_study(80, 2, seed=10)
    readers[1] = ReaderScores("R2", readers[1].calls)
    result = compare_model_with_readers(y, model, 0.5, readers, n_boot=50, n_perm=100)
    assert "auc" in result.readers[0].differences and "auc" not in result.readers[1].differences
    assert "auc" not in result.average_reader.metrics and "auc" in result.model


# ---------------------------------------------------------------------------------------------------
# Full analysis


def test_full_analysis_tables_and_files(tmp_path):
    y, model, readers = simulated_study(120, 4, seed=12)
    rng = np.random.default_rng(0)
    aided = [ReaderScores(r.reader_id, np.where(rng.random(120) < 0.2, y, r.calls),
                          np.clip(r.scores + rng.integers(0, 2, 120) * (2 * y - 1), 1, 5)) for r in readers]
    analysis = analyze_reader_study(y, model, 0.5, readers, aided_readers=aided, n_boot=200, n_perm=500)
    designs = ("model_vs_readers", "aided_vs_unaided", "aided_vs_unaided_fixed_readers", "aided_vs_unaided_fixed_cases")
    assert sorted(analysis.mrmc) == sorted(f"{d}/{f}" for d in designs for f in ("auc", "sensitivity", "specificity"))
    assert analysis.mrmc["aided_vs_unaided_fixed_readers/auc"].factors == "fixed readers, random cases"
    assert len(analysis.mrmc["aided_vs_unaided_fixed_readers/auc"].reader_comparisons) == 4
    assert analysis.mrmc["aided_vs_unaided_fixed_cases/sensitivity"].factors == "random readers, fixed cases"
    delong = analyze_reader_study(y, model, 0.5, readers, aided_readers=aided, n_boot=20, n_perm=50,
                                  covariance="delong")
    assert delong.mrmc["aided_vs_unaided/auc"].covariance == "delong"
    assert delong.mrmc["model_vs_readers/auc"].covariance == "delong"
    assert delong.mrmc["aided_vs_unaided/sensitivity"].covariance == "jackknife"
    assert analysis.notes == ()
    auc_test = analysis.mrmc["aided_vs_unaided/auc"]
    assert auc_test.comparisons[0].label == "aided - unaided" and auc_test.comparisons[0].estimate > 0
    assert analysis.mrmc["model_vs_readers/auc"].comparisons[0].label == "model - mean reader"
    assert len(analysis.reads_calls) == 120 * (1 + 1 + 4 + 4) == len(analysis.reads_scores)

    paths = analysis.write(tmp_path, "study")
    names = sorted(p.name for p in paths)
    assert names == sorted(["study.json"] + [f"study_{t}.csv" for t in (
        "metrics", "differences", "errors", "mrmc", "mrmc_foms", "reads_calls", "reads_scores")])
    document = json.loads((tmp_path / "study.json").read_text())
    assert document["mrmc"]["model_vs_readers/auc"]["design"] == "fixed_reference"
    with (tmp_path / "study_differences.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["reader"] for r in rows} == {"R1", "R2", "R3", "R4", "average reader"}
    with (tmp_path / "study_reads_calls.csv").open() as handle:
        first = next(csv.DictReader(handle))
    assert first == {"readerID": "truth", "caseID": "0", "modalityID": "truth", "score": str(y[0])}


def test_full_analysis_explains_what_it_could_not_run():
    y, model, readers = simulated_study(60, 1, seed=13)
    analysis = analyze_reader_study(y, model, 0.5, readers, n_boot=20, n_perm=50)
    assert analysis.mrmc == {} and "at least 2 readers" in analysis.notes[0]
    y, model, readers = simulated_study(60, 3, seed=13)
    readers[0] = ReaderScores("R1", readers[0].calls)
    analysis = analyze_reader_study(y, model, 0.5, readers, n_boot=20, n_perm=50)
    assert "model_vs_readers/auc" not in analysis.mrmc and "confidence scores" in analysis.notes[0]
    assert analysis.reads_scores == ()


def test_ten_readers_three_hundred_cases_use_every_resample():
    """The full-size analysis (timed by `oncolens bench study`) keeps all 10,000 permutations per reader."""
    y, model, readers = simulated_study(300, 10, seed=14)
    analysis = analyze_reader_study(y, model, 0.5, readers, n_boot=1000, n_perm=10000)
    assert all(d.n_permutations_used == 10000 for r in analysis.comparison.readers for d in r.differences.values())


# ---------------------------------------------------------------------------------------------------
# Errors that say what to fix


def test_reader_study_input_errors():
    y, model, readers = simulated_study(30, 2, seed=15)
    with pytest.raises(ValueError, match="positive and negative"):
        compare_model_with_readers(np.ones(30, int), model, 0.5, readers)
    with pytest.raises(ValueError, match="positive and negative"):
        reader_metrics(np.zeros(30, int), readers[0].calls)
    bad = readers[1].scores.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="reader 'R2'.*NaN"):
        compare_model_with_readers(y, model, 0.5, [readers[0], ReaderScores("R2", readers[1].calls, bad)])
    with pytest.raises(ValueError, match="reader 'R1'.*shape"):
        compare_model_with_readers(y, model, 0.5, [ReaderScores("R1", readers[0].calls[:-1])])
    with pytest.raises(ValueError, match="reader 'R1'.*0/1"):
        compare_model_with_readers(y, model, 0.5, [ReaderScores("R1", readers[0].scores)])
    with pytest.raises(ValueError, match="shape"):
        compare_model_with_readers(y, model[:-1], 0.5, readers)
    with pytest.raises(ValueError, match="unique"):
        compare_model_with_readers(y, model, 0.5, [readers[0], readers[0]])
    with pytest.raises(ValueError, match="non-empty list"):
        compare_model_with_readers(y, model, 0.5, [])
    with pytest.raises(ValueError, match="finite"):
        compare_model_with_readers(y, model, float("nan"), readers)
    with pytest.raises(ValueError, match="case_ids"):
        compare_model_with_readers(y, model, 0.5, readers, case_ids=["a"])
    with pytest.raises(ValueError, match="same reader ids"):
        analyze_reader_study(y, model, 0.5, readers, aided_readers=readers[:1])
