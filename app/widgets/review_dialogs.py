"""Offline-review dialogs: case details (patient id and name), the choice for a bundle whose case is already
stored, the side-by-side comparison of two stored runs, and the study administrator's view of readers' outlines.

Each is thin: the store and the bundles are read and written by engine functions on workers."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.views import view_class
from app.widgets.image_panel import ImagePanel
from app.widgets.results_panel import ResultsPanel
from app.workers import submit
from engine.cases.kinds import Method, find_kind
from engine.cases.model import Case
from engine.kinds.opening import CANCEL, KEEP_BOTH, REPLACE, BundleConflict
from engine.review import ResultRun
from engine.studies import Study
from engine.studies.outlines import CaseOutlines, case_outlines

READER_COLOR = theme.DRAWN  # readers' outlines: as drawn in the reading view, apart from yellow and green


class CaseDetailsDialog(QDialog):
    """Patient id and case name of one stored case; OK saves them through the store (audited) on a worker."""

    saved = Signal(str)  # case id, once the store has the change

    def __init__(self, store, case_id: str, patient_id: str | None, name: str, actor: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Case details — {case_id}")
        self.store, self.case_id, self.actor = store, case_id, actor
        self.patient_edit = QLineEdit(patient_id or "")
        self.patient_edit.setMaxLength(128)
        self.patient_edit.setPlaceholderText("e.g. the research record's pseudonym")
        self.name_edit = QLineEdit(name)
        self.name_edit.setMaxLength(256)
        self.name_edit.setPlaceholderText("e.g. left neck, node 3")
        note = QLabel("Both are saved in the case bundle and the store; every change is kept in the audit log "
                      "(as keyed hashes, never in plain text).")
        note.setObjectName("smallPrint")
        note.setWordWrap(True)
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("problemsLabel")
        self.problems_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Case id", QLabel(case_id))
        form.addRow("Patient id", self.patient_edit)
        form.addRow("Case name", self.name_edit)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)

    def accept(self) -> None:
        self.buttons.setEnabled(False)
        self.problems_label.setText("Saving…")

        def done(_changed: bool) -> None:
            self.saved.emit(self.case_id)
            super(CaseDetailsDialog, self).accept()

        def failed(exc: BaseException, _tb: str) -> None:
            self.buttons.setEnabled(True)
            self.problems_label.setText(str(exc))  # e.g. a read-only bundle folder: the dialog stays open

        submit(self.store.set_case_identity, self.case_id, patient_id=self.patient_edit.text(),
               name=self.name_edit.text(), actor=self.actor, description="Saving case details", context=self,
               on_result=done, on_error=failed)


def ask_bundle_conflict(parent: QWidget, conflict: BundleConflict) -> str:
    """Replace the stored case, keep both, or cancel (the default): asked for each conflicting bundle."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Case already in the store")
    box.setText(conflict.describe())
    box.setInformativeText("Replace: the stored case now reads from the opened bundle (its stored results stay).\n"
                           "Keep both: the opened bundle is stored as a copy with a new id.\n"
                           "Cancel: nothing changes for this bundle.")
    replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
    both = box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    return {replace: REPLACE, both: KEEP_BOTH}.get(box.clickedButton(), CANCEL)


class _CompareSide(QWidget):
    """One side of the comparison: which run, the kind's view, and the results table."""

    def __init__(self, case: Case, runs: list[ResultRun], current: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.case, self.runs = case, runs
        self.combo = QComboBox()
        for i, run in enumerate(runs):
            self.combo.addItem(run.label(case.kind, short=True))
            self.combo.setItemData(i, run.label(case.kind), Qt.ItemDataRole.ToolTipRole)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(24)
        cls = view_class(case.kind)
        self.view = cls() if cls is not None else QLabel("No view for this kind")
        method_combo = getattr(self.view, "method_combo", None)
        if method_combo is not None:  # here the run is picked above; a method picked in the view would not run
            method_combo.setEnabled(False)
            method_combo.setToolTip("The method of the run picked above")
        self.results = ResultsPanel()
        self.results.setMinimumHeight(240)
        self.results.setMaximumHeight(320)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.combo)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.results)
        self.shown = -1
        self.combo.currentIndexChanged.connect(self.show_run)
        if hasattr(self.view, "show_case"):
            self.view.show_case(case)
        self.combo.setCurrentIndex(current)
        if current == 0:
            self.show_run(0)

    def show_run(self, index: int) -> None:
        """Prepare the view's drawing on a worker, then show run `index`."""
        run = self.runs[index]
        cls = view_class(self.case.kind)

        def ready(prepared) -> None:
            self.shown = index
            if getattr(self.view, "method_combo", None) is not None:  # show the run's method in the view's box
                kind = find_kind(self.case.kind)
                methods = [Method(p.variant, kind.model_title(p)[0] if kind else p.model) for p in run.predictions]
                self.view.set_methods(methods, methods[0].id if methods else None)
            self.view.use_prepared(prepared)
            self.view.show_prediction(list(run.predictions))
            self.results.set_case(f"{self.case.id}", None, self.case.kind)
            self.results.show_predictions(list(run.predictions), stored=True)

        submit(cls.prepare if cls is not None else (lambda *_: None), self.case, list(run.predictions),
               description="Preparing a stored run", context=self, on_result=ready)


class CompareDialog(QDialog):
    """Two stored runs of one case side by side (two methods, or two dates of one method)."""

    def __init__(self, case: Case, runs: list[ResultRun], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare results — {case.id}")
        self.resize(1500, 900)
        first, second = (0, 1) if len(runs) > 1 else (0, 0)
        self.left = _CompareSide(case, runs, first)
        self.right = _CompareSide(case, runs, second)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.left)
        splitter.addWidget(self.right)
        hint = QLabel("Pick a stored run on each side. F5 in the main window adds a run; a method chosen in the "
                      "view runs as a new one.")
        hint.setObjectName("smallPrint")
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        bottom = QHBoxLayout()
        bottom.addWidget(hint, 1)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)


class ReaderOutlinesDialog(QDialog):
    """Study administrator: pick a study and a case; every reader's outline beside the model's and the truth,
    each panel titled with its Dice against the truth (truth in green on every panel)."""

    COLUMNS = 3

    def __init__(self, store, studies: list[Study], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reader outlines")
        self.resize(1300, 900)
        self.store = store
        self.studies = [s for s in studies if s.contours]
        self.study_combo = QComboBox()
        for study in self.studies:
            self.study_combo.addItem(f"{study.name} ({study.id})", study.id)
        self.case_list = QListWidget()
        self.case_list.setMaximumWidth(220)
        self.notes_label = QLabel("" if self.studies else "No study with outlines: create one with "
                                  "\"readers draw contours\" ticked.")
        self.notes_label.setObjectName("smallPrint")
        self.notes_label.setWordWrap(True)
        legend = QLabel(theme.span("■ truth", "truth") + "  " + theme.span("■ model", "prediction") + "  "
                        + theme.span("■ reader", "drawn"))
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.panels: list[ImagePanel] = []
        self.outlines: CaseOutlines | None = None
        left = QVBoxLayout()
        left.addWidget(QLabel("Study"))
        left.addWidget(self.study_combo)
        left.addWidget(QLabel("Cases"))
        left.addWidget(self.case_list, 1)
        right = QVBoxLayout()
        right.addWidget(legend)
        right.addWidget(self.grid_host, 1)
        right.addWidget(self.notes_label)
        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addLayout(right, 1)
        self.study_combo.currentIndexChanged.connect(self._study_changed)
        self.case_list.currentTextChanged.connect(self._case_changed)
        self._study_changed()

    def study(self) -> Study | None:
        return self.studies[self.study_combo.currentIndex()] if self.studies else None

    def _study_changed(self) -> None:
        study = self.study()
        self.case_list.clear()
        if study is not None:
            self.case_list.addItems(list(study.case_ids))
            self.case_list.setCurrentRow(0)

    def _case_changed(self, case_id: str) -> None:
        study = self.study()
        if study is None or not case_id:
            return
        self.notes_label.setText(f"Reading {case_id}…")

        def shown(outlines: CaseOutlines) -> None:
            if self.case_list.currentItem() is not None and self.case_list.currentItem().text() == outlines.case_id:
                self.show_outlines(outlines)

        def failed(exc: BaseException, _tb: str) -> None:
            self.notes_label.setText(str(exc))

        submit(case_outlines, self.store, study.id, case_id, description=f"Reading outlines of {case_id}",
               context=self, on_result=shown, on_error=failed)

    def show_outlines(self, outlines: CaseOutlines) -> None:
        self.outlines = outlines
        for panel in self.panels:
            panel.setParent(None)
            panel.deleteLater()
        self.panels = []
        raters = ([("Truth", None, theme.TRUTH)]
                  + ([(outlines.model.title, outlines.model, theme.PREDICTION)] if outlines.model else [])
                  + [(o.title + ("" if o.drawn else " · no outline"), o, READER_COLOR) for o in outlines.readers])
        for i, (title, outline, color) in enumerate(raters):
            panel = ImagePanel(title, title_size="11pt")
            panel.set_image(outlines.image)
            panel.set_contours("truth", outlines.truth_contours, color=theme.TRUTH, width=1.5)
            if outline is not None:
                panel.set_contours("rater", outline.contours, color=color, width=2.0, z=25)
            self.grid.addWidget(panel, i // self.COLUMNS, i % self.COLUMNS)
            self.panels.append(panel)
        for panel in self.panels:
            panel.fit()
        self.notes_label.setText(f"Study {outlines.study_id}, case {outlines.case_id}: {len(outlines.readers)} "
                                 "current answer(s). " + " ".join(outlines.notes))
