"""Evaluation figures drawn straight to PNG with matplotlib's Agg canvas (never a GUI backend, never pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.metrics.classification import MetricCI, auc, roc_curve_points

DPI = 150
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_READER_MARKERS = ("s", "^", "D", "v", "P", "X")


def _auc_label(name: str, value: float, ci: MetricCI | Sequence[float] | None, ci_level: float) -> str:
    if ci is None:
        return f"{name}  AUC {value:.3f}"
    low, high = (ci.ci_low, ci.ci_high) if isinstance(ci, MetricCI) else ci
    return f"{name}  AUC {value:.3f} ({ci_level:.0%} CI {low:.3f}\u2013{high:.3f})"


def plot_roc(curves: Mapping[str, tuple[Any, Any]], out_png: str | Path,
             operating_points: Mapping[str, tuple[float, float]] | None = None,
             title: str = "ROC curve", auc_ci: Mapping[str, MetricCI | Sequence[float]] | None = None,
             ci_level: float = 0.95) -> Path:
    """Write ROC curves of `{name: (y_true, scores)}` to a PNG (150 dpi) and return its path.

    `operating_points` maps a name to (FPR, TPR): a curve's own name puts a dot on that curve (its
    chosen threshold), any other name (e.g. a reader) gets its own marker. `auc_ci` adds
    `{name: MetricCI or (low, high)}` intervals to the legend.
    """
    if not curves and not operating_points:
        raise ValueError("plot_roc needs at least one curve or operating point")
    fig = Figure(figsize=(5.6, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="Chance")

    colors: dict[str, str] = {}
    for i, (name, (y_true, scores)) in enumerate(curves.items()):
        fpr, tpr, _ = roc_curve_points(y_true, scores)
        colors[name] = _COLORS[i % len(_COLORS)]
        label = _auc_label(name, auc(y_true, scores), (auc_ci or {}).get(name), ci_level)
        ax.plot(fpr, tpr, color=colors[name], linewidth=2, label=label)

    readers = 0
    for name, (fpr, tpr) in (operating_points or {}).items():
        if name in colors:
            ax.plot([fpr], [tpr], "o", markersize=8, color=colors[name], markeredgecolor="white", zorder=3)
            continue
        marker = _READER_MARKERS[readers % len(_READER_MARKERS)]
        color = _COLORS[(len(colors) + readers) % len(_COLORS)]
        ax.plot([fpr], [tpr], marker, markersize=9, color=color, markeredgecolor="black",
                linestyle="none", label=f"{name}  (sens {tpr:.2f}, spec {1 - fpr:.2f})", zorder=3)
        readers += 1

    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ticks = np.linspace(0, 1, 6)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.grid(True, color="0.9", linewidth=0.8)
    ax.set_xlabel("1 \u2212 specificity (false positive rate)", fontsize=11)
    ax.set_ylabel("Sensitivity (true positive rate)", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=10)
    ax.legend(loc="lower right", fontsize=8.5, frameon=True, framealpha=0.9)

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out
