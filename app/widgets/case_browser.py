"""Case browser dock: filter the cases in the store by text and kind; selecting one asks to open it."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.cases.kinds import case_kinds, find_kind
from engine.store import CaseSummary

COLUMNS = ("Case", "Patient", "Images", "Truth")


def kind_title(kind: str) -> str:
    info = find_kind(kind)
    return info.title if info is not None else kind


class CaseBrowser(QWidget):
    """Lists `store.list_cases(kind, text)`; emits `case_selected(case_id)` when the user picks a row."""

    case_selected = Signal(str)
    store_failed = Signal(object)  # an exception from the store, for the window to report

    def __init__(self, store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._summaries: list[CaseSummary] = []
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by case or patient id")
        self.filter_edit.setClearButtonEnabled(True)
        self.kind_combo = QComboBox()
        self.kind_combo.addItem("All case kinds", None)
        for kind in case_kinds():
            self.kind_combo.addItem(kind.title, kind.name)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)  # ids stay whole; patient ids give way
        self.count_label = QLabel("")
        self.count_label.setObjectName("smallPrint")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.kind_combo)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count_label)

        self._filter_timer = QTimer(self, singleShot=True, interval=200)
        self._filter_timer.timeout.connect(self.refresh)
        self.filter_edit.textChanged.connect(self._filter_timer.start)
        self.kind_combo.currentIndexChanged.connect(lambda _index: self.refresh())
        self.table.itemSelectionChanged.connect(self._selection_changed)

    def refresh(self, select_id: str | None = None) -> None:
        """Re-read the list from the store, keeping (or moving to) the selected case."""
        keep = select_id or self.selected_id()
        try:
            self._summaries = self.store.list_cases(kind=self.kind_combo.currentData(), text=self.filter_edit.text())
        except Exception as exc:  # the store is another process's file or a server: report, don't crash
            self.store_failed.emit(exc)
            return
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._summaries))
        for row, summary in enumerate(self._summaries):
            values = (summary.id, summary.patient_id or "—", "+".join(summary.modalities),
                      "yes" if summary.has_truth else "no")
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, summary.id)
                item.setToolTip(self._tooltip(summary))
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.count_label.setText(f"{len(self._summaries)} case{'s' if len(self._summaries) != 1 else ''}")
        if keep is not None:
            self.select(keep, emit=False)

    def select(self, case_id: str, emit: bool = True) -> bool:
        """Select the row of `case_id` (clearing the filter if it hides it); emit case_selected if asked."""
        row = self._row_of(case_id)
        if row is None and (self.filter_edit.text() or self.kind_combo.currentIndex() > 0):
            self.filter_edit.blockSignals(True)
            self.filter_edit.clear()
            self.filter_edit.blockSignals(False)
            self.kind_combo.blockSignals(True)
            self.kind_combo.setCurrentIndex(0)
            self.kind_combo.blockSignals(False)
            self.refresh()
            row = self._row_of(case_id)
        if row is None:
            return False
        self.table.blockSignals(not emit)
        self.table.selectRow(row)
        self.table.blockSignals(False)
        self.table.scrollToItem(self.table.item(row, 0))
        return True

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def case_ids(self) -> list[str]:
        return [s.id for s in self._summaries]

    def _row_of(self, case_id: str) -> int | None:
        for row, summary in enumerate(self._summaries):
            if summary.id == case_id:
                return row
        return None

    def _selection_changed(self) -> None:
        case_id = self.selected_id()
        if case_id is not None:
            self.case_selected.emit(case_id)

    @staticmethod
    def _tooltip(summary: CaseSummary) -> str:
        kind = kind_title(summary.kind)
        results = f"{summary.n_predictions} stored result{'s' if summary.n_predictions != 1 else ''}"
        return f"{summary.id}\n{kind}\n{results}\nAdded {summary.created[:16].replace('T', ' ')}\n{summary.bundle_path}"
