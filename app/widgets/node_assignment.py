"""File > Open node images…: which file is the white-light (WLI), fluorescence (FI) and pseudo-color (PCI) image.

The guesses and the checks come from `engine.kinds.lymph_node` (`describe_node_files`, `node_assignment_problems`);
this dialog only shows them and lets the user change the assignment.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from engine.kinds.lymph_node import NODE_MODALITIES, NODE_MODALITY_TITLES, NodeFile, node_assignment_problems

NOT_USED = "— not used —"


class NodeAssignmentDialog(QDialog):
    """One row per file: name, size and type, the mode it goes to (pre-set to the guess) and why it was guessed."""

    def __init__(self, files: list[NodeFile], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Assign node images")
        self.setObjectName("nodeAssignmentDialog")
        self.setMinimumWidth(900)
        self.files = files
        self.combos: dict[Path, QComboBox] = {}

        intro = QLabel("Which image is which mode of this lymph node? The three images must be pixel-aligned "
                       "(same size). A missing mode is allowed: the matching bi- or uni-modal MFI-FFP model runs.")
        intro.setWordWrap(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(8)
        for col, title in enumerate(("File", "Image", "Mode", "Guessed from")):
            header = QLabel(title)
            header.setObjectName("columnHeader")
            grid.addWidget(header, 0, col)
        for row, node_file in enumerate(files, start=1):
            name = QLabel(node_file.path.name)
            name.setToolTip(str(node_file.path))
            combo = QComboBox()
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            for modality in NODE_MODALITIES:
                combo.addItem(NODE_MODALITY_TITLES[modality], modality)
            combo.addItem(NOT_USED, None)
            combo.setCurrentIndex(combo.findData(node_file.guess) if node_file.guess else combo.count() - 1)
            combo.currentIndexChanged.connect(self._validate)
            reason = QLabel(node_file.reason or "not sure: please choose")
            reason.setObjectName("smallPrint")
            self.combos[node_file.path] = combo
            grid.addWidget(name, row, 0)
            grid.addWidget(QLabel(node_file.description), row, 1)
            grid.addWidget(combo, row, 2)
            grid.addWidget(reason, row, 3)
        grid.setColumnStretch(0, 1)
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("problemsLabel")
        self.problems_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addWidget(intro)
        layout.addLayout(grid)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons, alignment=Qt.AlignmentFlag.AlignRight)
        self._validate()

    def assignment(self) -> dict[Path, str | None]:
        """{file: mode, or None when the file is not used}."""
        return {path: combo.currentData() for path, combo in self.combos.items()}

    def mapping(self) -> dict[str, Path]:
        """{mode: file} for the files in use: what `case_from_node_images` takes."""
        return {modality: path for path, modality in self.assignment().items() if modality}

    def set_modality(self, path: Path, modality: str | None) -> None:
        combo = self.combos[Path(path)]
        combo.setCurrentIndex(combo.findData(modality) if modality else combo.count() - 1)

    def problems(self) -> list[str]:
        return node_assignment_problems(self.files, self.assignment())

    def _validate(self) -> None:
        problems = self.problems()
        if not problems:
            present = [m for m in NODE_MODALITIES if m in self.mapping()]
            missing = [m for m in NODE_MODALITIES if m not in present]
            text = f"No {' or '.join(missing)} image: the {'+'.join(present)} model will run." if missing else ""
        else:
            text = "\n".join(problems)
        self.problems_label.setProperty("state", "problem" if problems else "note")  # amber / muted (style.qss)
        self.problems_label.style().unpolish(self.problems_label)
        self.problems_label.style().polish(self.problems_label)
        self.problems_label.setText(text)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(not problems)
