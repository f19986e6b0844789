"""Per-site results of a two-site model in one row of columns: the probability with its card's operating threshold
and call, the probability bar, and the site's modality-contribution bar (e.g. DGFNet's central and lateral LNM,
each with its US vs CT share of the integrated-gradients attribution)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app import theme
from app.widgets.contribution_bar import ContributionBar
from app.widgets.results_panel import ProbabilityBar
from engine.data import Prediction


class SiteResults(QWidget):
    """One column per site (task name); `show(prediction)` fills them, None empties them."""

    def __init__(self, sites: dict[str, str], modalities: Sequence[str], colors: Sequence[str],
                 parent: QWidget | None = None) -> None:
        """`sites`: task name -> words in 'P(<words>)'; `modalities` and their bar `colors`, in bar order."""
        super().__init__(parent)
        self.sites = dict(sites)
        self.modalities = tuple(modalities)
        self.empty_share_title = " | ".join(self.modalities) + " share"
        self.probability_labels: dict[str, QLabel] = {}
        self.probability_bars: dict[str, ProbabilityBar] = {}
        self.share_bars: dict[str, ContributionBar] = {}
        self.share_titles: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 0, 2)
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(2)
        for column, site in enumerate(self.sites):
            label = QLabel("")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)  # wraps beside both docks on a 1366 px screen instead of widening the window
            bar = ProbabilityBar()
            bar.setToolTip("Probability (filled) against the model's operating threshold (white tick)")
            share = ContributionBar(self.modalities, colors)
            title = QLabel(self.empty_share_title)
            title.setObjectName("smallPrint")
            title.setWordWrap(True)
            title.setToolTip("Each modality's share of the integrated-gradients attribution of this site's model "
                             "(|sum over its pixels| over all modalities)")
            grid.addWidget(label, 0, 2 * column, 1, 2)
            grid.addWidget(bar, 1, 2 * column, 1, 2)
            grid.addWidget(title, 2, 2 * column)
            grid.addWidget(share, 2, 2 * column + 1)
            grid.setColumnStretch(2 * column + 1, 1)
            self.probability_labels[site], self.probability_bars[site] = label, bar
            self.share_bars[site], self.share_titles[site] = share, title

    def show_prediction(self, prediction: Prediction | None) -> None:
        for site, words in self.sites.items():
            probability = prediction.probabilities.get(site) if prediction is not None else None
            threshold = prediction.thresholds.get(site) if prediction is not None else None
            call = prediction.calls.get(site) if prediction is not None else None
            if probability is None:
                text = f"<b>P({words})</b> " + theme.span(call or "—", "text_muted")
            else:
                color = theme.POSITIVE if threshold is not None and probability >= threshold else theme.NEGATIVE
                text = (f"<span style='font-size:14pt'><b>P({words}) {100 * probability:.1f} %</b></span> &nbsp;"
                        + theme.span("" if threshold is None else f"threshold {100 * threshold:.0f} % · ", "text_muted")
                        + f"call <b style='color:{color}'>{call or '—'}</b>")
            self.probability_labels[site].setText(text)
            self.probability_bars[site].set_values(probability, threshold)
            keys = [f"{site}.share_{m}" for m in self.modalities]
            shares = None
            if prediction is not None and all(k in prediction.measures for k in keys):
                shares = [prediction.measures[k] for k in keys]
            self.share_bars[site].set_shares(shares)
            bar_text = self.share_bars[site].text().replace("  ·  ", " | ")
            self.share_titles[site].setText(bar_text if shares else self.empty_share_title)
