"""A reader study's report as one self-contained HTML file: inline CSS, figures as base64 PNG, no scripts.

Figures are drawn with matplotlib's Agg canvas (`engine.metrics.plots.plot_roc` for the ROC figure),
never pyplot. Tables show every estimate with its interval, so the file can be read on its own.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.metrics.plots import plot_roc
from engine.metrics.reader_study import AVERAGE_READER_ID, ERROR_CATEGORIES, MODEL_ID, ComparisonResult
from engine.metrics.segmentation import HD95_CONVENTION
from engine.paths import open_private
from engine.studies.analysis import StudyAnalysis
from engine.studies.model import AIDED

METRICS = ("auc", "sensitivity", "specificity", "accuracy", "ppv", "npv", "f1")
METRIC_TITLES = {"auc": "AUC", "sensitivity": "Sensitivity", "specificity": "Specificity", "accuracy": "Accuracy",
                 "ppv": "PPV", "npv": "NPV", "f1": "F1"}
ERROR_TITLES = {"both_correct": "both correct", "model_corrects_reader": "reader wrong, model right",
                "reader_corrects_model": "model wrong, reader right", "both_wrong": "both wrong"}

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d232a; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { font-size: 1.25em; border-bottom: 2px solid #dfe3e8;
       padding-bottom: 0.2em; margin-top: 2em; } h3 { font-size: 1.05em; margin-top: 1.4em; }
.banner { background: #fff4d6; border: 1px solid #e8c46a; padding: 0.4em 0.8em; border-radius: 4px; }
.notes { background: #eef4fb; border-left: 4px solid #4a7fc1; padding: 0.5em 1em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #d5dae0; padding: 0.28em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f5f7; } td.l, th.l { text-align: left; }
tr.model td { font-weight: 600; background: #f8fafc; } tr.avg td { font-style: italic; }
.sig { color: #b3261e; font-weight: 600; } .small { color: #5b6570; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #e3e6ea; }
details { margin: 0.3em 0; } code { font-size: 0.92em; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2014"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _p(value: float, alpha: float) -> str:
    if value is None or not math.isfinite(value):
        return "\u2014"
    text = "&lt;0.001" if value < 0.001 else f"{value:.3f}"
    return f'<span class="sig">{text}</span>' if value < alpha else text


def _ci(metric: Any) -> str:
    return f"{_num(metric.value)} <span class='small'>[{_num(metric.ci_low)}, {_num(metric.ci_high)}]</span>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1,
           row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(headers))
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        cells = "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, caption: str) -> str:
    return f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}"><figcaption class="small">' \
           f"{_esc(caption)}</figcaption></figure>"


# ----------------------------------------------------------------------------------------------------
# Figures


def _rate(truth: np.ndarray, calls: np.ndarray) -> tuple[float, float]:
    y = truth.astype(bool)
    c = np.asarray(calls).astype(bool)
    return float(np.mean(c[~y])), float(np.mean(c[y]))  # (FPR, TPR)


def roc_figure(analysis: StudyAnalysis, arm: str, comparison: ComparisonResult) -> str:
    """The model's ROC curve with its operating point and every reader of `arm` as a point (base64 PNG)."""
    data = analysis.data
    model = f"Model ({analysis.study.model})"
    points = {model: _rate(data.truth, data.model_scores >= data.model_threshold)}
    for reader, calls in data.arms[arm].calls.items():
        points[f"{reader} ({arm})"] = _rate(data.truth, calls)
    ci = {model: comparison.model["auc"]} if "auc" in comparison.model else None
    with tempfile.TemporaryDirectory() as folder:
        path = plot_roc({model: (data.truth, data.model_scores)}, Path(folder) / "roc.png", operating_points=points,
                        title=f"Model and {arm} readers ({comparison.n} cases)", auc_ci=ci,
                        ci_level=1 - comparison.alpha)
        return base64.b64encode(path.read_bytes()).decode("ascii")


def difference_figure(comparison: ComparisonResult, arm: str) -> str:
    """Model minus each reader (and the average reader) with bootstrap CIs, one panel per metric."""
    names = [m for m in ("auc", "sensitivity", "specificity") if m in comparison.average_reader.differences]
    raters = [*comparison.readers, comparison.average_reader]
    fig = Figure(figsize=(3.2 * len(names), 0.45 * len(raters) + 1.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    ys = np.arange(len(raters))[::-1]
    for ax, name in zip(axes, names):
        for y, rater in zip(ys, raters):
            d = rater.differences[name].difference
            color = "#1d232a" if rater.reader_id == AVERAGE_READER_ID else "#1f77b4"
            ax.plot([d.ci_low, d.ci_high], [y, y], color=color, linewidth=2)
            ax.plot([d.value], [y], "o" if rater.reader_id != AVERAGE_READER_ID else "D", color=color)
        ax.axvline(0, color="0.5", linestyle="--", linewidth=1)
        ax.set_title(f"{METRIC_TITLES[name]}: model \u2212 reader", fontsize=10)
        ax.grid(True, axis="x", color="0.9")
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(ys, [r.reader_id for r in raters])
    fig.suptitle(f"Model minus {arm} readers ({1 - comparison.alpha:.0%} percentile bootstrap CI)", fontsize=11)
    return _png(fig)


# ----------------------------------------------------------------------------------------------------
# Sections


def _settings_section(analysis: StudyAnalysis) -> str:
    s, d = analysis.study, analysis.data
    readers = sorted({r for reads in d.arms.values() for r in reads.calls})
    rows = [
        ("Question", _esc(s.question)), ("Description", _esc(s.description or "\u2014")),
        ("Task label", _esc(s.task_label)), ("Case kind", _esc(s.case_kind)),
        ("Modalities shown", _esc(", ".join(s.modalities))), ("Arms (reading order)", _esc(", ".join(s.arms))),
        ("Confidence scale", _esc(f"{s.confidence_scale} (higher = more likely {s.task_label})")),
        ("Readers draw contours", "yes" if s.contours else "no"), ("Study seed", _esc(s.seed)),
        ("Repeat reads", _esc(s.repeat_reads)), ("Washout between sessions", _esc(f"{s.washout_days:g} days")),
        ("Model", _esc(f"{s.model} at threshold {s.model_threshold:g} (outputs frozen at study creation)")),
        ("Cases", _esc(f"{len(s.case_ids)} in the study, {len(d.case_ids)} analysed "
                       f"({int(d.truth.sum())} {s.task_label}, {int(d.truth.size - d.truth.sum())} not)")),
        ("Readers analysed", _esc(", ".join(readers))), ("Created", _esc(f"{s.created} by {s.created_by}")),
        ("Statistics", _esc("bootstrap {n_boot} resamples (stratified by truth), permutation {n_perm}, alpha "
                            "{alpha}, seed {seed}; MRMC covariance of the AUC: {covariance}"
                            .format(**{"covariance": "jackknife", **analysis.settings}))),
        ("Analysis time", _esc(f"{analysis.seconds:.2f} s")),
    ]
    return "<h2>Study settings</h2>" + _table(["Setting", "Value"], rows, left=2)


def _metrics_table(comparison: ComparisonResult, model: str) -> str:
    names = [m for m in METRICS if m in comparison.model]
    rows, classes = [], []
    raters = [(f"{MODEL_ID} ({model})", comparison.model)] + [(r.reader_id, r.metrics) for r in comparison.readers]
    raters.append((AVERAGE_READER_ID, comparison.average_reader.metrics))
    for rater, metrics in raters:
        rows.append([_esc(rater)] + [_ci(metrics[m]) if m in metrics else "\u2014" for m in names])
        classes.append("model" if rater.startswith(MODEL_ID) else "avg" if rater == AVERAGE_READER_ID else "")
    return _table(["Rater"] + [METRIC_TITLES[m] for m in names], rows, row_classes=classes)


def _differences_table(comparison: ComparisonResult) -> str:
    names = [m for m in METRICS if m in comparison.average_reader.differences]
    rows = []
    for r in (*comparison.readers, comparison.average_reader):
        cells = []
        for m in names:
            d = r.differences.get(m)
            cells.append("\u2014" if d is None else f"{_ci(d.difference)}<br><span class='small'>p = </span>"
                                                    f"{_p(d.p_value, comparison.alpha)}")
        rows.append([_esc(r.reader_id)] + cells)
    return _table(["Model \u2212 reader"] + [METRIC_TITLES[m] for m in names], rows,
                  row_classes=["avg" if r[0] == AVERAGE_READER_ID else "" for r in rows])


def _errors_table(comparison: ComparisonResult) -> str:
    rows, details = [], []
    for r in comparison.readers:
        if r.errors is None:
            continue
        counts = r.errors.counts
        rows.append([_esc(r.reader_id)] + [f"{counts[c]} <span class='small'>({r.errors.n_pos[c]} pos)</span>"
                                           for c in ERROR_CATEGORIES])
        listed = "; ".join(f"<b>{ERROR_TITLES[c]}</b>: {_esc(', '.join(r.errors.case_ids[c]) or 'none')}"
                           for c in ERROR_CATEGORIES[1:])
        details.append(f"<details><summary>{_esc(r.reader_id)}: case ids</summary><p class='small'>{listed}</p>"
                       "</details>")
    return _table(["Reader"] + [ERROR_TITLES[c] for c in ERROR_CATEGORIES], rows) + "".join(details)


def _comparison_section(analysis: StudyAnalysis, arm: str, comparison: ComparisonResult) -> str:
    parts = [f"<h2>Model and {arm} readers</h2>",
             f"<p>{comparison.n} cases ({comparison.n_pos} positive). {_esc(comparison.ci_description())} "
             f"p-values: two-sided paired permutation ({comparison.n_perm} swaps) of model and reader outputs; "
             "they treat the readers as fixed (see MRMC below for readers as random).</p>",
             _img(roc_figure(analysis, arm, comparison),
                  "Model ROC curve (its operating point as a dot) and each reader's call as a point."),
             "<h3>Metrics with confidence intervals</h3>", _metrics_table(comparison, analysis.study.model),
             "<h3>Model minus reader</h3>", _differences_table(comparison),
             _img(difference_figure(comparison, arm), "Model minus reader differences with bootstrap CIs."),
             "<h3>Error analysis (model against each reader)</h3>", _errors_table(comparison)]
    return "".join(parts)


def _mrmc_section(analysis: StudyAnalysis) -> str:
    if not analysis.result.mrmc:
        return "<h2>MRMC analysis</h2><p>Not run; see the notes above.</p>"
    rows = []
    for key, res in analysis.result.mrmc.items():
        for c in res.comparisons:
            rows.append([_esc(key), _esc(c.label), _esc(res.factors), _num(c.estimate),
                         f"[{_num(c.ci_low)}, {_num(c.ci_high)}]", _num(c.std_err),
                         "\u221e" if math.isinf(c.df) else _num(c.df, 1), _p(c.p_value, res.alpha),
                         _esc(len(res.reader_ids))])
    foms = []
    for key, res in analysis.result.mrmc.items():
        for t in res.treatments:
            foms.append([_esc(key), _esc(t.treatment), _num(t.estimate), f"[{_num(t.ci_low)}, {_num(t.ci_high)}]"])
        if res.reference_id is not None:
            foms.append([_esc(key), _esc(res.reference_id), _num(res.reference_fom), "\u2014"])
    covariance = analysis.settings.get("covariance", "jackknife")
    return ("<h2>MRMC analysis (Obuchowski\u2013Rockette, Hillis degrees of freedom)</h2>"
            "<p>Model vs readers: readers and cases random, the model a fixed reference read on the same cases. "
            "Aided \u2212 unaided rows appear when both arms were read by the same readers: with readers and "
            "cases random (conclusions for readers and cases like these), readers fixed (for these readers; "
            "df \u221e: normal), or cases fixed (for these cases). Covariance of the AUC estimates: "
            f"{_esc(covariance)}; of sensitivity and specificity: jackknife.</p>"
            + _table(["Analysis", "Contrast", "Readers, cases", "Estimate", "CI", "SE", "df", "p", "Readers"], rows,
                     left=3)
            + "<h3>Figures of merit</h3>" + _table(["Analysis", "Treatment", "Mean FOM", "CI"], foms, left=2))


def _contour_section(analysis: StudyAnalysis) -> str:
    agreement = analysis.contours
    if agreement is None:
        return ""
    if not agreement.summary:
        return "<h2>Reader outlines</h2><p>No case has a truth mask, so the outlines are not scored.</p>"
    rows = [[_esc(r["arm"]), _esc(r["rater"]), _num(r["n_cases"]), _num(r["dice_mean"]),
             f"[{_num(r['dice_ci_low'])}, {_num(r['dice_ci_high'])}]", _num(r["fpsr_mean"]), _num(r["fnsr_mean"]),
             _num(r["hd95_median_px"], 1), _num(r["hd95_undefined"]), _num(r["model_minus_rater_dice"]),
             _p(r["p_value"], analysis.settings.get("alpha", 0.05))]
            for r in agreement.summary]
    return ("<h2>Reader outlines against the truth mask</h2>"
            "<p>Each reader's outline is rasterised on the frame (a case read without one counts as an empty mask) "
            "and scored against the truth mask like the model's mask: Dice, FPSR, FNSR (means over cases, Dice "
            f"with a percentile bootstrap interval) and the median HD95 in pixels ({_esc(HD95_CONVENTION)}). "
            "HD95 is undefined where exactly one of the two masks is empty (an outline on a frame without "
            "tumor, or none on a frame with one); the median is over the other cases and the column "
            "<i>HD95 undefined</i> counts them. Model − reader: difference of mean Dice, two-sided paired "
            "permutation p.</p>"
            + _table(["Arm", "Rater", "Cases", "Mean Dice", "CI", "FPSR", "FNSR", "Median HD95 px",
                      "HD95 undefined", "Model − rater Dice", "p"], rows, left=2))


def _small_sections(analysis: StudyAnalysis) -> str:
    parts = []
    timing = analysis.reading_time_rows()
    if timing:
        parts.append("<h2>Reading time</h2>" + _table(
            ["Reader", "Arm", "Cases", "Median s/case", "Mean s/case", "Total min"],
            [[_esc(r["reader"]), _esc(r["arm"]), _num(r["n_cases"]), _num(r["median_seconds"], 1),
              _num(r["mean_seconds"], 1), _num(r["total_minutes"], 1)] for r in timing], left=2))
    if analysis.data.agreement:
        parts.append("<h2>Intra-reader agreement (repeat reads)</h2>" + _table(
            ["Reader", "Arm", "Round", "Cases", "Same call", "Cohen's \u03ba", "Mean |rating change|"],
            [[_esc(r["reader"]), _esc(r["arm"]), _num(r["round"]), _num(r["n_cases"]), _num(r["call_agreement"]),
              _num(r["kappa"]), _num(r["mean_abs_rating_change"], 2)] for r in analysis.data.agreement], left=2))
    if analysis.data.excluded:
        parts.append("<h2>Left out of the analysis</h2>" + _table(
            ["What", "Id", "Arm", "Reason"],
            [[_esc(e["kind"]), _esc(e["id"]), _esc(e["arm"]), _esc(e["reason"])] for e in analysis.data.excluded],
            left=4))
    return "".join(parts)


def render_report(analysis: StudyAnalysis) -> str:
    """The whole report as one HTML string."""
    s = analysis.study
    notes = "".join(f"<li>{_esc(n)}</li>" for n in analysis.notes)
    body = [f"<h1>Reader study: {_esc(s.name)}</h1>",
            f"<p class='small'>Study <code>{_esc(s.id)}</code> \u00b7 report written "
            f"{datetime.now(UTC).isoformat(timespec='seconds')} by OncoLens</p>",
            "<p class='banner'>Research use only. Not for clinical decisions.</p>",
            f"<div class='notes'><b>Notes</b><ul>{notes}</ul></div>" if notes else "",
            _settings_section(analysis)]
    primary = analysis.data.primary_arm
    body.append(_comparison_section(analysis, primary, analysis.result.comparison))
    if analysis.aided_comparison is not None:
        body.append(_comparison_section(analysis, AIDED, analysis.aided_comparison))
    body.append(_mrmc_section(analysis))
    body.append(_contour_section(analysis))
    body.append(_small_sections(analysis))
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>Reader study {_esc(s.name)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write_report(analysis: StudyAnalysis, path: str | Path) -> Path:
    """Write the HTML report (written to a temporary name first, then moved into place)."""
    out = Path(path)
    partial = out.with_name(out.name + ".partial")
    with open_private(partial, encoding="utf-8") as handle:  # missing folders are created 0700
        handle.write(render_report(analysis))
    partial.replace(out)
    return out

