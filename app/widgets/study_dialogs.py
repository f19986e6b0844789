"""Reader-study dialogs: sign in to read, and the administrator's "new study" and "add reader".

The admin dialogs call the engine (`create_study`, `add_reader`) on a worker when OK is pressed (the store
and the PIN's scrypt hash stay off the GUI thread) and stay open with the engine's message when it refuses, so
nothing half-done is saved. Signing in only collects the study, reader id and PIN; the window checks them off
the GUI thread (`ReadingSession.open`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.workers import report_error, submit
from engine.cases.kinds import CaseKind, KindError, case_kinds, find_kind
from engine.data import PredictionSummary
from engine.data.words import count_of
from engine.store import CaseSummary
from engine.studies import AIDED, SCALES, UNAIDED, Study, StudyError, add_reader, create_study
from engine.studies.model import stored_models


def _error_label() -> QLabel:
    label = QLabel("")
    label.setObjectName("problemsLabel")  # amber in the stylesheet
    label.setWordWrap(True)
    return label


class _EngineDialog(QDialog):
    """A dialog whose OK runs an engine call on a worker: OK is disabled meanwhile, a refusal (StudyError) is
    shown in the dialog, which stays open; any other error gets a message box."""

    def _setup_buttons(self, ok_text: str) -> None:
        self.problems_label = _error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.busy = False

    def _run_engine(self, fn, *args, what: str, done) -> None:
        self.busy = True
        self.ok_button.setEnabled(False)
        self.problems_label.setText(f"{what}…")

        def finished(result) -> None:
            self.busy = False
            self.ok_button.setEnabled(True)
            self.problems_label.setText("")
            done(result)
            QDialog.accept(self)

        def refused(exc: BaseException, tb: str) -> None:
            self.busy = False
            self.ok_button.setEnabled(True)
            self.problems_label.setText(str(exc) if isinstance(exc, StudyError) else "")
            if not isinstance(exc, StudyError):
                report_error(exc, tb, parent=self, title=f"OncoLens — {what} failed")

        submit(fn, *args, description=what, context=self, on_result=finished, on_error=refused)


def _primary_model(kind: CaseKind | None) -> str | None:
    try:
        return kind.primary_model() if kind is not None else None
    except KindError:
        return None


def _model_title(kind: CaseKind | None, model: str) -> str:
    """'fl_cnn[FL]' -> 'FL-CNN (fl_cnn[FL])' as the kind names it."""
    family, _, rest = model.partition("[")
    if kind is None:
        return model
    title, note = kind.model_title(PredictionSummary(family=family, variant=rest.rstrip("]")))
    return f"{title}{' ' + note if note and note != 'segmentation' else ''} ({model})"


def _study_combo(studies: list[Study]) -> QComboBox:
    combo = QComboBox()
    for study in studies:
        combo.addItem(f"{study.name}  ({study.id})", study.id)
    return combo


class StartReadingDialog(QDialog):
    """Pick a study, give reader id and PIN. The PIN is never echoed and never kept after the dialog."""

    def __init__(self, studies: list[Study], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Start reading")
        self.study_combo = _study_combo(studies)
        self.reader_edit = QLineEdit()
        self.pin_edit = QLineEdit()
        self.pin_edit.setEchoMode(QLineEdit.EchoMode.Password)
        form = QFormLayout()
        form.addRow("Study", self.study_combo)
        form.addRow("Reader id", self.reader_edit)
        form.addRow("PIN", self.pin_edit)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start reading")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.reader_edit.setFocus()

    def values(self) -> tuple[str, str, str]:
        """(study id, reader id, PIN)."""
        return self.study_combo.currentData() or "", self.reader_edit.text().strip(), self.pin_edit.text()


class NewStudyDialog(_EngineDialog):
    """Create a study from stored cases of one kind; the model outputs are frozen by the engine. The stored
    cases are listed on a worker; `loaded` turns True when they are on screen."""

    def __init__(self, store, preselect: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New reader study")
        self.store = store
        self.created: Study | None = None
        self.loaded = False
        self.summaries: list[CaseSummary] = []
        self.models_loaded = False
        self._model_generation = 0
        self.id_edit = QLineEdit()
        self.name_edit = QLineEdit()
        self.kind_combo = QComboBox()
        self.label_combo = QComboBox()
        self.label_combo.setEditable(True)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("The model whose stored results aided readers see and readers are compared "
                                    "with; every case needs a stored result of it")
        self.case_list = QListWidget()
        self.case_list.setMinimumHeight(160)
        self.modality_row = QHBoxLayout()
        self.modality_boxes: dict[str, QCheckBox] = {}
        self.unaided_box = QCheckBox("unaided (images only)")
        self.unaided_box.setChecked(True)
        self.aided_box = QCheckBox("aided (with the model's output), after unaided")
        self.scale_combo = QComboBox()
        for name in SCALES:
            self.scale_combo.addItem(name, name)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.contours_box = QCheckBox("readers also outline the tumor (single-frame cases)")
        self.repeat_spin = QSpinBox()
        self.repeat_spin.setRange(0, 5)
        self.repeat_spin.setToolTip("Extra rounds each reader reads again, in a new order, after the washout")
        self.washout_spin = QDoubleSpinBox()
        self.washout_spin.setRange(0, 365)
        self.washout_spin.setDecimals(1)
        self.washout_spin.setSuffix(" days")
        self.washout_spin.setToolTip("Least time between two of a reader's sessions (e.g. before the aided arm)")
        self.question_edit = QLineEdit()
        self.question_edit.setPlaceholderText("default: Is this case <label>?")
        self._setup_buttons("Create study")

        arms = QHBoxLayout()
        arms.addWidget(self.unaided_box)
        arms.addWidget(self.aided_box)
        form = QFormLayout()
        form.addRow("Study id", self.id_edit)
        form.addRow("Name", self.name_edit)
        form.addRow("Case kind", self.kind_combo)
        form.addRow("Task label", self.label_combo)
        form.addRow("Cases", self.case_list)
        form.addRow("Model", self.model_combo)
        form.addRow("Modalities shown", self.modality_row)
        form.addRow("Arms", arms)
        form.addRow("Confidence scale", self.scale_combo)
        form.addRow("Contours", self.contours_box)
        repeats = QHBoxLayout()
        repeats.addWidget(self.repeat_spin)
        repeats.addWidget(QLabel("washout"))
        repeats.addWidget(self.washout_spin)
        repeats.addStretch(1)
        form.addRow("Repeat reads", repeats)
        form.addRow("Seed", self.seed_spin)
        form.addRow("Question", self.question_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)
        self.ok_button.setEnabled(False)
        self.problems_label.setText("Listing the stored cases…")
        submit(store.list_cases, description="Listing cases", context=self,
               on_result=lambda summaries: self._cases_listed(summaries, preselect))

    def _cases_listed(self, summaries: list[CaseSummary], preselect: str | None) -> None:
        """Kinds in the registry's order (then any the registry does not know), the preselected case's first."""
        self.summaries = summaries
        present = list(dict.fromkeys(s.kind for s in summaries))
        known = [k.name for k in case_kinds() if k.name in present]
        for kind in known + [k for k in present if k not in known]:
            info = find_kind(kind)
            self.kind_combo.addItem(info.title if info else kind, kind)
        kind_of = {s.id: s.kind for s in summaries}
        if preselect in kind_of:
            self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind_of[preselect]))
        self._fill_kind(preselect)
        self.kind_combo.currentIndexChanged.connect(lambda _i: self._fill_kind(None))
        self.problems_label.setText("" if summaries else "The store has no cases yet: open some first.")
        self.ok_button.setEnabled(bool(summaries))
        self.loaded = True

    def _fill_kind(self, preselect: str | None) -> None:
        kind = self.kind_combo.currentData()
        info = find_kind(kind) if kind else None
        outline = bool(info and info.outline)
        self.contours_box.setEnabled(outline)
        if not outline:
            self.contours_box.setChecked(False)
        self.label_combo.clear()
        self.label_combo.addItems([t.name for t in info.tasks] if info else [])
        self.case_list.clear()
        modalities: list[str] = []
        for summary in self.summaries:
            if summary.kind != kind:
                continue
            results = count_of(summary.n_predictions, "stored result")
            item = QListWidgetItem(f"{summary.id}   {'+'.join(summary.modalities)}   {results}")
            item.setData(Qt.ItemDataRole.UserRole, summary.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if preselect in (None, summary.id) else Qt.CheckState.Unchecked)
            self.case_list.addItem(item)
            modalities += [m for m in summary.modalities if m not in modalities]
        self._list_models(info, [s.id for s in self.summaries if s.kind == kind])
        while self.modality_row.count():
            widget = self.modality_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.modality_boxes = {m: QCheckBox(m) for m in modalities}
        for i, box in enumerate(self.modality_boxes.values()):
            box.setChecked(i == 0)
            self.modality_row.addWidget(box)

    def _list_models(self, kind: CaseKind | None, case_ids: list[str]) -> None:
        """Offer the models with stored results on the kind's cases (read on a worker), the kind's primary
        model first and chosen (the one the source paper compares with readers) unless it has no results on
        them. Until the list is read, the engine's default is used (the primary model)."""
        self.model_combo.clear()
        self.models_loaded = False
        primary = _primary_model(kind)
        if primary:
            self.model_combo.addItem(f"{_model_title(kind, primary)} (primary) — listing results…", primary)
        if not case_ids:
            return
        generation = self._model_generation = self._model_generation + 1
        submit(stored_models, self.store, case_ids, description="Listing the models", context=self,
               on_result=lambda counts: self._models_listed(generation, kind, counts, len(case_ids)))

    def _models_listed(self, generation: int, kind: CaseKind | None, counts: dict[str, int], n_cases: int) -> None:
        if generation != self._model_generation:
            return  # another kind was picked meanwhile
        primary = _primary_model(kind)
        models = ([primary] if primary else []) + sorted(m for m in counts if m != primary)
        self.model_combo.clear()
        for model in models:
            note = " (primary)" if model == primary else ""
            self.model_combo.addItem(f"{_model_title(kind, model)}{note} — results for {counts.get(model, 0)} of "
                                     f"{count_of(n_cases, 'case')}", model)
        if primary and not counts.get(primary) and counts:  # the primary model has not run on these cases
            self.model_combo.setCurrentIndex(models.index(max(counts, key=counts.get)))
        else:
            self.model_combo.setCurrentIndex(0)
        self.models_loaded = True

    def study(self) -> Study:
        cases = [self.case_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.case_list.count())
                 if self.case_list.item(i).checkState() == Qt.CheckState.Checked]
        arms = [arm for arm, box in ((UNAIDED, self.unaided_box), (AIDED, self.aided_box)) if box.isChecked()]
        study_id = self.id_edit.text().strip()
        return Study(id=study_id, name=self.name_edit.text().strip() or study_id,
                     task_label=self.label_combo.currentText().strip(), case_ids=tuple(cases),
                     modalities=tuple(m for m, box in self.modality_boxes.items() if box.isChecked()),
                     arms=tuple(arms), confidence_scale=self.scale_combo.currentData(),
                     contours=self.contours_box.isChecked(), seed=self.seed_spin.value(),
                     repeat_reads=self.repeat_spin.value(), washout_days=self.washout_spin.value(),
                     model=(self.model_combo.currentData() if self.models_loaded else None) or None,
                     question=self.question_edit.text().strip())

    def accept(self) -> None:
        if self.busy or not self.loaded:
            return
        try:
            study = self.study()
        except StudyError as exc:
            self.problems_label.setText(str(exc))
            return
        self._run_engine(create_study, self.store, study, "admin", what="Creating the study",
                         done=lambda created: setattr(self, "created", created))


class AddReaderDialog(_EngineDialog):
    """Enrol a reader in a study: id, display name and the PIN typed twice (kept only as a salted hash)."""

    def __init__(self, store, studies: list[Study], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add reader")
        self.store = store
        self.added = None
        self.study_combo = _study_combo(studies)
        self.reader_edit = QLineEdit()
        self.name_edit = QLineEdit()
        self.pin_edit = QLineEdit()
        self.pin_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat_edit = QLineEdit()
        self.repeat_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self._setup_buttons("Add reader")
        form = QFormLayout()
        form.addRow("Study", self.study_combo)
        form.addRow("Reader id", self.reader_edit)
        form.addRow("Display name", self.name_edit)
        form.addRow("PIN", self.pin_edit)
        form.addRow("PIN again", self.repeat_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)

    def accept(self) -> None:
        if self.busy:
            return
        if self.pin_edit.text() != self.repeat_edit.text():
            self.problems_label.setText("The two PINs differ; type the same PIN twice.")
            return
        reader = self.reader_edit.text().strip()
        self._run_engine(add_reader, self.store, self.study_combo.currentData() or "", reader,
                         self.name_edit.text().strip() or reader, self.pin_edit.text(), "admin",
                         what="Enrolling the reader", done=lambda added: setattr(self, "added", added))
