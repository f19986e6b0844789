"""Reader-study dialogs: sign in to read, and the administrator's "new study" and "add reader".

The admin dialogs call the engine (`create_study`, `add_reader`) when OK is pressed and stay open with the
engine's message when it refuses, so nothing half-done is saved. Signing in only collects the study,
reader id and PIN; the window checks them off the GUI thread (`ReadingSession.open`).
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

from engine.cases.kinds import find_kind
from engine.studies import AIDED, SCALES, UNAIDED, Study, StudyError, add_reader, create_study


def _error_label() -> QLabel:
    label = QLabel("")
    label.setObjectName("problemsLabel")  # amber in the stylesheet
    label.setWordWrap(True)
    return label


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


class NewStudyDialog(QDialog):
    """Create a study from stored cases of one kind; the model outputs are frozen by the engine."""

    def __init__(self, store, preselect: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New reader study")
        self.store = store
        self.created: Study | None = None
        self.id_edit = QLineEdit()
        self.name_edit = QLineEdit()
        self.kind_combo = QComboBox()
        self.summaries = store.list_cases()
        for kind in dict.fromkeys(s.kind for s in self.summaries):
            info = find_kind(kind)
            self.kind_combo.addItem(info.title if info else kind, kind)
        self.label_combo = QComboBox()
        self.label_combo.setEditable(True)
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
        self.problems_label = _error_label()

        arms = QHBoxLayout()
        arms.addWidget(self.unaided_box)
        arms.addWidget(self.aided_box)
        form = QFormLayout()
        form.addRow("Study id", self.id_edit)
        form.addRow("Name", self.name_edit)
        form.addRow("Case kind", self.kind_combo)
        form.addRow("Task label", self.label_combo)
        form.addRow("Cases", self.case_list)
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
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create study")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)
        self.kind_combo.currentIndexChanged.connect(lambda _i: self._fill_kind(None))
        kind_of = {s.id: s.kind for s in self.summaries}
        if preselect in kind_of:
            self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind_of[preselect]))
        self._fill_kind(preselect)

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
            item = QListWidgetItem(f"{summary.id}   {'+'.join(summary.modalities)}   "
                                   f"{summary.n_predictions} stored result(s)")
            item.setData(Qt.ItemDataRole.UserRole, summary.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if preselect in (None, summary.id) else Qt.CheckState.Unchecked)
            self.case_list.addItem(item)
            modalities += [m for m in summary.modalities if m not in modalities]
        while self.modality_row.count():
            widget = self.modality_row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.modality_boxes = {m: QCheckBox(m) for m in modalities}
        for i, box in enumerate(self.modality_boxes.values()):
            box.setChecked(i == 0)
            self.modality_row.addWidget(box)

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
                     question=self.question_edit.text().strip())

    def accept(self) -> None:
        try:
            self.created = create_study(self.store, self.study(), actor="admin")
        except StudyError as exc:
            self.problems_label.setText(str(exc))
            return
        super().accept()


class AddReaderDialog(QDialog):
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
        self.problems_label = _error_label()
        form = QFormLayout()
        form.addRow("Study", self.study_combo)
        form.addRow("Reader id", self.reader_edit)
        form.addRow("Display name", self.name_edit)
        form.addRow("PIN", self.pin_edit)
        form.addRow("PIN again", self.repeat_edit)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add reader")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)

    def accept(self) -> None:
        if self.pin_edit.text() != self.repeat_edit.text():
            self.problems_label.setText("The two PINs differ; type the same PIN twice.")
            return
        reader = self.reader_edit.text().strip()
        try:
            self.added = add_reader(self.store, self.study_combo.currentData() or "", reader,
                                    self.name_edit.text().strip() or reader, self.pin_edit.text(), actor="admin")
        except StudyError as exc:
            self.problems_label.setText(str(exc))
            return
        super().accept()
