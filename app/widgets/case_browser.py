"""Case browser dock: filter the cases in the store by text, kind and review criteria (truth, call,
disagreement, date); selecting one asks to open it.
The list is read on a worker; the newest request wins."""

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

from app.widgets.review_filter import ReviewFilterBar
from app.workers import submit
from engine.cases.kinds import case_kinds, find_kind
from engine.data.words import count_of
from engine.review import filtered_cases
from engine.store import CaseSummary

COLUMNS = ("Case", "Patient", "Images", "Truth")
CASE, PATIENT, IMAGES, TRUTH = range(len(COLUMNS))
DROP_ORDER = (IMAGES, TRUTH)  # columns hidden, in this order, when the dock is too narrow for all of them


def kind_title(kind: str) -> str:
    info = find_kind(kind)
    return info.title if info is not None else kind


class CaseBrowser(QWidget):
    """Lists `store.list_cases(kind, text)` (read on a worker); emits `case_selected(case_id)` when the user
    picks a row."""

    case_selected = Signal(str)
    store_failed = Signal(object)  # an exception from the store, for the window to report
    refreshed = Signal()  # a new list is on screen

    def __init__(self, store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._summaries: list[CaseSummary] = []
        self._generation = self._shown_generation = 0  # list requests made / the one on screen
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by case id, name or patient id")
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
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # `fit_columns` sizes them to their texts
        header.setStretchLastSection(False)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.count_label = QLabel("")
        self.count_label.setObjectName("smallPrint")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.kind_combo)
        self.review_filter = ReviewFilterBar()
        layout.addWidget(self.review_filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.count_label)

        self._filter_timer = QTimer(self, singleShot=True, interval=200)
        self._filter_timer.timeout.connect(self.refresh)
        self.filter_edit.textChanged.connect(self._filter_timer.start)
        self.kind_combo.currentIndexChanged.connect(lambda _index: self.refresh())
        self.review_filter.changed.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._selection_changed)

    def refresh(self, select_id: str | None = None, emit: bool = False) -> None:
        """Re-read the list from the store on a worker, keeping (or moving to) the selected case; `emit`: say
        `case_selected` for `select_id` once it is selected. Only the newest request's list is shown."""
        self._generation += 1
        generation = self._generation
        keep = select_id or self.selected_id()
        submit(filtered_cases, self.store, kind=self.kind_combo.currentData(), text=self.filter_edit.text(),
               wanted=self.review_filter.criteria(), description="Listing cases", context=self,
               on_result=lambda summaries: self._listed(generation, summaries, keep, select_id is not None, emit),
               on_error=lambda exc, _tb: self._failed(generation, exc))

    def is_loading(self) -> bool:
        return self._shown_generation != self._generation

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._shown_generation = generation
        self.store_failed.emit(exc)  # the store is another process's file or a server: report, don't crash

    def _listed(self, generation: int, summaries: list[CaseSummary], keep: str | None, asked: bool,
                emit: bool) -> None:
        if generation != self._generation:
            return  # a newer request is on its way
        self._shown_generation = generation
        self._summaries = summaries
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._summaries))
        for row, summary in enumerate(self._summaries):
            title = f"{summary.id} · {summary.name}" if summary.name else summary.id
            values = (title, summary.patient_id or "—", "+".join(summary.modalities),
                      "yes" if summary.has_truth else "no")
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, summary.id)
                item.setToolTip(self._tooltip(summary))
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.fit_columns()
        self.count_label.setText(count_of(len(self._summaries), "case"))
        if keep is not None:
            if asked:
                self.select(keep, emit=emit, retry=False)
            elif self._row_of(keep) is not None:
                self.select(keep, emit=False)
        self.refreshed.emit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Every shown column as wide as its widest text (ids are never cut); where the dock is too narrow
        for all four, Images and then Truth are hidden (each row's tooltip still says them). Spare width
        goes to the Patient column."""
        header = self.table.horizontalHeader()
        needed = [max(self.table.sizeHintForColumn(col), header.sectionSizeHint(col)) for col in range(len(COLUMNS))]
        scrollbar = self.table.verticalScrollBar()  # its width is kept free whether it shows yet or not
        available = self.table.viewport().width() - (0 if scrollbar.isVisible() else scrollbar.sizeHint().width())
        shown = list(range(len(COLUMNS)))
        for col in DROP_ORDER:
            if sum(needed[c] for c in shown) <= available:
                break
            shown.remove(col)
        for col in range(len(COLUMNS)):
            self.table.setColumnHidden(col, col not in shown)
        spare = max(available - sum(needed[c] for c in shown), 0)
        for col in shown:
            self.table.setColumnWidth(col, needed[col] + (spare if col == PATIENT else 0))

    def select(self, case_id: str, emit: bool = True, retry: bool = True) -> bool:
        """Select the row of `case_id` (emitting case_selected if asked); when the list does not show it,
        clear the filters and (`retry`) list again, selecting it then. True when it was selected at once."""
        row = self._row_of(case_id)
        if row is None:
            if not retry:
                return False
            self.filter_edit.blockSignals(True)
            self.filter_edit.clear()
            self.filter_edit.blockSignals(False)
            self.kind_combo.blockSignals(True)
            self.kind_combo.setCurrentIndex(0)
            self.kind_combo.blockSignals(False)
            self.review_filter.clear()
            self.refresh(select_id=case_id, emit=emit)
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
        results = count_of(summary.n_predictions, "stored result")
        images = f"Images: {'+'.join(summary.modalities) or 'none'}; truth: {'yes' if summary.has_truth else 'no'}"
        return f"{summary.id}\n{kind}\n{images}\n{results}\nAdded {summary.created[:16].replace('T', ' ')}\n{summary.bundle_path}"
