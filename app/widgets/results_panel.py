"""Results dock: each model's probabilities against its operating threshold, the calls, and the truth."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app import theme
from engine.cases.kinds import CaseKind, TaskInfo, find_kind
from engine.data import Prediction
from engine.data.agreement import call_disagreements

POSITIVE_COLOR = QColor(theme.POSITIVE)  # amber: at or above the operating threshold
NEGATIVE_COLOR = QColor(theme.NEGATIVE)  # steel blue: below it
TRACK_COLOR = QColor(theme.TRACK)
TICK_COLOR = QColor(theme.TICK)


def model_titles(kind: CaseKind | None, prediction: Prediction) -> tuple[str, str]:
    """(title, small note) of a prediction's model as the case's kind names it, e.g. ('FL-CNN', ''),
    ('MFI-FFP', 'WLI+FI'), ('UNet++', 'segmentation'); the model id for unknown kinds."""
    return kind.model_title(prediction) if kind is not None else (prediction.model, "")


def column_title(kind: CaseKind | None, prediction: Prediction) -> str:
    """One-line model name: the title and its note, e.g. 'MFI-FFP WLI+FI'."""
    title, note = model_titles(kind, prediction)
    return f"{title} {note}" if note and note != "segmentation" else title


def _column_header(kind: CaseKind | None, prediction: Prediction, primary: bool) -> str:
    """Bold model name over a small second line (its note, 'primary' for the first of several)."""
    title, note = model_titles(kind, prediction)
    notes = [note] if note else []
    if primary:
        notes.append("primary")
    return f"{title}<br><span style='font-size:10pt;font-weight:normal'>{' · '.join(notes) or '&nbsp;'}</span>"


class ProbabilityBar(QWidget):
    """A probability as a filled bar, with the operating threshold as a white tick."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probability: float | None = None
        self.threshold: float | None = None
        self.setFixedHeight(14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(100, 14)

    def set_values(self, probability: float | None, threshold: float | None) -> None:
        self.probability, self.threshold = probability, threshold
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(1, 3, -1, -3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(TRACK_COLOR)
        painter.drawRoundedRect(rect, 3, 3)
        if self.probability is not None:
            positive = self.threshold is not None and self.probability >= self.threshold
            fill = QRectF(rect.left(), rect.top(), rect.width() * min(max(self.probability, 0.0), 1.0), rect.height())
            painter.setBrush(POSITIVE_COLOR if positive else NEGATIVE_COLOR)
            painter.drawRoundedRect(fill, 3, 3)
        if self.threshold is not None:
            x = rect.left() + rect.width() * self.threshold
            painter.setPen(QPen(TICK_COLOR, 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.end()


class WrappedLabel(QLabel):
    """A word-wrapping label never narrower than its longest word (Qt would break "non-tumor" at the hyphen
    or cut a long word)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        document = QTextDocument()
        document.setHtml(self.text())
        metrics = QFontMetrics(self.font())
        longest = max((metrics.horizontalAdvance(word) for word in document.toPlainText().split()), default=0)
        margins = self.contentsMargins()
        return QSize(max(hint.width(), longest + margins.left() + margins.right() + 1), hint.height())


class ResultCell(QWidget):
    """One model's answer to one task: probability and threshold, the bar, the call."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probability_label = QLabel()
        self.probability_label.setObjectName("probabilityText")
        self.threshold_label = QLabel()
        self.threshold_label.setObjectName("smallPrint")
        self.threshold_label.setWordWrap(True)  # "threshold" over "25 %" in a narrow dock, never cut
        self.bar = ProbabilityBar()
        self.call_label = WrappedLabel()
        self.call_label.setObjectName("callText")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(2)
        layout.addWidget(self.probability_label)
        layout.addWidget(self.bar)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.call_label)
        self.area_label = WrappedLabel()
        self.area_label.setObjectName("smallPrint")
        self.area_label.setVisible(False)
        layout.addWidget(self.area_label)

    def set_result(self, probability: float | None, threshold: float | None, call: str) -> None:
        self.probability_label.setText("—" if probability is None else f"{100 * probability:.1f} %")
        self.threshold_label.setText("" if threshold is None else f"threshold {100 * threshold:.0f}\u00a0%")  # wraps before the number
        self.threshold_label.setToolTip("The model's operating threshold (from its model card)")
        self.bar.set_values(probability, threshold)
        self.call_label.setText(call or "—")
        assessed = probability is not None
        self.bar.setVisible(assessed)  # a gated task has no probability to compare with its threshold
        self.threshold_label.setVisible(assessed)
        positive = assessed and threshold is not None and probability >= threshold
        self.call_label.setProperty("state", "positive" if positive else "negative" if assessed else "gated")
        self.call_label.style().unpolish(self.call_label)
        self.call_label.style().polish(self.call_label)

    def set_area(self, measures) -> None:
        """The predicted area beside the frame score (segmentations): pixels, and mm² when the spacing is known."""
        text = area_text(measures)
        self.area_label.setText(text)
        self.area_label.setVisible(bool(text))
        self.area_label.setToolTip("Area of the predicted tumor mask" if text else "")


class ResultsPanel(QWidget):
    """Per task rows, one column per model, a truth column when the case has truth, timings in small print;
    above them the history of stored runs (`run_chosen(index)` when the user picks one)."""

    run_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsPanel")
        self.cells: dict[tuple[str, str], ResultCell] = {}  # (task, model) -> cell
        self.truth_cells: dict[str, QLabel] = {}
        self.task_labels: dict[str, QLabel] = {}
        self._truth: dict[str, str] | None = None
        self._kind: CaseKind | None = None
        self._predictions: list[Prediction] = []  # shown now, to redraw when the truth arrives

        self.case_label = QLabel("No case open")
        self.case_label.setObjectName("panelTitle")
        self.case_label.setWordWrap(True)
        self.headline = QLabel("")
        self.headline.setObjectName("headline")
        self.headline.setWordWrap(True)
        self.state_label = QLabel("")
        self.state_label.setObjectName("smallPrint")
        self.state_label.setWordWrap(True)
        self.history_combo = QComboBox()
        self.history_combo.setObjectName("historyCombo")
        self.history_combo.setToolTip("Every stored run on this case (date, models, weights hashes); F5 adds one")
        self.history_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.history_combo.setMinimumContentsLength(12)  # the full entry is in its tooltip
        self.history_combo.setVisible(False)
        self.history_combo.activated.connect(self.run_chosen.emit)
        self.history_label = QLabel("")
        self.history_label.setObjectName("smallPrint")
        self.history_label.setWordWrap(True)
        self.history_label.setVisible(False)
        self.disagreement_label = QLabel("")
        self.disagreement_label.setObjectName("disagreement")
        self.disagreement_label.setWordWrap(True)
        self.disagreement_label.setVisible(False)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 8, 0, 8)
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(10)
        self.timings_label = QLabel("")
        self.timings_label.setObjectName("smallPrint")
        self.timings_label.setWordWrap(True)
        self.legend_label = QLabel(
            "Bar: probability; white tick: the model's operating threshold. "
            "Amber: at or above the threshold; blue: below it."
        )
        self.legend_label.setObjectName("smallPrint")
        self.legend_label.setWordWrap(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(6)
        for widget in (self.case_label, self.history_label, self.history_combo, self.headline, self.disagreement_label,
                       self.state_label, self.grid_host):
            layout.addWidget(widget)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        layout.addWidget(self.timings_label)
        layout.addWidget(self.legend_label)
        layout.addStretch(1)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # -- public -----------------------------------------------------------------------------------

    def set_case(self, case_id: str | None, truth: dict[str, str] | None = None, kind: str | None = None) -> None:
        """A new case: forget shown results; `truth` maps task -> reference label in words; `kind` names the
        case kind whose task titles and model names the panel uses."""
        self.case_label.setText(f"Case {case_id}" if case_id else "No case open")
        self._truth = truth
        self._kind = find_kind(kind) if kind else None
        self.headline.setText("")
        self.state_label.setText("")
        self.timings_label.setText("")
        self.set_history([], -1)
        self._rebuild([])
        self._show_disagreements([])

    def set_history(self, labels: list[str], current: int, tips: list[str] | None = None) -> None:
        """The stored runs (newest first), `current` selected, `tips` their full descriptions; hidden while there
        is none."""
        self.history_combo.blockSignals(True)
        self.history_combo.clear()
        for i, label in enumerate(labels):
            self.history_combo.addItem(label)
            tip = tips[i] if tips else label
            self.history_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.history_combo.setCurrentIndex(current)
        self.history_combo.blockSignals(False)
        self.history_combo.setToolTip(tips[current] if tips and 0 <= current < len(tips) else
                                      "Every stored run on this case (date, models, weights hashes); F5 adds one")
        self.history_label.setText(f"History: {len(labels)} stored run{'s' if len(labels) != 1 else ''}"
                                   " (newest first; F5 adds one)")
        self.history_combo.setVisible(bool(labels))
        self.history_label.setVisible(bool(labels))

    def set_truth(self, truth: dict[str, str] | None) -> None:
        """The reference labels of the case on display, when they arrive after it (read on a worker)."""
        self._truth = truth
        self._rebuild(self._predictions)

    def set_busy(self, text: str) -> None:
        self.state_label.setText(text)

    def show_predictions(self, predictions: list[Prediction], stored: bool = False) -> None:
        """Fill the table. `stored`: results read back from the store or bundle rather than computed now."""
        self._rebuild(predictions)
        self._show_disagreements(predictions)
        if not predictions:
            self.headline.setText("")
            return
        primary = predictions[0]
        calls = [call for task, call in primary.calls.items() if task in primary.probabilities]
        self.headline.setText(f"{column_title(self._kind, primary)} call: " + " · ".join(calls))
        when = _short_time(primary.created)
        self.state_label.setText(f"Stored result from {when}" if stored else f"Computed {when}")
        timings = [
            f"{column_title(self._kind, p)} {p.timings_ms['total']:.0f} ms" for p in predictions
            if "total" in p.timings_ms
        ]
        device = primary.device or "unknown device"
        self.timings_label.setText(" · ".join(timings + [f"on {device}"]))

    def probability_text(self, task: str, model: str) -> str:
        return self.cells[(task, model)].probability_label.text()

    def call_text(self, task: str, model: str) -> str:
        return self.cells[(task, model)].call_label.text()

    # -- internals --------------------------------------------------------------------------------

    def _rebuild(self, predictions: list[Prediction]) -> None:
        self._predictions = list(predictions)
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.setParent(None)  # off screen now, not at the next event-loop pass
                widget.deleteLater()
        self.cells.clear()
        self.truth_cells.clear()
        self.task_labels.clear()
        keys = [t for p in predictions for t in (*p.calls, *p.probabilities)] + list(self._truth or {})
        tasks = list(dict.fromkeys(keys))
        if not tasks:
            return
        # One column per model and one for the truth; each task's title spans the row above its cells, so the
        # cells get the dock's whole width (a 1366-pixel screen leaves the dock about 340 pixels).
        for col, prediction in enumerate(predictions):
            header = _column_header(self._kind, prediction, primary=col == 0 and len(predictions) > 1)
            self.grid.addWidget(self._header(header), 0, col)
        truth_col = len(predictions)
        if self._truth is not None:
            self.grid.addWidget(self._header("Truth<br><span style='font-size:10pt;font-weight:normal'>reference</span>"),
                                0, truth_col)
        n_cols = truth_col + (self._truth is not None)
        disputed = {d.task for d in call_disagreements(predictions)}
        for index, task in enumerate(tasks):
            row = 1 + 2 * index
            info = self._kind.task(task) if self._kind is not None else TaskInfo(task, task.title())
            flag = theme.span(" · models disagree", "amber", font_size="10pt") if task in disputed else ""
            question = f" — {theme.span(info.question, 'text_muted', font_size='10pt')}" if info.question else ""
            name = QLabel(f"<b>{info.title}</b>{question}{flag}")
            name.setObjectName("taskTitle")
            name.setWordWrap(True)
            self.task_labels[task] = name
            self.grid.addWidget(name, row, 0, 1, max(n_cols, 1))
            for col, prediction in enumerate(predictions):
                cell = ResultCell()
                cell.set_result(prediction.probabilities.get(task), prediction.thresholds.get(task),
                                prediction.calls.get(task, ""))
                cell.set_area(prediction.measures)
                self.cells[(task, prediction.model)] = cell
                self.grid.addWidget(cell, row + 1, col, Qt.AlignmentFlag.AlignTop)
            if self._truth is not None:
                truth = WrappedLabel(self._truth.get(task, "—"))
                truth.setObjectName("truthText")
                truth.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
                self.truth_cells[task] = truth
                self.grid.addWidget(truth, row + 1, truth_col, Qt.AlignmentFlag.AlignTop)
        for col in range(n_cols):  # equal shares: a truth such as "non-tumor" needs as much room as a call
            self.grid.setColumnStretch(col, 1)

    def _show_disagreements(self, predictions: list[Prediction]) -> None:
        """An amber line under the headline when the models shown call a task differently (e.g. FL vs WL)."""
        lines = []
        for found in call_disagreements(predictions):
            by_model = {p.model: p for p in predictions}
            title = self._kind.task(found.task).title if self._kind is not None else found.task
            answers = ", ".join(f"{column_title(self._kind, by_model[model])} {call}"
                                for model, call, _positive in found.answers)
            lines.append(f"⚠ Models disagree on {title}: {answers}.")
        self.disagreement_label.setText("<br>".join(lines))
        self.disagreement_label.setToolTip("The models shown call this case differently; look at both images "
                                           "and treat the calls with caution." if lines else "")
        self.disagreement_label.setVisible(bool(lines))

    def disagreement_text(self) -> str:
        """The disagreement line as shown ('' when the models agree or it is hidden)."""
        return self.disagreement_label.text() if self.disagreement_label.isVisibleTo(self) else ""

    @staticmethod
    def _header(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("columnHeader")
        return label


def area_text(measures) -> str:
    """'area 14905 px (595.9 mm²)' from a prediction's measures; '' when it has no area."""
    if "area_px" not in measures:
        return ""
    text = f"area {int(measures['area_px'])}\u00a0px"
    if "area_mm2" in measures:
        text += f" ({measures['area_mm2']:.1f}\u00a0mm²)"
    return text


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso or "an unknown time"
