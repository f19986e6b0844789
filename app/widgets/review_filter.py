"""The case browser's review filter: truth, call, disagreement and date (engine.review.ReviewFilter)."""

from __future__ import annotations

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDateEdit, QGridLayout, QWidget

from engine.review import ReviewFilter

SIDES = (("Truth: any", ""), ("Truth: positive", "positive"), ("Truth: negative", "negative"),
         ("Truth: none", "none"))
CALLS = (("Call: any", ""), ("Call: positive", "positive"), ("Call: negative", "negative"),
         ("Call: no result", "none"))
DISAGREEMENTS = (("Disagreement: any", ""), ("Models disagree (e.g. FL vs WL)", "models"),
                 ("Model vs truth", "truth"))


def _combo(items, tip: str) -> QComboBox:
    combo = QComboBox()
    for text, value in items:
        combo.addItem(text, value)
    combo.setToolTip(tip)
    return combo


class ReviewFilterBar(QWidget):
    """Four compact controls; `changed` whenever one of them does."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.truth_combo = _combo(SIDES, "The truth of the case's primary task")
        self.call_combo = _combo(CALLS, "The primary model's call in the newest stored run")
        self.disagreement_combo = _combo(DISAGREEMENTS, "Models of the newest run that call the primary task "
                                                        "differently, or a primary call that differs from the truth")
        self.since_check = QCheckBox("Added since")
        self.since_edit = QDateEdit(QDate.currentDate().addMonths(-1))
        self.since_edit.setCalendarPopup(True)
        self.since_edit.setDisplayFormat("yyyy-MM-dd")
        self.since_edit.setEnabled(False)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.truth_combo, 0, 0)
        layout.addWidget(self.call_combo, 0, 1)
        layout.addWidget(self.disagreement_combo, 1, 0, 1, 2)
        layout.addWidget(self.since_check, 2, 0)
        layout.addWidget(self.since_edit, 2, 1)
        for combo in (self.truth_combo, self.call_combo, self.disagreement_combo):
            combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.since_check.toggled.connect(self.since_edit.setEnabled)
        self.since_check.toggled.connect(lambda _on: self.changed.emit())
        self.since_edit.dateChanged.connect(lambda _d: self.since_check.isChecked() and self.changed.emit())

    def criteria(self) -> ReviewFilter:
        since = self.since_edit.date().toString("yyyy-MM-dd") if self.since_check.isChecked() else ""
        return ReviewFilter(self.truth_combo.currentData(), self.call_combo.currentData(),
                            self.disagreement_combo.currentData(), since)

    def clear(self) -> None:
        for widget in (self.truth_combo, self.call_combo, self.disagreement_combo, self.since_check):
            widget.blockSignals(True)
        for combo in (self.truth_combo, self.call_combo, self.disagreement_combo):
            combo.setCurrentIndex(0)
        self.since_check.setChecked(False)
        self.since_edit.setEnabled(False)
        for widget in (self.truth_combo, self.call_combo, self.disagreement_combo, self.since_check):
            widget.blockSignals(False)
