"""OR-Hillis MRMC analysis: the Van Dyke worked example, explicit-loop re-derivations, designs, edge cases."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import recall_score, roc_auc_score

from engine.metrics import (
    delong_covariance,
    fom_covariance,
    fom_matrix,
    jackknife_covariance,
    jackknife_foms,
    long_format_rows,
    or_fixed_cases,
    or_fixed_readers,
    or_hillis,
    or_hillis_fixed_reference,
    write_imrmc,
)

# ---------------------------------------------------------------------------------------------------
# Van Dyke et al. (1993) cine vs spin-echo MRI for aortic dissection: 2 modalities x 5 readers x 114
# cases (69 non-diseased, then 45 diseased), 5-point ratings. The standard MRMC example of Hillis (2007,
# Stat Med 26:596-619) and Hillis, Berbaum & Metz (2008, Acad Radiol 15:647-661); distributed as
# "VanDyke.lrc" with the Iowa OR-DBM MRMC software and as `dataset02` in RJafroc
# (github.com/dpc10ster/RJafroc, inst/extdata/datasets/VD.lrc). One string per modality and reader,
# one digit per case in file order.
VAN_DYKE = {
    1: ("122151111111411111111131311214111113121211233131133111111221111332111555545554555434245555555154454553555115554451",
        "232222222322522232222222422223222222222222222222222222222432232222222535555542555442225555555243354552425225555352",
        "222235112242422232221232411322112224121412112222223211211221151421212545555555555542355555555252255552555225555552",
        "111111311111111111112111211112111111111111111111331111111111111311111555555555555555155555555554544553555125555555",
        "351211112221211122113221111211211231221113332111211111111341231212113525255551545452235555554144322151515115553552"),
    2: ("333222223213122222211111421312214323123122233111333113412421241442111535555554555544335555555355355554455535555551",
        "322222223222222122221222322222212212222231223222222222322322222222122535555552555344245455545252355532425525555552",
        "242222322211132222121121411512112122212221132111233113221232341242121525555555555354145555555253355543555534555551",
        "221111312111122111211111321212111122112111112121212211111212111323211545555554555455555555555455445555555535555555",
        "223122221222111222122212322321212222112121132122332122221222231233111525455555455343335555555251332532545533555553"),
}
VD_TRUTH = np.r_[np.zeros(69, int), np.ones(45, int)]
VD_SCORES = np.array([[[int(ch) for ch in reader] for reader in VAN_DYKE[m]] for m in (1, 2)], dtype=float)

# Published results for these data: OR-DBM MRMC 2.51 (Schartz, Hillis, Pesce & Berbaum, Univ. of Iowa),
# trapezoidal AUC, jackknife covariances, "Analysis 1 (OR Analysis): Random Readers and Random Cases";
# the output is kept in RJafroc as inst/IowaResults/VanDyke.txt (single-modality run: VanDyke1T.txt),
# and the same numbers are re-derived by hand in Chakraborty's RJafrocBook, chapter "Obuchowski
# Rockette Applications" (F = 4.456, ddf = 15.26, p = 0.05167, CI -0.0879595 to 0.0003589).
PUBLISHED_AUC = [[0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
                 [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169]]
PUBLISHED_MEANS = [0.89703704, 0.94083736]
PUBLISHED_MS = {"ms_t": 0.00479617, "ms_r": 0.00383620, "ms_tr": 0.00055103}
PUBLISHED_COMPONENTS = {"var_r": 0.00153500, "var_tr": 0.00020040, "cov1": 0.00034661,
                        "cov2": 0.00034407, "cov3": 0.00023903, "var_error": 0.00080229}
PUBLISHED_SINGLE = [  # per modality: AUC, StdErr, DF, 95% CI, Cov2
    (0.89703704, 0.03317360, 12.74, 0.82522360, 0.96885048, 0.00048396),
    (0.94083736, 0.02156637, 12.71, 0.89413783, 0.98753689, 0.00020419),
]


def test_van_dyke_reader_aucs_match_published():
    assert fom_matrix(VD_TRUTH, VD_SCORES) == pytest.approx(np.array(PUBLISHED_AUC), abs=5e-9)


def test_van_dyke_or_hillis_matches_published_analysis():
    result = or_hillis(VD_TRUTH, VD_SCORES, "auc", treatment_ids=("1", "2"))
    assert result.treatment_means == pytest.approx(PUBLISHED_MEANS, abs=5e-9)
    for name, value in PUBLISHED_MS.items():
        assert getattr(result, name) == pytest.approx(value, abs=5e-9)
    for name, value in PUBLISHED_COMPONENTS.items():
        assert result.variance_components[name] == pytest.approx(value, abs=5e-9)
    # Treatment 1 F value 4.46, Pr > F 0.0517, error-term df 15.26, error term 0.00107626
    assert result.f_stat == pytest.approx(4.4563, abs=5e-5)
    assert (result.ndf, round(result.ddf, 2), round(result.p_value, 4)) == (1.0, 15.26, 0.0517)
    assert result.ms_tr + 5 * max(result.cov2 - result.cov3, 0) == pytest.approx(0.00107626, abs=5e-9)
    # 1 - 2: difference -0.04380, StdErr 0.02075, t -2.11, Pr > |t| 0.0517, 95% CI (-0.08796, 0.00036)
    (diff,) = result.comparisons
    assert diff.label == "1 - 2"
    assert diff.estimate == pytest.approx(-0.04380032, abs=5e-9)
    assert (round(diff.std_err, 5), round(diff.t_stat, 2), round(diff.p_value, 4)) == (0.02075, -2.11, 0.0517)
    assert (round(diff.ci_low, 5), round(diff.ci_high, 5)) == (-0.08796, 0.00036)
    assert diff.p_value == pytest.approx(result.p_value, rel=1e-9)  # t^2 = F with two treatments
    for treatment, (fom, se, df, low, high, cov2) in zip(result.treatments, PUBLISHED_SINGLE, strict=True):
        assert (treatment.estimate, treatment.std_err) == pytest.approx((fom, se), abs=5e-9)
        assert round(treatment.df, 2) == df
        assert (treatment.ci_low, treatment.ci_high, treatment.cov2) == pytest.approx((low, high, cov2), abs=5e-9)


def test_van_dyke_one_modality_against_a_fixed_value_matches_published_single_treatment():
    """VanDyke1T.txt (modality 1 alone): StdErr 0.03317360 on 12.74 df, Var(Error) 0.00101410,
    Cov2 0.00048396. Against a fixed value the contrast uses exactly that SE and df."""
    reference = 0.95
    result = or_hillis_fixed_reference(VD_TRUTH, VD_SCORES[0], reference_fom=reference)
    (contrast,) = result.comparisons
    assert contrast.estimate == pytest.approx(reference - 0.89703704, abs=5e-9)
    assert contrast.std_err == pytest.approx(0.03317360, abs=5e-9)
    assert round(contrast.df, 2) == 12.74
    assert (contrast.ci_low, contrast.ci_high) == pytest.approx((reference - 0.96885048, reference - 0.82522360),
                                                                abs=5e-9)
    assert (result.var_error, result.cov2, result.ms_r) == pytest.approx((0.00101410, 0.00048396, 0.00308263),
                                                                          abs=5e-9)
    assert result.f_stat == pytest.approx(contrast.t_stat ** 2)
    assert math.isnan(result.cov1) and math.isnan(result.cov3) and math.isnan(result.var_tr)


# ---------------------------------------------------------------------------------------------------
# MRMCaov's printed output for the same Van Dyke data: DeLong covariance, fixed readers (FRRC), fixed cases
# (RRFC), and sensitivity as the FOM. Source: the MRMCaov article draft by Smith & Hillis, file
# docs/jss/MRMCaov.tex of github.com/brian-j-smith/MRMCaov (commit d79e49b, 2023-01-18), which holds the
# knitted output of summary(mrmc(...)) on MRMCaov's VanDyke data (sections "Covariance Estimation Methods",
# "Fixed Factors" and "Performance Metrics" / binary_sens). The same fixed-factor analyses are in OR-DBM MRMC
# 2.51's VanDyke.txt (above): "Analysis 2 (OR Analysis): Fixed Readers and Random Cases" and "Analysis 3 (OR
# Analysis): Random Readers and Fixed Cases". Each number is checked to the digits printed there; the keys
# are the printouts' own labels ("1." / "2." a treatment's single-treatment line, "reader 3." a reader's).


def quantities(result) -> dict[str, float]:
    """Every number an OR printout shows, under the printout's label."""
    r = len(result.reader_ids)
    out = {"var_r": result.var_r, "var_tr": result.var_tr, "Error": result.var_error, "Cov1": result.cov1,
           "Cov2": result.cov2, "Cov3": result.cov3, "MS(T)": result.ms_t, "MS(T:R)": result.ms_tr,
           "F": result.f_stat, "X2": result.ndf * result.f_stat, "df2": result.ddf, "p": result.p_value,
           "RRRC denominator": result.ms_tr + r * max(result.cov2 - result.cov3, 0),
           "FRRC denominator": result.var_error - result.cov1 + (r - 1) * max(result.cov2 - result.cov3, 0)}
    contrasts = [("diff", result.comparisons[0])] + [(f"reader {c.label.split(':')[0]}", c)
                                                      for c in result.reader_comparisons]
    for key, c in contrasts:
        out.update({f"{key}.Estimate": c.estimate, f"{key}.StdErr": c.std_err, f"{key}.df": c.df,
                    f"{key}.CI.Lower": c.ci_low, f"{key}.CI.Upper": c.ci_high, f"{key}.t": c.t_stat,
                    f"{key}.p": c.p_value})
    for i, t in enumerate(result.treatments, start=1):
        out.update({f"{i}.Estimate": t.estimate, f"{i}.MS(R)": t.ms_r, f"{i}.Var(Error)": t.var_error,
                    f"{i}.Cov2": t.cov2, f"{i}.StdErr": t.std_err, f"{i}.df": t.df, f"{i}.CI.Lower": t.ci_low,
                    f"{i}.CI.Upper": t.ci_high})
    return out


def check_printed(result, published: dict[str, str]) -> None:
    """Each value rounds to its printed text (within half a unit of the last printed digit)."""
    have = quantities(result)
    wrong = {}
    for key, text in published.items():
        decimals = len(text.split(".")[1]) if "." in text else 0
        if not abs(have[key] - float(text)) <= 0.5 * 10.0 ** -decimals + 1e-15:
            wrong[key] = (have[key], text)
    assert not wrong, wrong


PUBLISHED_ELSEWHERE = {
    # mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke, cov = DeLong)
    "MRMCaov DeLong": (lambda: or_hillis(VD_TRUTH, VD_SCORES, covariance="delong", **_ids()), {
        "var_r": "0.0015364254", "var_tr": "0.0002045840", "Error": "0.0007921325", "Cov1": "0.0003420090",
        "Cov2": "0.0003395265", "Cov3": "0.0002358497", "MS(T)": "0.004796171", "MS(T:R)": "0.0005510306",
        "RRRC denominator": "0.001069415", "F": "4.484854", "df2": "15.06611", "p": "0.05123303",
        "diff.Estimate": "-0.04380032", "diff.StdErr": "0.0206825", "diff.CI.Lower": "-0.0878671960",
        "diff.CI.Upper": "0.0002665519", "diff.t": "-2.117747", "diff.p": "0.05123303",
        "1.Estimate": "0.8970370", "1.MS(R)": "0.003082629", "1.Cov2": "0.0004775239", "1.StdErr": "0.03307642",
        "1.df": "12.59597", "1.CI.Lower": "0.8253461", "1.CI.Upper": "0.9687280",
        "2.Estimate": "0.9408374", "2.MS(R)": "0.001304602", "2.Cov2": "0.0002015292", "2.StdErr": "0.02150464",
        "2.df": "12.56530", "2.CI.Lower": "0.8942155", "2.CI.Upper": "0.9874592"}),
    # mrmc(empirical_auc(truth, rating), treatment, fixed(reader), case, data = VanDyke)
    "MRMCaov fixed readers": (lambda: or_fixed_readers(VD_TRUTH, VD_SCORES, **_ids()), {
        "Error": "0.0008022883", "Cov1": "0.0003466137", "Cov2": "0.0003440748", "Cov3": "0.0002390284",
        "var_r": "0.0015349993", "var_tr": "0.0002004025", "FRRC denominator": "0.0008758604", "X2": "5.475953",
        "p": "0.01927984", "diff.StdErr": "0.01871748", "diff.CI.Lower": "-0.08048591",
        "diff.CI.Upper": "-0.00711473", "diff.t": "-2.340075", "diff.p": "0.01927984",
        "1.Var(Error)": "0.0010141028", "1.Cov2": "0.0004839618", "1.StdErr": "0.02428971",
        "1.CI.Lower": "0.8494301", "1.CI.Upper": "0.9446440", "2.Var(Error)": "0.0005904738",
        "2.Cov2": "0.0002041879", "2.StdErr": "0.01677632", "2.CI.Lower": "0.9079564", "2.CI.Upper": "0.9737183",
        **{f"reader {reader}.{key}": value for reader, row in (
            ("1", ("-0.02818035", "0.02551213", "-0.078183215", "0.021822507", "-1.1045864", "0.26933885")),
            ("2", ("-0.04653784", "0.02630183", "-0.098088476", "0.005012792", "-1.7693768", "0.07683102")),
            ("3", ("-0.01787440", "0.03120965", "-0.079044180", "0.043295388", "-0.5727202", "0.56683414")),
            ("4", ("-0.02624799", "0.01729129", "-0.060138290", "0.007642316", "-1.5179891", "0.12901715")),
            ("5", ("-0.10016103", "0.04405746", "-0.186512066", "-0.013809995", "-2.2734182", "0.02300099")))
           for key, value in zip(("Estimate", "StdErr", "CI.Lower", "CI.Upper", "t", "p"), row, strict=True)}}),
    # mrmc(empirical_auc(truth, rating), treatment, reader, fixed(case), data = VanDyke)
    "MRMCaov fixed cases": (lambda: or_fixed_cases(VD_TRUTH, VD_SCORES, **_ids()), {
        "MS(T)": "0.004796171", "MS(T:R)": "0.0005510306", "F": "8.704", "p": "0.04195875",
        "diff.StdErr": "0.01484629", "diff.CI.Lower": "-0.08502022", "diff.CI.Upper": "-0.00258042",
        "diff.t": "-2.950254", "diff.p": "0.04195875", "1.MS(R)": "0.003082629", "1.StdErr": "0.02482994",
        "1.CI.Lower": "0.8280981", "1.CI.Upper": "0.9659760", "2.MS(R)": "0.001304602", "2.StdErr": "0.01615303",
        "2.CI.Lower": "0.8959894", "2.CI.Upper": "0.9856854"}),
    # mrmc(binary_sens(truth, rating >= 3), treatment, reader, case, data = VanDyke); MRMCaov clips the
    # second treatment's upper limit to 1, so only its lower limit is compared
    "MRMCaov sensitivity": (lambda: or_hillis(VD_TRUTH, (VD_SCORES >= 3).astype(float), "sensitivity", **_ids()), {
        "var_r": "0.0049747475", "var_tr": "0.0007828283", "Error": "0.0023681257", "Cov1": "0.0009943883",
        "Cov2": "0.0010145903", "Cov3": "0.0006604938", "MS(T)": "0.02390123", "MS(T:R)": "0.001802469",
        "F": "6.689493", "df2": "15.71732", "p": "0.02008822", "diff.Estimate": "-0.09777778",
        "diff.StdErr": "0.03780451", "diff.CI.Lower": "-0.1780371", "diff.CI.Upper": "-0.0175185",
        "diff.t": "-2.586405", "1.Estimate": "0.8222222", "1.MS(R)": "0.009135802", "1.Cov2": "0.001646465",
        "1.StdErr": "0.05893747", "1.df": "14.456811", "1.CI.Lower": "0.6961876", "1.CI.Upper": "0.9482568",
        "2.Estimate": "0.9200000", "2.MS(R)": "0.005086420", "2.Cov2": "0.000382716", "2.StdErr": "0.03741657",
        "2.df": "7.575855", "2.CI.Lower": "0.8328691"}),
    # OR-DBM MRMC 2.51, VanDyke.txt, Analysis 2 (its reader lines: "reader j" below)
    "OR-DBM fixed readers": (lambda: or_fixed_readers(VD_TRUTH, VD_SCORES, **_ids()), {
        "X2": "5.47595", "p": "0.0193", "diff.StdErr": "0.01872", "diff.t": "-2.34", "diff.CI.Lower": "-0.08049",
        "diff.CI.Upper": "-0.00711", "1.StdErr": "0.02428971", "1.CI.Lower": "0.84943008",
        "1.CI.Upper": "0.94464399", "1.Var(Error)": "0.00101410", "1.Cov2": "0.00048396",
        "2.StdErr": "0.01677632", "2.CI.Lower": "0.90795637", "2.CI.Upper": "0.97371835",
        "2.Var(Error)": "0.00059047", "2.Cov2": "0.00020419",
        **{f"reader {reader}.{key}": value for reader, row in (
            ("1", ("0.02551", "-0.07818", "0.02182")), ("2", ("0.02630", "-0.09809", "0.00501")),
            ("3", ("0.03121", "-0.07904", "0.04330")), ("4", ("0.01729", "-0.06014", "0.00764")),
            ("5", ("0.04406", "-0.18651", "-0.01381")))
           for key, value in zip(("StdErr", "CI.Lower", "CI.Upper"), row, strict=True)}}),
    # OR-DBM MRMC 2.51, VanDyke.txt, Analysis 3
    "OR-DBM fixed cases": (lambda: or_fixed_cases(VD_TRUTH, VD_SCORES, **_ids()), {
        "F": "8.70", "p": "0.0420", "MS(T)": "0.00479617", "MS(T:R)": "0.00055103", "diff.StdErr": "0.01485",
        "diff.t": "-2.95", "diff.CI.Lower": "-0.08502", "diff.CI.Upper": "-0.00258", "1.MS(R)": "0.00308263",
        "1.StdErr": "0.02482994", "1.CI.Lower": "0.82809808", "1.CI.Upper": "0.96597599",
        "2.MS(R)": "0.00130460", "2.StdErr": "0.01615303", "2.CI.Lower": "0.89598936", "2.CI.Upper": "0.98568536"}),
}


def _ids() -> dict:
    return {"treatment_ids": ("1", "2"), "reader_ids": "12345"}


@pytest.mark.parametrize("source", list(PUBLISHED_ELSEWHERE))
def test_van_dyke_matches_published_output(source):
    analysis, published = PUBLISHED_ELSEWHERE[source]
    check_printed(analysis(), published)


def test_published_analyses_report_their_factors_and_covariance():
    delong = or_hillis(VD_TRUTH, VD_SCORES, covariance="delong")
    frrc = or_fixed_readers(VD_TRUTH, VD_SCORES, **_ids())
    rrfc = or_fixed_cases(VD_TRUTH, VD_SCORES)
    assert (delong.covariance, frrc.covariance, rrfc.covariance) == ("delong", "jackknife", "none")
    assert frrc.factors == "fixed readers, random cases" and rrfc.factors == "random readers, fixed cases"
    assert math.isinf(frrc.ddf) and math.isinf(frrc.comparisons[0].df) and rrfc.ddf == 4.0
    assert [c.label for c in frrc.reader_comparisons] == [f"{j}: 1 - 2" for j in "12345"]
    # the OR-DBM reader lines also print each reader's Var(Error) (mean of its two treatments) and Cov1
    cov = jackknife_covariance(jackknife_foms(VD_TRUTH, VD_SCORES)).reshape(2, 5, 2, 5)
    printed = [("0.00069890", "0.00037347"), ("0.00110605", "0.00076016"), ("0.00084234", "0.00035532"),
               ("0.00015058", "0.00000108"), ("0.00121357", "0.00024304")]
    for j, (var, cov1) in enumerate(printed):
        assert (cov[0, j, 0, j] + cov[1, j, 1, j]) / 2 == pytest.approx(float(var), abs=5e-9)
        assert cov[0, j, 1, j] == pytest.approx(float(cov1), abs=5e-9)
    sens = or_hillis(VD_TRUTH, (VD_SCORES >= 3).astype(float), "sensitivity")
    assert sens.foms[1] == pytest.approx([0.978, 0.822, 0.911, 1, 0.889], abs=5e-4)  # MRMCaov prints 3 digits


def test_delong_covariance_against_its_definition():
    """S10 / n_pos + S01 / n_neg from the structural components written out pair by pair."""
    y, ratings = rated_study(2, 2, 24, seed=11)
    flat = ratings.reshape(-1, y.size)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(a, b):
        return 1.0 if a > b else 0.5 if a == b else 0.0

    v10 = np.array([[np.mean([psi(row[i], row[k]) for k in neg]) for i in pos] for row in flat])
    v01 = np.array([[np.mean([psi(row[i], row[k]) for i in pos]) for k in neg] for row in flat])
    expected = np.cov(v10) / pos.size + np.cov(v01) / neg.size
    assert delong_covariance(y, ratings) == pytest.approx(expected, abs=1e-15)
    assert fom_covariance(y, ratings, "auc", "delong") == pytest.approx(expected, abs=1e-15)
    with pytest.raises(ValueError, match="empirical AUC only"):
        fom_covariance(y, (ratings >= 3).astype(float), "sensitivity", "delong")
    with pytest.raises(ValueError, match="unknown covariance"):
        or_hillis(y, ratings, covariance="bootstrap")


# ---------------------------------------------------------------------------------------------------
# Explicit-loop re-derivations on random data with ties


def rated_study(n_treatments=3, n_readers=4, n_cases=40, seed=0, separation=1.0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_cases - n_cases // 2, int), np.ones(n_cases // 2, int)]
    case_effect = rng.normal(size=n_cases) + separation * y
    latent = case_effect + 0.7 * rng.normal(size=(n_treatments, n_readers, n_cases))
    return y, np.clip(np.round(latent + 3), 1, 5)  # 5-point ratings, many ties


def pairwise_auc(y, scores):
    """Mann-Whitney AUC straight from its definition: every (positive, negative) pair."""
    pos, neg = scores[y == 1][:, None], scores[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def loop_jackknife(y, scores, fom):
    c = y.size
    out = np.empty(c)
    for k in range(c):
        keep = np.arange(c) != k
        if fom == "auc":
            out[k] = pairwise_auc(y[keep], scores[keep])
        elif fom == "sensitivity":
            out[k] = scores[keep][y[keep] == 1].mean()
        else:
            out[k] = 1 - scores[keep][y[keep] == 0].mean()
    return out


@pytest.mark.parametrize("fom", ["auc", "sensitivity", "specificity"])
def test_jackknife_and_its_covariance_match_explicit_loops(fom):
    y, ratings = rated_study(2, 2, 30, seed=1)
    scores = ratings if fom == "auc" else (ratings >= 3).astype(float)
    jack = jackknife_foms(y, scores, fom)
    flat = scores.reshape(-1, y.size)
    loops = np.array([loop_jackknife(y, row, fom) for row in flat])
    assert jack.shape == scores.shape
    assert jack.reshape(-1, y.size) == pytest.approx(loops, abs=1e-12)

    c = y.size
    expected = np.empty((flat.shape[0], flat.shape[0]))
    for a in range(flat.shape[0]):
        for b in range(flat.shape[0]):
            expected[a, b] = (c - 1) / c * sum((loops[a, k] - loops[a].mean()) * (loops[b, k] - loops[b].mean())
                                               for k in range(c))
    assert jackknife_covariance(jack) == pytest.approx(expected, abs=1e-15)


def test_fom_matrix_auc_equals_sklearn_with_ties():
    y, ratings = rated_study(2, 3, 50, seed=2)
    expected = [[roc_auc_score(y, ratings[i, j]) for j in range(3)] for i in range(2)]
    assert fom_matrix(y, ratings) == pytest.approx(np.array(expected), abs=1e-12)


def brute_force_or(y, scores, alpha=0.05):
    """OR-Hillis written out with explicit loops over treatments, readers and reader pairs."""
    t, r, c = scores.shape
    theta = np.array([[pairwise_auc(y, scores[i, j]) for j in range(r)] for i in range(t)])
    jack = np.array([[loop_jackknife(y, scores[i, j], "auc") for j in range(r)] for i in range(t)])
    groups = {"var": [], "cov1": [], "cov2": [], "cov3": []}
    for i in range(t):
        for j in range(r):
            for ii in range(t):
                for jj in range(r):
                    a, b = jack[i, j], jack[ii, jj]
                    cov = (c - 1) / c * np.sum((a - a.mean()) * (b - b.mean()))
                    key = {(True, True): "var", (False, True): "cov1", (True, False): "cov2",
                           (False, False): "cov3"}[(i == ii, j == jj)]
                    groups[key].append(cov)
    var, cov1, cov2, cov3 = (np.mean(groups[k]) for k in ("var", "cov1", "cov2", "cov3"))
    grand = theta.mean()
    ms_t = r * sum((theta[i].mean() - grand) ** 2 for i in range(t)) / (t - 1)
    ms_r = t * sum((theta[:, j].mean() - grand) ** 2 for j in range(r)) / (r - 1)
    ms_tr = sum((theta[i, j] - theta[i].mean() - theta[:, j].mean() + grand) ** 2
                for i in range(t) for j in range(r)) / ((t - 1) * (r - 1))
    den = ms_tr + r * max(cov2 - cov3, 0)
    ddf = den ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))
    f_stat = ms_t / den
    half = stats.t.ppf(1 - alpha / 2, ddf) * math.sqrt(2 / r * den)
    cis = [(theta[a].mean() - theta[b].mean() - half, theta[a].mean() - theta[b].mean() + half)
           for a in range(t) for b in range(a + 1, t)]
    return {"f_stat": f_stat, "ddf": ddf, "p_value": stats.f.sf(f_stat, t - 1, ddf), "cis": cis,
            "var_error": var, "cov1": cov1, "cov2": cov2, "cov3": cov3,
            "var_r": (ms_r - ms_tr) / t - cov1 + cov3, "var_tr": ms_tr - var + cov1 + cov2 - cov3}


def test_or_hillis_three_treatments_matches_brute_force():
    y, ratings = rated_study(3, 3, 30, seed=3)
    result = or_hillis(y, ratings)
    expected = brute_force_or(y, ratings)
    assert (result.f_stat, result.ddf, result.p_value) == pytest.approx(
        (expected["f_stat"], expected["ddf"], expected["p_value"]), rel=1e-9)
    assert result.ndf == 2.0
    assert np.array([(c.ci_low, c.ci_high) for c in result.comparisons]) == pytest.approx(
        np.array(expected["cis"]), rel=1e-9)
    assert [c.label for c in result.comparisons] == ["treatment0 - treatment1", "treatment0 - treatment2",
                                                     "treatment1 - treatment2"]
    for name in ("var_error", "cov1", "cov2", "cov3", "var_r", "var_tr"):
        assert getattr(result, name) == pytest.approx(expected[name], rel=1e-9, abs=1e-15)


def test_fixed_reference_equals_model_copied_to_every_reader():
    """The single-test analysis of differences is the two-treatment OR analysis with the model as a
    treatment whose readers all give the model's reads (MS(T*R) = MS(R)/2, Cov2 - Cov3 = Cov2(D)/2)."""
    y, ratings = rated_study(1, 5, 60, seed=4, separation=1.3)
    readers = ratings[0]
    model = np.random.default_rng(9).normal(size=y.size) + 1.5 * y
    fixed = or_hillis_fixed_reference(y, readers, reference_scores=model)
    crossed = or_hillis(y, np.stack([np.tile(model, (5, 1)), readers]), treatment_ids=("model", "readers"))
    assert (fixed.f_stat, fixed.ddf, fixed.p_value) == pytest.approx(
        (crossed.f_stat, crossed.ddf, crossed.p_value), rel=1e-9)
    (a,), (b,) = fixed.comparisons, crossed.comparisons
    assert (a.estimate, a.ci_low, a.ci_high) == pytest.approx((b.estimate, b.ci_low, b.ci_high), rel=1e-9)
    assert a.label == "model - mean reader" and fixed.reference_from_scores
    assert fixed.reference_fom == pytest.approx(roc_auc_score(y, model))


def test_constant_model_is_the_same_as_a_fixed_value():
    y, ratings = rated_study(1, 4, 40, seed=5)
    flat = or_hillis_fixed_reference(y, ratings[0], reference_scores=np.zeros(y.size))  # AUC 0.5, no variance
    fixed = or_hillis_fixed_reference(y, ratings[0], reference_fom=0.5)
    assert (flat.f_stat, flat.ddf, flat.p_value, flat.cov2, flat.var_error) == pytest.approx(
        (fixed.f_stat, fixed.ddf, fixed.p_value, fixed.cov2, fixed.var_error), rel=1e-12)


def test_sensitivity_and_specificity_as_figures_of_merit():
    y, ratings = rated_study(2, 4, 80, seed=6)
    calls = (ratings >= 3).astype(float)
    sens = fom_matrix(y, calls, "sensitivity")
    spec = fom_matrix(y, calls, "specificity")
    assert sens[1, 2] == pytest.approx(recall_score(y, calls[1, 2]))
    assert spec[0, 3] == pytest.approx(recall_score(1 - y, 1 - calls[0, 3]))
    result = or_hillis(y, calls, "sensitivity", treatment_ids=("aided", "unaided"))
    assert result.comparisons[0].label == "aided - unaided"
    assert result.comparisons[0].estimate == pytest.approx(sens[0].mean() - sens[1].mean())
    assert 0.0 <= result.p_value <= 1.0
    fixed = or_hillis_fixed_reference(y, calls[0], reference_scores=calls[1, 0], fom="specificity")
    assert fixed.reference_fom == pytest.approx(spec[1, 0])


def test_or_hillis_size_under_the_null_is_near_alpha():
    """Two identically distributed treatments with correlated readers and cases: the 5% test rejects
    about 5% of 300 small studies (Hillis ddf is, if anything, slightly conservative)."""
    rng = np.random.default_rng(7)
    rejections = 0
    for _ in range(300):
        y = np.r_[np.zeros(25, int), np.ones(25, int)]
        case = rng.normal(size=50) + 1.2 * y
        reader_case = rng.normal(scale=0.5, size=(1, 4, 50))
        scores = case + reader_case + rng.normal(scale=0.6, size=(2, 4, 50)) + rng.normal(scale=0.3, size=(1, 4, 1))
        rejections += or_hillis(y, scores).p_value < 0.05
    assert 0.01 <= rejections / 300 <= 0.10


# ---------------------------------------------------------------------------------------------------
# Long format


def test_long_format_rows_and_imrmc_file(tmp_path):
    y = np.array([0, 1, 1, 0])
    rows = long_format_rows(y, {"unaided": {"r1": [1, 5, 4, 2], "r2": [2.5, 3, 1, 1]}, "model": {"model": [0.1, 0.9, 0.8, 0.2]}},
                            case_ids=["a", "b", "c", "d"])
    assert rows[:4] == [{"readerID": "truth", "caseID": cid, "modalityID": "truth", "score": s}
                        for cid, s in zip("abcd", "0110", strict=True)]
    assert len(rows) == 4 + 3 * 4
    assert {"readerID": "r1", "caseID": "b", "modalityID": "unaided", "score": "5"} in rows
    assert {"readerID": "r2", "caseID": "a", "modalityID": "unaided", "score": "2.5"} in rows
    assert {"readerID": "model", "caseID": "c", "modalityID": "model", "score": "0.8"} in rows
    path = write_imrmc(tmp_path / "study.imrmc", rows, title="demo")
    lines = path.read_text().splitlines()
    assert lines[:6] == ["demo", "N0:2", "N1:2", "NR:3", "NM:2", "BEGIN DATA:"]
    parsed = list(csv.reader(lines[6:]))
    assert parsed[0] == ["truth", "a", "truth", "0"] and len(parsed) == len(rows)


# ---------------------------------------------------------------------------------------------------
# Errors that say what to fix


def test_mrmc_input_errors():
    y, ratings = rated_study(2, 3, 20, seed=8)
    with pytest.raises(ValueError, match="positive and negative"):
        or_hillis(np.zeros(20, int), ratings)
    with pytest.raises(ValueError, match="at least 2 readers"):
        or_hillis(y, ratings[:, :1])
    with pytest.raises(ValueError, match="at least 2 readers"):
        or_hillis_fixed_reference(y, ratings[0, :1], reference_fom=0.8)
    with pytest.raises(ValueError, match="or_hillis_fixed_reference"):
        or_hillis(y, ratings[:1])
    bad = ratings.copy()
    bad[0, 1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        or_hillis(y, bad)
    with pytest.raises(ValueError, match="one value per case"):
        or_hillis(y, ratings[:, :, :-1])
    with pytest.raises(ValueError, match=r"\[treatment, reader, case\]"):
        or_hillis(y, ratings[0])
    with pytest.raises(ValueError, match="0/1 calls"):
        or_hillis(y, ratings, "sensitivity")
    with pytest.raises(ValueError, match="unknown MRMC figure of merit"):
        or_hillis(y, ratings, "ppv")
    with pytest.raises(ValueError, match="exactly one"):
        or_hillis_fixed_reference(y, ratings[0])
    with pytest.raises(ValueError, match="exactly one"):
        or_hillis_fixed_reference(y, ratings[0], reference_scores=ratings[1, 0], reference_fom=0.7)
    with pytest.raises(ValueError, match="shape"):
        or_hillis_fixed_reference(y, ratings[0], reference_scores=ratings[1, :2])
    with pytest.raises(ValueError, match="at least 2 cases of each class"):
        or_hillis(np.r_[1, np.zeros(19, int)], ratings)
    with pytest.raises(ValueError, match="unique"):
        or_hillis(y, ratings, reader_ids=["a", "a", "b"])
    with pytest.raises(ValueError, match="reserved"):
        long_format_rows(y, {"truth": {"r1": ratings[0, 0]}})
