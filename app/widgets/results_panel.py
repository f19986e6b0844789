"""Results dock: each model's probabilities against its operating threshold, the calls, and the truth."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
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


class ResultCell(QWidget):
    """One model's answer to one task: probability and threshold, the bar, the call."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probability_label = QLabel()
        self.probability_label.setObjectName("probabilityText")
        self.threshold_label = QLabel()
        self.threshold_label.setObjectName("smallPrint")
        self.bar = ProbabilityBar()
        self.call_label = QLabel()
        self.call_label.setObjectName("callText")
        self.call_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(2)
        layout.addWidget(self.probability_label)
        layout.addWidget(self.bar)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.call_label)

    def set_result(self, probability: float | None, threshold: float | None, call: str) -> None:
        self.probability_label.setText("—" if probability is None else f"{100 * probability:.1f} %")
        self.threshold_label.setText("" if threshold is None else f"threshold {100 * threshold:.0f} %")
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


class ResultsPanel(QWidget):
    """Per task rows, one column per model, a truth column when the case has truth, timings in small print;
    above them the history of stored runs (`run_chosen(index)` when the user picks one)."""

    run_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsPanel")
        self.cells: dict[tuple[str, str], ResultCell] = {}  # (task, model) -> cell
        self.truth_cells: dict[str, QLabel] = {}
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
        self.history_combo.setMinimumContentsLength(20)
        self.history_combo.setVisible(False)
        self.history_combo.activated.connect(self.run_chosen.emit)
        self.history_label = QLabel("")
        self.history_label.setObjectName("smallPrint")
        self.history_label.setVisible(False)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 8, 0, 8)
        self.grid.setHorizontalSpacing(14)
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
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        for widget in (self.case_label, self.history_label, self.history_combo, self.headline, self.state_label, self.grid_host):
            layout.addWidget(widget)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        layout.addWidget(self.timings_label)
        layout.addWidget(self.legend_label)
        layout.addStretch(1)
        scroll = QScrollArea()
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
        keys = [t for p in predictions for t in (*p.calls, *p.probabilities)] + list(self._truth or {})
        tasks = list(dict.fromkeys(keys))
        if not tasks:
            return
        for col, prediction in enumerate(predictions, start=1):
            header = _column_header(self._kind, prediction, primary=col == 1 and len(predictions) > 1)
            self.grid.addWidget(self._header(header), 0, col)
        truth_col = len(predictions) + 1
        if self._truth is not None:
            self.grid.addWidget(self._header("Truth<br><span style='font-size:10pt;font-weight:normal'>reference</span>"),
                                0, truth_col)
        for row, task in enumerate(tasks, start=1):
            info = self._kind.task(task) if self._kind is not None else TaskInfo(task, task.title())
            name = QLabel(f"<b>{info.title}</b><br>" + theme.span(info.question, "text_muted", font_size="10pt"))
            name.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            name.setWordWrap(True)
            name.setFixedWidth(88)
            self.grid.addWidget(name, row, 0)
            for col, prediction in enumerate(predictions, start=1):
                cell = ResultCell()
                cell.set_result(prediction.probabilities.get(task), prediction.thresholds.get(task),
                                prediction.calls.get(task, ""))
                self.cells[(task, prediction.model)] = cell
                self.grid.addWidget(cell, row, col)
            if self._truth is not None:
                truth = QLabel(self._truth.get(task, "—"))
                truth.setObjectName("truthText")
                truth.setWordWrap(True)
                truth.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
                self.truth_cells[task] = truth
                self.grid.addWidget(truth, row, truth_col)
        for col in range(1, len(predictions) + 1):
            self.grid.setColumnStretch(col, 3)
        if self._truth is not None:
            self.grid.setColumnStretch(truth_col, 2)

    @staticmethod
    def _header(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("columnHeader")
        return label


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso or "an unknown time"
